// @ts-check
// Ortto's person fields, activity attributes and the values they hold, for the Ortto
// stand-in (./ortto.js). From ../shared/reference/ortto-api.md and recorded live schema
// answers. A field id is `<type>:<namespace>:<name>`: built-ins have no namespace
// (`str::email`), the account's own fields and activities live in `cm` (`int:cm:age`,
// `act:cm:order-completed`). The type prefix decides the value:
//   str  text ≤ 255 characters        txt  long text ≤ 4,000 characters
//   int  safe integer                 dec, cur  safe integer: the decimal × 1,000
//   bol  boolean                      sst  a list of texts ≤ 255 (a string set; live
//                                          schemas show `sst::t` "Tags" as text_list)
//   dtz  a date object {year, month, day, timezone?} (a real calendar date; timezone
//        an IANA name) — the shape Ortto documents for `dtz::b`; ISO strings are refused
//   tme  an ISO 8601 date-time string with a time and a zone ("2025-01-02T03:04:05Z")
//   phn  {phone, parse_with_country_code} or {c?, n}: digits (phone may start with +; n
//        alone is a national number, as RudderStack sends it)
//   geo  {name}: text ≤ 255
// Any field may be null in a merge (with merge_strategy 2 it clears the value).
// A person of a merge or an activity may carry `location: {source_ip}` (IPv4 or IPv6).

/** prefix -> [display_type, value check returning what is wrong, or undefined] */
/** @type {Record<string, [string, (value: unknown) => string | undefined]>} */
const KINDS = {
  str: ['text', (v) => text(v, 255)],
  txt: ['long_text', (v) => text(v, 4000)],
  sst: ['text_list', (v) => (Array.isArray(v) && v.length <= 100 && v.every((item) => !text(item, 255)) ? undefined : 'must be a list of texts')],
  int: ['integer', (v) => (Number.isSafeInteger(v) ? undefined : 'must be an integer')],
  dec: ['decimal', (v) => (Number.isSafeInteger(v) ? undefined : 'must be an integer (the decimal × 1000)')],
  cur: ['currency', (v) => (Number.isSafeInteger(v) ? undefined : 'must be an integer (the amount × 1000)')],
  bol: ['bool', (v) => (typeof v === 'boolean' ? undefined : 'must be a boolean')],
  dtz: ['date', dateObject],
  tme: ['time', (v) => (typeof v === 'string' && ISO_TIME.test(v) && !Number.isNaN(Date.parse(v)) ? undefined : 'must be an ISO 8601 date-time with a zone')],
  phn: ['phone', phone],
  geo: [
    'geo',
    (v) => (isPlainObject(v) && keysIn(/** @type {object} */ (v), ['name']) && !text(/** @type {any} */ (v).name, 255) && /** @type {any} */ (v).name !== '' ? undefined : 'must be {"name": text}'),
  ],
}
const ISO_TIME = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(?::\d{2}(?:\.\d{1,9})?)?(?:Z|[+-]\d{2}:\d{2})$/
// Stricter than a browser's check on purpose: the domain needs a dot, so tests can make one person invalid.
const EMAIL = /^[^\s@\p{Cc}]+@(?:[^\s@\p{Cc}.]+\.)+[^\s@\p{Cc}.]+$/u
const SLUG = '[a-z0-9](?:[a-z0-9-]{0,98}[a-z0-9])?'
const CUSTOM_FIELD_ID = new RegExp(`^(${Object.keys(KINDS).join('|')}):cm:${SLUG}$`)
const ATTRIBUTE_ID = new RegExp(`^(${Object.keys(KINDS).join('|')}):(?:cm)?:${SLUG}$`)
const ACTIVITY_ID = new RegExp(`^act:cm:${SLUG}$`)

/** The types person/custom-field/create takes, and the id prefix each gets. */
export const FIELD_TYPES = Object.freeze({
  text: 'str',
  large_text: 'txt',
  integer: 'int',
  decimal: 'dec',
  currency: 'cur',
  bool: 'bol',
  date: 'dtz',
  time: 'tme',
  phone: 'phn',
  single_select: 'str',
  multi_select: 'sst',
})
/** The display types an activity definition's attributes take: the field types but single_select, plus email (a text). */
export const ATTRIBUTE_TYPES = Object.freeze({
  ...Object.fromEntries(Object.entries(FIELD_TYPES).filter(([type]) => type !== 'single_select')),
  email: 'str',
})

