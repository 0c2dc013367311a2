// @ts-check
// A local stand-in for Autopilot's REST API v1, built from ../shared/reference/autopilot-api.md.
// It is deliberately independent of src/: the tests use it as the judge of what
// the Worker sends. It runs anywhere `Request`/`Response` exist: inside workerd
// (tests, via a fetch spy), in Node (the `npm start` sandbox server) and as
// Miniflare's outboundService (benchmarks, fuzzing).
import { CUSTOM_KEY, contactProblem } from './autopilot-contact.js'
import { delay, injected, mulberry32 } from './network.js'

export { STANDARD_FIELDS, contactProblem, isWellFormedCustomKey } from './autopilot-contact.js'

/**
 * A fault answers the next matching call instead of the account: a status (3xx with a
 * Location header, 4xx/5xx with Autopilot's error shape, or 2xx with `body`), a hang, a
 * reset connection.
 * @typedef {{ status?: number, body?: unknown, location?: string, hang?: boolean, network?: boolean, retryAfter?: string, match?: (call: Call) => boolean }} Fault
 * @typedef {{ at: number, done?: number, method: string, path: string, body: any, status: number, apiKey: string | null }} Call
 * @typedef {{
 *   apiKey?: string,
 *   rateLimit?: number,
 *   failureRate?: number,
 *   seed?: number,
 *   triggers?: string[],
 *   customFields?: Record<string, string>,
 *   latencyMs?: number,
 *   now?: () => number,
 *   log?: (line: string) => void,
 * }} AutopilotOptions
 */

/**
 * Creates one Autopilot account in memory.
 * - `rateLimit`: requests per second per key (sliding one-second window); 0 = unlimited.
 * - `failureRate`: share of calls answered with an injected 429/500/503 (seeded, repeatable).
 * - `triggers`: known API trigger ids; others answer 404. Omitted = any id exists.
 * - `customFields`: custom fields the account already has (name -> type), as if made in Autopilot's UI.
 * - `latencyMs`: how long every answer takes (a round trip from Cloudflare's edge is ~250 ms).
 * @param {AutopilotOptions} [options]
 */
