// @ts-check
// A local stand-in for Ortto's API (api.ap3api.com/v1, Autopilot's current product), built
// from ../shared/reference/ortto-api.md and recorded live answers. Like ./autopilot.js it is
// deliberately independent of src/ (the tests use it as the judge of what the Worker sends)
// and runs anywhere `Request`/`Response` exist: workerd (tests, via a fetch spy), Node
// (`SANDBOX_DESTINATION=ortto node sandbox/server.js`) and as Miniflare's outboundService.
// Field ids and the values they take: ./ortto-fields.js. Shapes it chose where Ortto's are
// not pinned down:
// - Errors: `{request_id, code, error, details?}`; a 429 is `{"error": {"code": "rate-limit",
//   "message": "rate limit", "try-in-seconds": N}}` and carries no Retry-After header.
// - A batch with invalid people or activities (option `invalidMode`): 'item' (default) answers
//   200 with `{status: "invalid"|"suppressed", error}` in that entry and applies the valid ones;
//   'call' answers 400 with `details` (one per input, in order; the valid ones `{status:
//   "valid"}`) and applies nothing. All invalid: 400 with details either way.
// - A person needs a value for one of the merge_by fields (else invalid, not a new person);
//   archived people are still found by a merge (and stay archived) but not by person/get.
// - activities/create answers `{activity_id, person_id, status: "queued", person_status:
//   "queued"}` per activity; option `activityAnswer: 'live'` answers as recorded live (no
//   activity_id, and person_id only when the call gave one).
// - person/get: filter operators `$str::is` {field_id, value} (any str field; str::email
//   compares case-insensitively), `$has_any_value` {field_id}, `$and`/`$or` [...]; answers
//   `{contacts: [{id, fields}], meta: {total_contacts, total_organizations, total_matches},
//   offset, next_offset, cursor_id, has_more}` with only the asked fields that have a value
//   (limit 1-500, default 50; archived and deleted people are not found).
// - instance-schema/get `{namespaces: []}` (or ["", "cm"]): `{namespaces: {"": {id: "",
//   fields: {built-ins and act::ta/act::tr}}, cm: {id: "cm", fields: {custom fields and
//   act:cm: activities}}}}`; an activity is `{id, name, display_type: "activity", attributes:
//   [{id, name, display_type, liquid_name}]}`.
// - person/delete of a person that is not archived: 400 with `details: [{person_id, status:
//   "not-archived", error}]`, nothing deleted. Unknown ids are ignored (not counted).
// - The ban: `ban.after` (15) refused calls (any 4xx it answers, injected ones included, the
//   ban's own 403s not) within `ban.withinMs` (15 s) -> every call answers 403 "banned" for
//   `ban.forMs` (15 s). `state.bans` counts bans; `state.banned()` says if one is on now.
// - The rate limit counts the calls it let through in the last second; refused ones do not.
// - person/custom-field/create `{name, type, values?}` (values: single_select needs them,
//   multi_select may have them) answers 200 as recorded live, flat: `{name, field_id,
//   display_type}`; display_type is the type asked for, and the id `<prefix>:cm:<slug>`
//   (prefix by type, see FIELD_TYPES; `-2`, `-3`… when another custom field has the slug). definitions/activity/create `{name, icon_id, attributes?: [{name,
//   display_type}], track_conversion_value?, touch?, filterable?, visible_in_feeds?,
//   display_style?}` answers 200 as recorded live, the id nested: `{custom_activity: {name,
//   activity_field_id: "act:cm:<slug>", state, display_mode, attributes: [{name, field_id,
//   display_type, liquid_name}], icon_id, flags, created_by, created_at, edited_at}}`.
//   Names are trimmed and at most 100 characters. A name that exists (any case, built-ins
//   and act:: too) -> option `duplicateStatus` (400, or 409) "… already exists"; over `maxCustomFields` (100) or `maxActivities` (50, custom ones) -> 403
//   "… limit reached …"; anything else amiss -> 400. What they create lasts until reset().
// - `location: {source_ip}` (IPv4 or IPv6, nothing else) on a merge's person or an activity;
//   anything else there makes that item invalid. Kept as `person.location` (merge_strategy as
//   for a field) and on the activity record; an activity's does not move its person's.
// - Request keys it does not model (a top-level location, sort_by_field_id, cursor_id, ...)
//   are refused with 400, so a Worker relying on them is noticed.
// - Accounts (Segment `group`; options accountsOn, accountFields, accountAnswer, linkKey):
//   ./ortto-accounts.js, which documents their forms.
import { delay, injected, mulberry32 } from './network.js'
import { handlers } from './ortto-handlers.js'

