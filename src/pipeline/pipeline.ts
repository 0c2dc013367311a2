// Items -> outcomes, with the store: one read (identities, parked counts, message
// states, person guards), identity resolution, mapping, one hold (park, claim journey
// entries), delivery through the destination, one write (what was learned). Used by
// direct mode per request, by the queue consumer per batch, by the sweep and by redrives.
import { accountFor, accountKeyDue } from './account'
import { conclude, mergedGuards, stampsFor, type Entry } from './conclude'
import type { Job, Result } from '../destinations/destination'
import { carriedDelete, eventTime, keysOf, resolve, userKey, type BatchKeys, type Item, type Resolution, type Taught } from './identity'
import { retry, type Outcome } from './outcome'
import { plan, type Holds, type Known } from './plan'
import type { DeliveryRun } from './run'
import { emptySnapshot, emptyWrites, StoreError, type Snapshot, type Writes } from '../store/store'
import { difference, history, tally } from '../store/history'
import type { SegmentEvent } from '../segment/schema'
import { toOperation } from '../transform'

/** Stands in for the email a parked event waits for, to ask the mapping whether it would send anything. */
const UNKNOWN_EMAIL = 'unknown@example.invalid'

/** Even when the answer is nearly due, the final write gets this long. */
const MIN_WRITE_MS = 200

/** One outcome per item: each stage below hands the next what it found. */
export async function deliverEvents(items: readonly Item[], run: DeliveryRun): Promise<Outcome[]> {
  const read = await readState(items, run)
  const entries = await entriesOf(items, read, run)
  await planAndHold(entries, read, run)
  const { jobs, jobOf } = jobsOf(entries, run)
  const results = jobs.length ? await run.config.destination.send(jobs, run.calls, { creations: run.creations, checkpoints: run.checkpoints, onProblem: run.onProblem }) : []
  const { outcomes, aliased } = await concludeAndWrite(items, entries, jobOf, results, read, run)
  if (aliased.size && !items.some((item) => item.aliasFollowUp)) await replayAliased(aliased, run)
  return outcomes
}

/**
 * A replayed alias taught its other id the email: what waits under that id goes now, in a
 * second run (once: what that run teaches waits for the next event or the sweep). What fails
 * stays parked, and the sweep replays it: the email is recorded.
 */
async function replayAliased(aliased: Map<string, Taught>, run: DeliveryRun): Promise<void> {
  let rows: Awaited<ReturnType<DeliveryRun['store']['parkedFor']>>
  try {
    rows = await run.store.parkedFor([...aliased.keys()])
  } catch (error) {
    return noted(run, 'parked', error)
  }
  if (!rows.length) return
  const items = rows.map((row): Item => {
    const { email, at } = aliased.get(row.userHash)!
    return { event: row.event, at: row.parkedAt, parked: { id: row.id, email, taughtAt: at }, aliasFollowUp: true }
  })
  const outcomes = await deliverEvents(items, { ...run, finished: undefined })
  outcomes.forEach((outcome, i) => run.onReplay?.(items[i].event.type, outcome.status, items[i].event.messageId))
}

/** What one read of the store (and the account) gave the run. */
interface Read extends Known {
  keys: BatchKeys
  resolution: Resolution
  writes: Writes
  /** Items that, even delivered, still owe the store a write a later step depends on: answered retry, never acked around it. */
  owed: Map<number, string>
}

/** A store failure is a problem to note (the run goes on without it); anything else is a bug and is thrown. */
function noted(run: DeliveryRun, stage: string, error: unknown) {
  if (!(error instanceof StoreError)) throw error
  run.onProblem?.(stage, error.message)
}

