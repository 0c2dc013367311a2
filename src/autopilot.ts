// The Autopilot REST client, and the one table that says what each of its answers
// means. Mapping lives in transform.ts; when to call lives in deliver.ts and gate.ts.
import type { Config } from './config'
import type { Contact } from './transform'

export const BULK_LIMIT = 100

export type Op = 'contact' | 'contacts' | 'trigger' | 'delete' | 'read'

/**
 * - ok: done (a 404 on delete too: the contact is gone either way)
 * - rate_limited: 429 — later (Segment retries 429 as well)
 * - unavailable: 5xx, 408, 425, a 404 off the trigger path (a wrong base URL, a deploy at
 *   Autopilot), a 2xx whose body says error, no answer — retry
 * - redirected: 3xx — never followed (a POST would turn into a GET that "succeeds");
 *   retry, and logged as a misconfiguration of AUTOPILOT_BASE_URL
 * - key_rejected: 401/403 — retry while the key is fixed
 * - not_found: 404 on a trigger — the contact does not exist yet
 * - rejected: any other 4xx — permanent for this payload, with Autopilot's message
 */
export type AnswerKind = 'ok' | 'rate_limited' | 'unavailable' | 'redirected' | 'key_rejected' | 'not_found' | 'rejected'

/** Autopilot's answers -> what happens next. First matching row wins; docs/delivery.md lists it. */
export const ANSWERS: readonly { statuses: string; ops?: readonly Op[]; kind: AnswerKind }[] = [
  { statuses: '200-299', kind: 'ok' },
  { statuses: '300-399', kind: 'redirected' },
  { statuses: '401 403', kind: 'key_rejected' },
  { statuses: '404', ops: ['trigger'], kind: 'not_found' },
  { statuses: '404', ops: ['delete'], kind: 'ok' },
  { statuses: '404', kind: 'unavailable' },
  { statuses: '408 425', kind: 'unavailable' },
  { statuses: '429', kind: 'rate_limited' },
  { statuses: '400-499', kind: 'rejected' },
  { statuses: '500-599', kind: 'unavailable' },
  { statuses: '100-999', kind: 'unavailable' },
]
const RULES = ANSWERS.map(({ statuses, ops, kind }) => ({
  ranges: statuses.split(' ').map((part) => part.split('-').map(Number) as [number, number?]),
  ops,
  kind,
}))

export function kindOf(status: number, op: Op): AnswerKind {
  for (const { ranges, ops, kind } of RULES) {
    if (ops && !ops.includes(op)) continue
    if (ranges.some(([low, high = low]) => status >= low && status <= high)) return kind
  }
  return 'unavailable'
}

const RETRYABLE = new Set<AnswerKind>(['rate_limited', 'unavailable', 'redirected', 'key_rejected'])

export class AutopilotError extends Error {
  override name = 'AutopilotError'
  constructor(
    readonly kind: Exclude<AnswerKind, 'ok'>,
    message: string,
    readonly status?: number,
    /** Seconds, for a 429 that said (Retry-After). */
    readonly retryAfter?: number,
    /** Autopilot answered. Without an answer (timeout, network) the call may still have taken effect. */
    readonly answered = status !== undefined,
  ) {
    super(message)
  }

  get retryable(): boolean {
    return RETRYABLE.has(this.kind)
  }
}

/** One Autopilot call, as logged: no payloads, no emails. */
export interface CallRecord {
  op: Op
  status: number | 'timeout' | 'network'
  ms: number
}

/** Whether and when a call may start, and how long it may take. */
export interface CallGate {
  /** Resolves with the milliseconds this call may take, or throws when no call may start. */
  enter(): Promise<number>
  /** How the call ended (undefined: fine). */
  leave(error?: AutopilotError): void
}

export interface ClientOptions {
  baseUrl: string
  apiKey: string
  timeoutMs: number
  gate?: CallGate
  /** Called after every call, for the request log. */
  onCall?: (record: CallRecord) => void
  /** Calls repeated in place (through the gate again) before the failure is returned. */
  retries?: { rateLimited: number; unavailable: number }
}

const NO_RETRIES = { rateLimited: 0, unavailable: 0 }

export class AutopilotClient {
  constructor(private readonly options: ClientOptions) {}

  /** A client for these settings (call only when configurationProblem() found none). */
  static for(config: Config, options: Omit<ClientOptions, 'baseUrl' | 'apiKey' | 'timeoutMs'>): AutopilotClient {
    return new AutopilotClient({ baseUrl: config.baseUrl, apiKey: config.apiKey!, timeoutMs: config.timeoutMs, ...options })
  }

  async upsertContact(contact: Contact): Promise<void> {
    await this.call('contact', 'POST', '/contact', { contact })
  }

  async upsertContacts(contacts: Contact[]): Promise<void> {
    if (contacts.length > BULK_LIMIT) throw new RangeError(`at most ${BULK_LIMIT} contacts per bulk call`)
    await this.call('contacts', 'POST', '/contacts', { contacts })
  }

  /** Not safe to repeat: a repeat can enter the journey twice, so only an answered failure is retried in place. */
  async trigger(triggerId: string, email: string): Promise<void> {
    await this.call('trigger', 'POST', `/trigger/${encodeURIComponent(triggerId)}/contact/${encodeURIComponent(email)}`)
  }

  /** Deleting a contact Autopilot does not know is a success: it is gone either way. */
  async deleteContact(email: string): Promise<'deleted' | 'absent'> {
    const status = await this.call('delete', 'DELETE', `/contact/${encodeURIComponent(email)}`)
    return status === 404 ? 'absent' : 'deleted'
  }

