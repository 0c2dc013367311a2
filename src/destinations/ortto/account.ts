// What the Worker reads from the Ortto account: its custom person fields
// (person/custom-field/get) and its activities with their attributes
// (instance-schema/get), so traits and properties go into what the account defines.
import * as v from 'valibot'
import type { CallOptions } from '../transport'
import { readAccountFields, type StoredAccountFields } from './accounts-read'
import { OrttoClient } from './client'
import { fieldIndex, type OrttoAccount, type OrttoField } from './fields'

const CustomFields = v.looseObject({
  fields: v.array(v.looseObject({ field: v.looseObject({ id: v.string(), name: v.string() }) })),
})

/** Any object with an id and a name, wherever it sits in the schema. */
const Named = v.looseObject({ id: v.string(), name: v.string() })
const ACTIVITY_ID = /^act:/
const FIELD_ID = /^[a-z]{3}:[a-z]*:/

/** Activities (act:…) and, for each, the attribute definitions nested in it. Tolerant of how the schema nests them. */
export function activitiesIn(schema: unknown, names?: Map<string, string>): Map<string, OrttoField[]> {
  const activities = new Map<string, OrttoField[]>()
  const walk = (node: unknown, activity: OrttoField[] | undefined, depth: number) => {
    if (depth > 12 || !node || typeof node !== 'object') return
    if (Array.isArray(node)) {
      for (const item of node) walk(item, activity, depth + 1)
      return
    }
    const named = v.safeParse(Named, node)
    let inside = activity
    if (named.success && ACTIVITY_ID.test(named.output.id)) {
      inside = activities.get(named.output.id) ?? []
      activities.set(named.output.id, inside)
      names?.set(named.output.id, named.output.name)
    } else if (named.success && activity && FIELD_ID.test(named.output.id)) {
      activity.push({ id: named.output.id, name: named.output.name })
    }
    for (const value of Object.values(node)) walk(value, inside, depth + 1)
  }
  walk(schema, undefined, 0)
  return activities
}

export interface StoredAccount {
  fields: OrttoField[]
  /** Activity id, its attributes, and its name (absent in copies kept before names were read). */
  activities: [string, OrttoField[], string?][]
  /** The custom account fields (read when ORTTO_ACCOUNTS is on). */
  accounts?: StoredAccountFields
}

export function toAccount(stored: StoredAccount): OrttoAccount {
  return {
    known: true,
    fields: fieldIndex(stored.fields),
    activities: new Map(stored.activities.map(([id, attributes]) => [id, fieldIndex(attributes)])),
    // Only the account's own activities go by name (Ortto's act:: ones, such as "Tag added", are its own doing).
    activityNames: fieldIndex(stored.activities.filter(([id, , name]) => name && id.startsWith('act:cm:')).map(([id, , name]) => ({ id, name: name! }))),
    ...(stored.accounts && { accounts: { fields: fieldIndex(stored.accounts.fields), count: stored.accounts.fields.filter((f) => f.id.includes(':oc:')).length, refused: stored.accounts.refused } }),
  }
}

/** Both reads (and the custom account fields, `withAccounts`); the answer as kept in D1. */
export async function readAccount(endpoint: { baseUrl: string; apiKey: string; timeoutMs: number }, options: CallOptions, withAccounts = false): Promise<StoredAccount> {
  const client = new OrttoClient(endpoint, options)
  const fields = v.parse(CustomFields, await client.read('/person/custom-field/get', {})).fields.map(({ field }) => ({ id: field.id, name: field.name }))
  const names = new Map<string, string>()
  const activities = activitiesIn(await client.read('/instance-schema/get', { namespaces: [] }), names)
  const accounts = withAccounts ? await readAccountFields(client) : undefined
  return { fields, activities: [...activities].map(([id, attributes]) => [id, attributes, names.get(id)]), ...(accounts && { accounts }) }
}