/**
 * @typedef {{ status?: number, body?: unknown, location?: string, hang?: boolean, network?: boolean, tryInSeconds?: number, match?: (call: Call) => boolean }} Fault
 * @typedef {{ at: number, done?: number, method: string, path: string, body: any, status: number, apiKey: string | null, banned?: boolean }} Call
 * @typedef {{
 *   apiKey?: string,
 *   customFields?: Record<string, string>,
 *   activities?: Record<string, { name: string, attributes?: Record<string, string> }>,
 *   invalidMode?: 'item' | 'call',
 *   activityAnswer?: 'full' | 'live',
 *   suppressed?: string[],
 *   duplicateStatus?: 400 | 409,
 *   maxCustomFields?: number,
 *   maxActivities?: number,
 *   rateLimit?: number,
 *   ban?: { after?: number, withinMs?: number, forMs?: number } | false,
 *   failureRate?: number,
 *   seed?: number,
 *   latencyMs?: number,
 *   accountsOn?: boolean,
 *   accountFields?: Record<string, string>,
 *   accountAnswer?: 'organizations' | 'accounts' | 'none',
 *   linkKey?: string,
 *   linkStrict?: boolean,
 *   maxAccountFields?: number,
 *   now?: () => number,
 *   log?: (line: string) => void,
 * }} OrttoOptions
 */

const UNPARSEABLE = Symbol('unparseable')

/**
 * Creates one Ortto instance in memory.
 * - `customFields`: the account's custom person fields, id -> display name (`{'int:cm:age': 'Age'}`).
 * - `activities`: its custom activities, id -> {name, attributes: id -> name}.
 * - `suppressed`: emails on the suppression list (a merge naming `suppression_list_field_id` skips them).
 * - `duplicateStatus`: how custom-field/create and activity/create refuse a name that exists: 400 (default) or 409.
 * - `maxCustomFields` (100), `maxActivities` (50): the plan's caps on custom fields and activities (403 beyond).
 * - `rateLimit`: requests per second (sliding one-second window); 0 = unlimited.
 * - `failureRate`: share of calls answered with an injected 429/500/503 (seeded, repeatable).
 * - `latencyMs`: how long every answer takes.
 * @param {OrttoOptions} [options]
 */
