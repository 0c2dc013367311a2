// Segment -> Autopilot mapping. Pure: a function of the event and the settings,
// no I/O, no env. Everything here is tested with plain inputs and outputs.
import type { CustomType } from './config'
import type { IdentifyEvent, Issue, SegmentEvent, TrackEvent, Traits } from './schema'

export type CustomValue = string | number | boolean
export type StandardField =
  | 'FirstName' | 'LastName' | 'Salutation' | 'Company' | 'NumberOfEmployees' | 'Title' | 'Industry'
  | 'Phone' | 'MobilePhone' | 'Fax' | 'Website' | 'MailingStreet' | 'MailingCity' | 'MailingState'
  | 'MailingPostalCode' | 'MailingCountry' | 'LeadSource' | 'Status' | 'LinkedIn' | 'Twitter'

export type Contact = { Email: string; unsubscribed?: boolean; _NewEmail?: string; custom?: Record<string, CustomValue> } & {
  [F in StandardField]?: string
}

export interface MappingSettings {
  triggers: ReadonlyMap<string, string>
  fieldTypes: ReadonlyMap<string, CustomType>
}

export type Action =
  | { kind: 'upsert'; contact: Contact; message: string; issues?: Issue[] }
  /** setFirst: the track carries traits to set, so the contact is upserted before the trigger. */
  | { kind: 'trigger'; triggerId: string; contact: Contact; setFirst: boolean; issues?: Issue[] }
  | { kind: 'delete'; email: string }
  | { kind: 'skip'; message: string }
  | { kind: 'reject'; message: string; issues?: Issue[] }

export const MISSING_IDENTIFIER = 'Missing unique identifier traits. Either email or user_id traits must be provided'

// Reserved Segment traits -> Autopilot standard fields, first present alias wins.
const STANDARD: ReadonlyArray<readonly [StandardField, ...(keyof Traits)[]]> = [
  ['FirstName', 'firstName', 'first_name'],
  ['LastName', 'lastName', 'last_name'],
  ['Phone', 'phone'],
  ['MobilePhone', 'mobilePhone', 'mobile_phone', 'mobile'],
  ['Title', 'title'],
  ['Website', 'website'],
  ['LeadSource', 'leadSource', 'lead_source', 'LeadSource'],
  ['Status', 'status'],
  ['Salutation', 'salutation'],
  ['Twitter', 'twitter'],
  ['LinkedIn', 'linkedin'],
  ['Fax', 'fax'],
]
const ADDRESS = [
  ['MailingStreet', 'street'],
  ['MailingCity', 'city'],
  ['MailingState', 'state'],
  ['MailingPostalCode', 'postalCode', 'postal_code'],
  ['MailingCountry', 'country'],
] as const
/** Traits consumed by the standard mapping; everything else becomes a custom field. */
const RESERVED = new Set<string>([
  ...STANDARD.flatMap(([, ...names]) => names as string[]),
  'email', 'name', 'company', 'industry', 'address', 'unsubscribed', 'newEmail', 'new_email', '_NewEmail',
])
const COMPANY_FIELDS = new Set(['name', 'industry', 'employee_count', 'employeeCount'])
const ADDRESS_FIELDS = new Set<string>(ADDRESS.flatMap(([, ...names]) => names))
const UNSAFE_NAMES = new Set(['__proto__', 'constructor', 'prototype'])
const ISO_DATE = /^\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}:?\d{2})?)?$/
/** Nested objects are flattened this deep; anything deeper is kept as JSON text. */
const MAX_DEPTH = 3
const MAX_NAME_LENGTH = 200

const present = <T>(value: T | null | undefined): value is T => value !== undefined && value !== null
const first = <T>(...values: (T | null | undefined)[]): T | undefined => values.find(present)

/** Maps one validated Segment event to what must happen in Autopilot. */
export function toAction(event: SegmentEvent, settings: MappingSettings): Action {
  switch (event.type) {
    case 'identify':
      return identifyAction(event, settings)
    case 'track':
      return trackAction(event, settings)
    default:
      return { kind: 'skip', message: `${event.type} events are acknowledged and not sent to Autopilot` }
  }
}

