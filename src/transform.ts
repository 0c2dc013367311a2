// Segment -> Autopilot mapping. Pure: a function of the event and the settings (and of the
// account's custom field definitions, read elsewhere), no I/O. Everything here is tested
// with plain inputs and outputs.
import * as v from 'valibot'
import type { CustomType } from './config'
import { convert, CustomFields, isObject, present, text, UNSAFE_NAMES, type AccountFields, type CustomValue } from './fields'
import { Email, type IdentifyEvent, type Issue, type SegmentEvent, type TrackEvent } from './schema'

export type StandardField =
  | 'FirstName' | 'LastName' | 'Salutation' | 'Company' | 'NumberOfEmployees' | 'Title' | 'Industry'
  | 'Phone' | 'MobilePhone' | 'Fax' | 'Website' | 'MailingStreet' | 'MailingCity' | 'MailingState'
  | 'MailingPostalCode' | 'MailingCountry' | 'LeadSource' | 'Status' | 'LinkedIn' | 'Twitter' | 'owner_name'

export type Contact = { Email: string; unsubscribed?: boolean; _NewEmail?: string; custom?: Record<string, CustomValue> } & {
  [F in StandardField]?: string
}

export interface MappingSettings {
  triggers: ReadonlyMap<string, string>
  /** AUTOPILOT_FIELD_TYPES: trait (dotted path) -> type; wins over everything. */
  fieldTypes: ReadonlyMap<string, CustomType>
  /** The account's own custom fields: a trait goes into the existing field, in its type. */
  accountFields?: AccountFields
}

export type Action =
  | { kind: 'upsert'; contact: Contact; message: string; issues?: Issue[] }
  /** setFirst: the track carries traits to set, so the contact is upserted before the trigger. */
  | { kind: 'trigger'; triggerId: string; contact: Contact; setFirst: boolean; issues?: Issue[] }
  | { kind: 'delete'; email: string }
  | { kind: 'skip'; message: string }
  | { kind: 'reject'; message: string; issues?: Issue[] }

export const MISSING_IDENTIFIER = 'Missing unique identifier traits. Either email or user_id traits must be provided'

/** What a reserved trait is, whatever its spelling: firstName, first_name, firstname, "First Name", FIRSTNAME. */
type Reserved = StandardField | 'email' | 'name' | 'company' | 'industry' | 'address' | 'unsubscribed' | 'newEmail'
/** A table looked up by trait name: without a prototype, so a trait called "constructor" (in any spelling) is no key. */
const byName = <T>(entries: Record<string, T>): Readonly<Record<string, T | undefined>> => Object.assign(Object.create(null), entries)
const ALIASES = byName<Reserved>({
  email: 'email', name: 'name', company: 'company', industry: 'industry', address: 'address', unsubscribed: 'unsubscribed',
  newemail: 'newEmail', firstname: 'FirstName', givenname: 'FirstName', lastname: 'LastName', familyname: 'LastName',
  surname: 'LastName', phone: 'Phone', mobile: 'MobilePhone', mobilephone: 'MobilePhone', title: 'Title', website: 'Website',
  leadsource: 'LeadSource', status: 'Status', salutation: 'Salutation', twitter: 'Twitter', linkedin: 'LinkedIn', fax: 'Fax',
  numberofemployees: 'NumberOfEmployees', ownername: 'owner_name', mailingstreet: 'MailingStreet', mailingcity: 'MailingCity',
  mailingstate: 'MailingState', mailingpostalcode: 'MailingPostalCode', mailingcountry: 'MailingCountry',
})
const ADDRESS = byName<StandardField>({ street: 'MailingStreet', city: 'MailingCity', state: 'MailingState', postalcode: 'MailingPostalCode', zip: 'MailingPostalCode', country: 'MailingCountry' })
const COMPANY = byName<'name' | 'Industry' | 'NumberOfEmployees'>({ name: 'name', industry: 'Industry', employeecount: 'NumberOfEmployees', employees: 'NumberOfEmployees' })

const normalized = new Map<string, string>()
/** A trait name compared without case, spaces, underscores or dashes (cached per isolate). */
function normal(name: string): string {
  let key = normalized.get(name)
  if (key === undefined) {
    key = name.toLowerCase().replace(/[\s_-]+/g, '')
    if (normalized.size >= 10_000) normalized.clear()
    normalized.set(name, key)
  }
  return key
}


/** Maps one validated Segment event to what must happen in Autopilot. `knownEmail`: resolved from its userId. */
export function toAction(event: SegmentEvent, settings: MappingSettings, knownEmail?: string): Action {
  switch (event.type) {
    case 'identify':
      return identifyAction(event, settings, knownEmail)
    case 'track':
      return trackAction(event, settings, knownEmail)
    default:
      return { kind: 'skip', message: `${event.type} events are acknowledged and not sent to Autopilot` }
  }
}

