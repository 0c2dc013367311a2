// Segment `group` -> an Ortto account, and the person linked to it. Pure: a function of the
// event, the settings and the account's custom account fields (read elsewhere). Segment's
// reserved group traits go to Ortto's built-in account fields; every other trait to the
// custom account field of its name (or one to create, within Ortto's 25). The account is
// found by the custom field "Segment Group ID" (the groupId), or by ORTTO_ACCOUNT_MERGE_BY's
// built-in field. The person is found as an identify finds them; ./accounts.ts sends both.
import { groupKey } from '../../pipeline/identity'
import type { GroupEvent, Issue } from '../../segment/schema'
import { memberEmailOf, normal, normalEmail } from '../../segment/traits'
import { isObject } from '../../values'
import type { Operation, People } from '../destination'
import { fieldIndex, fieldNamed, typeFor, valueFor, type AccountFields, type OrttoAccount } from './fields'
import { idFits, type OrttoPerson, type Wanted } from './person'
import type { AccountKey, Creates } from './settings'

/** The custom account field accounts are found by, unless ORTTO_ACCOUNT_MERGE_BY names a built-in one. */
export const KEY_FIELD = 'Segment Group ID'
/** Ortto's cap on custom account fields, per instance, on every plan. */
export const MAX_ACCOUNT_FIELDS = 25

/** A trait waiting for its custom account field to be created; `key`: it is the account's key field. */
export type AccountWanted = Wanted & { key?: true }

/** What a `group` sets on the account. */
export interface AccountPart {
  groupId: string
  /** The key field's id; undefined until the field "Segment Group ID" is created (its `wanted` entry). */
  key?: string
  /** By Ortto account field id (the key's value among them). */
  fields: Record<string, unknown>
  wanted?: AccountWanted[]
}

/** A `group` travels as an upsert of its person (found by userId or email) carrying the account. */
export type GroupPerson = OrttoPerson & { account: AccountPart }
export const isGroup = (person: OrttoPerson): person is GroupPerson => 'account' in person

export interface GroupMapping {
  account: OrttoAccount
  create: Creates
  byUserId: boolean
  /** ORTTO_ACCOUNTS. */
  accounts: boolean
  accountMergeBy: AccountKey
  /** ORTTO_FIELDS_REFRESH_SECONDS=0: the account is never read, so no custom account field is known. */
  readingOff: boolean
}

const NONE_READ: AccountFields = { fields: fieldIndex([]), count: 0 }

const BUILT_IN: Record<string, string> = { name: 'str:o:name', website: 'str:o:website', employees: 'int:o:employees', industry: 'str:o:industry' }
const ADDRESS: Record<string, string> = {
  street: 'str:o:address',
  city: 'geo:o:city',
  state: 'geo:o:region',
  region: 'geo:o:region',
  country: 'geo:o:country',
  postalcode: 'str:o:postal',
  zip: 'str:o:postal',
  zipcode: 'str:o:postal',
}