export function createOrtto(options = {}) {
  const apiKey = options.apiKey ?? 'sandbox-key'
  const now = options.now ?? (() => Date.now())
  const ban = options.ban === false ? { after: Infinity, withinMs: 0, forMs: 0 } : { after: 15, withinMs: 15_000, forMs: 15_000, ...options.ban }
  let random = mulberry32(options.seed ?? 1)
  /** @type {Call[]} */
  const calls = []
  /** @type {Fault[]} */
  const faults = []
  /** @type {number[]} */
  let window = []
  /** @type {number[]} */
  let refusals = []
  let bannedUntil = -Infinity
  let requests = 0
  /** @type {() => import('./ortto-handlers.js').Settings} */
  const settings = () => state

  const state = {
    rateLimit: options.rateLimit ?? 0,
    failureRate: options.failureRate ?? 0,
    latencyMs: options.latencyMs ?? 0,
    invalidMode: options.invalidMode ?? 'item',
    activityAnswer: options.activityAnswer ?? 'full',
    /** How many times the ban started. */
    bans: 0,
    calls,
    ...handlers(options, now, settings),
    /** Whether every call is answered 403 "banned" right now. */
    banned: () => now() < bannedUntil,
    /** Queue faults for the next matching calls, in order. @param {...Fault} list */
    inject(...list) {
      faults.push(...list)
    },
    reset() {
      state.clear()
      calls.length = 0
      faults.length = 0
      window = []
      refusals = []
      bannedUntil = -Infinity
      state.bans = 0
      random = mulberry32(options.seed ?? 1)
    },
    /** @param {Request} request */
    fetch: async (request) => handle(request),
  }

  /** @param {number} status @param {string} error @param {object} [extra] */
  const fail = (status, error, extra) => Response.json({ request_id: `sandbox-${requests}`, code: status, error, ...extra }, { status })
  /** @param {number} seconds */
  const rateLimited = (seconds) => Response.json({ error: { code: 'rate-limit', message: 'rate limit', 'try-in-seconds': seconds } }, { status: 429 })

  /** @param {Request} request @returns {Promise<Response>} */
  async function handle(request) {
    requests++
    const url = new URL(request.url)
    const text = request.method === 'GET' || request.method === 'HEAD' ? '' : await request.text()
    /** @type {any} */
    let body
    try {
      body = text ? JSON.parse(text) : undefined
    } catch {
      body = UNPARSEABLE
    }
    /** @type {Call} */
    const call = { at: now(), method: request.method, path: url.pathname, body, status: 0, apiKey: request.headers.get('x-api-key') }
    calls.push(call)
    const response = await answer(request, call, text)
    if (state.latencyMs > 0) await delay(state.latencyMs, request.signal)
    call.status = response.status
    call.done = now()
    if (response.status >= 400 && response.status < 500 && !call.banned) {
      refusals = refusals.filter((at) => call.at - at < ban.withinMs)
      refusals.push(call.at)
      if (refusals.length >= ban.after) {
        bannedUntil = call.at + ban.forMs
        state.bans++
        refusals = []
      }
    }
    if (options.log) {
      const said = await response
        .clone()
        .json()
        .then(
          (b) => {
            if (response.status >= 400) return ` "${b.error?.message ?? b.error}"`
            const made = b?.field_id ?? b?.custom_activity?.activity_field_id
            if (typeof made === 'string') return ` = ${made}`
            const accounts = b?.organizations ?? b?.accounts
            if (Array.isArray(accounts)) return ` (${accounts.map((a) => `${a.organization_id ?? a.account_id ?? '?'} ${a.status}`).join(', ')})`
            if (call.path.endsWith('/contacts/add')) return linkSaid(call.body)
            if (Array.isArray(b?.contacts) && call.body?.fields?.includes?.('idt::o')) return ` (linked accounts: ${b.contacts[0]?.fields?.['idt::o']?.join(', ') || 'none'})`
            const bad = [...(b?.people ?? b?.activities ?? [])].filter((e) => e.status === 'invalid' || e.status === 'suppressed')
            return bad.length ? ` (${bad.length} refused, first: ${bad[0].status} "${bad[0].error}")` : ''
          },
          () => '',
        )
      options.log(`${call.method} ${call.path} -> ${call.status}${said}${summary(call)}`)
    }
    return response
  }

  /** @param {Request} request @param {Call} call @param {string} text @returns {Promise<Response>} */
  async function answer(request, call, text) {
    if (state.banned()) {
      call.banned = true
      return fail(403, `banned: too many bad requests; try again in ${Math.ceil((bannedUntil - now()) / 1000)} s`)
    }
    const faulted = injected(faults, call, request, 'https://ortto.example/moved', (fault, status) => {
      if (status === 429) return rateLimited(fault.tryInSeconds ?? 10)
      return fault.body === undefined ? fail(status, 'Injected failure.') : Response.json(fault.body, { status })
    })
    if (faulted) return faulted
    if (state.failureRate > 0 && random() < state.failureRate) {
      const status = [429, 500, 503][Math.floor(random() * 3)]
      return status === 429 ? rateLimited(1) : fail(status, 'Injected failure.')
    }
    if (state.rateLimit > 0) {
      const t = now()
      window = window.filter((at) => t - at < 1000)
      if (window.length >= state.rateLimit) return rateLimited(Math.max(1, Math.ceil((window[0] + 1000 - t) / 1000)))
      window.push(t)
    }
    if (call.apiKey !== apiKey) return fail(401, call.apiKey ? 'Unauthorized: the API key is not valid' : 'Unauthorized: no X-Api-Key header')
    if (text) {
      const type = (request.headers.get('content-type') ?? '').split(';')[0].trim().toLowerCase()
      if (type !== 'application/json') return fail(415, `Unsupported Media Type: Content-Type must be application/json, not ${JSON.stringify(type)}`)
      if (new TextEncoder().encode(text).length > 2_000_000) return fail(413, 'Payload Too Large: at most 2 MB a request')
    }
    if (call.body === UNPARSEABLE) return fail(400, 'the request body is not valid JSON')
    const route = state.routes[`${call.method} ${call.path}`]
    if (route) {
      const result = route(call.body)
      return result.status === 200 ? Response.json(result.body) : fail(result.status, result.error ?? 'refused', result.details && { details: result.details })
    }
    if (Object.keys(state.routes).some((key) => key.endsWith(` ${call.path}`))) return fail(405, `Method Not Allowed: ${call.method} ${call.path}`)
    return fail(404, `Not Found: ${call.method} ${call.path}`)
  }

  /** Whether a link call linked its people (Ortto answers 200 {} either way). @param {any} body */
  function linkSaid(body) {
    const first = Array.isArray(body?.inclusion_ids) ? body.inclusion_ids[0] : undefined
    const named = Object.entries(body ?? {}).filter(([key]) => key !== 'inclusion_ids')
    return typeof first === 'string' && named.some(([, id]) => state.orgs.linked(first).includes(String(id))) ? ' (linked)' : ' (nobody linked: not the key it reads)'
  }

  return state
}

