// The Autopilot REST client and the classification of its answers. Mapping lives
// in transform.ts; deciding what Segment (or the queue) should do lives here.
import type { Config } from './config'
import type { Contact } from './transform'

export const BULK_LIMIT = 100

/**
 * - rate_limited: 429, retry later (Segment retries 429 too).
 * - unavailable: 5xx, network failure, our own timeout — retry.
 * - key_rejected: 401/403 — retry (Segment keeps retrying for 4 h while the key is fixed).
 * - not_found: 404 — the caller decides (a trigger for an unknown contact).
 * - rejected: any other 4xx — permanent for this payload.
 */
export type FailureKind = 'rate_limited' | 'unavailable' | 'key_rejected' | 'not_found' | 'rejected'

export class AutopilotError extends Error {
  constructor(
    readonly kind: FailureKind,
    message: string,
    readonly status?: number,
    /** Seconds, for 429. */
    readonly retryAfter?: number,
  ) {
    super(message)
    this.name = 'AutopilotError'
  }

  get retryable(): boolean {
    return this.kind === 'rate_limited' || this.kind === 'unavailable' || this.kind === 'key_rejected'
  }
}

/** One Autopilot call, as logged: no payloads, no emails. */
export interface CallRecord {
  op: string
  status: number | 'timeout' | 'network'
  ms: number
}

export interface ClientOptions {
  baseUrl: string
  apiKey: string
  timeoutMs: number
  /** Called after every call, for the request log. */
  onCall?: (record: CallRecord) => void
  /** Awaited before every call (queued mode paces calls to AUTOPILOT_MAX_RPS). */
  beforeCall?: () => Promise<void>
  /** Told about every 429, so a pacer can slow down. */
  onRateLimited?: (retryAfterSeconds: number) => void
  /** How often to repeat a call Autopilot answered 429 (after beforeCall has waited), before giving up. */
  rateLimitRetries?: number
}

export const DEFAULT_RETRY_AFTER_SECONDS = 1

export class AutopilotClient {
  constructor(private readonly options: ClientOptions) {}

  /** A client for these settings (call only when configurationProblem() found none). */
  static for(config: Config, options: Omit<ClientOptions, 'baseUrl' | 'apiKey' | 'timeoutMs'>): AutopilotClient {
    return new AutopilotClient({ baseUrl: config.baseUrl, apiKey: config.apiKey!, timeoutMs: config.timeoutMs, ...options })
  }

  upsertContact(contact: Contact): Promise<void> {
    return this.call('contact', 'POST', '/contact', { contact })
  }

  upsertContacts(contacts: Contact[]): Promise<void> {
    if (contacts.length > BULK_LIMIT) throw new RangeError(`at most ${BULK_LIMIT} contacts per bulk call`)
    return this.call('contacts', 'POST', '/contacts', { contacts })
  }

  trigger(triggerId: string, email: string): Promise<void> {
    return this.call('trigger', 'POST', `/trigger/${encodeURIComponent(triggerId)}/contact/${encodeURIComponent(email)}`)
  }

  /** Deleting a contact Autopilot does not know is a success: it is gone either way. */
  async deleteContact(email: string): Promise<'deleted' | 'absent'> {
    try {
      await this.call('delete', 'DELETE', `/contact/${encodeURIComponent(email)}`)
      return 'deleted'
    } catch (error) {
      if (error instanceof AutopilotError && error.kind === 'not_found') return 'absent'
      throw error
    }
  }

  private async call(op: string, method: string, path: string, body?: unknown): Promise<void> {
    for (let retries = this.options.rateLimitRetries ?? 0; ; retries--) {
      try {
        return await this.callOnce(op, method, path, body)
      } catch (error) {
        if (!(error instanceof AutopilotError) || error.kind !== 'rate_limited' || retries <= 0) throw error
      }
    }
  }

  private async callOnce(op: string, method: string, path: string, body?: unknown): Promise<void> {
    const { baseUrl, apiKey, timeoutMs, onCall, beforeCall } = this.options
    await beforeCall?.()
    const started = Date.now()
    let response: Response
    try {
      response = await fetch(`${baseUrl}${path}`, {
        method,
        headers: {
          autopilotapikey: apiKey,
          'content-type': 'application/json',
          accept: 'application/json',
        },
        body: body === undefined ? undefined : JSON.stringify(body),
        signal: AbortSignal.timeout(timeoutMs),
      })
    } catch (error) {
      const timedOut = error instanceof Error && (error.name === 'TimeoutError' || error.name === 'AbortError')
      onCall?.({ op, status: timedOut ? 'timeout' : 'network', ms: Date.now() - started })
      throw timedOut
        ? new AutopilotError('unavailable', `Autopilot did not answer within ${timeoutMs} ms`)
        : new AutopilotError('unavailable', 'Could not reach Autopilot (network error)')
    }
    onCall?.({ op, status: response.status, ms: Date.now() - started })
    if (response.ok) {
      await response.body?.cancel()
      return
    }
    const error = classify(response.status, await reasonOf(response, apiKey), response.headers.get('retry-after'))
    if (error.kind === 'rate_limited') this.options.onRateLimited?.(error.retryAfter ?? DEFAULT_RETRY_AFTER_SECONDS)
    throw error
  }
}

/** Maps Autopilot's status to what should happen next. */
export function classify(status: number, reason: string, retryAfter: string | null = null): AutopilotError {
  if (status === 429) {
    return new AutopilotError('rate_limited', `Autopilot rate limit reached (429): ${reason}`, status, retryAfterSeconds(retryAfter))
  }
  if (status === 401 || status === 403) {
    return new AutopilotError('key_rejected', `Autopilot rejected the API key (${status}): check AUTOPILOT_API_KEY`, status)
  }
  if (status === 404) return new AutopilotError('not_found', `Autopilot answered 404: ${reason}`, status)
  if (status >= 400 && status < 500) return new AutopilotError('rejected', `Autopilot rejected it (${status}): ${reason}`, status)
  return new AutopilotError('unavailable', `Autopilot is unavailable (${status})`, status)
}

function retryAfterSeconds(header: string | null): number {
  const seconds = Number(header)
  if (header && Number.isFinite(seconds) && seconds >= 0) return Math.min(Math.ceil(seconds), 3600)
  return DEFAULT_RETRY_AFTER_SECONDS
}

/** Autopilot's own message, short and with the key redacted in case it is ever echoed. */
async function reasonOf(response: Response, apiKey: string): Promise<string> {
  let text = ''
  try {
    text = await response.text()
    const parsed: unknown = JSON.parse(text)
    if (parsed && typeof parsed === 'object' && 'message' in parsed && typeof parsed.message === 'string') text = parsed.message
  } catch {
    // not JSON: use the text as it is
  }
  return (text || response.statusText || 'no reason given').replaceAll(apiKey, '[redacted]').slice(0, 300)
}