/** Stage 1: one read (identities, parked counts, message states, guards, the account's cache), identity resolution, the account. */
async function readState(items: readonly Item[], run: DeliveryRun): Promise<Read> {
  const { destination } = run.config
  const keys = keysOf(items, destination.keysByUserId)
  const maps = items.some(({ event }) => event.type === 'identify' || event.type === 'track' || event.type === 'group')
  const accountKey = maps ? accountKeyDue(destination) : undefined
  let snapshot: Snapshot
  let storeDown = false
  try {
    snapshot = await run.store.read({ users: [...keys.users], emails: [...keys.emails], messages: [...keys.messages], cache: accountKey ? [accountKey] : [] })
  } catch (error) {
    noted(run, 'read', error)
    snapshot = emptySnapshot()
    storeDown = true
  }
  const writes = emptyWrites()
  const account = maps ? await accountFor(destination, snapshot, run.calls, writes, (message) => run.onProblem?.('fields', message)) : undefined
  // An event the mapping would only skip is skipped now, not parked to wait for an email it does not need.
  const skips = (event: SegmentEvent) => {
    const op = toOperation(destination, event, account, UNKNOWN_EMAIL)
    return op.kind === 'skip' ? op.message : undefined
  }
  const resolution = resolve(items, snapshot, keys, storeDown, destination.keysByUserId, skips)
  const owed = new Map<number, string>()
  if (storeDown) {
    // Without the read nothing is written: an email taught here would be lost, and parked events never replayed.
    for (const [index, { event }] of items.entries()) {
      if (event.userId && resolution.toRecord.has(keys.hashes.get(event.userId)!)) owed.set(index, "delivered, but the database did not answer, so this userId's email was not recorded; will retry")
    }
  }
  return { keys, hashes: keys.hashes, snapshot, storeDown, resolution, owed, writes, account, now: Date.now() }
}

/** Stage 2: the entries, in order; a user's parked events just before the event that brought the email. */
async function entriesOf(items: readonly Item[], read: Read, run: DeliveryRun): Promise<Entry[]> {
  const { resolution, snapshot } = read
  const replays = new Map<number, Entry[]>()
  if (resolution.replays.size) {
    try {
      for (const row of await run.store.parkedFor([...resolution.replays.keys()])) {
        const { email, before, at } = resolution.replays.get(row.userHash)!
        const item: Item = { event: row.event, at: row.parkedAt, parked: { id: row.id, email, taughtAt: at } }
        const list = replays.get(before) ?? []
        // A parked alias carries a delete of its id here too when this run read that id (else the
        // follow-up run does): it counts first, so a copy in the batch would drop the delete (found by the simulation).
        const resolved = carriedDelete(row.event, { email, at }, snapshot, read.hashes) ?? { kind: 'deliver', event: row.event, email }
        list.push({ item, resolved, at: eventTime(item), replayedBefore: before, state: row.state })
        replays.set(before, list)
      }
    } catch (error) {
      noted(run, 'parked', error)
      // They stay parked; the events that bring their email are retried, so the retry replays them.
      for (const { before } of resolution.replays.values()) read.owed.set(before, 'delivered, but earlier parked events of this userId could not be read; will retry')
      // A parked alias among them may tie a delete's userId to its email: a delete that found none waits for them (found by the simulation).
      for (const [i, one] of resolution.resolved.entries()) if (one.kind === 'delete' && !one.email && items[i].event.userId) resolution.resolved[i] = { kind: 'unavailable' }
    }
  }
  tieReplayedAliases(replays, items, resolution)
  // One messageId is one event: a copy in the same run (a re-send queued twice, a parked
  // event that is also in the batch) gets the first one's outcome — a parked event replayed here
  // counts as first wherever it stands: it carries the email, and its row is settled by it (a
  // copy that would only park again must not settle it).
  const entries: Entry[] = []
  const first = new Map<string, Entry>()
  for (const list of replays.values()) for (const replay of list) if (replay.item.event.messageId && !first.has(replay.item.event.messageId)) first.set(replay.item.event.messageId, replay)
  const add = (entry: Entry) => {
    const messageId = entry.item.event.messageId
    if (messageId) {
      const earlier = first.get(messageId)
      if (earlier && earlier !== entry) entry.sameAs = earlier
      else first.set(messageId, entry)
    }
    entries.push(entry)
  }
  for (const [index, item] of items.entries()) {
    for (const replay of replays.get(index) ?? []) add(replay)
    const messageId = item.event.messageId
    add({ item, resolved: resolution.resolved[index], at: resolution.times[index], index, state: messageId ? snapshot.messages.get(messageId) : undefined })
  }
  return entries
}

/**
 * A parked alias replayed in this run ties its ids to the email only now: a delete of either id
 * in the batch, resolved before it with no email, finds that email too (else it deleted no one
 * while an older event of the other id made the person; found by the simulation).
 */
