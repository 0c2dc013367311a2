// Ortto (Autopilot's current product, api.ap3api.com) as a destination: people merged by
// email 100 a call, journeys entered through custom activities 100 a call, Engage
// audiences as tags, deletes as find → archive → delete, 10 requests/s (30 on Business).
import type { Vars } from '../../settings'
import { common, perAccount, type Destination } from '../destination'
import { readAccount, toAccount, type StoredAccount } from './account'
import { checkOrtto } from './check'
import { BULK_LIMIT, OrttoClient } from './client'
import { noAccount, unknownAccount, type OrttoAccount } from './fields'
import { orttoPeople, toOrtto, type OrttoMapping, type OrttoPerson } from './mapping'
import { sendToOrtto } from './send'
import { orttoSettings } from './settings'

export function ortto(env: Vars, deployEnv: string): Destination<OrttoPerson, OrttoAccount> {
  const settings = orttoSettings(env, deployEnv)
  const { apiKey = '', baseUrl, timeoutMs } = settings
  const endpoint = { baseUrl, apiKey, timeoutMs }
  const mappingFor = perAccount((account: OrttoAccount): OrttoMapping => ({ activities: settings.activities, account }))
  // Kept as read, so the account can be rebuilt from D1 in every isolate.
  const stored = new WeakMap<OrttoAccount, StoredAccount>()
  return {
    id: 'ortto',
    label: 'Ortto',
    journeyNoun: 'activity',
    ...common(settings),
    bulkLimit: BULK_LIMIT,
    settings: { ORTTO_API_KEY: Boolean(apiKey), ORTTO_ACTIVITIES: settings.activities.size },
    account: {
      key: 'ortto:schema',
      refreshMs: settings.refreshMs,
      read: async (options) => {
        const read = await readAccount(endpoint, options)
        const account = toAccount(read)
        stored.set(account, read)
        return account
      },
      store: (account) => JSON.stringify(stored.get(account) ?? { fields: [], activities: [] }),
      restore: (text) => {
        const read = JSON.parse(text) as StoredAccount
        const account = toAccount(read)
        stored.set(account, read)
        return account
      },
      none: noAccount,
      unknown: unknownAccount,
    },
    map: (event, account, knownEmail) => toOrtto(event, mappingFor(account), knownEmail),
    people: orttoPeople,
    send: (jobs, options) => sendToOrtto(jobs, new OrttoClient(endpoint, options)),
    check: (options) => checkOrtto(settings, options, deployEnv),
  }
}
