// Ortto's field ids and values. Custom fields and activity attributes are the account's
// own, read from Ortto and matched by name — an id is never derived from a trait name —
// and a value is sent in the type its id's prefix says (int:cm:logins holds a whole
// number), converted only when that is exact.
import { normal } from '../../segment/traits'
import { convert, isObject, strictDate, validDate, type Converted } from '../../values'

/** A field (or activity attribute) the account has: its id exactly as Ortto lists it, and its name. */
export interface OrttoField {
  id: string
  name: string
}

/** Fields by exact name and by name compared without case, spaces, underscores or dashes. */
export interface FieldIndex {
  exact: ReadonlyMap<string, OrttoField>
  loose: ReadonlyMap<string, OrttoField>
}

export interface OrttoAccount {
  /** False when the account could not be read: traits and properties cannot be placed, so nothing is dropped for it. */
  known: boolean
  fields: FieldIndex
  /** Activity id -> its attributes. */
  activities: ReadonlyMap<string, FieldIndex>
  /** The account's custom activities by name (id and name). */
  activityNames: FieldIndex
  /** Its custom account fields (Segment `group`); undefined when not read (ORTTO_ACCOUNTS=false, or the read failed). */
  accounts?: AccountFields
}

/** The custom account fields (accounts/custom-field/get), or why Ortto would not list them. */
export interface AccountFields {
  fields: FieldIndex
  /** How many custom account fields exist (Ortto allows 25). */
  count: number
  /** Ortto refused the read (Accounts not switched on): the reason, in its words. */
  refused?: string
}

export function fieldIndex(fields: readonly OrttoField[]): FieldIndex {
  const exact = new Map<string, OrttoField>()
  const loose = new Map<string, OrttoField>()
  for (const field of fields) {
    if (!exact.has(field.name)) exact.set(field.name, field)
    const key = normal(field.name)
    if (!loose.has(key)) loose.set(key, field)
  }
  return { exact, loose }
}

export const noAccount: OrttoAccount = { known: true, fields: fieldIndex([]), activities: new Map(), activityNames: fieldIndex([]) }
export const unknownAccount: OrttoAccount = { ...noAccount, known: false }

/** The field a trait of this name goes into, and whether the name matched exactly. */
export function fieldNamed(index: FieldIndex, name: string): { field: OrttoField; exact: boolean } | undefined {
  const exact = index.exact.get(name)
  if (exact) return { field: exact, exact: true }
  const loose = index.loose.get(normal(name))
  return loose && { field: loose, exact: false }
}

const MAX_STR = 255
const MAX_TEXT = 4000

/** A value as the field of this id holds it: by the id's type prefix (str, txt, int, dec, cur, bol, dtz, tme, geo, phn, sst). */
export function valueFor(id: string, value: unknown, phoneCountry?: string): Converted | { ok: true; value: unknown } {
  const type = id.slice(0, id.indexOf(':'))
  switch (type) {
    case 'str':
      return textUpTo(value, MAX_STR)
    case 'sst': {
      // A list of texts (Ortto's text_list); one text is a list of one.
      const list = Array.isArray(value) ? value : [value]
      const texts: string[] = []
      for (const item of list) {
        const one = textUpTo(item, MAX_STR)
        if (!one.ok) return { ok: false, problem: `holds an item that ${one.problem.replace(/^is /, 'is ')}` }
        texts.push(String(one.value))
      }
      return { ok: true, value: texts }
    }
    case 'txt':
      return textUpTo(value, MAX_TEXT)
    case 'int':
      return convert('integer', value)
    case 'dec':
    case 'cur': {
      // Decimal fields hold thousandths.
      const number = convert('float', value)
      return number.ok ? { ok: true, value: Math.round((number.value as number) * 1000) } : number
    }
    case 'bol':
      return convert('boolean', value)
    case 'dtz':
      return dateParts(value)
    case 'tme': {
      // A moment: a date-time with its zone, sent in UTC; a date or a time without a zone is not one.
      const date = convert('date', value)
      const zoned = date.ok && (typeof value === 'number' || /(?:Z|[+-]\d{2}:?\d{2}|GMT)$/.test(String(value).trim()))
      return zoned ? { ok: true, value: new Date(String(date.value)).toISOString() } : { ok: false, problem: 'is not a date and time with its zone' }
    }
    case 'geo': {
      const name = textUpTo(value, MAX_STR)
      return name.ok ? { ok: true, value: { name: name.value } } : name
    }
    case 'phn':
      return phone(value, phoneCountry)
    default:
      return { ok: false, problem: `is for a field of type "${type}", which this Worker does not send` }
  }
}