/** The email an identify or track carries, where Segment and Engage put it. */
export function eventEmail(event: IdentifyEvent | TrackEvent): string | undefined {
  return event.type === 'identify'
    ? first(event.traits?.email, event.context?.traits?.email)
    : first(event.properties?.email, event.context?.traits?.email)
}

/** The email traits change the contact to (`_NewEmail`, `newEmail`, `new_email`). */
export function newEmailIn(traits: Traits | undefined): string | undefined {
  return first(traits?._NewEmail, traits?.newEmail, traits?.new_email)
}

function identifyAction(event: IdentifyEvent, settings: MappingSettings): Action {
  const email = eventEmail(event)
  if (!email) return missingEmail(event.userId)
  return { kind: 'upsert', contact: traitsToContact(email, event.traits ?? {}, settings.fieldTypes), message: 'contact upserted' }
}

function trackAction(event: TrackEvent, settings: MappingSettings): Action {
  const email = eventEmail(event)
  if (!email) return missingEmail(event.userId)
  const contact = traitsToContact(email, { ...event.context?.traits, ...audienceTrait(event) }, settings.fieldTypes)
  const triggerId = settings.triggers.get(event.event)
  if (triggerId) return { kind: 'trigger', triggerId, contact, setFirst: Object.keys(contact).length > 1 }
  const reason = `no journey trigger is mapped to "${event.event}" in AUTOPILOT_TRIGGERS`
  if (Object.keys(contact).length > 1) return { kind: 'upsert', contact, message: `${reason}; contact upserted` }
  return { kind: 'skip', message: reason }
}

function missingEmail(userId: string | null | undefined): Action {
  if (!userId) return { kind: 'reject', message: MISSING_IDENTIFIER }
  return {
    kind: 'reject',
    message: 'Autopilot keys contacts by email: this event has a userId but no email (traits.email, properties.email or context.traits.email)',
  }
}

/** Engage audiences sent as track events carry membership as properties[audience_key]. */
function audienceTrait(event: TrackEvent): Record<string, boolean> {
  const properties = event.properties as Record<string, unknown> | undefined
  const key = properties?.audience_key
  if (typeof key !== 'string' || UNSAFE_NAMES.has(key)) return {}
  const member = properties?.[key]
  return typeof member === 'boolean' ? { [key]: member } : {}
}

/** Builds the Autopilot contact for an email from Segment traits. */
export function traitsToContact(email: string, traits: Traits, fieldTypes: ReadonlyMap<string, CustomType>): Contact {
  const contact: Contact = { Email: email.trim().toLowerCase() }
  for (const [field, ...names] of STANDARD) {
    for (const name of names) {
      const value = traits[name] as string | null | undefined
      if (present(value)) {
        contact[field] = value
        break
      }
    }
  }
  if (!present(contact.FirstName) && !present(contact.LastName) && present(traits.name)) {
    const [given, ...family] = traits.name.trim().split(/\s+/)
    if (given) contact.FirstName = given
    if (family.length) contact.LastName = family.join(' ')
  }
  const company = traits.company
  const companyObject = typeof company === 'object' && company !== null ? company : undefined
  const companyName = companyObject ? companyObject.name : (company as string | null | undefined)
  if (present(companyName)) contact.Company = companyName
  const employees = first(companyObject?.employee_count, companyObject?.employeeCount)
  if (present(employees)) contact.NumberOfEmployees = employees
  const industry = first(companyObject?.industry, traits.industry)
  if (present(industry)) contact.Industry = industry
  const address = traits.address
  if (address) {
    for (const [field, ...names] of ADDRESS) {
      const value = first(...names.map((name) => address[name] as string | null | undefined))
      if (present(value)) contact[field] = value
    }
  }
  if (present(traits.unsubscribed)) contact.unsubscribed = traits.unsubscribed
  const newEmail = newEmailIn(traits)
  if (present(newEmail) && newEmail !== email) contact._NewEmail = newEmail

  const custom: Record<string, CustomValue> = {}
  for (const [name, value] of Object.entries(traits)) {
    if (RESERVED.has(name)) continue
    addCustom(custom, [name], value, fieldTypes)
  }
  // Reserved objects may carry more than the standard fields read (company.plan, address.zip...).
  if (companyObject) addRest(custom, 'company', companyObject, COMPANY_FIELDS, fieldTypes)
  if (address) addRest(custom, 'address', address, ADDRESS_FIELDS, fieldTypes)
  if (Object.keys(custom).length) contact.custom = custom
  return contact
}

