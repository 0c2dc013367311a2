// The account's own custom field definitions (GET /contacts/custom_fields), so a trait goes
// into the field the account already has, in its type. Kept per isolate and in D1 (shared
// by every isolate), read again every AUTOPILOT_FIELDS_REFRESH_SECONDS. When Autopilot
// cannot say, the last list known is used; with none, today's rules apply.
import type { AutopilotClient } from './autopilot'
import type { Config } from './config'
import { noAccountFields, parseAccountFields, type AccountFields } from './fields'
import type { Snapshot, Writes } from './store'

export const FIELDS_KEY = 'autopilot:custom_fields'
/** After a failed read, the next try waits this long (not on every request). */
const RETRY_AFTER_FAILURE_MS = 60_000

interface Known {
  fields: AccountFields
  /** When the list was read from Autopilot. */
  fetchedAt: number
  /** Not before this may Autopilot be asked again. */
  nextTry: number
}
const known = new WeakMap<Config, Known>()

/** Whether this isolate needs the copy kept in D1 (its own is missing or due for a refresh). */
export function fieldsDue(config: Config, now = Date.now()): boolean {
  const mine = known.get(config)
  return !mine || now >= mine.nextTry
}

/**
 * The fields to map with. Reads Autopilot only when neither this isolate nor D1 has a fresh
 * list; a list it reads is added to `writes` for D1.
 */
export async function accountFields(
  config: Config,
  snapshot: Snapshot,
  client: AutopilotClient,
  writes: Writes,
  onError: (message: string) => void,
): Promise<AccountFields> {
  const now = Date.now()
  let mine = known.get(config)
  if (mine && now < mine.nextTry) return mine.fields
  const stored = snapshot.cache.get(FIELDS_KEY)
  if (stored && (!mine || stored.fetchedAt > mine.fetchedAt)) {
    mine = { fields: parseStored(stored.value), fetchedAt: stored.fetchedAt, nextTry: stored.fetchedAt + config.fieldsRefreshMs }
    known.set(config, mine)
    if (now < mine.nextTry) return mine.fields
  }
  try {
    const body = await client.read('/contacts/custom_fields')
    const fields = parseAccountFields(body)
    known.set(config, { fields, fetchedAt: now, nextTry: now + config.fieldsRefreshMs })
    writes.cache.push({ key: FIELDS_KEY, value: JSON.stringify([...fields.byName.values()]) })
    return fields
  } catch (error) {
    onError(`custom fields: ${error instanceof Error ? error.message : 'unknown error'}`)
    const fallback = mine ?? { fields: noAccountFields, fetchedAt: 0, nextTry: 0 }
    known.set(config, { ...fallback, nextTry: now + RETRY_AFTER_FAILURE_MS })
    return fallback.fields
  }
}

function parseStored(value: string): AccountFields {
  try {
    return parseAccountFields((JSON.parse(value) as { name: string; type: string }[]).map(({ name, type }) => ({ name, fieldType: type })))
  } catch {
    return noAccountFields
  }
}
