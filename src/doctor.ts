// The setup check behind GET /health?check=autopilot and `npm run doctor`: is the API key
// accepted, does every trigger id in AUTOPILOT_TRIGGERS exist, which custom fields does the
// account have (and does AUTOPILOT_FIELD_TYPES fight them), is D1 migrated — each said in
// words a Segment admin can act on.
import { AutopilotError, type AutopilotClient } from './autopilot'
import { migrateCommand, secretPut, type Config } from './config'
import { customName, parseAccountFields } from './fields'
import type { Upkeep } from './upkeep'

export interface Check {
  check: string
  ok: boolean
  message: string
}

export interface SetupReport {
  status: 'ok' | 'problems'
  checks: Check[]
  triggers?: { triggerId: string; journey?: string }[]
  customFields?: { name: string; type: string }[]
}

export async function checkSetup(config: Config, client: AutopilotClient | undefined, store: Upkeep | undefined): Promise<SetupReport> {
  const checks: Check[] = []
  const add = (check: string, ok: boolean, message: string) => checks.push({ check, ok, message })
  for (const problem of config.problems) add('settings', false, problem)
  if (!config.allowUnsigned && !config.sharedSecret && !config.webhookToken) {
    add('settings', false, `Neither SEGMENT_SHARED_SECRET nor SEGMENT_WEBHOOK_TOKEN is set: every event Segment sends is refused (503) until one is (${secretPut(config, 'SEGMENT_WEBHOOK_TOKEN')})`)
  }
  if (config.allowUnsigned) add('settings', false, 'ALLOW_UNSIGNED is "true": anyone who finds the URL can write to your Autopilot account (for npm start only)')

  if (!store) add('database', false, 'DB (the D1 database) is not bound: see the [[d1_databases]] block in wrangler.toml')
  else {
    try {
      const missing = await store.missingTables()
      add('database', !missing.length, missing.length ? `The D1 database is not migrated (missing: ${missing.join(', ')}): run ${migrateCommand(config)}` : 'The D1 database is migrated')
    } catch (error) {
      add('database', false, `The D1 database did not answer: ${error instanceof Error ? error.message : 'unknown error'}`)
    }
  }

  if (!client) {
    add('api key', false, `AUTOPILOT_API_KEY is not set: ${secretPut(config, 'AUTOPILOT_API_KEY')}`)
    return report(checks)
  }
  const read = async (path: string): Promise<unknown> => {
    try {
      return await client.read(path)
    } catch (error) {
      if (error instanceof AutopilotError && error.kind === 'key_rejected') throw error
      return error instanceof Error ? error : new Error('unknown error')
    }
  }
  try {
    const account = await read('/account')
    if (account instanceof Error) add('api key', false, `Could not check the API key: ${account.message}`)
    else add('api key', true, 'Autopilot accepts AUTOPILOT_API_KEY')
  } catch {
    add('api key', false, `Autopilot refused AUTOPILOT_API_KEY: copy it again from Autopilot (Settings → Autopilot API) and run ${secretPut(config, 'AUTOPILOT_API_KEY')}`)
    return report(checks)
  }

  const result: Pick<SetupReport, 'triggers' | 'customFields'> = {}
  const listed = await read('/triggers')
  if (listed instanceof Error) add('triggers', false, `Could not list the account's journey triggers: ${listed.message}`)
  else {
    const triggers = triggersIn(listed)
    result.triggers = triggers
    const known = new Set(triggers.map((t) => t.triggerId))
    if (!config.triggers.size) add('triggers', false, 'AUTOPILOT_TRIGGERS maps no Segment event to a journey: every track is skipped. Add {"Event Name": "trigger id"} with ids from the list below')
    for (const [event, id] of config.triggers) {
      if (known.has(id)) add('triggers', true, `"${event}" enters the journey of trigger ${id}${journeyOf(triggers, id)}`)
      else add('triggers', false, `"${event}" is mapped to trigger ${id}, which your Autopilot account does not have; these tracks would be retried for hours and never enter a journey. Its API triggers: ${triggers.map((t) => `${t.triggerId}${t.journey ? ` (${t.journey})` : ''}`).join(', ') || 'none'}`)
    }
  }

  const fieldsBody = await read('/contacts/custom_fields')
  if (fieldsBody instanceof Error) add('custom fields', false, `Could not read the account's custom fields: ${fieldsBody.message}`)
  else {
    const fields = parseAccountFields(fieldsBody)
    result.customFields = [...fields.byName.values()].map(({ name, type }) => ({ name, type }))
    add('custom fields', true, `Your account has ${fields.byName.size} custom fields; traits of those names are sent in their types`)
    for (const [trait, type] of config.fieldTypes) {
      const name = customName(trait.split('.'))
      const existing = name && (fields.byName.get(name) ?? fields.byLowerName.get(name.toLowerCase()))
      if (existing && existing.type !== type) {
        add('custom fields', false, `AUTOPILOT_FIELD_TYPES pins "${trait}" to ${type}, but your account's field "${existing.name}" is ${existing.type}: Autopilot refuses a second type for one field. Change the pin to ${existing.type}, or remove it (the account's type is used)`)
      }
    }
  }
  return { ...report(checks), ...result }
}

const report = (checks: Check[]): SetupReport => ({ status: checks.every((c) => c.ok) ? 'ok' : 'problems', checks })

function triggersIn(body: unknown): { triggerId: string; journey?: string }[] {
  const list = Array.isArray(body) ? body : body && typeof body === 'object' ? (Object.values(body).find(Array.isArray) ?? []) : []
  return (list as Record<string, unknown>[]).flatMap((item) => {
    const id = item?.trigger_id ?? item?.triggerId ?? item?.id
    if (typeof id !== 'string' && typeof id !== 'number') return []
    const journey = item.journey ?? item.name ?? item.title
    return [{ triggerId: String(id), ...(typeof journey === 'string' && { journey }) }]
  })
}

const journeyOf = (triggers: { triggerId: string; journey?: string }[], id: string) => {
  const journey = triggers.find((t) => t.triggerId === id)?.journey
  return journey ? ` (${journey})` : ''
}