export function toGroup(event: GroupEvent, mapping: GroupMapping, knownEmail?: string): Operation<OrttoPerson> {
  if (!mapping.accounts) return { kind: 'skip', message: 'group events are acknowledged and not sent to Ortto (ORTTO_ACCOUNTS=false)' }
  const found = memberEmailOf(event)
  const email = found.email ?? knownEmail
  const { userId } = event
  if (!userId && !email) return { kind: 'skip', message: 'a group with only an anonymousId is not sent: Ortto links a person found by userId or email (context.traits.email)' }
  if (!email && !(mapping.byUserId && idFits(userId))) {
    return { kind: 'reject', message: 'This group has a userId but no email (context.traits.email), and Ortto finds people by email (ORTTO_MERGE_BY)', ...withIssues(found.issues) }
  }
  const groupId = typeof event.groupId === 'string' ? event.groupId : ''
  if (!groupId) return { kind: 'reject', message: 'groupId is required: it is the Ortto account’s key', issues: [{ path: 'groupId', message: 'is required' }] }
  const read = mapping.readingOff ? NONE_READ : mapping.account.accounts
  // Not read yet (or not here: the queue's producer maps without the account): the consumer reads it.
  if (!mapping.account.known || !read) return { kind: 'retry', message: "the Ortto account's custom account fields could not be read; will retry" }
  if (read.refused) {
    return {
      kind: 'reject',
      message: `Ortto refused its Accounts API (${read.refused}): switch Accounts on in Ortto (Settings → General → Accounts), or set ORTTO_ACCOUNTS=false to skip group calls`,
    }
  }
  const issues: Issue[] = [...found.issues]
  const account: AccountPart = { groupId, fields: {} }
  const drop = (path: string, problem: string) => issues.push({ path, message: `${problem}; not sent` })
  const set = (id: string, value: unknown, path: string) => {
    const converted = valueFor(id, value)
    if (converted.ok) account.fields[id] = converted.value
    else drop(path, converted.problem)
  }
  // The key: the custom field (made when missing, as ORTTO_CREATE allows), or a built-in one.
  let room = MAX_ACCOUNT_FIELDS - read.count
  if (mapping.accountMergeBy === 'segment-group-id') {
    const keyField = fieldNamed(read.fields, KEY_FIELD)?.field
    if (keyField && !keyField.id.startsWith('str:'))
      return { kind: 'reject', message: `the Ortto account field "${KEY_FIELD}" is not a text field (${keyField.id}), so accounts cannot be found by it` }
    if (keyField) {
      account.key = keyField.id
      account.fields[keyField.id] = groupId
    } else if (mapping.create.fields && room > 0) {
      account.wanted = [{ name: KEY_FIELD, value: groupId, path: 'groupId', type: { type: 'text', prefix: 'str' }, key: true }]
      room--
    } else {
      const why = mapping.create.fields ? `Ortto's ${MAX_ACCOUNT_FIELDS} custom account fields are used up, so it cannot be created` : 'ORTTO_CREATE lacks fields, so it is not created'
      return {
        kind: 'reject',
        message: `the Ortto account has no custom account field "${KEY_FIELD}" (the account's key) and ${why}: create it in Ortto (a text account field), set ORTTO_CREATE=fields, or set ORTTO_ACCOUNT_MERGE_BY to str:o:name or str:o:website`,
        issues: [{ path: 'groupId', message: `no account field "${KEY_FIELD}" to find the account by` }],
      }
    }
  } else account.key = mapping.accountMergeBy

  const traits = event.traits ?? {}
  for (const name in traits) {
    const value = traits[name]
    const path = `traits.${name}`
    if (value === null || value === undefined) continue
    const builtIn = BUILT_IN[normal(name)]
    if (builtIn) set(builtIn, value, path)
    else if (normal(name) === 'address') {
      if (!isObject(value)) drop(path, 'must be an object (street, city, state, country, postalCode)')
      else
        for (const part in value) {
          const id = ADDRESS[normal(part)]
          if (id) set(id, value[part], `${path}.${part}`)
          else drop(`${path}.${part}`, 'is not an address field Ortto accounts have')
        }
    } else {
      const match = fieldNamed(read.fields, name)
      if (match) set(match.field.id, value, path)
      else if (!mapping.create.fields) drop(path, 'no custom account field of this name in the Ortto account (create it in Ortto, or set ORTTO_CREATE=fields)')
      else {
        const type = typeFor(value)
        if (!type) drop(path, 'fits no Ortto field type (text, number, true/false, a date-time, a list of texts), so no account field is created for it')
        else if (room <= 0) drop(path, `Ortto holds at most ${MAX_ACCOUNT_FIELDS} custom account fields, and they are used up`)
        else if (!account.wanted?.some((w) => normal(w.name) === normal(name))) {
          ;(account.wanted ??= []).push({ name, value, path, type })
          room--
        }
      }
    }
  }
  // The key by a built-in field: the trait when the group carries it, else the groupId itself.
  if (account.key && account.fields[account.key] === undefined) account.fields[account.key] = groupId.slice(0, 255)
  const person: GroupPerson = { ...(email && { email: normalEmail(email) }), fields: {}, account }
  if (idFits(userId)) person.fields['str::ei'] = userId
  return { kind: 'upsert', person, message: 'account merged and person linked', ...withIssues(issues) }
}

const withIssues = (issues: Issue[]) => (issues.length ? { issues } : {})

/**
 * "Newest wins" for groups: what a group sets is the account's, keyed by its groupId (so an
 * older group retried late does not overwrite what a newer one set, whoever sent it); its
 * person carries only keys, and the link is never dropped as "already set".
 */
export function withGroups(people: People<OrttoPerson>): People<OrttoPerson> {
  return {
    key: (person) => (isGroup(person) ? groupKey(person.account.groupId) : people.key(person)),
    email: (person) => (isGroup(person) ? undefined : people.email(person)),
    names: (person) => (isGroup(person) ? Object.keys(person.account.fields).filter((id) => id !== person.account.key) : people.names(person)),
    without(person, newer) {
      if (!isGroup(person)) return people.without(person, newer)
      const { account } = person
      let dropped = 0
      const fields = Object.fromEntries(Object.entries(account.fields).filter(([id]) => id === account.key || !newer(id) || (dropped++, false)))
      return { person: { ...person, account: { ...account, fields } }, dropped }
    },
    bare: (person) => !isGroup(person) && people.bare(person),
  }
}
