// Segment -> Ortto mapping. Pure: a function of the event, the settings and the account's
// field and activity definitions (read elsewhere). identify -> a person merge; a track -> the
// activity of its name, or the one ORTTO_ACTIVITIES routes it to (an activity starts the
// journeys that wait for it), or one to create; Engage audiences -> tags; the rest is skipped.
// A person is found by Segment's userId (Ortto's external id), else by email (ORTTO_MERGE_BY).
import { byEventType } from '../../transform'
import type { Operation } from '../destination'
import type { IdentifyEvent, Issue, SegmentEvent, TrackEvent } from '../../segment/schema'
import { audienceTrait, emailOf } from '../../segment/traits'
import { isObject } from '../../values'
import { fieldNamed, typeFor, valueFor, type FieldIndex, type OrttoAccount } from './fields'
import { idFits, personBare, toPerson, type OrttoPerson, type PersonOptions } from './person'
import type { Creates } from './settings'

export interface OrttoMapping {
  /** Segment event name -> custom activity id (ORTTO_ACTIVITIES): the others go to the activity of their name. */
  activities: ReadonlyMap<string, string>
  account: OrttoAccount
  create: Creates
  /** Ortto finds people by external id first (ORTTO_MERGE_BY=str::ei,str::email). */
  byUserId: boolean
  phoneCountry?: string
  /** context.ip goes as the person's location (ORTTO_SEND_IP). */
  sendIp: boolean
}

export const MISSING_IDENTIFIER = 'Missing unique identifier traits. Either email or user_id traits must be provided'
/** At most this many attributes per activity (Ortto's limit). */
const MAX_ATTRIBUTES = 15
/** An activity to create is named after its event; longer names are not made into one. */
const MAX_ACTIVITY_NAME = 100
/** An activity that does not exist yet: `send` creates it (ORTTO_CREATE=activities), then uses its id. */
export const TO_CREATE = 'create:'
/** How a property the activity has no attribute for is named (create.ts tells the operator of each). */
export const NO_ATTRIBUTE = 'no attribute of this name and type in the activity'
export const lacksAttribute = (activity: string) => `${NO_ATTRIBUTE} "${activity}": add the attribute to the activity in Ortto; not sent`
const LOOP = 'sent by Ortto itself (context.app.namespace "ortto.com"): not sent back, so a journey cannot trigger itself'

export const toOrtto: (event: SegmentEvent, mapping: OrttoMapping, knownEmail?: string) => Operation<OrttoPerson> = byEventType('Ortto', identify, track)

const personOptions = (mapping: OrttoMapping): PersonOptions => ({ createFields: mapping.create.fields, phoneCountry: mapping.phoneCountry })

function identify(event: IdentifyEvent, mapping: OrttoMapping, knownEmail?: string): Operation<OrttoPerson> {
  if (fromOrtto(event)) return { kind: 'skip', message: LOOP }
  const found = emailOf(event)
  const email = found.email ?? knownEmail
  if (!email && !(mapping.byUserId && idFits(event.userId))) return missingEmail(event.userId, found.issues)
  const { person, issues, unplaced } = toPerson(
    email,
    event.userId,
    [
      ['context.traits', event.context?.traits],
      ['traits', event.traits],
    ],
    mapping.account,
    personOptions(mapping),
    audienceOf(event),
  )
  if (unplaced) return ACCOUNT_UNREAD
  withIp(person, event, mapping)
  return { kind: 'upsert', person, message: 'person merged', ...withIssues(found.issues, issues) }
}