const emails = new WeakMap<object, { email?: string; issues: Issue[] }>()
/** The first valid email an identify or track carries (trimmed), and issues for invalid ones before it. */
export function emailOf(event: IdentifyEvent | TrackEvent): { email?: string; issues: Issue[] } {
  let found = emails.get(event)
  if (!found) emails.set(event, (found = findEmail(event)))
  return found
}

/** Where Segment and Engage put the email: identify traits, else context.traits; track properties, else context.traits. */
function findEmail(event: IdentifyEvent | TrackEvent): { email?: string; issues: Issue[] } {
  const issues: Issue[] = []
  const own = event.type === 'identify' ? event.traits?.email : event.properties?.email
  const email = valid(own, event.type === 'identify' ? 'traits.email' : 'properties.email', issues) ?? valid(event.context?.traits?.email, 'context.traits.email', issues)
  return email === undefined ? { issues } : { email, issues }
}

/** The email if the value is one; an issue (at `path`) if it is present and is not. */
function valid(value: unknown, path: string, issues: Issue[]): string | undefined {
  if (!present(value)) return undefined
  const result = v.safeParse(Email, value)
  if (result.success) return result.output
  issues.push({ path, message: `${result.issues[0].message}; not used` })
  return undefined
}

export const eventEmail = (event: IdentifyEvent | TrackEvent): string | undefined => emailOf(event).email

const newEmails = new WeakMap<object, string | undefined>()
/** The email traits change the contact to (`_NewEmail`, `newEmail`, `new_email`...), if valid. */
export function newEmailIn(traits: Record<string, unknown> | undefined): string | undefined {
  if (!traits) return undefined
  if (!newEmails.has(traits)) newEmails.set(traits, findNewEmail(traits))
  return newEmails.get(traits)
}

function findNewEmail(traits: Record<string, unknown>): string | undefined {
  for (const name in traits) {
    if (ALIASES[normal(name)] !== 'newEmail') continue
    const result = v.safeParse(Email, traits[name])
    if (result.success) return result.output.toLowerCase()
  }
  return undefined
}

function identifyAction(event: IdentifyEvent, settings: MappingSettings, knownEmail?: string): Action {
  const found = emailOf(event)
  const email = found.email ?? knownEmail
  if (!email) return missingEmail(event.userId, found.issues)
  const { contact, issues } = traitsToContact(email, [['context.traits', event.context?.traits], ['traits', event.traits]], settings)
  return { kind: 'upsert', contact, message: 'contact upserted', ...withIssues(found.issues, issues) }
}

function trackAction(event: TrackEvent, settings: MappingSettings, knownEmail?: string): Action {
  const found = emailOf(event)
  const email = found.email ?? knownEmail
  if (!email) return missingEmail(event.userId, found.issues)
  const { contact, issues } = traitsToContact(email, [['context.traits', event.context?.traits], ['properties', audienceTrait(event)]], settings)
  const all = withIssues(found.issues, issues)
  const triggerId = settings.triggers.get(event.event)
  if (triggerId) return { kind: 'trigger', triggerId, contact, setFirst: Object.keys(contact).length > 1, ...all }
  const reason = `no journey trigger is mapped to "${event.event}" in AUTOPILOT_TRIGGERS`
  if (Object.keys(contact).length > 1) return { kind: 'upsert', contact, message: `${reason}; contact upserted`, ...all }
  return { kind: 'skip', message: reason }
}

const withIssues = (issues: Issue[], more: Issue[] = []) => (issues.length || more.length ? { issues: [...issues, ...more] } : {})

function missingEmail(userId: string | null | undefined, issues: Issue[]): Action {
  if (!userId) return { kind: 'reject', message: MISSING_IDENTIFIER, ...withIssues(issues) }
  return {
    kind: 'reject',
    message: 'Autopilot keys contacts by email: this event has a userId but no email (traits.email, properties.email or context.traits.email)',
    ...withIssues(issues),
  }
}

/** Engage audiences sent as track events carry membership as properties[audience_key]. */
function audienceTrait(event: TrackEvent): Record<string, boolean> | undefined {
  const properties = event.properties as Record<string, unknown> | undefined
  const key = properties?.audience_key
  if (typeof key !== 'string' || UNSAFE_NAMES.has(key)) return undefined
  const member = properties?.[key]
  return typeof member === 'boolean' ? { [key]: member } : undefined
}

type Source = [path: string, traits: Record<string, unknown> | undefined]

/** A reserved trait as found: where (for issues, built only when one is reported) and how it was spelled. */
interface Found {
  value: unknown
  prefix: string
  name: string
  exact: boolean
}
const pathOf = (found: { prefix: string; name: string }) => `${found.prefix}.${found.name}`

/**
 * Builds the Autopilot contact for an email from trait sources, later sources winning (so
 * traits win over context.traits). A reserved trait that cannot be sent as its field is
 * left out with an issue; the rest of the event goes on. Runs for every event: strings for
 * issue paths are made only when there is an issue.
 */