function tieReplayedAliases(replays: Map<number, Entry[]>, items: readonly Item[], resolution: Resolution): void {
  const tied = new Map<string, string>()
  for (const list of replays.values()) {
    for (const { item } of list) {
      const { event } = item
      if (event.type !== 'alias' || !item.parked) continue
      for (const id of [event.userId, event.previousId]) if (id) tied.set(id, item.parked.email)
    }
  }
  if (!tied.size) return
  const { resolved } = resolution
  for (let i = 0; i < resolved.length; i++) {
    const one = resolved[i]
    const { userId } = items[i].event
    if (one.kind === 'delete' && !one.email && userId && tied.has(userId)) resolved[i] = { ...one, email: tied.get(userId) }
  }
}

/** Stage 3: what each entry needs; one hold (park, claim journey entries) before any call. */
async function planAndHold(entries: Entry[], read: Read, run: DeliveryRun): Promise<void> {
  const holds: Holds = { park: [], claims: [] }
  read.deletedInBatch = deletesIn(entries, run)
  for (const entry of entries) if (!entry.sameAs) entry.outcome = plan(entry, read, holds, run)
  if (!holds.park.length && !holds.claims.length) return
  let claimed = new Set<string>()
  try {
    claimed = await run.store.hold({
      park: holds.park.map(({ entry, userHash, messageId }) => ({ userHash, messageId: messageId ?? entry.item.event.messageId, type: entry.item.event.type, event: entry.item.event })),
      claims: holds.claims.map((entry) => entry.claim!),
      leaseUntil: read.now + run.leaseMs,
      by: run.claimant,
    })
  } catch (error) {
    noted(run, 'hold', error)
    for (const { entry } of holds.park) entry.outcome = retry('could not park this event (the database is unavailable); will retry')
    for (const entry of holds.claims) entry.outcome = retry('the journey ledger is unavailable; will retry')
  }
  for (const entry of holds.claims) {
    if (!entry.outcome && !claimed.has(entry.claim!)) entry.outcome = retry('another attempt is entering this journey now; will retry')
  }
}

/** The person keys this batch's deletes name (Ortto's userId key, the email), each with its newest delete's time. */
function deletesIn(entries: Entry[], run: DeliveryRun): Map<string, number> {
  const deleted = new Map<string, number>()
  for (const { resolved, item } of entries) {
    if (resolved.kind !== 'delete') continue
    const { at } = resolved
    const { userId } = item.event
    const keys = [...(run.config.destination.keysByUserId && userId ? [userKey(userId)] : []), ...(resolved.email ? [resolved.email] : [])]
    for (const key of keys) deleted.set(key, Math.max(deleted.get(key) ?? -Infinity, at))
  }
  return deleted
}

/** Stage 4: the destination's jobs; an event newer than this batch's delete of its person runs after it (phase 1). */
function jobsOf(entries: Entry[], run: DeliveryRun): { jobs: Job<unknown>[]; jobOf: Map<Entry, number> } {
  const { people } = run.config.destination
  const deletedAt = new Map<string, number>()
  for (const { outcome, op, at } of entries) {
    if (outcome || op?.kind !== 'delete') continue
    // A delete by userId finds the person by its email too: an email-only event newer than it runs after it.
    for (const key of op.email && op.email !== op.key ? [op.key, op.email] : [op.key]) deletedAt.set(key, Math.max(deletedAt.get(key) ?? -Infinity, at))
  }
  const jobs: Job<unknown>[] = []
  const jobOf = new Map<Entry, number>()
  for (const entry of entries) {
    const { op } = entry
    if (entry.outcome || !op) continue
    const key = op.kind === 'upsert' || op.kind === 'enter' ? people.key(op.person) : undefined
    const phase = key !== undefined && (deletedAt.get(key) ?? Infinity) < entry.at ? 1 : 0
    jobOf.set(entry, jobs.push({ op, at: entry.at, phase }) - 1)
  }
  return { jobs, jobOf }
}

