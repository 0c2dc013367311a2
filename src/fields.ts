// Trait values -> Autopilot's typed custom fields. Pure. A value is sent only as what it
// is: converted when the conversion is exact (the text "42" into an integer field),
// reported as an issue when it is not — never an invented value.
import type { CustomType } from './config'
import type { Issue } from './schema'

export type CustomValue = string | number | boolean

/** A custom field the account already has: its exact name, and its type. */
export interface AccountField {
  name: string
  type: CustomType
}

/** The account's custom fields by name (spaces as --), and by lowercased name. */
export interface AccountFields {
  byName: ReadonlyMap<string, AccountField>
  byLowerName: ReadonlyMap<string, AccountField>
}

export type Converted = { ok: true; value: CustomValue } | { ok: false; problem: string }

/** Names that would reach an object's prototype: never a field. */
export const UNSAFE_NAMES = new Set(['__proto__', 'constructor', 'prototype'])
const MAX_NAME_LENGTH = 200
const UNSENDABLE_NAME = `the name cannot be an Autopilot field (empty, over ${MAX_NAME_LENGTH} characters, or __proto__, constructor, prototype); not sent`

/** Autopilot's custom field name: spaces become `--`; names that cannot be sent give undefined. */
export function customName(path: readonly string[]): string | undefined {
  const parts: string[] = []
  for (const segment of path) {
    const part = fieldName(segment)
    if (!part) return undefined
    parts.push(part)
  }
  const name = parts.join('--')
  return name.length <= MAX_NAME_LENGTH ? name : undefined
}

// The same trait names arrive in event after event: clean each once per isolate.
const fieldNames = new Map<string, string>()
function fieldName(segment: string): string {
  let part = fieldNames.get(segment)
  if (part === undefined) {
    part = segment
      .toWellFormed()
      .replace(/(?![\t\n\v\f\r])\p{Cc}/gu, '') // control characters; whitespace becomes -- below
      .trim()
      .replace(/\s+/gu, '--')
    if (UNSAFE_NAMES.has(part)) part = '' // "constructor " too: Autopilot refuses the name as it ends up
    if (fieldNames.size >= 10_000) fieldNames.clear()
    fieldNames.set(segment, part)
  }
  return part
}

/** createdAt, updated_at, signupDate, trial_end_date, "Renewal Date", birthday, date. */
const DATE_NAME = /(?:[a-z\d](?:At|Date)|[_\s-](?:at|At|date|Date))$|^(?:date|Date|birthday|Birthday)$/

/**
 * The type a trait gets when the account has no field for it yet: from the trait's name and
 * the kind of its value, never from the particular value (3 and 3.5 must not make two types).
 */
export function defaultType(name: string, value: unknown): CustomType {
  switch (typeof value) {
    case 'boolean':
      return 'boolean'
    case 'number':
      return 'float'
    case 'string':
      return DATE_NAME.test(name.trim()) ? 'date' : 'string'
    default:
      return 'string'
  }
}

