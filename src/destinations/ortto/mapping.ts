// Segment -> Ortto mapping. Pure: a function of the event, the settings and the account's
// field and activity definitions (read elsewhere). identify -> a person merge; a mapped
// track -> an activity (which starts the journeys that wait for it); Engage audiences ->
// tags; the rest is skipped.
import { byEventType } from '../../transform'
import type { Operation, People } from '../destination'
import type { IdentifyEvent, Issue, SegmentEvent, TrackEvent } from '../../segment/schema'
import { audienceTrait, collectTraits, emailOf, newEmailIn, normal, normalEmail, pathOf, type Found, type Source } from '../../segment/traits'
import { convert, isObject } from '../../values'
import { dateParts, fieldNamed, valueFor, type FieldIndex, type OrttoAccount, type OrttoField } from './fields'

/** An Ortto person: keyed by email; `fields` by Ortto field id (email itself apart). */
export interface OrttoPerson {
  email: string
  fields: Record<string, unknown>
  /** A new email (traits.newEmail): the person is found by its external id and given this email. */
  renameTo?: string
  tags?: string[]
  unsetTags?: string[]
}

export interface OrttoMapping {
  /** Segment event name -> custom activity id. */
  activities: ReadonlyMap<string, string>
  account: OrttoAccount
}

export const MISSING_IDENTIFIER = 'Missing unique identifier traits. Either email or user_id traits must be provided'
/** At most this many attributes per activity (Ortto's limit). */
const MAX_ATTRIBUTES = 15
/** Ortto's external id is a str field: 255 characters at most. */
const MAX_ID = 255
const BUILT_IN = { firstName: 'str::first', lastName: 'str::last', phone: 'phn::phone', language: 'str::language' } as const
const ADDRESS: Record<string, string> = { city: 'geo::city', country: 'geo::country', state: 'geo::region', region: 'geo::region', postalcode: 'str::postal', zip: 'str::postal', zipcode: 'str::postal' }

export const toOrtto: (event: SegmentEvent, mapping: OrttoMapping, knownEmail?: string) => Operation<OrttoPerson> = byEventType('Ortto', identify, track)

function identify(event: IdentifyEvent, mapping: OrttoMapping, knownEmail?: string): Operation<OrttoPerson> {
  const found = emailOf(event)
  const email = found.email ?? knownEmail
  if (!email) return missingEmail(event.userId, found.issues)
  const { person, issues, unplaced } = toPerson(email, event.userId, [['context.traits', event.context?.traits], ['traits', event.traits]], mapping.account, audienceOf(event))
  if (unplaced) return ACCOUNT_UNREAD
  return { kind: 'upsert', person, message: 'person merged', ...withIssues(found.issues, issues) }
}

function track(event: TrackEvent, mapping: OrttoMapping, knownEmail?: string): Operation<OrttoPerson> {
  const found = emailOf(event)
  const email = found.email ?? knownEmail
  if (!email) return missingEmail(event.userId, found.issues)
  const audience = audienceTrait(event)
  const { person, issues, unplaced } = toPerson(email, event.userId, [['context.traits', event.context?.traits]], mapping.account, audience && Object.keys(audience)[0])
  if (audience) {
    const [[key, member]] = Object.entries(audience)
    if (member) person.tags = [key]
    else person.unsetTags = [key]
  }
  const activity = mapping.activities.get(event.event)
  if (unplaced || (activity && !mapping.account.known && event.properties && Object.keys(event.properties).length)) return ACCOUNT_UNREAD
  const all = withIssues(found.issues, issues)
  if (activity) {
    const attributes = attributesOf(event.properties, mapping.account.activities.get(activity))
    // The person's fields are merged first, in time order with the batch's other events (newest wins);
    // the activity itself carries only the keys.
    return { kind: 'enter', journey: activity, person, setFirst: !personBare(person), ...(attributes && { attributes }), ...all }
  }
  const reason = `no activity is mapped to "${event.event}" in ORTTO_ACTIVITIES`
  if (!personBare(person)) return { kind: 'upsert', person, message: `${reason}; person merged`, ...all }
  return { kind: 'skip', message: reason }
}

