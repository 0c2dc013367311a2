// Items -> outcomes, with the store: one read (identities, parked counts, message
// states, contact guards), identity resolution, mapping, one hold (park, claim journey
// triggers), delivery, one write (what was learned). Used by direct mode per request,
// by the queue consumer per batch, and by the sweep.
import { accountFields, FIELDS_KEY, fieldsDue } from './account'
import type { AutopilotClient } from './autopilot'
import type { Config } from './config'
import { deliver, type Job } from './deliver'
import { eventTime, hashesFor, hashOf, MAX_PARKED_PER_USER, normalEmail, resolve, type Item } from './identity'
import { onlyEmail, withoutNewer } from './newest'
import { deferred, delivered, rejected, retry, skipped, type Outcome } from './outcome'
import { entered, settle, type Entry } from './settle'
import { emptySnapshot, noWrites, StoreError, type Snapshot, type Store } from './store'
import { emailOf, eventEmail, toAction, type MappingSettings } from './transform'

export interface Run {
  store: Store
  client: AutopilotClient
  /** Trigger map and pinned field types; the account's own fields are read as needed. */
  config: Config
  /** Who claims journey triggers (a request or batch id), and for how long (ms). */
  claimant: string
  leaseMs: number
  /** Direct mode: when anything is left to retry, record what finished so the re-send skips it. */
  recordProgress: boolean
  /** Direct mode: when the answer is due (epoch ms); the final write gets only the time left. */
  answerBy?: number
  /** Queued mode: the reason to dead-letter an item with this outcome, if it should be. */
  deadLetter?: (item: Item, outcome: Outcome) => string | undefined
  /** Told how each replayed parked event ended, for the log. */
  onReplay?: (type: string, status: string, messageId?: string) => void
  /** Told what went wrong without stopping the run (a store failure, an unreadable field list), for the log. */
  onProblem?: (stage: string, message: string) => void
}

/** Even when the answer is nearly due, the final write gets this long. */
const MIN_WRITE_MS = 200

const DELETED = 'not sent: this person was deleted (a Segment delete) after this event happened'

