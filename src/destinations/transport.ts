// One HTTP call to a destination, for every destination: through the gate (pace, budget,
// deadline), with a timeout, redirects never followed, logged without payloads, and the
// answer classified by the destination's own table into the outcome kinds the pipeline
// knows. Destinations describe their answers; this module knows no destination by name.

/**
 * - rate_limited: later, after `retryAfter` when the destination said (Segment retries 429 too)
 * - unavailable: 5xx, timeouts, resets, a 2xx that says error — retry
 * - redirected: 3xx — never followed (a POST would turn into a GET that "succeeds"); retry
 * - key_rejected: 401/403 — retry while the key is fixed
 * - not_found: the destination does not know the person (yet)
 * - rejected: permanent for this payload, with the destination's reason
 */
export type FailureKind = 'rate_limited' | 'unavailable' | 'redirected' | 'key_rejected' | 'not_found' | 'rejected'
export type AnswerKind = 'ok' | FailureKind

const RETRYABLE = new Set<FailureKind>(['rate_limited', 'unavailable', 'redirected', 'key_rejected'])

/** A call that failed, classified. */
export class CallError extends Error {
  override name = 'CallError'
  constructor(
    readonly kind: FailureKind,
    message: string,
    readonly status?: number,
    /** Seconds, for a rate limit that said how long (a header, or a field in the body). */
    readonly retryAfter?: number,
    /** The destination answered. Without an answer (timeout, network) the call may still have taken effect. */
    readonly answered = status !== undefined,
  ) {
    super(message)
  }

  get retryable(): boolean {
    return RETRYABLE.has(this.kind)
  }
}

/** One call, as logged: no payloads, no emails. */
export interface CallRecord {
  op: string
  status: number | 'timeout' | 'network'
  ms: number
  /** A rate limit's pause in seconds, as applied (capped), and as asked when the cap cut it. */
  wait?: number
  asked?: number
}

/** Whether and when a call may start, and how long it may take. */
export interface CallGate {
  /** Resolves when the call may start, or throws when no call may start. */
  enter(): Promise<CallPass>
}

/** One call's way through the gate. */
export interface CallPass {
  /** The milliseconds the call may take. */
  timeoutMs: number
  /** How the call ended (undefined: fine); `sent` false when it never went out. */
  leave(error: CallError | undefined, sent: boolean): void
}

/** What the neutral code hands a destination for one run of calls. */
export interface CallOptions {
  gate?: CallGate
  /** Called after every call, for the request log. */
  onCall?: (record: CallRecord) => void
  /** Calls repeated in place (through the gate again) before the failure is returned. */
  retries?: { rateLimited: number; unavailable: number }
  /** The longest pause a rate limit answer may impose (RATE_LIMIT_MAX_PAUSE_SECONDS): a longer one is a bug or a broken proxy. */
  maxPauseSeconds?: number
}

/** Status ranges -> kinds; first matching row wins (docs/delivery.md lists each destination's). */
export interface AnswerRow<Op extends string> {
  statuses: string
  ops?: readonly Op[]
  kind: AnswerKind
}

/**
 * A destination's answer table: its own rows between the ones every HTTP API shares (2xx
 * done, 3xx never followed, 401/403 the key; 408/425 and 5xx retried, 429 rate limited,
 * any other 4xx refused for good).
 */
export function answerRows<Op extends string>(own: readonly AnswerRow<Op>[]): readonly AnswerRow<Op>[] {
  return [
    { statuses: '200-299', kind: 'ok' },
    { statuses: '300-399', kind: 'redirected' },
    { statuses: '401 403', kind: 'key_rejected' },
    ...own,
    { statuses: '408 425', kind: 'unavailable' },
    { statuses: '429', kind: 'rate_limited' },
    { statuses: '400-499', kind: 'rejected' },
    { statuses: '500-599', kind: 'unavailable' },
    { statuses: '100-999', kind: 'unavailable' },
  ]
}

/** A destination's answer table, compiled once. */
export function answerTable<Op extends string>(rows: readonly AnswerRow<Op>[]): (status: number, op: Op) => AnswerKind {
  const rules = rows.map(({ statuses, ops, kind }) => ({
    ranges: statuses.split(' ').map((part) => part.split('-').map(Number) as [number, number?]),
    ops,
    kind,
  }))
  return (status, op) => {
    for (const { ranges, ops, kind } of rules) {
      if (ops && !ops.includes(op)) continue
      if (ranges.some(([low, high = low]) => status >= low && status <= high)) return kind
    }
    return 'unavailable'
  }
}

export interface Endpoint {
  /** The destination's name in messages ("Autopilot", "Ortto"). */
  label: string
  baseUrl: string
  headers: Record<string, string>
  timeoutMs: number
  /** Never in a message, in case the destination ever echoes it. */
  secret: string
  /**
   * Asked as each call is about to start (after the gate): throws when the destination's own
   * limits say no call may start now; returns what to call when it has ended.
   */
  admit?: () => () => void
}

export interface Request<Op extends string> {
  op: Op
  method: string
  path: string
  body?: unknown
  /** An unanswered call may be repeated in place (false: it may have taken effect, e.g. a journey entry). */
  repeatable: boolean
}

