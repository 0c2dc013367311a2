// The Segment side of a person: where an event carries its email, and what its traits
// mean whatever their spelling (firstName, first_name, "First Name", FIRSTNAME). Neutral:
// each destination maps these names to its own fields.
import * as v from 'valibot'
import { Memo } from '../cache'
import { Email, type IdentifyEvent, type Issue, type SegmentEvent, type TrackEvent } from './schema'
import { present, UNSAFE_NAMES } from '../values'

/** Person traits every destination may know, by their usual camelCase spelling. */
export type Reserved =
  | 'email'
  | 'name'
  | 'firstName'
  | 'lastName'
  | 'salutation'
  | 'company'
  | 'numberOfEmployees'
  | 'title'
  | 'industry'
  | 'phone'
  | 'mobilePhone'
  | 'fax'
  | 'website'
  | 'mailingStreet'
  | 'mailingCity'
  | 'mailingState'
  | 'mailingPostalCode'
  | 'mailingCountry'
  | 'leadSource'
  | 'status'
  | 'linkedIn'
  | 'twitter'
  | 'ownerName'
  | 'address'
  | 'unsubscribed'
  | 'newEmail'
  | 'birthday'
  | 'language'

/** A table looked up by trait name: without a prototype, so a trait called "constructor" (in any spelling) is no key. */
export const byName = <T>(entries: Record<string, T>): Readonly<Record<string, T | undefined>> => Object.assign(Object.create(null), entries)

const VOCABULARY = byName<Reserved>({
  email: 'email',
  name: 'name',
  company: 'company',
  industry: 'industry',
  address: 'address',
  unsubscribed: 'unsubscribed',
  newemail: 'newEmail',
  firstname: 'firstName',
  givenname: 'firstName',
  lastname: 'lastName',
  familyname: 'lastName',
  surname: 'lastName',
  phone: 'phone',
  mobile: 'mobilePhone',
  mobilephone: 'mobilePhone',
  title: 'title',
  website: 'website',
  leadsource: 'leadSource',
  status: 'status',
  salutation: 'salutation',
  twitter: 'twitter',
  linkedin: 'linkedIn',
  fax: 'fax',
  numberofemployees: 'numberOfEmployees',
  ownername: 'ownerName',
  mailingstreet: 'mailingStreet',
  mailingcity: 'mailingCity',
  mailingstate: 'mailingState',
  mailingpostalcode: 'mailingPostalCode',
  mailingcountry: 'mailingCountry',
  birthday: 'birthday',
  language: 'language',
})

const normals = new Memo<string, string>()
/** A trait name compared without case, spaces, underscores or dashes (once per name per isolate). */
export const normal = (name: string): string => normals.of(name, (key) => key.toLowerCase().replace(/[\s_-]+/g, ''))

/** What a trait name means, if it is one of the person vocabulary's. */
export const reservedName = (name: string): Reserved | undefined => VOCABULARY[normal(name)]

export const normalEmail = (email: string) => email.trim().toLowerCase()

/**
 * The first valid email an identify or track carries (trimmed), and issues for invalid ones
 * before it. Where Segment and Engage put it: identify traits, else context.traits; track
 * properties, else context.traits. Cheap enough to find again rather than cache.
 */
export function emailOf(event: IdentifyEvent | TrackEvent): { email?: string; issues: Issue[] } {
  const issues: Issue[] = []
  const own = event.type === 'identify' ? event.traits?.email : event.properties?.email
  const email = valid(own, event.type === 'identify' ? 'traits.email' : 'properties.email', issues) ?? valid(event.context?.traits?.email, 'context.traits.email', issues)
  return email === undefined ? { issues } : { email, issues }
}

/** The email if the value is one; an issue (at `path`) if it is present and is not. */
function valid(value: unknown, path: string, issues: Issue[]): string | undefined {
  if (!present(value)) return undefined
  if (isPlainEmail(value)) return value
  const result = v.safeParse(Email, value)
  if (result.success) return result.output
  issues.push({ path, message: `${result.issues[0].message}; not used` })
  return undefined
}

/** The event's email alone: without the issues, usually without allocating. */
export function eventEmail(event: IdentifyEvent | TrackEvent): string | undefined {
  const own = event.type === 'identify' ? event.traits?.email : event.properties?.email
  return isPlainEmail(own) ? own : emailOf(event).email
}

