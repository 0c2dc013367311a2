// Ortto (Autopilot's current product, api.ap3api.com) as a destination: people merged by
// userId (external id) or email 100 a call, journeys entered through custom activities 100 a
// call, fields and activities created when missing (ORTTO_CREATE), Engage audiences as tags,
// deletes as find → archive → delete, 10 requests/s (30 on Business).
import type { Vars } from '../../settings'
import type { CallOptions } from '../transport'
import { common, perAccount, type Destination } from '../destination'
import { readAccount, toAccount, type StoredAccount } from './account'
import { linkNotices, withGroups } from './accounts'
import { checkOrtto } from './check'
import { BULK_LIMIT, OrttoClient } from './client'
import { noAccount, unknownAccount, type OrttoAccount } from './fields'
import { toGroup, withGroups as groupPeople, type GroupMapping } from './group'
import { toOrtto, type OrttoMapping } from './mapping'
import { orttoPeople, type OrttoPerson } from './person'
import { sendToOrtto } from './send'
import { orttoSettings } from './settings'

export function ortto(env: Vars, deployEnv: string): Destination<OrttoPerson, OrttoAccount> {
  const settings = orttoSettings(env, deployEnv)
  const { apiKey = '', baseUrl, timeoutMs } = settings
  const endpoint = { baseUrl, apiKey, timeoutMs }
  const byUserId = settings.mergeBy[0] === 'str::ei'
  const { activities, create, phoneCountry, sendIp } = settings
  const mappingFor = perAccount((account: OrttoAccount): OrttoMapping => ({ activities, account, create, byUserId, phoneCountry, sendIp }))
  const { accounts, accountMergeBy } = settings
  const groupMappingFor = perAccount((account: OrttoAccount): GroupMapping => ({ account, create, byUserId, accounts, accountMergeBy, readingOff: !settings.refreshMs }))
  const read = (options: CallOptions) => readAccount(endpoint, options, accounts)
  /** The account the last events were mapped with: what send creates is added to it. */
  let current: OrttoAccount | undefined
  // Kept as read, so the account can be rebuilt from D1 in every isolate.
  const stored = new WeakMap<OrttoAccount, StoredAccount>()
  return {
    id: 'ortto',
    label: 'Ortto',
    journeyNoun: 'activity',
    ...common(settings),
    bulkLimit: BULK_LIMIT,
    settings: {
      ORTTO_API_KEY: Boolean(apiKey),
      ORTTO_ACTIVITIES: settings.activities.size,
      ORTTO_CREATE_FIELDS: create.fields,
      ORTTO_CREATE_ACTIVITIES: create.activities,
      ORTTO_MERGE_BY_USER_ID: byUserId,
      ORTTO_ACCOUNTS: accounts,
    },
    account: {
      // With accounts the copy holds more: its own key, so a copy kept without them is not used.
      key: accounts ? 'ortto:schema+accounts' : 'ortto:schema',
      refreshMs: settings.refreshMs,
      read: async (options) => {
        const got = await read(options)
        const account = toAccount(got)
        stored.set(account, got)
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
    map: (event, account, knownEmail) => (event.type === 'group' ? toGroup(event, groupMappingFor((current = account)), knownEmail) : toOrtto(event, mappingFor((current = account)), knownEmail)),
    people: groupPeople(orttoPeople(byUserId)),
    keysByUserId: byUserId,
    ...((create.fields || create.activities) && { creates: { max: create.max } }),
    send: (jobs, options, context) => {
      const client = new OrttoClient(endpoint, options)
      const createOptions = { settings, creations: context?.creations, account: current, reread: () => read(options), spent: { calls: 0 } }
      return withGroups(jobs, (some) => sendToOrtto(some, client, createOptions, context?.checkpoints), client, createOptions, context)
    },
    notices: linkNotices,
    check: (options) => checkOrtto(settings, options, deployEnv),
  }
}
