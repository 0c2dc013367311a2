// The Autopilot REST v1 client, and the one table that says what each of its answers
// means. Mapping lives in mapping.ts; what to send together in send.ts; the call itself
// (gate, timeout, log) in ../transport.ts.
import { answerRows, answerTable, call, CallError, reasonOf, redact, waitSeconds, type CallOptions, type Endpoint } from '../transport'
import type { Contact } from './mapping'

export const BULK_LIMIT = 100

export type Op = 'contact' | 'contacts' | 'trigger' | 'delete' | 'read'

/**
 * Autopilot's answers -> what happens next. First matching row wins; docs/delivery.md lists it.
 * A 404 is "the contact does not exist yet" on a trigger, "gone either way" on a delete, and
 * elsewhere a wrong base URL or a deploy at Autopilot (retry). A 2xx whose body says error is
 * retried too (see classify).
 */
export const ANSWERS = answerRows<Op>([
  { statuses: '404', ops: ['trigger'], kind: 'not_found' },
  { statuses: '404', ops: ['delete'], kind: 'ok' },
  { statuses: '404', kind: 'unavailable' },
])
export const kindOf = answerTable<Op>(ANSWERS)

export interface AutopilotEndpoint {
  baseUrl: string
  apiKey: string
  timeoutMs: number
}

export class AutopilotClient {
  private readonly endpoint: Endpoint

  constructor(
    { baseUrl, apiKey, timeoutMs }: AutopilotEndpoint,
    private readonly options: CallOptions = {},
  ) {
    this.endpoint = {
      label: 'Autopilot',
      baseUrl,
      timeoutMs,
      secret: apiKey,
      headers: { autopilotapikey: apiKey, 'content-type': 'application/json', accept: 'application/json' },
    }
  }

  async upsertContact(contact: Contact): Promise<void> {
    await this.send('contact', 'POST', '/contact', { contact })
  }

  async upsertContacts(contacts: Contact[]): Promise<void> {
    if (contacts.length > BULK_LIMIT) throw new RangeError(`at most ${BULK_LIMIT} contacts per bulk call`)
    await this.send('contacts', 'POST', '/contacts', { contacts })
  }

  /** Not safe to repeat: a repeat can enter the journey twice, so only an answered failure is retried in place. */
  async trigger(triggerId: string, email: string): Promise<void> {
    await this.send('trigger', 'POST', `/trigger/${encodeURIComponent(triggerId)}/contact/${encodeURIComponent(email)}`)
  }

  /**
   * Deleting a contact Autopilot does not know is a success: it is gone either way — once a read
   * agrees. (A 404 from a proxy or a bad moment would otherwise leave the person in place for good;
   * `npm run simulate` found it. One more call, only when the delete answered 404.)
   */
  async deleteContact(email: string): Promise<'deleted' | 'absent'> {
    const path = `/contact/${encodeURIComponent(email)}`
    if ((await this.send('delete', 'DELETE', path)).status !== 404) return 'deleted'
    if ((await this.send('delete', 'GET', path)).status === 404) return 'absent'
    throw new CallError('unavailable', 'Autopilot answered 404 to the delete, yet still has the contact; will retry', 404)
  }

  /** A GET of JSON (the setup check, custom field discovery). */
  async read(path: string): Promise<unknown> {
    const response = await this.send('read', 'GET', path)
    return response.json().catch(() => undefined)
  }

  private send(op: Op, method: string, path: string, body?: unknown): Promise<Response> {
    return call(this.endpoint, this.options, { op, method, path, body, repeatable: op !== 'trigger' }, (response) => classify(response, op, path, this.endpoint.secret))
  }
}

async function classify(response: Response, op: Op, path: string, apiKey: string): Promise<CallError | undefined> {
  const { status } = response
  const kind = kindOf(status, op)
  switch (kind) {
    case 'ok': {
      if (op === 'read' || status === 404) return undefined
      const said = await errorInBody(response)
      return said === undefined ? undefined : new CallError('unavailable', `Autopilot answered ${status} but its body says error: ${redact(said, apiKey)}`, status)
    }
    case 'rate_limited':
      return new CallError(kind, `Autopilot rate limit reached (429): ${await reasonOf(response, apiKey)}`, status, waitSeconds(response.headers.get('retry-after')))
    case 'key_rejected':
      return new CallError(kind, `Autopilot rejected the API key (${status}): check AUTOPILOT_API_KEY`, status)
    case 'redirected':
      return new CallError(
        kind,
        `Autopilot redirected ${op} (${status}), which is never followed: check AUTOPILOT_BASE_URL (it must be the API's own address, https://api2.autopilothq.com/v1)`,
        status,
      )
    case 'not_found':
      return new CallError(kind, `Autopilot answered 404: ${await reasonOf(response, apiKey)}`, status)
    case 'rejected':
      return new CallError(kind, `Autopilot rejected it (${status}): ${await reasonOf(response, apiKey)}`, status)
    case 'unavailable':
      await response.body?.cancel()
      return new CallError(kind, status === 404 ? `Autopilot answered 404 for ${path.split('/')[1]}: check AUTOPILOT_BASE_URL` : `Autopilot is unavailable (${status})`, status)
  }
}

/** A 2xx body that says error (`{"error": ...}`), as text; undefined when it does not. */
async function errorInBody(response: Response): Promise<string | undefined> {
  const text = await response.text().catch(() => '')
  if (!text.includes('"error"')) return undefined
  try {
    const parsed = JSON.parse(text) as { error?: unknown; message?: unknown }
    if (!parsed?.error) return undefined
    return (typeof parsed.message === 'string' ? parsed.message : String(parsed.error)).slice(0, 300)
  } catch {
    return undefined
  }
}