/**
 * The email of the person a `group` call is about: its traits are the group's (a company's
 * email is not the person's), so only context.traits.email counts.
 */
export function memberEmailOf(event: SegmentEvent): { email?: string; issues: Issue[] } {
  const issues: Issue[] = []
  const context = event.context as { traits?: Record<string, unknown> } | undefined
  const email = valid(context?.traits?.email, 'context.traits.email', issues)
  return email === undefined ? { issues } : { email, issues }
}

// Most emails are printable ASCII with one @ and nothing to trim: what Email accepts as it
// is, so the full check (Unicode classes, trimming, well-formedness) runs only for the rest.
const PLAIN_EMAIL = /^[!-?A-~]+@[!-?A-~]+$/
const isPlainEmail = (value: unknown): value is string => typeof value === 'string' && value.length <= 254 && PLAIN_EMAIL.test(value)

/** The email traits change the person to (`newEmail`, `new_email`, `_NewEmail`...), if valid, normalised. */
export function newEmailIn(traits: Record<string, unknown> | undefined): string | undefined {
  return traits && findNewEmail(traits)
}

function findNewEmail(traits: Record<string, unknown>): string | undefined {
  for (const name in traits) {
    if (reservedName(name) !== 'newEmail') continue
    const result = v.safeParse(Email, traits[name])
    if (result.success) return normalEmail(result.output)
  }
  return undefined
}

/** Engage audiences sent as track events carry membership as properties[audience_key]. */
export function audienceTrait(event: TrackEvent): Record<string, boolean> | undefined {
  const properties = event.properties as Record<string, unknown> | undefined
  const key = properties?.audience_key
  if (typeof key !== 'string' || UNSAFE_NAMES.has(key)) return undefined
  const member = properties?.[key]
  return typeof member === 'boolean' ? { [key]: member } : undefined
}

export type Source = [path: string, traits: Record<string, unknown> | undefined]

/** A trait as found: its value, where (for issues, built only when one is reported) and how it was spelled. */
export interface Found {
  value: unknown
  prefix: string
  name: string
  exact: boolean
}
export const pathOf = (found: { prefix: string; name: string }) => `${found.prefix}.${found.name}`

/** Each reserved name's own spellings: firstName and FirstName. */
const isExact = (name: string, target: Reserved) => name === target || (name.charAt(0) === target.charAt(0).toUpperCase() && name.slice(1) === target.slice(1))

/** Two values that say the same (a trait repeated in traits and context.traits is nothing lost). */
const same = (a: unknown, b: unknown) => a === b || (typeof a === 'object' && typeof b === 'object' && JSON.stringify(a) === JSON.stringify(b))

/**
 * The traits of an event's sources, later sources winning (traits over context.traits):
 * reserved ones by meaning, the rest by name. Within one source the usual spelling
 * (firstName) wins over another (FIRSTNAME), then the first in the event. Traits left out
 * with a different value than the one kept are returned in `shadowed`, for the answer's issues.
 */
export function collectTraits(sources: readonly Source[]): { reserved: Map<Reserved, Found>; custom: Map<string, Found>; shadowed: { lost: Found; kept: Found }[] } {
  const reserved = new Map<Reserved, Found>()
  const custom = new Map<string, Found>()
  const shadowed: { lost: Found; kept: Found }[] = []
  const shadow = (lost: Found, kept: Found) => same(lost.value, kept.value) || shadowed.push({ lost, kept })
  for (const [prefix, traits] of sources) {
    if (!traits) continue
    let seen: Set<Reserved> | undefined
    for (const name in traits) {
      const value = traits[name]
      if (!present(value) || UNSAFE_NAMES.has(name)) continue
      const target = reservedName(name)
      const found = { value, prefix, name, exact: true }
      if (!target) {
        const earlier = custom.get(name)
        if (earlier) shadow(earlier, found)
        custom.set(name, found)
        continue
      }
      found.exact = isExact(name, target)
      const earlier = reserved.get(target)
      if (seen?.has(target) && (earlier!.exact || !found.exact)) {
        shadow(found, earlier!)
        continue
      }
      if (earlier) shadow(earlier, found)
      ;(seen ??= new Set()).add(target)
      reserved.set(target, found)
    }
  }
  return { reserved, custom, shadowed }
}