/** An Engage audience sent as an identify: its key, when the event says it is one. */
function audienceOf(event: IdentifyEvent): string | undefined {
  const personas = (event.context as { personas?: unknown } | undefined)?.personas
  if (!isObject(personas) || personas.computation_class !== 'audience' || typeof personas.computation_key !== 'string') return undefined
  return typeof event.traits?.[personas.computation_key] === 'boolean' ? personas.computation_key : undefined
}

/** While the account's fields cannot be read, an event with traits to place waits: nothing is dropped for it. */
const ACCOUNT_UNREAD: Operation<OrttoPerson> = { kind: 'retry', message: "the Ortto account's custom fields and activities could not be read; will retry" }

const withIssues = (issues: Issue[], more: Issue[] = []) => (issues.length || more.length ? { issues: [...issues, ...more] } : {})

function missingEmail(userId: string | null | undefined, issues: Issue[]): Operation<OrttoPerson> {
  if (!userId) return { kind: 'reject', message: MISSING_IDENTIFIER, ...withIssues(issues) }
  return { kind: 'reject', message: 'This event has a userId but no email (traits.email, properties.email or context.traits.email)', ...withIssues(issues) }
}

/**
 * The person for an email from trait sources (later ones win: traits over context.traits).
 * Built-in fields by meaning; other traits into the account's custom field of that name
 * (exact name first, then the first in the event of the names that match without case or
 * spacing), in its type. Every trait left out is named in `issues`. `audience`: the trait
 * that is an Engage audience (a tag, not a field).
 */
export function toPerson(
  email: string,
  userId: string | null | undefined,
  sources: readonly Source[],
  account: OrttoAccount,
  audience?: string,
): { person: OrttoPerson; issues: Issue[]; unplaced?: boolean } {
  const { fields } = account
  const person: OrttoPerson = { email: normalEmail(email), fields: {} }
  const issues: Issue[] = []
  const drop = (path: string, problem: string) => issues.push({ path, message: `${problem}; not sent` })
  const set = (id: string, value: unknown, where: () => string) => {
    const converted = valueFor(id, value)
    if (converted.ok) person.fields[id] = converted.value
    else drop(where(), converted.problem)
  }
  if (userId && userId.length <= MAX_ID) person.fields['str::ei'] = userId
  else if (userId) drop('userId', `is longer than ${MAX_ID} characters, which Ortto's external id holds`)
  const { reserved, custom, shadowed } = collectTraits(sources)
  for (const { lost, kept } of shadowed) drop(pathOf(lost), `${pathOf(kept)} is used instead`)
  for (const [target, found] of reserved) {
    const where = () => pathOf(found)
    switch (target) {
      case 'email':
      case 'name':
        break
      case 'firstName':
      case 'lastName':
      case 'phone':
      case 'language':
        set(BUILT_IN[target], found.value, where)
        break
      case 'unsubscribed': {
        // Ortto's email permission: unsubscribed is its opposite.
        const value = convert('boolean', found.value)
        if (value.ok) person.fields['bol::p'] = !value.value
        else drop(where(), 'must be true or false')
        break
      }
      case 'newEmail': {
        const renamed = newEmailIn({ [found.name]: found.value })
        if (!renamed) drop(where(), 'is not an email address')
        else if (!userId) drop(where(), 'renames a person only with a userId (Ortto finds the person by it)')
        else if (renamed !== person.email) (person.renameTo = renamed)
        break
      }
      case 'birthday': {
        const date = dateParts(found.value)
        if (date.ok) person.fields['dtz::b'] = date.value
        else drop(where(), date.problem)
        break
      }
      case 'address':
        if (!isObject(found.value)) drop(where(), 'must be an object (city, country, state, postalCode)')
        else for (const name in found.value) {
          const id = ADDRESS[normal(name)]
          if (id) set(id, found.value[name], () => `${where()}.${name}`)
          else drop(`${where()}.${name}`, 'is not an address field Ortto has')
        }
        break
      default:
        custom.set(found.name, found) // a person trait Ortto has no built-in for: a custom field of its name
    }
  }
  const name = reserved.get('name')
  if (name && person.fields['str::first'] === undefined && person.fields['str::last'] === undefined) {
    const [given, ...family] = typeof name.value === 'string' ? name.value.trim().split(/\s+/) : []
    if (!given) drop(pathOf(name), typeof name.value === 'string' ? 'is blank' : 'must be text')
    else {
      person.fields['str::first'] = given
      if (family.length) person.fields['str::last'] = family.join(' ')
    }
  }
  const chosen = new Map<string, { found: Found; exact: boolean }>()
  for (const [traitName, found] of custom) {
    if (traitName === audience && typeof found.value === 'boolean') {
      if (found.value) person.tags = [traitName]
      else person.unsetTags = [traitName]
      continue
    }
    if (!account.known) return { person, issues, unplaced: true }
    const match = fieldNamed(fields, traitName)
    if (!match) {
      drop(pathOf(found), 'no custom field of this name in the Ortto account (create it in Ortto to receive it)')
      continue
    }
    const earlier = chosen.get(match.field.id)
    if (earlier && (earlier.exact || !match.exact)) {
      drop(pathOf(found), `"${pathOf(earlier.found)}" goes into the same field (${match.field.name})`)
      continue
    }
    if (earlier) drop(pathOf(earlier.found), `"${pathOf(found)}" matches the field's name (${match.field.name}) exactly and goes into it`)
    chosen.set(match.field.id, { found, exact: match.exact })
  }
  for (const [id, { found }] of chosen) set(id, found.value, () => pathOf(found))
  return { person, issues }
}

