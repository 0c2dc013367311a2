// Segment -> Autopilot mapping. Pure: a function of the event and the settings (and of the
// account's custom field definitions, read elsewhere), no I/O. Everything here is tested
// with plain inputs and outputs.
import * as v from 'valibot'
import { byEventType } from '../../transform'
import type { Operation, People } from '../destination'
import { Email, type GroupEvent, type IdentifyEvent, type Issue, type SegmentEvent, type TrackEvent } from '../../segment/schema'
import { audienceTrait, byName, collectTraits, emailOf, memberEmailOf, normal, normalEmail, pathOf, type Found, type Reserved, type Source } from '../../segment/traits'
import { convert, isObject, present, text, type CustomValue, type ValueType } from '../../values'
import { CustomFields, type AccountFields } from './fields'

export type StandardField =
  | 'FirstName'
  | 'LastName'
  | 'Salutation'
  | 'Company'
  | 'NumberOfEmployees'
  | 'Title'
  | 'Industry'
  | 'Phone'
  | 'MobilePhone'
  | 'Fax'
  | 'Website'
  | 'MailingStreet'
  | 'MailingCity'
  | 'MailingState'
  | 'MailingPostalCode'
  | 'MailingCountry'
  | 'LeadSource'
  | 'Status'
  | 'LinkedIn'
  | 'Twitter'
  | 'owner_name'

export type Contact = { Email: string; unsubscribed?: boolean; _NewEmail?: string; custom?: Record<string, CustomValue> } & {
  [F in StandardField]?: string
}

export interface MappingSettings {
  triggers: ReadonlyMap<string, string>
  /** AUTOPILOT_FIELD_TYPES: trait (dotted path) -> type; wins over everything. */
  fieldTypes: ReadonlyMap<string, ValueType>
  /** The account's own custom fields: a trait goes into the existing field, in its type. */
  accountFields?: AccountFields
}

export type Action = Operation<Contact>

export const MISSING_IDENTIFIER = 'Missing unique identifier traits. Either email or user_id traits must be provided'

/** The person vocabulary's names that are Autopilot standard fields. */
const STANDARD: Partial<Record<Reserved, StandardField>> = {
  firstName: 'FirstName',
  lastName: 'LastName',
  salutation: 'Salutation',
  numberOfEmployees: 'NumberOfEmployees',
  title: 'Title',
  phone: 'Phone',
  mobilePhone: 'MobilePhone',
  fax: 'Fax',
  website: 'Website',
  mailingStreet: 'MailingStreet',
  mailingCity: 'MailingCity',
  mailingState: 'MailingState',
  mailingPostalCode: 'MailingPostalCode',
  mailingCountry: 'MailingCountry',
  leadSource: 'LeadSource',
  status: 'Status',
  linkedIn: 'LinkedIn',
  twitter: 'Twitter',
  ownerName: 'owner_name',
}
const ADDRESS = byName<StandardField>({ street: 'MailingStreet', city: 'MailingCity', state: 'MailingState', postalcode: 'MailingPostalCode', zip: 'MailingPostalCode', country: 'MailingCountry' })
const COMPANY = byName<'name' | 'Industry' | 'NumberOfEmployees'>({ name: 'name', industry: 'Industry', employeecount: 'NumberOfEmployees', employees: 'NumberOfEmployees' })

/** Maps one validated Segment event to what must happen in Autopilot. `knownEmail`: resolved from its userId. */
const byType = byEventType('Autopilot', identifyAction, trackAction)
export const toAction = (event: SegmentEvent, settings: MappingSettings, knownEmail?: string): Action => (event.type === 'group' ? groupAction(event, knownEmail) : byType(event, settings, knownEmail))

/** A group sets the person's Company (Autopilot has no company object): from its name trait, on the contact of the person's email. */
function groupAction(event: GroupEvent, knownEmail?: string): Action {
  const found = memberEmailOf(event)
  const email = found.email ?? knownEmail
  if (!email && !event.userId) return { kind: 'skip', message: 'a group with only an anonymousId is not sent: Autopilot finds a contact by email (context.traits.email)' }
  if (!email) return missingEmail(event.userId, found.issues)
  const name = event.traits?.name
  if (typeof name !== 'string' || !name.trim()) return { kind: 'skip', message: "the group has no name trait, which is all Autopilot takes from a group (the contact's Company)" }
  const company = text(name.trim())
  if (!company.ok) return { kind: 'skip', message: `the group's name ${company.problem}, so the contact's Company is not set` }
  return { kind: 'upsert', person: { Email: normalEmail(email), Company: String(company.value) }, message: "contact upserted (Company from the group's name)", ...withIssues(found.issues) }
}

function identifyAction(event: IdentifyEvent, settings: MappingSettings, knownEmail?: string): Action {
  const found = emailOf(event)
  const email = found.email ?? knownEmail
  if (!email) return missingEmail(event.userId, found.issues)
  const { contact, issues } = traitsToContact(
    email,
    [
      ['context.traits', event.context?.traits],
      ['traits', event.traits],
    ],
    settings,
  )
  return { kind: 'upsert', person: contact, message: 'contact upserted', ...withIssues(found.issues, issues) }
}