/** What a call carried, for the log: who (email or external id) and a few fields; never the key.
 * @param {Call} call */
function summary({ path, body }) {
  /** @param {any} fields */
  const who = (fields) => {
    const { 'str::email': email, 'str::ei': ei, ...rest } = fields ?? {}
    return `${email ?? ei ?? '?'}${Object.keys(rest).length ? ` ${JSON.stringify(rest)}` : ''}`
  }
  /** @param {any[]} list @param {string} noun @param {(item: any) => string} show */
  const many = (list, noun, show) => `  ${list.length} ${noun}: ${list.slice(0, 3).map(show).join('; ')}${list.length > 3 ? `; … and ${list.length - 3} more` : ''}`
  if (path.endsWith('/person/merge') && Array.isArray(body?.people)) return many(body.people, 'people', (p) => who(p?.fields))
  if (path.endsWith('/activities/create') && Array.isArray(body?.activities)) {
    return many(body.activities, 'activities', (a) => `${a?.activity_id} for ${a?.person_id ?? who(a?.fields)} ${JSON.stringify(a?.attributes ?? {})}`)
  }
  if (Array.isArray(body?.inclusion_ids) && !path.includes('/contacts/')) return `  ${body.inclusion_ids.join(', ')}`
  if (path.endsWith('/person/custom-field/create')) return `  ${JSON.stringify(body?.name)} (${body?.type})`
  if (path.endsWith('/definitions/activity/create')) {
    const attributes = Array.isArray(body?.attributes) ? body.attributes : []
    return `  ${JSON.stringify(body?.name)} with ${attributes.length} attributes${attributes.length ? `: ${attributes.map((/** @type {any} */ a) => `${a?.name} (${a?.display_type})`).join(', ')}` : ''}`
  }
  if (/\/(accounts|organizations)\/merge$/.test(path)) {
    return many(body?.accounts ?? body?.organizations ?? [], 'accounts', (a) => JSON.stringify(a?.fields ?? {}))
  }
  if (path.endsWith('/contacts/add') && Array.isArray(body?.inclusion_ids)) {
    const keys = Object.keys(body).filter((k) => k !== 'inclusion_ids')
    return `  ${body.inclusion_ids.length} people to account ${keys.length ? `${body[keys[0]]} (as ${keys.join(', ')})` : '(none named)'}`
  }
  if (path.endsWith('/person/get') && body?.filter) return `  ${JSON.stringify(body.filter)}`
  return ''
}