/** Ortto's built-in person fields a merge may set: id -> display name. */
export const BUILT_IN_FIELDS = Object.freeze({
  'str::email': 'Email',
  'str::first': 'First name',
  'str::last': 'Last name',
  'str::ei': 'External ID',
  'str::postal': 'Postal code',
  'str::language': 'Language',
  'phn::phone': 'Phone number',
  'geo::city': 'City',
  'geo::country': 'Country',
  'geo::region': 'Region',
  'dtz::b': 'Birthday',
  'bol::gdpr': 'GDPR',
  'bol::p': 'Email permission',
  'bol::sp': 'SMS permission',
})
/** Two of Ortto's own (`act::`) activities, listed by instance-schema/get like a live account's. */
export const SYSTEM_ACTIVITIES = Object.freeze({
  'act::ta': { name: 'Tag added', attributes: { 'sst::t': 'Tags', 'str::ts': 'Source' } },
  'act::tr': { name: 'Tag removed', attributes: { 'sst::t': 'Tags', 'str::ts': 'Source' } },
})

/** @typedef {{ id: string, name: string, display_type: string }} FieldDefinition */
/** @typedef {{ id: string, name: string, attributes: Map<string, FieldDefinition>, settings?: Record<string, unknown> }} ActivityDefinition
 * (settings: what definitions/activity/create was given besides name and attributes: icon_id, touch…) */

/** @param {unknown} value */
export const isPlainObject = (value) =>
  typeof value === 'object' && value !== null && !Array.isArray(value) && (Object.getPrototypeOf(value) === Object.prototype || Object.getPrototypeOf(value) === null)

/** @param {object} value @param {string[]} allowed */
export const keysIn = (value, allowed) => Object.keys(value).every((key) => allowed.includes(key))

/** Why an object's keys are refused ('' when every key is allowed). @param {object} value @param {string[]} allowed @param {string} [what] */
export function unsupportedKeys(value, allowed, what = '') {
  const extra = Object.keys(value).filter((key) => !allowed.includes(key))
  return extra.length ? `unsupported ${what ? `${what} ` : ''}keys: ${extra.join(', ')}` : ''
}

/** @param {unknown} value @param {number} max */
function text(value, max) {
  if (typeof value !== 'string') return 'must be a text'
  if (!value.isWellFormed()) return 'is not valid text'
  return [...value].length > max ? `is longer than ${max} characters` : undefined
}

/** @param {unknown} v */
function dateObject(v) {
  const d = /** @type {any} */ (v)
  if (!isPlainObject(v) || !keysIn(d, ['year', 'month', 'day', 'timezone'])) return 'must be {year, month, day, timezone?}'
  if (![d.year, d.month, d.day].every(Number.isSafeInteger) || d.year < 1 || d.year > 9999) return 'must hold integer year, month and day'
  const date = new Date(Date.UTC(d.year, d.month - 1, d.day))
  if (date.getUTCMonth() !== d.month - 1 || date.getUTCDate() !== d.day) return 'is not a calendar date'
  if (d.timezone !== undefined && (typeof d.timezone !== 'string' || !/^[A-Za-z_]+(?:\/[A-Za-z0-9_+-]+)*$/.test(d.timezone))) return 'has a timezone that is not an IANA name'
  return undefined
}

/** @param {unknown} v */
function phone(v) {
  const p = /** @type {any} */ (v)
  if (
    isPlainObject(v) &&
    keysIn(p, ['phone', 'parse_with_country_code']) &&
    typeof p.phone === 'string' &&
    /^\+?\d{4,20}$/.test(p.phone) &&
    (p.parse_with_country_code === undefined || typeof p.parse_with_country_code === 'boolean')
  )
    return undefined
  // c is optional: {n} alone is a national number (RudderStack sends phones this way).
  if (isPlainObject(v) && keysIn(p, ['c', 'n']) && (p.c === undefined || (typeof p.c === 'string' && /^\d{1,4}$/.test(p.c))) && typeof p.n === 'string' && /^\d{4,16}$/.test(p.n)) return undefined
  return 'must be {phone, parse_with_country_code} or {c?, n} with digits'
}