function trackAction(event: TrackEvent, settings: MappingSettings, knownEmail?: string): Action {
  const found = emailOf(event)
  const email = found.email ?? knownEmail
  if (!email) return missingEmail(event.userId, found.issues)
  const { contact, issues } = traitsToContact(
    email,
    [
      ['context.traits', event.context?.traits],
      ['properties', audienceTrait(event)],
    ],
    settings,
  )
  const all = withIssues(found.issues, issues)
  const triggerId = settings.triggers.get(event.event)
  if (triggerId) return { kind: 'enter', journey: triggerId, person: contact, setFirst: Object.keys(contact).length > 1, ...all }
  const reason = `no journey trigger is mapped to "${event.event}" in AUTOPILOT_TRIGGERS`
  if (Object.keys(contact).length > 1) return { kind: 'upsert', person: contact, message: `${reason}; contact upserted`, ...all }
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

/**
 * Builds the Autopilot contact for an email from trait sources, later sources winning (so
 * traits win over context.traits). A reserved trait that cannot be sent as its field is
 * left out with an issue; the rest of the event goes on. Runs for every event: strings for
 * issue paths are made only when there is an issue.
 */
export function traitsToContact(email: string, sources: readonly Source[], settings: MappingSettings): { contact: Contact; issues: Issue[] } {
  const { reserved, custom, shadowed } = collectTraits(sources)

  const issues: Issue[] = []
  const contact: Contact = { Email: normalEmail(email) }
  const into = { contact, issues }
  for (const { lost, kept } of shadowed) dropped(issues, pathOf(lost), `${pathOf(kept)} is used instead`)
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
          setText(into, 'Company', value, found)
          break
        }
        for (const name in value) {
          const inner = value[name]
          if (!present(inner)) continue
          const part = COMPANY[normal(name)]
          if (part === 'name') setText(into, 'Company', inner, found, name)
          else if (part) setText(into, part, inner, found, name)
          else fields.add(['company', name], inner, pathOf(found), 1)
        }
        break
      case 'address':
        if (!isObject(value)) {
          dropped(issues, pathOf(found), 'must be an object (street, city, state, postalCode, country)')
          break
        }
        for (const name in value) {
          const inner = value[name]
          if (!present(inner)) continue
          const field = ADDRESS[normal(name)]
          if (field) setText(into, field, inner, found, name)
          else fields.add(['address', name], inner, pathOf(found), 1)
        }
        break
      case 'unsubscribed': {
        const converted = convert('boolean', value)
        if (converted.ok) contact.unsubscribed = converted.value as boolean
        else dropped(issues, pathOf(found), 'must be true or false')
        break
      }
      case 'newEmail': {
        const result = v.safeParse(Email, value)
        if (!result.success) dropped(issues, pathOf(found), result.issues[0].message)
        else if (normalEmail(result.output) !== contact.Email) contact._NewEmail = normalEmail(result.output)
        break
      }
      default: {
        // A person trait Autopilot has no standard field for (birthday, language): a custom field of its name.
        const field = STANDARD[target]
        if (field) setText(into, field, value, found)
        else fields.add([found.name], value, found.prefix, 0)
      }
    }
  }
  const industry = reserved.get('industry')
  if (industry && contact.Industry === undefined) setText(into, 'Industry', industry.value, industry)
  const name = reserved.get('name')
  if (name && contact.FirstName === undefined && contact.LastName === undefined) {
    // Text as for every standard field (no objects or lists); a blank name sets nothing, and says so.
    const full = isObject(name.value) || Array.isArray(name.value) ? undefined : text(name.value)
    const [given, ...family] = full?.ok ? String(full.value).trim().split(/\s+/) : []
    if (!full?.ok) dropped(issues, pathOf(name), 'must be text')
    else if (!given) dropped(issues, pathOf(name), 'is blank')
    else {
      contact.FirstName = given
      if (family.length) contact.LastName = family.join(' ')
    }
  }
  for (const [name, { value, prefix }] of custom) fields.add([name], value, prefix, 0)
  if (fields.size) contact.custom = fields.values
  return { contact, issues }
}

const dropped = (issues: Issue[], path: string, problem: string) => issues.push({ path, message: `${problem}; not sent` })

/** A standard field from a trait (or a part of one, `inner`); the path for an issue is built only when there is one. */
function setText({ contact, issues }: { contact: Contact; issues: Issue[] }, field: StandardField, value: unknown, found: Found, inner?: string) {
  const converted = isObject(value) || Array.isArray(value) ? { ok: false as const, problem: 'must be text' } : text(value)
  if (converted.ok) contact[field] = converted.value as string
  else dropped(issues, inner === undefined ? pathOf(found) : `${pathOf(found)}.${inner}`, converted.problem)
}

/** Several events for one email become one contact; later values win per field. */
export function mergeContacts(earlier: Contact, later: Contact): Contact {
  const merged: Contact = { ...earlier, ...later }
  if (earlier.custom || later.custom) merged.custom = { ...earlier.custom, ...later.custom }
  return merged
}

/** Custom field keys without their type, as guards keep them (a field's type can change). */
const untyped = (key: string) => `custom:${key.slice(key.indexOf('--') + 2)}`

/** How "newest wins" sees an Autopilot contact: standard fields by name, custom ones without their type. */
export const contactPeople: People<Contact> = {
  key: (contact) => contact.Email,
  email: (contact) => contact.Email,
  names(contact) {
    const names: string[] = []
    for (const name of Object.keys(contact)) {
      if (name === 'Email') continue
      if (name === 'custom') for (const key of Object.keys(contact.custom ?? {})) names.push(untyped(key))
      else names.push(name)
    }
    return names
  },
  without(contact, newer) {
    let dropped = 0
    const kept: Record<string, unknown> = {}
    for (const [name, value] of Object.entries(contact)) {
      if (name === 'custom') {
        const custom = Object.fromEntries(Object.entries(contact.custom ?? {}).filter(([key]) => !newer(untyped(key))))
        dropped += Object.keys(contact.custom ?? {}).length - Object.keys(custom).length
        if (Object.keys(custom).length) kept.custom = custom
      } else if (name !== 'Email' && newer(name)) {
        dropped++
      } else {
        kept[name] = value
      }
    }
    return { person: kept as Contact, dropped }
  },
  bare: (contact) => Object.keys(contact).length === 1,
}
