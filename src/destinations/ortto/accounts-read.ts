// The custom account fields (Segment `group`): read with the rest of the account, and made
// when missing through ./create.ts like person fields. Ortto's answers are read in every
// shape seen (a flat list, or each field under `field`).
import * as v from 'valibot'
import { CallError } from '../transport'
import { CreatedUnread, type OrttoClient } from './client'
import type { OrttoField } from './fields'

/** As kept in D1 with the account: the fields, or Ortto's reason for refusing to list them. */
export interface StoredAccountFields {
  fields: OrttoField[]
  refused?: string
}

const Listed = v.looseObject({
  fields: v.array(
    v.looseObject({
      id: v.optional(v.string()),
      field_id: v.optional(v.string()),
      name: v.optional(v.string()),
      field: v.optional(v.looseObject({ id: v.optional(v.string()), field_id: v.optional(v.string()), name: v.optional(v.string()) })),
    }),
  ),
})
const Created = v.looseObject({ field_id: v.optional(v.string()), id: v.optional(v.string()), field: v.optional(v.looseObject({ id: v.optional(v.string()) })) })

/** The custom account fields; a refusal (Accounts not switched on) is kept as its reason, anything else thrown. */
export async function readAccountFields(client: OrttoClient): Promise<StoredAccountFields> {
  let answer: unknown
  try {
    answer = await client.accountCall('accounts', 'POST', '/accounts/custom-field/get', {})
  } catch (error) {
    // The person reads before it went through: a refusal here (400, 403, or a 404 for the path) is the instance's Accounts.
    if (error instanceof CallError && (!error.retryable || error.status === 404)) return { fields: [], refused: error.message }
    throw error
  }
  const parsed = v.safeParse(Listed, answer)
  if (!parsed.success) throw new CallError('unavailable', 'Ortto answered accounts/custom-field/get with a body this Worker does not understand')
  return {
    fields: parsed.output.fields.flatMap((item) => {
      const id = item.id ?? item.field_id ?? item.field?.id ?? item.field?.field_id
      const name = item.name ?? item.field?.name
      return id && name ? [{ id, name }] : []
    }),
  }
}

/** A new custom account field (./create.ts makes it once a day at most): its id. A 2xx without one was made all the same: read back, never made again. */
export async function accountFieldCreate(client: OrttoClient, name: string, type: string): Promise<string> {
  const answer = v.safeParse(Created, await client.accountCall('create', 'POST', '/accounts/custom-field/create', { type, name }))
  const id = answer.success ? (answer.output.field_id ?? answer.output.field?.id ?? answer.output.id) : undefined
  if (!id) throw new CreatedUnread(`Ortto created the account field "${name}" but its answer did not say its id`)
  return id
}