const IPV4 = /^(?:(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\.){3}(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)$/
/** @param {string} ip */
function isIp(ip) {
  if (IPV4.test(ip)) return true
  // IPv6 (compressed or with a dotted tail; no zone): the URL parser checks the groups, once
  // only hex digits, colons and dots are left (nothing that could close the brackets).
  if (!ip.includes(':') || !/^[0-9a-f:.]+$/i.test(ip)) return false
  try {
    return new URL(`http://[${ip}]/`).hostname.startsWith('[')
  } catch {
    return false
  }
}

/** What is wrong with a person's or an activity's `location` ({source_ip} only), or undefined. @param {unknown} location */
export function locationProblem(location) {
  const l = /** @type {any} */ (location)
  if (!isPlainObject(location) || !keysIn(l, ['source_ip']) || typeof l.source_ip !== 'string') return 'location must be {"source_ip": an IP address}'
  return isIp(l.source_ip) ? undefined : `location.source_ip is not an IPv4 or IPv6 address: ${JSON.stringify(l.source_ip)}`
}

/** A name as an id's last part: lower case, runs of other characters as '-', none at either end. @param {string} name */
export const slug = (name) =>
  name
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, '-')
    .replace(/^-|-$/g, '')

/** @param {string} id */
const prefixOf = (id) => id.slice(0, id.indexOf(':'))
/** @param {string} id @param {string} name @returns {FieldDefinition} */
const definition = (id, name) => ({ id, name, display_type: KINDS[prefixOf(id)][0] })

/** The account's fields: built-ins plus options.customFields (id -> display name), checked.
 * @param {Record<string, string>} custom @returns {Map<string, FieldDefinition>} */
export function defineFields(custom) {
  const fields = new Map(Object.entries(BUILT_IN_FIELDS).map(([id, name]) => [id, definition(id, name)]))
  for (const [id, name] of Object.entries(custom)) {
    if (!CUSTOM_FIELD_ID.test(id) || typeof name !== 'string' || !name.trim()) throw new TypeError(`Ortto sandbox: bad custom field ${id}`)
    fields.set(id, definition(id, name))
  }
  return fields
}

/** The account's custom activities: options.activities (id -> {name, attributes: id -> name}), checked.
 * @param {Record<string, { name: string, attributes?: Record<string, string> }>} custom @returns {Map<string, ActivityDefinition>} */
export function defineActivities(custom) {
  const activities = new Map()
  for (const [id, { name, attributes = {} }] of Object.entries(custom)) {
    const bad = Object.keys(attributes).find((attribute) => !ATTRIBUTE_ID.test(attribute))
    if (!ACTIVITY_ID.test(id) || typeof name !== 'string' || bad) throw new TypeError(`Ortto sandbox: bad activity ${id}${bad ? ` (attribute ${bad})` : ''}`)
    activities.set(id, { id, name, attributes: new Map(Object.entries(attributes).map(([a, n]) => [a, definition(a, n)])) })
  }
  return activities
}

/** What is wrong with one value for a known id (null is fine: it clears), or undefined.
 * @param {string} id @param {unknown} value */
export function valueProblem(id, value) {
  if (value === null) return undefined
  const reason = KINDS[prefixOf(id)][1](value)
  if (reason) return `field ${id} ${reason}`
  if (id === 'str::email' && !EMAIL.test(/** @type {string} */ (value))) return `field str::email is not a valid email: ${JSON.stringify(value)}`
  return undefined
}

/** What is wrong with one person of a merge (or an activity's `fields`), or undefined.
 * @param {unknown} person @param {string[]} mergeBy @param {Map<string, FieldDefinition>} known */