const INTEGER_TEXT = /^[+-]?\d{1,16}$/
const DECIMAL_TEXT = /^[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?$/

/** The value as a field of this type holds it, when that is exact. */
export function convert(type: CustomType, value: unknown): Converted {
  switch (type) {
    case 'integer': {
      const number = typeof value === 'string' && INTEGER_TEXT.test(value.trim()) ? Number(value) : value
      return typeof number === 'number' && Number.isSafeInteger(number) ? ok(number) : no(`is not a whole number`)
    }
    case 'float': {
      const number = typeof value === 'string' && DECIMAL_TEXT.test(value.trim()) ? Number(value) : value
      return typeof number === 'number' && Number.isFinite(number) ? ok(number) : no('is not a finite number')
    }
    case 'boolean':
      if (typeof value === 'boolean') return ok(value)
      if (typeof value === 'string' && /^(?:true|false)$/i.test(value.trim())) return ok(value.trim().toLowerCase() === 'true')
      return no('is not true or false')
    case 'date': {
      const iso = typeof value === 'string' ? strictDate(value) : typeof value === 'number' ? epochDate(value) : undefined
      return iso ? ok(iso) : no('is not a date (ISO 8601, as Segment libraries send them)')
    }
    case 'string':
      return text(value)
  }
}

const ok = (value: CustomValue): Converted => ({ ok: true, value })
const no = (problem: string): Converted => ({ ok: false, problem })

/** Text for a string field: strings, finite numbers and booleans; lists joined; other objects as JSON. */
export function text(value: unknown): Converted {
  switch (typeof value) {
    case 'string':
      return ok(value.toWellFormed())
    case 'number':
      return Number.isFinite(value) ? ok(String(value)) : no('is not a finite number')
    case 'boolean':
      return ok(String(value))
  }
  if (Array.isArray(value) && value.every((item) => typeof item === 'string' || typeof item === 'boolean' || (typeof item === 'number' && Number.isFinite(item)))) {
    return ok(value.join(', ').toWellFormed())
  }
  try {
    return ok(JSON.stringify(value).toWellFormed())
  } catch {
    return no('cannot be written as text')
  }
}

// ISO 8601 as Segment's libraries write it: analytics.js and Ruby (…T10:00:00.000Z), Android
// (+0000), Python (microseconds, +00:00), .NET (7 fraction digits), Go (nanoseconds), a space
// instead of T, a date alone; and the RFC 1123 form of JavaScript's toUTCString().
const ISO = /^(\d{4})-(\d{2})-(\d{2})(?:[T ](\d{2}):(\d{2})(?::(\d{2})(?:\.\d{1,9})?)?(Z|[+-](\d{2})(?::?(\d{2}))?)?)?$/
const RFC_1123 = /^(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun), (\d{2}) (Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) (\d{4}) (\d{2}):(\d{2}):(\d{2}) GMT$/
const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec']

/** A real calendar date in one of the forms above, as ISO 8601 (UTC); undefined for anything else. */
export function strictDate(input: string): string | undefined {
  const value = input.trim()
  const iso = ISO.exec(value)
  if (iso) {
    const [, y, mo, d, h = '0', mi = '0', s = '0', zone, zh = '0', zm = '0'] = iso
    if (!validDate(+y, +mo, +d) || +h > 23 || +mi > 59 || +s > 59 || +zh > 14 || +zm > 59) return undefined
    // Sent as written (offsets kept); an hours-only offset, which not every parser takes, in UTC.
    if (!zone || zone === 'Z' || iso[9] !== undefined) return value
    const time = Date.parse(`${value.replace(' ', 'T')}:00`)
    return Number.isFinite(time) ? new Date(time).toISOString() : undefined
  }
  const rfc = RFC_1123.exec(value)
  if (rfc) {
    const [, d, mon, y, h, mi, s] = rfc
    const month = MONTHS.indexOf(mon) + 1
    if (!validDate(+y, month, +d) || +h > 23 || +mi > 59 || +s > 59) return undefined
    return new Date(Date.UTC(+y, month - 1, +d, +h, +mi, +s)).toISOString()
  }
  return undefined
}

const DAYS_IN_MONTH = [31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31]
function validDate(year: number, month: number, day: number): boolean {
  if (month < 1 || month > 12 || day < 1) return false
  const leap = month === 2 && year % 4 === 0 && (year % 100 !== 0 || year % 400 === 0)
  return day <= DAYS_IN_MONTH[month - 1] + (leap ? 1 : 0)
}

/** Seconds (10 digits) or milliseconds (13 digits) since 1970: the two forms epoch times come in. */
function epochDate(value: number): string | undefined {
  if (!Number.isSafeInteger(value)) return undefined
  if (value >= 1e9 && value < 1e10) return new Date(value * 1000).toISOString()
  if (value >= 1e12 && value < 1e13) return new Date(value).toISOString()
  return undefined
}

/** Reads Autopilot's GET /contacts/custom_fields answer, tolerating the shapes public clients show. */
export function parseAccountFields(body: unknown): AccountFields {
  const list = Array.isArray(body)
    ? body
    : body && typeof body === 'object'
      ? (Object.values(body).find(Array.isArray) ?? [])
      : []
  const byName = new Map<string, AccountField>()
  const byLowerName = new Map<string, AccountField>()
  for (const item of list as Record<string, unknown>[]) {
    if (!item || typeof item !== 'object') continue
    const rawName = item.name ?? item.field_name ?? item.fieldName
    const rawType = String(item.fieldType ?? item.field_type ?? item.type ?? '').toLowerCase()
    const type = (['string', 'integer', 'float', 'boolean', 'date'] as const).find((t) => t === rawType || (t === 'float' && rawType === 'number') || (t === 'string' && rawType === 'text'))
    const name = typeof rawName === 'string' ? customName([rawName]) : undefined
    if (!name || !type || byName.has(name)) continue
    byName.set(name, { name, type })
    if (!byLowerName.has(name.toLowerCase())) byLowerName.set(name.toLowerCase(), { name, type })
  }
  return { byName, byLowerName }
}

export const noAccountFields: AccountFields = { byName: new Map(), byLowerName: new Map() }

/** Nested objects are flattened this deep; anything deeper is kept as JSON text. */
const MAX_DEPTH = 3
export const isObject = (value: unknown): value is Record<string, unknown> => typeof value === 'object' && value !== null && !Array.isArray(value)
export const present = (value: unknown) => value !== undefined && value !== null

/** Typed custom fields: the pinned type, else the account's own field (and its spelling), else today's rules. */
export class CustomFields {
  readonly values: Record<string, CustomValue> = {}
  size = 0
  private readonly plans: Map<string, Plan>

  constructor(
    private readonly fieldTypes: ReadonlyMap<string, CustomType>,
    private readonly account: AccountFields = noAccountFields,
    private readonly issues: Issue[],
  ) {
    this.plans = plansFor(fieldTypes, account)
  }

  /**
   * `path`: the trait's name, or its parts when nested (company.size). An issue names it as
   * `issueBase` followed by the parts of `path` from `issueFrom` on (the first part may be
   * spelled differently in the event).
   */
  add(path: string[], value: unknown, issueBase: string, issueFrom: number) {
    if (!present(value)) return
    const plan = this.plan(path)
    if (!plan.name) {
      this.issues.push({ path: [issueBase, ...path.slice(issueFrom)].join('.'), message: UNSENDABLE_NAME })
      return
    }
    const { pinned, existing } = plan
    if (isObject(value) && path.length < MAX_DEPTH && !pinned && !existing) {
      for (const key in value) this.add([...path, key], value[key], issueBase, issueFrom)
      return
    }
    const type = pinned ?? existing?.type ?? (plan.dateName && typeof value === 'string' ? 'date' : defaultType('', value))
    const converted = convert(type, value)
    if (!converted.ok) {
      const whose = pinned ? 'AUTOPILOT_FIELD_TYPES pins it to' : existing ? `the account's field "${existing.name}" is` : 'it is sent as'
      this.issues.push({ path: [issueBase, ...path.slice(issueFrom)].join('.'), message: `${converted.problem}, and ${whose} ${type}; not sent` })
      return
    }
    const key = (plan.keys[type] ??= `${type}--${existing?.name ?? plan.name}`)
    if (!(key in this.values)) this.size++
    this.values[key] = converted.value
  }

  /** Where a trait goes, worked out once per trait name and settings, not per event. */
  private plan(path: string[]): Plan {
    const id = path.length === 1 ? path[0] : path.join('\u0000')
    let plan = this.plans.get(id)
    if (!plan) {
      const name = customName(path)
      const { account } = this
      plan = {
        name,
        pinned: this.fieldTypes.get(path.join('.')),
        existing: name ? (account.byName.get(name) ?? account.byLowerName.get(name.toLowerCase())) : undefined,
        dateName: defaultType(path[path.length - 1], '') === 'date',
        keys: {},
      }
      if (this.plans.size >= 10_000) this.plans.clear()
      this.plans.set(id, plan)
    }
    return plan
  }
}

interface Plan {
  name?: string
  pinned?: CustomType
  existing?: AccountField
  dateName: boolean
  /** The field's key in a contact's `custom`, per type sent. */
  keys: Partial<Record<CustomType, string>>
}
// Per settings (the pins) and account field list: both change rarely, so plans are reused.
const planCache = new WeakMap<object, WeakMap<object, Map<string, Plan>>>()
function plansFor(fieldTypes: ReadonlyMap<string, CustomType>, account: AccountFields): Map<string, Plan> {
  let byPins = planCache.get(account)
  if (!byPins) planCache.set(account, (byPins = new WeakMap()))
  let plans = byPins.get(fieldTypes)
  if (!plans) byPins.set(fieldTypes, (plans = new Map()))
  return plans
}