  /** A GET of JSON (the setup check, custom field discovery). */
  async read(path: string): Promise<unknown> {
    let body: unknown
    await this.call('read', 'GET', path, undefined, async (response) => {
      body = await response.json().catch(() => undefined)
    })
    return body
  }

  private async call(op: Op, method: string, path: string, body?: unknown, onOk?: (response: Response) => Promise<void>): Promise<number> {
    const retries = { ...(this.options.retries ?? NO_RETRIES) }
    for (;;) {
      try {
        return await this.callOnce(op, method, path, body, onOk)
      } catch (error) {
        if (!(error instanceof AutopilotError)) throw error
        if (error.kind === 'rate_limited' && retries.rateLimited-- > 0) continue
        // Upserts are safe to repeat; a trigger only when Autopilot answered (it did not enter the journey).
        if (error.kind === 'unavailable' && (op !== 'trigger' || error.answered) && retries.unavailable-- > 0) continue
        throw error
      }
    }
  }

  private async callOnce(op: Op, method: string, path: string, body: unknown, onOk?: (response: Response) => Promise<void>): Promise<number> {
    const { baseUrl, apiKey, onCall, gate } = this.options
    const timeoutMs = gate ? Math.min(this.options.timeoutMs, await gate.enter()) : this.options.timeoutMs
    const started = Date.now()
    let failure: AutopilotError | undefined
    try {
      let response: Response
      try {
        response = await fetch(`${baseUrl}${path}`, {
          method,
          headers: { autopilotapikey: apiKey, 'content-type': 'application/json', accept: 'application/json' },
          body: body === undefined ? undefined : JSON.stringify(body),
          signal: AbortSignal.timeout(timeoutMs),
          redirect: 'manual',
        })
      } catch (error) {
        const timedOut = error instanceof Error && (error.name === 'TimeoutError' || error.name === 'AbortError')
        onCall?.({ op, status: timedOut ? 'timeout' : 'network', ms: Date.now() - started })
        throw (failure = timedOut
          ? new AutopilotError('unavailable', `Autopilot did not answer within ${timeoutMs} ms`)
          : new AutopilotError('unavailable', 'Could not reach Autopilot (network error)'))
      }
      onCall?.({ op, status: response.status, ms: Date.now() - started })
      const kind = kindOf(response.status, op)
      if (kind === 'ok') {
        const said = response.status === 404 ? undefined : await errorInBody(response, onOk)
        if (said === undefined) return response.status
        throw (failure = new AutopilotError('unavailable', `Autopilot answered ${response.status} but its body says error: ${redact(said, apiKey)}`, response.status))
      }
      throw (failure = await errorFor(kind, response, op, path, apiKey))
    } finally {
      gate?.leave(failure)
    }
  }
}

async function errorFor(kind: Exclude<AnswerKind, 'ok'>, response: Response, op: Op, path: string, apiKey: string): Promise<AutopilotError> {
  const { status } = response
  const reason = redact(await reasonOf(response), apiKey)
  switch (kind) {
    case 'rate_limited':
      return new AutopilotError(kind, `Autopilot rate limit reached (429): ${reason}`, status, retryAfterSeconds(response.headers.get('retry-after')))
    case 'key_rejected':
      return new AutopilotError(kind, `Autopilot rejected the API key (${status}): check AUTOPILOT_API_KEY`, status)
    case 'redirected':
      return new AutopilotError(kind, `Autopilot redirected ${op} (${status}), which is never followed: check AUTOPILOT_BASE_URL (it must be the API's own address, https://api2.autopilothq.com/v1)`, status)
    case 'not_found':
      return new AutopilotError(kind, `Autopilot answered 404: ${reason}`, status)
    case 'rejected':
      return new AutopilotError(kind, `Autopilot rejected it (${status}): ${reason}`, status)
    case 'unavailable':
      return new AutopilotError(
        kind,
        status === 404 ? `Autopilot answered 404 for ${path.split('/')[1]}: check AUTOPILOT_BASE_URL` : `Autopilot is unavailable (${status})`,
        status,
      )
  }
}

/** A 2xx body that says error (`{"error": ...}`), as text; undefined when it does not. */
async function errorInBody(response: Response, onOk?: (response: Response) => Promise<void>): Promise<string | undefined> {
  if (onOk) {
    await onOk(response)
    return undefined
  }
  const text = await response.text().catch(() => '')
  if (!text.includes('"error"')) return undefined
  try {
    const parsed: unknown = JSON.parse(text)
    if (!parsed || typeof parsed !== 'object' || !('error' in parsed) || !parsed.error) return undefined
    const message = 'message' in parsed && typeof parsed.message === 'string' ? parsed.message : String(parsed.error)
    return message.slice(0, 300)
  } catch {
    return undefined
  }
}

function retryAfterSeconds(header: string | null): number | undefined {
  const seconds = Number(header)
  return header && Number.isFinite(seconds) && seconds >= 0 ? Math.min(Math.ceil(seconds), 3600) : undefined
}

/** Autopilot's own message, short. */
async function reasonOf(response: Response): Promise<string> {
  let text = ''
  try {
    text = await response.text()
    const parsed: unknown = JSON.parse(text)
    if (parsed && typeof parsed === 'object' && 'message' in parsed && typeof parsed.message === 'string') text = parsed.message
  } catch {
    // not JSON: use the text as it is
  }
  return (text || response.statusText || 'no reason given').slice(0, 300)
}

/** The key never leaves in a message, in case Autopilot ever echoes it. */
const redact = (text: string, apiKey: string) => text.replaceAll(apiKey, '[redacted]')