export function createAutopilot(options = {}) {
  const apiKey = options.apiKey ?? 'sandbox-key'
  const now = options.now ?? (() => Date.now())
  let random = mulberry32(options.seed ?? 1)
  /** @type {Map<string, Record<string, any>>} */
  const contacts = new Map()
  /** @type {Map<string, string>} custom field name (spaces as --) -> type */
  const fieldTypes = new Map()
  const seedFields = () => {
    for (const [name, type] of Object.entries(options.customFields ?? {})) fieldTypes.set(name.trim().replace(/\s+/g, '--'), type)
  }
  seedFields()
  /** @type {{triggerId: string, email: string, at: number}[]} */
  const enrolments = []
  /** @type {Call[]} */
  const calls = []
  /** @type {Fault[]} */
  const faults = []
  /** @type {number[]} */
  let window = []
  let ids = 0

  const state = {
    rateLimit: options.rateLimit ?? 0,
    failureRate: options.failureRate ?? 0,
    latencyMs: options.latencyMs ?? 0,
    contacts,
    fieldTypes,
    enrolments,
    calls,
    /** Queue faults for the next matching calls, in order. @param {...Fault} list */
    inject(...list) {
      faults.push(...list)
    },
    reset() {
      contacts.clear()
      fieldTypes.clear()
      seedFields()
      enrolments.length = 0
      calls.length = 0
      faults.length = 0
      window = []
      random = mulberry32(options.seed ?? 1)
    },
    /** @param {Request} request */
    fetch: async (request) => handle(request),
  }

  /** @param {number} status @param {string} message @param {Record<string, string>} [headers] */
  const error = (status, message, headers) => Response.json({ error: reason(status), message }, { status, headers })

  /** @param {Request} request @returns {Promise<Response>} */
  async function handle(request) {
    const url = new URL(request.url)
    const path = url.pathname.replace(/^\/v1(?=\/)/, '')
    const text = request.method === 'GET' || request.method === 'DELETE' ? '' : await request.text()
    /** @type {any} */
    let body
    try {
      body = text ? JSON.parse(text) : undefined
    } catch {
      body = Symbol.for('unparseable')
    }
    /** @type {Call} */
    const call = { at: now(), method: request.method, path, body, status: 0, apiKey: request.headers.get('autopilotapikey') }
    calls.push(call)
    const response = await answer(request, call)
    if (state.latencyMs > 0) await delay(state.latencyMs, request.signal)
    call.status = response.status
    call.done = now()
    if (options.log) {
      const said =
        response.status >= 400
          ? await response
              .clone()
              .json()
              .then(
                (b) => ` "${b.message}"`,
                () => '',
              )
          : ''
      options.log(`${call.method} ${decodeURIComponent(call.path)} -> ${call.status}${said}${summary(call)}`)
    }
    return response
  }

  /** @param {Request} request @param {Call} call @returns {Promise<Response>} */
  async function answer(request, call) {
    const faulted = injected(faults, call, request, 'https://autopilot.example/moved', (fault, status) =>
      error(status, status === 429 ? `You have exceeded your request rate of ${state.rateLimit || 5} r/s.` : 'Injected failure.', fault.retryAfter ? { 'Retry-After': fault.retryAfter } : undefined),
    )
    if (faulted) return faulted
    if (state.failureRate > 0 && random() < state.failureRate) {
      const status = [429, 500, 503][Math.floor(random() * 3)]
      return error(status, status === 429 ? 'You have exceeded your request rate of 5 r/s.' : 'Injected failure.')
    }
    if (state.rateLimit > 0) {
      const t = now()
      window = window.filter((at) => t - at < 1000)
      if (window.length >= state.rateLimit) return error(429, `You have exceeded your request rate of ${state.rateLimit} r/s.`)
      window.push(t)
    }
    if (!call.apiKey) return error(400, 'No autopilotapikey header provided.')
    if (call.apiKey !== apiKey) return error(401, 'Provided autopilotapikey not valid.')
    if (call.body === Symbol.for('unparseable')) return error(400, 'Request body is not valid JSON.')
    return route(call)
  }

  /** @param {Call} call @returns {Response} */
  function route({ method, path, body }) {
    let m
    if (method === 'POST' && path === '/contact') {
      const problem = contactProblem(body?.contact, fieldTypes)
      if (problem) return error(400, problem)
      return Response.json({ contact_id: upsert(body.contact) })
    }
    if (method === 'POST' && path === '/contacts') {
      const list = body?.contacts
      if (!Array.isArray(list) || list.length === 0) return error(400, 'contacts must be a non-empty array.')
      if (list.length > 100) return error(400, 'A maximum of 100 contacts can be added in one call.')
      for (const contact of list) {
        const problem = contactProblem(contact, fieldTypes)
        if (problem) return error(400, problem)
      }
      return Response.json({ contact_ids: list.map(upsert) })
    }
    if ((m = /^\/trigger\/([^/]+)\/contact\/([^/]+)$/.exec(path)) && method === 'POST') {
      const triggerId = decodeURIComponent(m[1])
      const email = decodeURIComponent(m[2])
      if (options.triggers && !options.triggers.includes(triggerId)) return error(404, 'Trigger could not be found.')
      if (!contacts.has(email)) return error(404, 'Contact could not be found.')
      enrolments.push({ triggerId, email, at: now() })
      return new Response(null, { status: 200 })
    }
    if ((m = /^\/contact\/([^/]+)$/.exec(path))) {
      const email = decodeURIComponent(m[1])
      const contact = contacts.get(email)
      if (!contact) return error(404, 'Contact could not be found.')
      if (method === 'GET') return Response.json(contact)
      if (method === 'DELETE') {
        contacts.delete(email)
        return new Response(null, { status: 204 })
      }
    }
    if (method === 'GET' && path === '/contacts/custom_fields') {
      return Response.json([...fieldTypes].map(([name, fieldType]) => ({ name: name.replaceAll('--', ' '), fieldType })))
    }
    if (method === 'GET' && path === '/triggers') {
      return Response.json({ triggers: (options.triggers ?? []).map((id) => ({ journey: `Journey ${id}`, trigger_id: id })) })
    }
    if (method === 'GET' && path === '/account') return Response.json({ account: 'sandbox' })
    return error(404, `No route for ${method} ${path}.`)
  }

  /** @param {Record<string, any>} input @returns {string} */
  function upsert(input) {
    const { custom, _NewEmail, notify, _autopilot_list, _autopilot_session_id, ...fields } = input
    const existing = contacts.get(fields.Email)
    const contact = existing ?? { contact_id: `person_${++ids}`, custom: {} }
    Object.assign(contact, fields)
    for (const [key, value] of Object.entries(custom ?? {})) {
      const [, type, name] = /** @type {RegExpExecArray} */ (CUSTOM_KEY.exec(key))
      fieldTypes.set(name, type)
      contact.custom[key] = value
    }
    if (_NewEmail) {
      contacts.delete(fields.Email)
      contact.Email = _NewEmail
    }
    contacts.set(contact.Email, contact)
    return contact.contact_id
  }

  return state
}

/** What a call carried, for the sandbox's log: a bulk call shows its first contacts and counts the rest.
 * @param {Call} call */
function summary(call) {
  if (call.path === '/contact' && call.body?.contact) return `  ${JSON.stringify(call.body.contact)}`
  const list = call.path === '/contacts' && Array.isArray(call.body?.contacts) ? call.body.contacts : undefined
  if (!list) return ''
  const shown = list.slice(0, 3).map((/** @type {Record<string, unknown>} */ { Email, ...rest }) => `${Email} ${JSON.stringify(rest)}`)
  return `  ${list.length} contacts: ${shown.join('; ')}${list.length > 3 ? `; … and ${list.length - 3} more` : ''}`
}

/** @param {number} status */
function reason(status) {
  return { 400: 'Bad Request', 401: 'Unauthorized', 404: 'Not Found', 409: 'Conflict', 429: 'Too Many Requests', 500: 'Internal Server Error', 503: 'Service Unavailable' }[status] ?? 'Error'
}
