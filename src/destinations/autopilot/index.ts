// Autopilot Journeys (REST v1) as a destination: contacts keyed by email, 100 a bulk call,
// one call per journey entry (an API trigger), deletes by email, 5 requests/s per key.
import type { Vars } from '../../settings'
import { common, perAccount, type Destination } from '../destination'
import { checkAutopilot } from './check'
import { AutopilotClient, BULK_LIMIT } from './client'
import { noAccountFields, parseAccountFields, type AccountFields } from './fields'
import { contactPeople, toAction, type Contact, type MappingSettings } from './mapping'
import { sendToAutopilot } from './send'
import { autopilotSettings } from './settings'

export function autopilot(env: Vars, deployEnv: string): Destination<Contact, AccountFields> {
  const settings = autopilotSettings(env, deployEnv)
  const { apiKey = '', baseUrl, timeoutMs } = settings
  const endpoint = { baseUrl, apiKey, timeoutMs }
  const mappingFor = perAccount((accountFields: AccountFields): MappingSettings => ({ triggers: settings.triggers, fieldTypes: settings.fieldTypes, accountFields }))
  return {
    id: 'autopilot',
    label: 'Autopilot',
    journeyNoun: 'journey trigger',
    ...common(settings),
    bulkLimit: BULK_LIMIT,
    settings: { AUTOPILOT_API_KEY: Boolean(apiKey), AUTOPILOT_TRIGGERS: settings.triggers.size },
    account: {
      key: 'autopilot:custom_fields',
      refreshMs: settings.fieldsRefreshMs,
      read: async (options) => parseAccountFields(await new AutopilotClient(endpoint, options).read('/contacts/custom_fields')),
      store: (fields) => JSON.stringify([...fields.byName.values()]),
      restore: (text) => parseAccountFields((JSON.parse(text) as { name: string; type: string }[]).map(({ name, type }) => ({ name, fieldType: type }))),
      none: noAccountFields,
    },
    map: (event, accountFields, knownEmail) => toAction(event, mappingFor(accountFields), knownEmail),
    people: contactPeople,
    send: (jobs, options) => sendToAutopilot(jobs, new AutopilotClient(endpoint, options)),
    check: (options) => checkAutopilot(settings, apiKey ? new AutopilotClient(endpoint, options) : undefined, deployEnv),
  }
}
