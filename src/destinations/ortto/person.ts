// An Ortto person from Segment traits: built-in fields by meaning, other traits into the
// account's custom field of that name (or one to create), in its type; its key for "newest
// wins"; several events for one person merged into one.
import type { People } from '../destination'
import type { Issue } from '../../segment/schema'
import { collectTraits, newEmailIn, normal, normalEmail, pathOf, type Found, type Source } from '../../segment/traits'
import { convert, isObject } from '../../values'
import { dateParts, fieldNamed, typeFor, valueFor, type FieldType, type OrttoAccount } from './fields'

/** The longest name Ortto gives a field. */
const MAX_FIELD_NAME = 100

/** An Ortto person: found by external id (userId) or email; `fields` by Ortto field id (email itself apart). */
export interface OrttoPerson {
  /** Absent when the person is found by its external id and no email is known yet. */
  email?: string
  fields: Record<string, unknown>
  /** A new email (traits.newEmail): the person is found by its external id and given this email. */
  renameTo?: string
  tags?: string[]
  unsetTags?: string[]
  /** Traits with no field in the account yet, to be created (ORTTO_CREATE=fields), then sent. */
  wanted?: Wanted[]
  /** context.ip: Ortto geolocates the person (ORTTO_SEND_IP). */
  ip?: string
}

/** A trait waiting for its field to be created. */
export interface Wanted {
  name: string
  value: unknown
  path: string
  type: FieldType
}

export interface PersonOptions {
  /** ORTTO_CREATE has fields: a trait with no field gets one. */
  createFields: boolean
  phoneCountry?: string
}

/** Ortto's external id is a str field: 255 characters at most. */
const MAX_ID = 255
const BUILT_IN = { firstName: 'str::first', lastName: 'str::last', phone: 'phn::phone', language: 'str::language' } as const
const ADDRESS: Record<string, string> = {
  city: 'geo::city',
  country: 'geo::country',
  state: 'geo::region',
  region: 'geo::region',
  postalcode: 'str::postal',
  zip: 'str::postal',
  zipcode: 'str::postal',
}
export const idFits = (userId: string | null | undefined): userId is string => Boolean(userId) && userId!.length <= MAX_ID

/**
 * The person for an email from trait sources (later ones win: traits over context.traits).
 * Built-in fields by meaning; other traits into the account's custom field of that name
 * (exact name first, then the first in the event of the names that match without case or
 * spacing), in its type. Every trait left out is named in `issues`. `audience`: the trait
 * that is an Engage audience (a tag, not a field).
 */
export function toPerson(
  email: string | undefined,
  userId: string | null | undefined,
  sources: readonly Source[],
  account: OrttoAccount,
  options: PersonOptions,
  audience?: string,
): { person: OrttoPerson; issues: Issue[]; unplaced?: boolean } {
  const { fields } = account
  const person: OrttoPerson = { ...(email && { email: normalEmail(email) }), fields: {} }
  const issues: Issue[] = []
  const drop = (path: string, problem: string) => issues.push({ path, message: `${problem}; not sent` })
  const set = (id: string, value: unknown, where: () => string) => {
    const converted = valueFor(id, value, options.phoneCountry)
    if (converted.ok) person.fields[id] = converted.value
    else drop(where(), converted.problem)
  }
  if (idFits(userId)) person.fields['str::ei'] = userId
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
        else if (renamed !== person.email) person.renameTo = renamed
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
        else
          for (const name in found.value) {
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
    if (!match && options.createFields) {
      const type = typeFor(found.value)
      // Ortto takes a name of 1-100 characters: another would only be refused (and refusals count toward its ban).
      const length = [...traitName.trim()].length
      if (!length || length > MAX_FIELD_NAME) drop(pathOf(found), `is no name a field can take (1-${MAX_FIELD_NAME} characters), so no field is created for it`)
      else if (type) (person.wanted ??= []).push({ name: traitName, value: found.value, path: pathOf(found), type })
      else drop(pathOf(found), 'fits no Ortto field type (text, number, true/false, a date-time, a list of texts), so no field is created for it')
      continue
    }
    if (!match) {
      drop(pathOf(found), 'no custom field of this name in the Ortto account (create it in Ortto, or set ORTTO_CREATE=fields)')
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

export const personBare = (person: OrttoPerson) => !person.tags && !person.unsetTags && !person.wanted?.length && Object.keys(person.fields).every((id) => id === 'str::ei')

/** Several events for one email become one person; later values win per field; tags add and remove in order. */
export function mergePeople(earlier: OrttoPerson, later: OrttoPerson): OrttoPerson {
  const tags = new Set(earlier.tags)
  const unset = new Set(earlier.unsetTags)
  for (const tag of later.tags ?? []) {
    tags.add(tag)
    unset.delete(tag)
  }
  for (const tag of later.unsetTags ?? []) {
    unset.add(tag)
    tags.delete(tag)
  }
  const renameTo = later.renameTo ?? earlier.renameTo
  const email = later.email ?? earlier.email
  const ip = later.ip ?? earlier.ip
  return {
    ...(email && { email }),
    fields: { ...earlier.fields, ...later.fields },
    ...(renameTo && { renameTo }),
    ...(tags.size && { tags: [...tags] }),
    ...(unset.size && { unsetTags: [...unset] }),
    ...(ip && { ip }),
  }
}

/** How "newest wins" sees an Ortto person: its key (`user:<userId>` when Ortto finds people by it, else the email), field ids, and each tag as its own field. */
export const orttoPeople = (byUserId: boolean): People<OrttoPerson> => ({
  key: (person) => {
    const ei = person.fields['str::ei']
    return byUserId && typeof ei === 'string' ? `user:${ei}` : (person.email ?? '')
  },
  email: (person) => person.email,
  names: (person) => [...Object.keys(person.fields), ...(person.tags ?? []).map(tagName), ...(person.unsetTags ?? []).map(tagName)],
  without(person, newer) {
    let dropped = 0
    const keep = <T>(list: T[] | undefined, name: (item: T) => string) => list?.filter((item) => !newer(name(item)) || (dropped++, false))
    const fields = Object.fromEntries(Object.entries(person.fields).filter(([id]) => id === 'str::ei' || !newer(id) || (dropped++, false)))
    const tags = keep(person.tags, tagName)
    const unsetTags = keep(person.unsetTags, tagName)
    const { email, renameTo, wanted, ip } = person
    return {
      person: { ...(email && { email }), fields, ...(renameTo && { renameTo }), ...(tags?.length && { tags }), ...(unsetTags?.length && { unsetTags }), ...(wanted && { wanted }), ...(ip && { ip }) },
      dropped,
    }
  },
  bare: personBare,
})

const tagName = (tag: string) => `tag:${tag}`