export function traitsToContact(email: string, sources: readonly Source[], settings: MappingSettings): { contact: Contact; issues: Issue[] } {
  const reserved = new Map<Reserved, Found>()
  const custom = new Map<string, { value: unknown; prefix: string }>()
  for (const [prefix, traits] of sources) {
    if (!traits) continue
    let seen: Set<Reserved> | undefined
    for (const name in traits) {
      const value = traits[name]
      if (!present(value) || UNSAFE_NAMES.has(name)) continue
      const target = ALIASES[normal(name)]
      if (!target) {
        custom.set(name, { value, prefix })
        continue
      }
      // Within one source the usual spelling (firstName) wins over another (FIRSTNAME); a later source wins.
      const exact = name === target || name === CAMEL[target]
      if (seen?.has(target) && (reserved.get(target)!.exact || !exact)) continue
      ;(seen ??= new Set()).add(target)
      reserved.set(target, { value, prefix, name, exact })
    }
  }

  const issues: Issue[] = []
  const drop = (path: string, problem: string) => issues.push({ path, message: `${problem}; not sent` })
  const contact: Contact = { Email: email.trim().toLowerCase() }
  const setText = (field: StandardField, value: unknown, where: () => string) => {
    const converted = isObject(value) || Array.isArray(value) ? { ok: false as const, problem: 'must be text' } : text(value)
    if (converted.ok) contact[field] = converted.value as string
    else drop(where(), converted.problem)
  }
  const fields = new CustomFields(settings.fieldTypes, settings.accountFields, issues)
  for (const [target, found] of reserved) {
    const { value } = found
    switch (target) {
      case 'email':
        break // the event's email is decided before (emailOf)
      case 'name':
      case 'industry':
        break // below, after the fields that take precedence
      case 'company':
        if (!isObject(value)) {
          setText('Company', value, () => pathOf(found))
          break
        }
        for (const name in value) {
          const inner = value[name]
          if (!present(inner)) continue
          const part = COMPANY[normal(name)]
          const where = () => `${pathOf(found)}.${name}`
          if (part === 'name') setText('Company', inner, where)
          else if (part) setText(part, inner, where)
          else fields.add(['company', name], inner, pathOf(found), 1)
        }
        break
      case 'address':
        if (!isObject(value)) {
          drop(pathOf(found), 'must be an object (street, city, state, postalCode, country)')
          break
        }
        for (const name in value) {
          const inner = value[name]
          if (!present(inner)) continue
          const field = ADDRESS[normal(name)]
          if (field) setText(field, inner, () => `${pathOf(found)}.${name}`)
          else fields.add(['address', name], inner, pathOf(found), 1)
        }
        break
      case 'unsubscribed': {
        const converted = convert('boolean', value)
        if (converted.ok) contact.unsubscribed = converted.value as boolean
        else drop(pathOf(found), 'must be true or false')
        break
      }
      case 'newEmail': {
        const result = v.safeParse(Email, value)
        if (!result.success) drop(pathOf(found), result.issues[0].message)
        else if (result.output.toLowerCase() !== contact.Email) contact._NewEmail = result.output.toLowerCase()
        break
      }
      default:
        setText(target, value, () => pathOf(found))
    }
  }
  const industry = reserved.get('industry')
  if (industry && contact.Industry === undefined) setText('Industry', industry.value, () => pathOf(industry))
  const name = reserved.get('name')
  if (name && contact.FirstName === undefined && contact.LastName === undefined) {
    // Text as for every standard field (no objects or lists); a blank name sets nothing, and says so.
    const full = isObject(name.value) || Array.isArray(name.value) ? undefined : text(name.value)
    const [given, ...family] = full?.ok ? String(full.value).trim().split(/\s+/) : []
    if (!full?.ok) drop(pathOf(name), 'must be text')
    else if (!given) drop(pathOf(name), 'is blank')
    else {
      contact.FirstName = given
      if (family.length) contact.LastName = family.join(' ')
    }
  }
  for (const [name, { value, prefix }] of custom) fields.add([name], value, prefix, 0)
  if (fields.size) contact.custom = fields.values
  return { contact, issues }
}

/** Each reserved name's usual camelCase spelling (firstName for FirstName). */
const CAMEL = Object.fromEntries(
  [...new Set(Object.values(ALIASES) as Reserved[])].map((target) => [target, target.charAt(0).toLowerCase() + target.slice(1)]),
) as Record<Reserved, string>

/** Several events for one email become one contact; later values win per field. */
export function mergeContacts(earlier: Contact, later: Contact): Contact {
  const merged: Contact = { ...earlier, ...later }
  if (earlier.custom || later.custom) merged.custom = { ...earlier.custom, ...later.custom }
  return merged
}
