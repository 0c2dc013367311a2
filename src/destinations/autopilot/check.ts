// Autopilot's part of the setup check (GET /health?check=autopilot, `npm run doctor`): is
// the API key accepted, does every trigger id in AUTOPILOT_TRIGGERS exist, which custom
// fields does the account have (and does AUTOPILOT_FIELD_TYPES fight them) — each said in
// words a Segment admin can act on.
import { secretPut } from '../../settings'
import * as v from 'valibot'
import type { Check } from '../destination'
import { CallError } from '../transport'
import type { AutopilotClient } from './client'
import { customName, ListIn, parseAccountFields } from './fields'
import type { AutopilotSettings } from './settings'

export interface Trigger {
  triggerId: string
  journey?: string
}

export async function checkAutopilot(settings: AutopilotSettings, client: AutopilotClient | undefined, deployEnv: string): Promise<{ checks: Check[]; details: Record<string, unknown> }> {
  const checks: Check[] = []
  const details: { triggers?: Trigger[]; customFields?: { name: string; type: string }[] } = {}
  const add = (check: string, ok: boolean, message: string) => checks.push({ check, ok, message })
  if (!client) {
    add('api key', false, `AUTOPILOT_API_KEY is not set: ${secretPut(deployEnv, 'AUTOPILOT_API_KEY')}`)
    return { checks, details }
  }
  const read = async (path: string): Promise<unknown> => {
    try {
      return await client.read(path)
    } catch (error) {
      if (error instanceof CallError && error.kind === 'key_rejected') throw error
      return error instanceof Error ? error : new Error('unknown error')
    }
  }
  try {
    const account = await read('/account')
    if (account instanceof Error) add('api key', false, `Could not check the API key: ${account.message}`)
    else add('api key', true, 'Autopilot accepts AUTOPILOT_API_KEY')
  } catch {
    add('api key', false, `Autopilot refused AUTOPILOT_API_KEY: copy it again from Autopilot (Settings → Autopilot API) and run ${secretPut(deployEnv, 'AUTOPILOT_API_KEY')}`)
    return { checks, details }
  }

  const listed = await read('/triggers')
  if (listed instanceof Error) add('triggers', false, `Could not list the account's journey triggers: ${listed.message}`)
  else {
    const triggers = triggersIn(listed)
    details.triggers = triggers
    const known = new Map(triggers.map((t) => [t.triggerId, t.journey]))
    const named = (id: string) => (known.get(id) ? ` (${known.get(id)})` : '')
    if (!settings.triggers.size) add('triggers', false, 'AUTOPILOT_TRIGGERS maps no Segment event to a journey: every track is skipped. Add {"Event Name": "trigger id"} with ids from the list below')
    for (const [event, id] of settings.triggers) {
      if (known.has(id)) add('triggers', true, `"${event}" enters the journey of trigger ${id}${named(id)}`)
      else
        add(
          'triggers',
          false,
          `"${event}" is mapped to trigger ${id}, which your Autopilot account does not have; these tracks would be retried for hours and never enter a journey. Its API triggers: ${triggers.map((t) => `${t.triggerId}${named(t.triggerId)}`).join(', ') || 'none'}`,
        )
    }
  }

  const fieldsBody = await read('/contacts/custom_fields')
  if (fieldsBody instanceof Error) add('custom fields', false, `Could not read the account's custom fields: ${fieldsBody.message}`)
  else {
    const fields = parseAccountFields(fieldsBody)
    details.customFields = [...fields.byName.values()].map(({ name, type }) => ({ name, type }))
    add('custom fields', true, `Your account has ${fields.byName.size} custom ${fields.byName.size === 1 ? 'field' : 'fields'}; traits of those names are sent in their types`)
    for (const [trait, type] of settings.fieldTypes) {
      const name = customName(trait.split('.'))
      const existing = name && (fields.byName.get(name) ?? fields.byLowerName.get(name.toLowerCase()))
      if (existing && existing.type !== type) {
        add(
          'custom fields',
          false,
          `AUTOPILOT_FIELD_TYPES pins "${trait}" to ${type}, but your account's field "${existing.name}" is ${existing.type}: Autopilot refuses a second type for one field. Change the pin to ${existing.type}, or remove it (the account's type is used)`,
        )
      }
    }
  }
  return { checks, details }
}

/** GET /triggers: a list (the body, or the first list among its values) of items with an id and a journey name. */
const TriggerItem = v.object({
  id: v.pipe(v.union([v.string(), v.number()]), v.transform(String)),
  journey: v.optional(v.string()),
})
const TriggerItemIn = v.pipe(
  v.looseObject({
    trigger_id: v.optional(v.unknown()),
    triggerId: v.optional(v.unknown()),
    id: v.optional(v.unknown()),
    journey: v.optional(v.unknown()),
    name: v.optional(v.unknown()),
    title: v.optional(v.unknown()),
  }),
  v.transform((item) => ({ id: item.trigger_id ?? item.triggerId ?? item.id, journey: [item.journey, item.name, item.title].find((text) => typeof text === 'string') })),
  TriggerItem,
)

function triggersIn(body: unknown): Trigger[] {
  return v.parse(ListIn, body).flatMap((raw) => {
    const item = v.safeParse(TriggerItemIn, raw)
    return item.success ? [{ triggerId: item.output.id, ...(item.output.journey !== undefined && { journey: item.output.journey }) }] : []
  })
}