/**
 * Makes the call, repeated in place as `options.retries` allows; returns the response of a
 * call the classifier accepted, or throws CallError. `classify` reads the response and says
 * what it means (it may read the body; the response is handed back unread otherwise).
 */
export async function call<Op extends string>(
  endpoint: Endpoint,
  options: CallOptions,
  request: Request<Op>,
  classify: (response: Response, op: Op) => Promise<CallError | undefined>,
): Promise<Response> {
  const retries = { ...(options.retries ?? { rateLimited: 0, unavailable: 0 }) }
  for (;;) {
    try {
      return await callOnce(endpoint, options, request, classify)
    } catch (error) {
      if (!(error instanceof CallError)) throw error
      if (error.kind === 'rate_limited' && retries.rateLimited-- > 0) continue
      if (error.kind === 'unavailable' && (request.repeatable || error.answered) && retries.unavailable-- > 0) continue
      throw error
    }
  }
}

async function callOnce<Op extends string>(
  endpoint: Endpoint,
  { gate, onCall, maxPauseSeconds = DEFAULT_MAX_PAUSE_SECONDS }: CallOptions,
  { op, method, path, body }: Request<Op>,
  classify: (response: Response, op: Op) => Promise<CallError | undefined>,
): Promise<Response> {
  const { label } = endpoint
  const pass = await gate?.enter()
  const timeoutMs = pass ? Math.min(endpoint.timeoutMs, pass.timeoutMs) : endpoint.timeoutMs
  const started = Date.now()
  let failure: CallError | undefined
  let admitted: (() => void) | undefined
  try {
    admitted = endpoint.admit?.()
    let response: Response
    try {
      response = await fetch(`${endpoint.baseUrl}${path}`, {
        method,
        headers: endpoint.headers,
        body: body === undefined ? undefined : JSON.stringify(body),
        signal: AbortSignal.timeout(timeoutMs),
        redirect: 'manual',
      })
    } catch (error) {
      const timedOut = error instanceof Error && (error.name === 'TimeoutError' || error.name === 'AbortError')
      onCall?.({ op, status: timedOut ? 'timeout' : 'network', ms: Date.now() - started })
      throw (failure = timedOut ? new CallError('unavailable', `${label} did not answer within ${timeoutMs} ms`) : new CallError('unavailable', `Could not reach ${label} (network error)`))
    }
    const record: CallRecord = { op, status: response.status, ms: 0 }
    failure = await classify(response, op)
    if (failure?.kind === 'rate_limited') failure = capped(failure, maxPauseSeconds, record)
    record.ms = Date.now() - started
    onCall?.(record)
    if (failure) throw failure
    return response
  } finally {
    admitted?.()
    pass?.leave(failure, admitted !== undefined || !endpoint.admit)
  }
}

export const DEFAULT_MAX_PAUSE_SECONDS = 60

/** A rate limit whose pause is cut to the cap (and logged as asked and applied). */
function capped(error: CallError, maxPauseSeconds: number, record: CallRecord): CallError {
  if (error.retryAfter === undefined) return error
  record.wait = Math.min(error.retryAfter, maxPauseSeconds)
  if (error.retryAfter <= maxPauseSeconds) return error
  record.asked = error.retryAfter
  return new CallError(error.kind, `${error.message}; it asked for a ${error.retryAfter} s pause, capped at ${maxPauseSeconds} s`, error.status, maxPauseSeconds)
}

/**
 * Seconds to wait from a Retry-After value (delta-seconds or an HTTP date), or from a number a
 * body gave; undefined when it is missing, negative or unparsable (the pacer then uses its own
 * short pause). Capped in `call` (RATE_LIMIT_MAX_PAUSE_SECONDS).
 */
export function waitSeconds(value: string | number | null | undefined, now = Date.now()): number | undefined {
  if (value === null || value === undefined || value === '') return undefined
  if (typeof value === 'number') return Number.isFinite(value) && value >= 0 ? Math.ceil(value) : undefined
  const text = value.trim()
  if (/^\d+(?:\.\d+)?$/.test(text)) return Math.ceil(Number(text))
  const date = Date.parse(text)
  if (!/[a-z]/i.test(text) || !Number.isFinite(date)) return undefined
  return Math.max(0, Math.ceil((date - now) / 1000))
}

/** The secret never leaves in a message. */
export const redact = (text: string, secret: string) => (secret ? text.replaceAll(secret, '[redacted]') : text)

/** A short reason from an error body: its `message` (or `error.message`, `error`), else the text. */
export async function reasonOf(response: Response, secret: string): Promise<string> {
  let text = ''
  try {
    text = await response.text()
    const parsed = JSON.parse(text) as { message?: unknown; error?: unknown }
    const error = parsed?.error as { message?: unknown } | string | undefined
    const said = parsed?.message ?? (typeof error === 'object' ? error?.message : error)
    if (typeof said === 'string') text = said
  } catch {
    // not JSON: the text as it is
  }
  return redact((text || response.statusText || 'no reason given').slice(0, 300), secret)
}