/** One outcome per item. */
export async function deliverItems(items: readonly Item[], run: Run): Promise<Outcome[]> {
  const { store } = run
  const failed = (stage: string, error: unknown) => {
    if (!(error instanceof StoreError)) throw error
    run.onProblem?.(stage, error.message)
  }
  const hashes = await hashesFor(items)
  const keys = { users: new Set<string>(), emails: new Set<string>(), messages: new Set<string>() }
  for (const { event, parked } of items) {
    if (event.userId) keys.users.add(hashes.get(event.userId)!)
    if (event.type === 'alias' && event.previousId) keys.users.add(hashes.get(event.previousId)!)
    const own = parked?.email ?? ((event.type === 'identify' || event.type === 'track') && eventEmail(event))
    if (own) keys.emails.add(hashes.get(normalEmail(own))!)
    if (event.messageId && event.type !== 'page' && event.type !== 'screen' && event.type !== 'group') keys.messages.add(event.messageId)
  }
  const { config } = run
  const mapsFields = config.fieldsRefreshMs > 0 && items.some(({ event }) => event.type === 'identify' || event.type === 'track')
  let snapshot: Snapshot
  let storeDown = false
  try {
    const cache = mapsFields && fieldsDue(config) ? [FIELDS_KEY] : []
    snapshot = await store.read({ users: [...keys.users], emails: [...keys.emails], messages: [...keys.messages], cache })
  } catch (error) {
    failed('read', error)
    snapshot = emptySnapshot()
    storeDown = true
  }
  const resolution = resolve(items, snapshot, hashes, storeDown)
  const writes = noWrites()
  const mapping: MappingSettings = {
    triggers: config.triggers,
    fieldTypes: config.fieldTypes,
    ...(mapsFields && { accountFields: await accountFields(config, snapshot, run.client, writes, (message) => run.onProblem?.('fields', message)) }),
  }

  // Entries in order; a user's parked events just before the event that brought the email.
  const replays = new Map<number, Entry[]>()
  if (resolution.replays.size) {
    try {
      for (const row of await store.parkedFor([...resolution.replays.keys()])) {
        const { email, before } = resolution.replays.get(row.userHash)!
        const item: Item = { event: row.event, at: row.parkedAt, parked: { id: row.id, email } }
        const list = replays.get(before) ?? []
        list.push({ item, resolved: { kind: 'deliver', event: row.event, email }, at: eventTime(item), teacher: before, state: row.state })
        replays.set(before, list)
      }
    } catch (error) {
      failed('parked', error) // they stay parked: the next event with the email, or the sweep, replays them
    }
  }
  // One messageId is one event: a copy in the same run (a re-send queued twice, a parked
  // event that is also in the batch) gets the first one's outcome.
  const entries: Entry[] = []
  const first = new Map<string, Entry>()
  const add = (entry: Entry) => {
    const messageId = entry.item.event.messageId
    if (messageId) {
      entry.sameAs = first.get(messageId)
      if (!entry.sameAs) first.set(messageId, entry)
    }
    entries.push(entry)
  }
  for (const [index, item] of items.entries()) {
    for (const replay of replays.get(index) ?? []) add(replay)
    const messageId = item.event.messageId
    add({ item, resolved: resolution.resolved[index], at: resolution.times[index], index, state: messageId ? snapshot.messages.get(messageId) : undefined })
  }

  // Emails -> their hashes (contact guards); one the batch did not carry is hashed here.
  const hashEmail = async (email: string) => hashes.get(email) ?? (await hashOf(email))

  // Decide what each entry needs; park and claim before any call.
  const now = Date.now()
  const holds = { park: [] as { entry: Entry; userHash: string }[], claims: [] as Entry[] }
  for (const entry of entries) {
    if (entry.sameAs) continue
    entry.outcome = await plan(entry)
  }
  let claimed = new Set<string>()
  if (holds.park.length || holds.claims.length) {
    try {
      claimed = await store.hold({
        park: holds.park.map(({ entry, userHash }) => ({ userHash, messageId: entry.item.event.messageId, type: entry.item.event.type, event: entry.item.event })),
        claims: holds.claims.map((entry) => entry.claim!),
        leaseUntil: now + run.leaseMs,
        by: run.claimant,
      })
    } catch (error) {
      failed('hold', error)
      for (const { entry } of holds.park) entry.outcome = retry('could not park this event (the database is unavailable); will retry')
      for (const entry of holds.claims) entry.outcome = retry('the journey ledger is unavailable; will retry')
    }
    for (const entry of holds.claims) {
      if (!entry.outcome && !claimed.has(entry.claim!)) entry.outcome = retry('another attempt is entering this journey now; will retry')
    }
  }

  // Deletes first for events newer than them: phase 1 runs after this batch's deletes.
  const deletedAt = new Map<string, number>()
  for (const entry of entries) if (!entry.outcome && entry.action?.kind === 'delete') deletedAt.set(entry.action.email, entry.at)
  const jobs: Job[] = []
  const jobOf = new Map<Entry, number>()
  for (const entry of entries) {
    if (entry.outcome || !entry.action) continue
    const email = entry.action.kind === 'delete' ? undefined : 'contact' in entry.action ? entry.action.contact.Email : undefined
    const phase = email !== undefined && (deletedAt.get(email) ?? Infinity) < entry.at ? 1 : 0
    jobOf.set(entry, jobs.push({ action: entry.action, at: entry.at, phase }) - 1)
  }
  const results = jobs.length ? await deliver(jobs, run.client) : []

  // Outcomes, and what the store should learn from them.
  const { outcomes, needsWrite } = await settle({ items, entries, jobOf, results, writes, run, snapshot, learn: resolution.learn, learns: (userId) => resolution.learn.has(hashes.get(userId)!), hashEmail })
  if (!storeDown) {
    try {
      await store.write(writes, run.answerBy === undefined ? undefined : Math.max(MIN_WRITE_MS, Math.min(run.config.storeTimeoutMs, run.answerBy - Date.now())))
    } catch (error) {
      failed('write', error)
      // Done in Autopilot (or refused), but not recorded: the retry records it (an upsert is safe to repeat).
      for (const entry of needsWrite) {
        if (entry.index === undefined || outcomes[entry.index].status === 'retry') continue
        outcomes[entry.index] = retry(
          outcomes[entry.index].status === 'rejected'
            ? `${outcomes[entry.index].message}; the database did not take it as a dead letter, so it will be retried`
            : 'delivered, but the database did not record what it taught; will retry',
        )
      }
    }
  }
  return outcomes

  /** What an entry needs: an outcome now, or an action (and a hold) for later. */
  async function plan(entry: Entry): Promise<Outcome | undefined> {
    const { resolved } = entry
    switch (resolved.kind) {
      case 'park': {
        holds.park.push({ entry, userHash: resolved.userHash })
        const { event } = entry.item
        return deferred(event.type === 'identify' || event.type === 'track' ? emailOf(event).issues : undefined)
      }
      case 'parking-full':
        return rejected(`${MAX_PARKED_PER_USER} events are already waiting for this userId's email; send an identify with the email (traits.email) first`)
      case 'noted':
        return skipped(resolved.message)
      case 'deleted':
        return skipped(DELETED)
      case 'unavailable':
        return retry('the identity store is unavailable; will retry')
      case 'delete': {
        if (!resolved.email) {
          const dropped = resolved.userHash ? (snapshot.parkedCounts.get(resolved.userHash) ?? 0) : 0
          return skipped(`No email is known for this userId, so there is no Autopilot contact to delete${dropped ? `; ${dropped} parked events dropped` : ''}`)
        }
        entry.emailHash = await hashEmail(resolved.email)
        entry.action = { kind: 'delete', email: resolved.email }
        return undefined
      }
      case 'deliver':
        break
    }
    const { state } = entry
    if (state?.state === 'done') return delivered('already delivered by an earlier attempt; not repeated')
    if (state?.state === 'rejected') return rejected(state.reason)
    let action = toAction(resolved.event, mapping, resolved.email)
    if (action.kind !== 'upsert' && action.kind !== 'trigger') {
      entry.action = action
      return undefined
    }
    entry.emailHash = await hashEmail(action.contact.Email)
    const guard = snapshot.contacts.get(entry.emailHash)
    if (guard?.deletedAt != null && entry.at <= guard.deletedAt) return skipped(DELETED)
    if (guard) {
      const { contact, dropped } = withoutNewer(action.contact, guard, entry.at)
      if (dropped) action = { ...action, contact }
      if (action.kind === 'upsert' && dropped && onlyEmail(contact)) return delivered('not sent: newer events already set every field it carries')
      if (action.kind === 'trigger') action = { ...action, setFirst: action.setFirst && !onlyEmail(contact) }
    }
    entry.action = action
    if (action.kind !== 'trigger') return undefined
    const messageId = resolved.event.messageId
    if (!messageId) return undefined
    if (storeDown) return retry('the journey ledger is unavailable; will retry')
    if (entered.has(messageId)) return delivered(`already entered journey trigger ${action.triggerId}; not repeated`)
    if (state?.state === 'claimed' && state.leaseUntil >= now) return retry('another attempt is entering this journey now; will retry')
    entry.claim = messageId
    holds.claims.push(entry)
    return undefined
  }
}
