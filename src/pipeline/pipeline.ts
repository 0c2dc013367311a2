// Items -> outcomes, with the store: one read (identities, parked counts, message
// states, person guards), identity resolution, mapping, one hold (park, claim journey
// entries), delivery through the destination, one write (what was learned). Used by
// direct mode per request, by the queue consumer per batch, by the sweep and by redrives.
import { accountFor, accountKeyDue } from './account'
import { conclude, entered, type Entry } from './conclude'
import type { Job } from '../destinations/destination'
import { withoutNewer } from './guards'
import { eventTime, hashIn, keysOf, MAX_PARKED_PER_USER, resolve, userKey, type Item } from './identity'
import { deferred, delivered, rejected, retry, skipped, type Outcome } from './outcome'
import type { DeliveryRun } from './run'
import { emptySnapshot, emptyWrites, StoreError, type Snapshot } from '../store/store'
import { tally } from '../store/history'
import { emailOf } from '../segment/traits'
import { toOperation } from '../transform'

/** Even when the answer is nearly due, the final write gets this long. */
const MIN_WRITE_MS = 200

const DELETED = 'not sent: this person was deleted (a Segment delete) after this event happened'

/** One outcome per item. */
export async function deliverEvents(items: readonly Item[], run: DeliveryRun): Promise<Outcome[]> {
  const { store } = run
  const failed = (stage: string, error: unknown) => {
    if (!(error instanceof StoreError)) throw error
    run.onProblem?.(stage, error.message)
  }
  const { destination } = run.config
  const { people } = destination
  const keys = keysOf(items, destination.keysByUserId)
  const { hashes } = keys
  const maps = items.some(({ event }) => event.type === 'identify' || event.type === 'track')
  const accountKey = maps ? accountKeyDue(destination) : undefined
  let snapshot: Snapshot
  let storeDown = false
  try {
    const cache = accountKey ? [accountKey] : []
    snapshot = await store.read({ users: [...keys.users], emails: [...keys.emails], messages: [...keys.messages], cache })
  } catch (error) {
    failed('read', error)
    snapshot = emptySnapshot()
    storeDown = true
  }
  const resolution = resolve(items, snapshot, keys, storeDown, destination.keysByUserId)
  /** Items delivered that still owe the store a write a later step depends on: retried, never acked around it. */
  const owed = new Map<number, string>()
  if (storeDown) {
    // Without the read nothing is written: an email taught here would be lost, and parked events never replayed.
    for (const [index, { event }] of items.entries()) {
      if (event.userId && resolution.toRecord.has(hashes.get(event.userId)!)) owed.set(index, "delivered, but the database did not answer, so this userId's email was not recorded; will retry")
    }
  }
  const writes = emptyWrites()
  const account = maps ? await accountFor(destination, snapshot, run.calls, writes, (message) => run.onProblem?.('fields', message)) : undefined

  // Entries in order; a user's parked events just before the event that brought the email.
  const replays = new Map<number, Entry[]>()
  if (resolution.replays.size) {
    try {
      for (const row of await store.parkedFor([...resolution.replays.keys()])) {
        const { email, before } = resolution.replays.get(row.userHash)!
        const item: Item = { event: row.event, at: row.parkedAt, parked: { id: row.id, email } }
        const list = replays.get(before) ?? []
        list.push({ item, resolved: { kind: 'deliver', event: row.event, email }, at: eventTime(item), replayedBefore: before, state: row.state })
        replays.set(before, list)
      }
    } catch (error) {
      failed('parked', error)
      // They stay parked; the events that bring their email are retried, so the retry replays them.
      for (const { before } of resolution.replays.values()) owed.set(before, 'delivered, but earlier parked events of this userId could not be read; will retry')
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

  // Decide what each entry needs; park and claim before any call.
  const now = Date.now()
  const holds = { park: [] as { entry: Entry; userHash: string }[], claims: [] as Entry[] }
  for (const entry of entries) if (!entry.sameAs) entry.outcome = plan(entry)
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
  for (const entry of entries) if (!entry.outcome && entry.op?.kind === 'delete') deletedAt.set(entry.op.key, entry.at)
  const jobs: Job<unknown>[] = []
  const jobOf = new Map<Entry, number>()
  for (const entry of entries) {
    const { op } = entry
    if (entry.outcome || !op) continue
    const key = op.kind === 'upsert' || op.kind === 'enter' ? people.key(op.person) : undefined
    const phase = key !== undefined && (deletedAt.get(key) ?? Infinity) < entry.at ? 1 : 0
    jobOf.set(entry, jobs.push({ op, at: entry.at, phase }) - 1)
  }
  const results = jobs.length ? await destination.send(jobs, run.calls, { creations: run.creations }) : []

  // Outcomes, and what the store should learn from them.
  const { outcomes, needsWrite } = conclude({ items, entries, jobOf, results, writes, run, snapshot, resolution, hashes })
  for (const [index, reason] of owed) {
    if (outcomes[index].status === 'delivered' || outcomes[index].status === 'skipped') outcomes[index] = retry(reason)
  }
  if (!storeDown) {
    // The delivery history goes beside the write, at the same time; its failure changes no answer.
    const counted = store.count(
      tally(
        items.map((item) => item.event),
        outcomes,
        run.callRecords,
        writes.deadLetters.length,
      ),
    )
    try {
      await store.write(writes, run.answerBy === undefined ? undefined : Math.max(MIN_WRITE_MS, Math.min(run.config.storeTimeoutMs, run.answerBy - Date.now())))
    } catch (error) {
      failed('write', error)
      // What must never repeat goes again on its own: the journey entries made (else, once their
      // lease ends, a re-send would enter them again).
      if (writes.confirm.length) {
        await store.write({ ...emptyWrites(), confirm: writes.confirm, release: writes.release }).catch((again: unknown) => failed('confirm', again))
      }
      // Done at the destination (or refused), but not recorded: the retry records it (an upsert is safe to repeat).
      for (const entry of needsWrite) {
        if (entry.index === undefined || outcomes[entry.index].status === 'retry') continue
        outcomes[entry.index] = retry(
          outcomes[entry.index].status === 'rejected'
            ? `${outcomes[entry.index].message}; the database did not take it as a dead letter, so it will be retried`
            : 'delivered, but the database did not record what it taught; will retry',
        )
      }
    }
    if (!(await counted)) run.onProblem?.('history', 'the delivery history was not counted (the answer is unchanged)')
  }
  return outcomes

  /** What an entry needs: an outcome now, or an action (and a hold) for later. */
  function plan(entry: Entry): Outcome | undefined {
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
        const { userId } = entry.item.event
        // Found by its userId where the destination can (Ortto's external id), else by the email it resolves to.
        const key = destination.keysByUserId && userId ? userKey(userId) : resolved.email
        if (!key) {
          const dropped = resolved.userHash ? (snapshot.parkedCounts.get(resolved.userHash) ?? 0) : 0
          return skipped(`No email is known for this userId, so there is no ${destination.label} person to delete${dropped ? `; ${dropped} parked events dropped` : ''}`)
        }
        entry.emailHash = hashIn(hashes, key)
        entry.op = { kind: 'delete', key, ...(resolved.email && { email: resolved.email }), ...(destination.keysByUserId && userId && { userId }) }
        return undefined
      }
      case 'deliver':
        break
    }
    const { state } = entry
    if (state?.state === 'done') return delivered('already delivered by an earlier attempt; not repeated')
    if (state?.state === 'rejected') return rejected(state.reason)
    let op = toOperation(destination, resolved.event, account, resolved.email)
    if (op.kind === 'retry') return retry(op.message)
    if (op.kind !== 'upsert' && op.kind !== 'enter') {
      entry.op = op
      return undefined
    }
    entry.emailHash = hashIn(hashes, people.key(op.person))
    const guard = snapshot.contacts.get(entry.emailHash)
    if (guard?.deletedAt != null && entry.at <= guard.deletedAt) return skipped(DELETED)
    if (guard) {
      const { person, dropped } = withoutNewer(people, op.person, guard, entry.at)
      if (dropped) op = { ...op, person }
      if (op.kind === 'upsert' && dropped && people.bare(person)) return delivered('not sent: newer events already set every field it carries')
      if (op.kind === 'enter') op = { ...op, setFirst: op.setFirst && !people.bare(person) }
    }
    entry.op = op
    if (op.kind !== 'enter') return undefined
    const messageId = resolved.event.messageId
    if (!messageId) return undefined
    if (storeDown) return retry('the journey ledger is unavailable; will retry')
    if (entered.has(messageId)) return delivered(`already entered ${destination.journeyNoun} ${op.journey}; not repeated`)
    if (state?.state === 'claimed' && state.leaseUntil >= now) return retry('another attempt is entering this journey now; will retry')
    entry.claim = messageId
    holds.claims.push(entry)
    return undefined
  }
}