function textUpTo(value: unknown, max: number): Converted {
  if (isObject(value) || Array.isArray(value)) return { ok: false, problem: 'must be text' }
  const text = convert('string', value)
  if (text.ok && String(text.value).length > max) return { ok: false, problem: `is longer than ${max} characters` }
  return text
}

/** A real calendar date (YYYY-MM-DD, or a timestamp whose date part is one) as Ortto's date object. */
export function dateParts(value: unknown): Converted | { ok: true; value: unknown } {
  const iso = typeof value === 'string' ? strictDate(value) : undefined
  const match = iso && /^(\d{4})-(\d{2})-(\d{2})/.exec(iso)
  if (!match || !validDate(+match[1], +match[2], +match[3])) return { ok: false, problem: 'is not a calendar date (YYYY-MM-DD)' }
  return { ok: true, value: { year: +match[1], month: +match[2], day: +match[3], timezone: 'UTC' } }
}

/**
 * A phone number. With its country code (a leading + or 00): digits, and Ortto reads the country
 * from them. Without (how most apps store one): the national number, with ORTTO_PHONE_COUNTRY's
 * code when set — never dropped for that. Only a value that is no phone number is left out.
 */
function phone(value: unknown, country?: string): Converted | { ok: true; value: unknown } {
  if (typeof value !== 'string' && typeof value !== 'number') return { ok: false, problem: 'must be a phone number' }
  const text = String(value).trim()
  if (!/^\+?[\d\s().-]+$/.test(text)) return { ok: false, problem: 'is not a phone number' }
  const international = /^(?:\+|00)/.test(text)
  const digits = text.replace(/^00/, '').replace(/[^\d]/g, '')
  if (digits.length < 5 || digits.length > 15) return { ok: false, problem: 'is not a phone number (5 to 15 digits)' }
  if (international) return { ok: true, value: { phone: digits, parse_with_country_code: true } }
  return { ok: true, value: { n: digits, ...(country && { c: country }) } }
}

/** A type Ortto can create (person/custom-field/create, activity attributes) and the id prefix it gives. */
export interface FieldType {
  type: 'text' | 'large_text' | 'integer' | 'decimal' | 'bool' | 'time' | 'multi_select'
  prefix: string
}
const ZONED_TIME = /^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}:?\d{2})$/

/** The type a new field (or attribute) takes from a value: text, whole number, decimal, true/false, a date-time, a list of texts; none for anything else. */
export function typeFor(value: unknown): FieldType | undefined {
  if (typeof value === 'boolean') return { type: 'bool', prefix: 'bol' }
  if (typeof value === 'number') {
    if (Number.isSafeInteger(value)) return { type: 'integer', prefix: 'int' }
    return Number.isFinite(value) ? { type: 'decimal', prefix: 'dec' } : undefined
  }
  if (typeof value === 'string') {
    if (ZONED_TIME.test(value.trim()) && Number.isFinite(Date.parse(value))) return { type: 'time', prefix: 'tme' }
    if (!value.trim()) return undefined
    return value.length <= MAX_STR ? { type: 'text', prefix: 'str' } : value.length <= MAX_TEXT ? { type: 'large_text', prefix: 'txt' } : undefined
  }
  if (Array.isArray(value) && value.length > 0 && value.every((item) => typeof item === 'string' && item.length <= MAX_STR)) return { type: 'multi_select', prefix: 'sst' }
  return undefined
}
