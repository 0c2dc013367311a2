// Trait values as a destination's typed fields hold them: converted when the conversion is
// exact (the text "42" into an integer field), reported when it is not — never an invented
// value. Pure, and shared by every destination.

export const VALUE_TYPES = ['string', 'integer', 'float', 'boolean', 'date'] as const
export type ValueType = (typeof VALUE_TYPES)[number]

export type CustomValue = string | number | boolean

export type Converted = { ok: true; value: CustomValue } | { ok: false; problem: string }

/** Names that would reach an object's prototype: never a field. */
export const UNSAFE_NAMES = new Set(['__proto__', 'constructor', 'prototype'])
export const isObject = (value: unknown): value is Record<string, unknown> => typeof value === 'object' && value !== null && !Array.isArray(value)
export const present = (value: unknown) => value !== undefined && value !== null

const INTEGER_TEXT = /^[+-]?\d{1,16}$/
const DECIMAL_TEXT = /^[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?$/

/** The value as a field of this type holds it, when that is exact. */
export function convert(type: ValueType, value: unknown): Converted {
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
export function validDate(year: number, month: number, day: number): boolean {
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