function track(event: TrackEvent, mapping: OrttoMapping, knownEmail?: string): Operation<OrttoPerson> {
  if (fromOrtto(event)) return { kind: 'skip', message: LOOP }
  const found = emailOf(event)
  const email = found.email ?? knownEmail
  if (!email && !(mapping.byUserId && idFits(event.userId))) return missingEmail(event.userId, found.issues)
  const { account } = mapping
  const audience = audienceTrait(event)
  const { person, issues, unplaced } = toPerson(email, event.userId, [['context.traits', event.context?.traits]], account, personOptions(mapping), audience && Object.keys(audience)[0])
  if (audience) {
    const [[key, member]] = Object.entries(audience)
    if (member) person.tags = [key]
    else person.unsetTags = [key]
  }
  withIp(person, event, mapping)
  const routed = mapping.activities.get(event.event)
  const activity = routed ?? fieldNamed(account.activityNames, event.event)?.field.id
  // Whether an activity of this name exists (and what it holds) is the account's to say: wait until it can.
  if (unplaced || (!account.known && (!routed || (event.properties && Object.keys(event.properties).length)))) return ACCOUNT_UNREAD
  const all = withIssues(found.issues, issues)
  // The person's fields are merged first, in time order with the batch's other events (newest wins);
  // the activity itself carries only the keys.
  const setFirst = !personBare(person)
  if (activity) {
    const { attributes, left } = attributesOf(event.properties, account.activities.get(activity), event.event, mapping.phoneCountry)
    // With no setup (ORTTO_CREATE=activities) every property is meant to travel: one the activity lacks is named.
    if (!mapping.create.activities) left.length = 0
    return { kind: 'enter', journey: activity, person, setFirst, ...(attributes && { attributes }), ...withIssues(found.issues, [...issues, ...left]) }
  }
  const name = event.event.trim()
  if (mapping.create.activities && name && name.length <= MAX_ACTIVITY_NAME) {
    const { attributes, left } = newAttributes(event.properties)
    return { kind: 'enter', journey: `${TO_CREATE}${name}`, person, setFirst, ...(attributes && { attributes }), ...withIssues(found.issues, [...issues, ...left]) }
  }
  const reason = mapping.create.activities
    ? `no activity is named "${event.event}", and a name over ${MAX_ACTIVITY_NAME} characters is not made into one`
    : `no activity is named "${event.event}" in the Ortto account or mapped in ORTTO_ACTIVITIES (ORTTO_CREATE=activities creates it)`
  if (!personBare(person)) return { kind: 'upsert', person, message: `${reason}; person merged`, ...all }
  return { kind: 'skip', message: reason }
}

/** An event Ortto itself sent into Segment. */
function fromOrtto(event: SegmentEvent): boolean {
  const app = (event.context as { app?: unknown } | undefined)?.app
  return isObject(app) && typeof app.namespace === 'string' && app.namespace.trim().toLowerCase() === 'ortto.com'
}

const IP = /^(?:(?:25[0-5]|2[0-4]\d|1?\d?\d)\.){3}(?:25[0-5]|2[0-4]\d|1?\d?\d)$|^[0-9a-f:]*:[0-9a-f:.]+$/i

/** context.ip, for Ortto to geolocate the person. */
function withIp(person: OrttoPerson, event: SegmentEvent, mapping: OrttoMapping) {
  const ip = (event.context as { ip?: unknown } | undefined)?.ip
  if (mapping.sendIp && typeof ip === 'string' && IP.test(ip.trim())) person.ip = ip.trim()
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

/** A new activity's attributes: its properties by name, each of a type Ortto can hold; the others named. */
function newAttributes(properties: Record<string, unknown> | undefined): { attributes?: Record<string, unknown>; left: Issue[] } {
  const attributes: Record<string, unknown> = {}
  const left: Issue[] = []
  let count = 0
  for (const name in properties) {
    const value = properties[name]
    const path = `properties.${name}`
    if (!name.trim() || name.length > MAX_ACTIVITY_NAME) left.push({ path, message: 'is no name an attribute can take; not sent' })
    else if (!typeFor(value)) left.push({ path, message: 'fits no Ortto attribute type (text, number, true/false, a date-time, a list of texts); not sent' })
    else if (count >= MAX_ATTRIBUTES) left.push({ path, message: `an activity holds at most ${MAX_ATTRIBUTES} attributes; not sent` })
    else {
      attributes[name] = value
      count++
    }
  }
  return { ...(count && { attributes }), left }
}

/** Properties into the activity's defined attributes, matched by name; the others are not sent, each named. */
function attributesOf(
  properties: Record<string, unknown> | undefined,
  defined: FieldIndex | undefined,
  activity: string,
  phoneCountry?: string,
): { attributes?: Record<string, unknown>; left: Issue[] } {
  const left: Issue[] = []
  if (!properties || !defined) return { left }
  const attributes: Record<string, unknown> = {}
  const taken = new Map<string, boolean>()
  let count = 0
  for (const name in properties) {
    const path = `properties.${name}`
    const match = fieldNamed(defined, name)
    if (!match) {
      if (properties[name] !== undefined && properties[name] !== null) left.push({ path, message: lacksAttribute(activity) })
      continue
    }
    if (taken.has(match.field.id) && (taken.get(match.field.id) || !match.exact)) continue
    const converted = valueFor(match.field.id, properties[name], phoneCountry)
    if (!converted.ok) {
      left.push({ path, message: `${converted.problem} (the attribute ${match.field.name}); not sent` })
      continue
    }
    if (!taken.has(match.field.id) && ++count > MAX_ATTRIBUTES) break
    taken.set(match.field.id, match.exact)
    attributes[match.field.id] = converted.value
  }
  return { ...(count && { attributes }), left }
}