/** Stage 5: the outcomes, and one write of what the store learned (the delivery history beside it). */
async function concludeAndWrite(
  items: readonly Item[],
  entries: Entry[],
  jobOf: Map<Entry, number>,
  results: Result[],
  read: Read,
  run: DeliveryRun,
): Promise<{ outcomes: Outcome[]; aliased: Map<string, Taught> }> {
  const none = new Map<string, Taught>()
  const { owed, snapshot, resolution, hashes } = read
  const { outcomes, needsWrite, aliased } = conclude({ items, entries, jobOf, results, writes: read.writes, run, snapshot, resolution, hashes })
  for (const [index, reason] of owed) {
    if (outcomes[index].status !== 'delivered' && outcomes[index].status !== 'skipped') continue
    // Delivered, yet answered retry: it comes again, so its person's guard is stamped with what it
    // set, and an older event delivered before that re-send does not overwrite it (found by the simulation).
    if (outcomes[index].status === 'delivered')
      read.writes.guards = mergedGuards([
        ...read.writes.guards,
        ...stampsFor(
          entries.find((entry) => entry.index === index)!,
          entries,
          run,
          hashes,
        ),
      ])
    outcomes[index] = retry(reason)
  }
  // Without the read, what the run learned is not written (an email taught, a guard, built on a
  // snapshot it does not have) — but the dead letters it decided on are: a refused event is
  // acknowledged only once its letter is stored, else it is retried.
  const writes = read.storeDown ? { ...emptyWrites(), deadLetters: read.writes.deadLetters } : read.writes
  if (read.storeDown && !writes.deadLetters.length) return { outcomes, aliased: none }
  const finished = read.storeDown ? [] : (run.finished?.keys(outcomes) ?? [])
  for (const key of finished) writes.progress.push({ messageId: key, state: 'done' })
  const { store } = run
  // The delivery history: added up in the isolate, and sent beside a write at most once per
  // HISTORY_FLUSH_SECONDS, at the same time as it; its failure changes no answer.
  const events = items.map((item) => item.event)
  const due = history.add(tally(events, outcomes, run.callRecords, writes.deadLetters.length), run.config.historyFlushMs)
  const counted = due ? store.count(due).then((ok) => history.settled(due, ok)) : Promise.resolve(true)
  try {
    await store.write(writes, run.answerBy === undefined ? undefined : Math.max(MIN_WRITE_MS, Math.min(run.config.storeTimeoutMs, run.answerBy - Date.now())))
    for (const key of finished) run.finished!.recorded.add(key)
  } catch (error) {
    noted(run, 'write', error)
    const asCounted = tally(events, outcomes, [], writes.deadLetters.length)
    // Done at the destination (or refused), but not recorded: the retry records it. What it set is
    // stamped in the person's guard, so that newer events delivered before that retry are stamped
    // too and the retry does not overwrite them (found by the simulation).
    const guards: Writes['guards'] = []
    for (const entry of needsWrite) {
      if (entry.index === undefined || outcomes[entry.index].status === 'retry') continue
      if (outcomes[entry.index].status === 'delivered') guards.push(...stampsFor(entry, entries, run, read.hashes))
      outcomes[entry.index] = retry(
        outcomes[entry.index].status === 'rejected'
          ? `${outcomes[entry.index].message}; the database did not take it as a dead letter, so it will be retried`
          : 'delivered, but the database did not record what it taught; will retry',
      )
    }
    // What must never repeat goes again on its own: the journey entries made (else, once their
    // lease ends, a re-send would enter them again), and those guards.
    // (With every stamp the failed write carried: deliveries still answered delivered keep theirs.)
    if (writes.confirm.length || guards.length || writes.guards.length) {
      await store
        .write({ ...emptyWrites(), confirm: writes.confirm, release: writes.release, guards: mergedGuards([...writes.guards, ...guards]) })
        .catch((again: unknown) => noted(run, 'confirm', again))
    }
    // The history counted the answers as they were: count them as they are now (retries, no dead letters).
    history.merge(difference(tally(events, outcomes, [], 0), asCounted))
    return finish(outcomes, counted, run, none)
  }
  return finish(outcomes, counted, run, read.storeDown ? none : aliased)
}

async function finish(outcomes: Outcome[], counted: Promise<boolean>, run: DeliveryRun, aliased: Map<string, Taught>) {
  if (!(await counted)) run.onProblem?.('history', 'the delivery history was not counted (the answer is unchanged)')
  // What is held back goes when it comes due, even if no request follows.
  if (run.waitUntil) history.flushWhenDue(run.config.historyFlushMs, run.waitUntil, (counters) => run.store.count(counters))
  return { outcomes, aliased }
}