function addRest(
  custom: Record<string, CustomValue>,
  parent: string,
  object: Record<string, unknown>,
  read: ReadonlySet<string>,
  fieldTypes: ReadonlyMap<string, CustomType>,
) {
  for (const [name, value] of Object.entries(object)) {
    if (!read.has(name)) addCustom(custom, [parent, name], value, fieldTypes)
  }
}

/**
 * One trait (or nested object, flattened as Parent--child) -> typed custom fields.
 * Autopilot fixes a field's type when it is created, so the type is chosen from
 * the trait's name and the kind of its value — never from the particular value:
 * numbers are always float (3 and 3.5 must not make two types) and strings are
 * dates only when the name says so (createdAt, trial_date...). AUTOPILOT_FIELD_TYPES
 * pins a trait to a type; a value that does not fit its type is not sent.
 */
function addCustom(
  custom: Record<string, CustomValue>,
  path: string[],
  value: unknown,
  fieldTypes: ReadonlyMap<string, CustomType>,
) {
  if (!present(value)) return
  const name = customName(path)
  if (!name) return
  if (typeof value === 'object' && value !== null && !Array.isArray(value) && path.length < MAX_DEPTH) {
    for (const [key, inner] of Object.entries(value)) addCustom(custom, [...path, key], inner, fieldTypes)
    return
  }
  const type = fieldTypes.get(path.join('.')) ?? defaultType(path[path.length - 1], value)
  const fitted = fit(type, value)
  if (fitted !== undefined) custom[`${type}--${name}`] = fitted
}

/** Autopilot's custom field name: spaces become `--`; names that cannot be sent are skipped. */
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
    part = UNSAFE_NAMES.has(segment)
      ? ''
      : segment
          .toWellFormed()
          .replace(/(?![\t\n\v\f\r])\p{Cc}/gu, '') // control characters, but whitespace becomes -- below
          .trim()
          .replace(/\s+/gu, '--')
    if (fieldNames.size >= 10_000) fieldNames.clear()
    fieldNames.set(segment, part)
  }
  return part
}

/** createdAt, updated_at, signupDate, trial_end_date, "Renewal Date", birthday, date. */
const DATE_NAME = /(?:[a-z\d](?:At|Date)|[_\s-](?:at|At|date|Date))$|^(?:date|Date|birthday|Birthday)$/

function defaultType(name: string, value: unknown): CustomType {
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

/** The value as the type holds it, or undefined when it cannot be. */
function fit(type: CustomType, value: unknown): CustomValue | undefined {
  switch (type) {
    case 'integer':
      return typeof value === 'number' && Number.isSafeInteger(value) ? value : undefined
    case 'float':
      return typeof value === 'number' && Number.isFinite(value) ? value : undefined
    case 'boolean':
      return typeof value === 'boolean' ? value : undefined
    case 'date':
      return typeof value === 'string' ? isoDate(value) : undefined
    case 'string':
      return typeof value === 'object' ? text(value) : String(value).toWellFormed()
  }
}

/** ISO-8601 as given; other date text that parses (e.g. RFC 2822) converted to ISO. */
function isoDate(value: string): string | undefined {
  const time = Date.parse(value)
  if (Number.isNaN(time)) return undefined
  return ISO_DATE.test(value) ? value : new Date(time).toISOString()
}

/** Arrays of plain values read best as a list; anything else nested is kept as JSON. */
function text(value: unknown): string | undefined {
  if (Array.isArray(value) && value.every((item) => ['string', 'number', 'boolean'].includes(typeof item))) {
    return value.join(', ').toWellFormed()
  }
  try {
    return JSON.stringify(value).toWellFormed()
  } catch {
    return undefined // too deeply nested to serialise: skip the field rather than fail the event
  }
}

/** Several events for one email become one contact; later values win per field. */
export function mergeContacts(earlier: Contact, later: Contact): Contact {
  const merged: Contact = { ...earlier, ...later }
  if (earlier.custom || later.custom) merged.custom = { ...earlier.custom, ...later.custom }
  return merged
}