/** Properties into the activity's defined attributes, matched by name; the others are not sent. */
function attributesOf(properties: Record<string, unknown> | undefined, defined: FieldIndex | undefined): Record<string, unknown> | undefined {
  if (!properties || !defined) return undefined
  const attributes: Record<string, unknown> = {}
  const taken = new Map<string, boolean>()
  let count = 0
  for (const name in properties) {
    const match = fieldNamed(defined, name)
    if (!match || (taken.has(match.field.id) && (taken.get(match.field.id) || !match.exact))) continue
    const converted = valueFor(match.field.id, properties[name])
    if (!converted.ok) continue
    if (!taken.has(match.field.id) && ++count > MAX_ATTRIBUTES) break
    taken.set(match.field.id, match.exact)
    attributes[match.field.id] = converted.value
  }
  return count ? attributes : undefined
}

const personBare = (person: OrttoPerson) => !person.tags && !person.unsetTags && Object.keys(person.fields).every((id) => id === 'str::ei')

/** Several events for one email become one person; later values win per field; tags add and remove in order. */
export function mergePeople(earlier: OrttoPerson, later: OrttoPerson): OrttoPerson {
  const tags = new Set(earlier.tags)
  const unset = new Set(earlier.unsetTags)
  for (const tag of later.tags ?? []) (tags.add(tag), unset.delete(tag))
  for (const tag of later.unsetTags ?? []) (unset.add(tag), tags.delete(tag))
  const renameTo = later.renameTo ?? earlier.renameTo
  return { email: later.email, fields: { ...earlier.fields, ...later.fields }, ...(renameTo && { renameTo }), ...(tags.size && { tags: [...tags] }), ...(unset.size && { unsetTags: [...unset] }) }
}

/** How "newest wins" sees an Ortto person: field ids, and each tag as its own field. */
export const orttoPeople: People<OrttoPerson> = {
  email: (person) => person.email,
  names: (person) => [...Object.keys(person.fields), ...(person.tags ?? []).map(tagName), ...(person.unsetTags ?? []).map(tagName)],
  without(person, newer) {
    let dropped = 0
    const keep = <T>(list: T[] | undefined, name: (item: T) => string) => list?.filter((item) => !newer(name(item)) || (dropped++, false))
    const fields = Object.fromEntries(Object.entries(person.fields).filter(([id]) => id === 'str::ei' || !newer(id) || (dropped++, false)))
    const tags = keep(person.tags, tagName)
    const unsetTags = keep(person.unsetTags, tagName)
    return { person: { email: person.email, fields, ...(person.renameTo && { renameTo: person.renameTo }), ...(tags?.length && { tags }), ...(unsetTags?.length && { unsetTags }) }, dropped }
  },
  bare: personBare,
}

const tagName = (tag: string) => `tag:${tag}`
export type { OrttoField }