export function personProblem(person, mergeBy, known) {
  if (!isPlainObject(person)) return 'a person must be an object'
  const p = /** @type {Record<string, any>} */ (person)
  if (!keysIn(p, ['fields', 'tags', 'unset_tags', 'location'])) return `unsupported person keys: ${Object.keys(p).join(', ')}`
  const problem = fieldsProblem(p.fields, mergeBy, known) ?? (p.location === undefined ? undefined : locationProblem(p.location))
  if (problem) return problem
  for (const key of ['tags', 'unset_tags']) {
    if (p[key] !== undefined && (!Array.isArray(p[key]) || p[key].some((/** @type {unknown} */ t) => typeof t !== 'string' || !t.trim() || !!text(t, 255)))) return `${key} must be a list of tag names`
  }
  const both = (p.tags ?? []).find((/** @type {string} */ t) => (p.unset_tags ?? []).includes(t))
  return both === undefined ? undefined : `tag ${JSON.stringify(both)} is both in tags and unset_tags`
}

/** @param {unknown} fields @param {string[]} mergeBy @param {Map<string, FieldDefinition>} known */
export function fieldsProblem(fields, mergeBy, known) {
  if (!isPlainObject(fields)) return 'fields must be an object'
  const f = /** @type {Record<string, unknown>} */ (fields)
  const byId = mergeBy[0] === 'str::person_id'
  for (const [id, value] of Object.entries(f)) {
    if (byId && id === 'str::person_id') {
      if (typeof value !== 'string') return 'str::person_id must be a text'
      continue
    }
    if (!known.has(id)) return `failed to validate field ${id} in schema: ${id}: Object not found`
    const problem = valueProblem(id, value)
    if (problem) return problem
  }
  if (!byId && f['str::email'] == null && f['str::ei'] == null) return 'a person needs str::email or str::ei'
  if (!mergeBy.some((key) => f[key] != null)) return `none of the merge_by fields (${mergeBy.join(', ')}) has a value`
  return undefined
}

/** What is wrong with a merge_by list, or undefined. @param {unknown} mergeBy @param {Map<string, FieldDefinition>} known */
export function mergeByProblem(mergeBy, known) {
  if (!Array.isArray(mergeBy) || mergeBy.length < 1 || mergeBy.length > 3) return 'merge_by must list 1 to 3 field ids'
  if (new Set(mergeBy).size !== mergeBy.length) return 'merge_by lists a field twice'
  if (mergeBy.includes('str::person_id')) return mergeBy.length === 1 ? undefined : 'str::person_id must be the only merge_by field'
  const unknown = mergeBy.find((id) => typeof id !== 'string' || !known.has(id))
  return unknown === undefined ? undefined : `merge_by field ${JSON.stringify(unknown)} does not exist`
}

/** What is wrong with an activity's attributes, or undefined. @param {unknown} attributes @param {ActivityDefinition} activity */
export function attributesProblem(attributes, activity) {
  if (!isPlainObject(attributes)) return 'attributes must be an object'
  const entries = Object.entries(/** @type {object} */ (attributes))
  if (entries.length > 15) return `an activity takes at most 15 attributes, not ${entries.length}`
  for (const [id, value] of entries) {
    if (!activity.attributes.has(id)) return `attribute ${id} is not defined for ${activity.id}`
    if (value === null) return `attribute ${id} is null`
    const problem = valueProblem(id, value)
    if (problem) return problem.replace(/^field/, 'attribute')
  }
  return undefined
}

/** A field as the schema and custom-field/get list it. @param {FieldDefinition} field */
export function describeField({ id, name, display_type }) {
  return { id, name, display_type, liquid_name: id.includes(':cm:') ? `people.custom.${id.split(':cm:')[1]}` : `people.${slug(name)}` }
}

/** An activity as instance-schema/get lists it. @param {string} id @param {string} name @param {FieldDefinition[]} attributes */
export function describeActivity(id, name, attributes) {
  return {
    id,
    name,
    display_type: 'activity',
    ...(id.startsWith('act::') && { read_only: true }),
    attributes: attributes.map(({ id, name: attribute, display_type }) => ({ id, name: attribute, display_type, liquid_name: `activity.${slug(name)}.${slug(attribute)}` })),
  }
}

/** @param {string} id @param {string} name @returns {FieldDefinition} */
export const systemAttribute = (id, name) => definition(id, name)
