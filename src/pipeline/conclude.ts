// After delivery, for the pipeline: each item's outcome, and what the store learns from
// them (one write): claims confirmed or released, parked events unparked or dead-lettered,
// identities learned, deletes remembered, person guards, and — when a request stopped
// early — its progress.
import type { Operation, Result } from '../destinations/destination'
import { stamp } from './guards'
import { hashIn, type Item, type Resolution, type Resolved, type Taught } from './identity'
import { rejected, retry, type Outcome } from './outcome'
import type { DeliveryRun } from './run'
import type { MessageState, Snapshot, Writes } from '../store/store'

export interface Entry {
  item: Item
  resolved: Resolved
  at: number
  /** The input item this is (undefined: a parked event replayed before the item at `replayedBefore`). */
  index?: number
  replayedBefore?: number
  state?: MessageState
  op?: Operation<unknown>
  emailHash?: string
  claim?: string
  /** A delete not sent because newer events made the person again: the newest of them (their email is kept). */
  remadeAt?: number
  outcome?: Outcome
  /** An earlier entry carries the same messageId: this one gets its outcome. */
  sameAs?: Entry
}

const letter = (item: Item, reason: string) => ({
  reason,
  attempts: (item.attempts ?? 0) + 1,
  firstSeen: item.at,
  messageId: item.event.messageId,
  type: item.event.type,
  event: item.event,
})

/** Journey entries this isolate made: a re-send reaching the same isolate is never triggered twice. */
export const entered = new Set<string>()
const remember = (messageId: string) => {
  if (entered.size >= 10_000) entered.delete(entered.values().next().value!)
  entered.add(messageId)
}

interface Delivered {
  items: readonly Item[]
  entries: Entry[]
  /** Each delivered entry's job, and the jobs' results. */
  jobOf: Map<Entry, number>
  results: Result[]
  writes: Writes
  run: DeliveryRun
  snapshot: Snapshot
  resolution: Resolution
  /** Texts -> hashes; emails to record that it lacks are added. */
  hashes: Map<string, string>
}

/** Each item's outcome, the writes they call for, and the entries whose outcome holds only once those are written. */
export function conclude({ items, entries, jobOf, results, writes, run, snapshot, resolution, hashes }: Delivered): {
  outcomes: Outcome[]
  needsWrite: Set<Entry>
  /** Ids a replayed alias taught their email: what waits under them can be replayed now (userHash -> email, when taught). */
  aliased: Map<string, Taught>
} {
  const { toRecord } = resolution
  const { people } = run.config.destination
  for (const [entry, job] of jobOf) {
    const { outcome, entered: triggered } = results[job]
    entry.outcome = outcome
    if (!entry.claim) continue
    if (triggered === 'yes') {
      writes.confirm.push(entry.claim)
      remember(entry.claim)
    } else if (triggered !== 'unknown') {
      writes.release.push(entry.claim) // the destination answered: it did not enter the journey
    }
  }
  const byIndex = new Map<number, Entry>()
  for (const entry of entries) {
    entry.outcome = entry.sameAs?.outcome ?? entry.outcome ?? retry('not attempted')
    if (entry.index !== undefined) byIndex.set(entry.index, entry)
  }
  /** Entries whose outcome holds only once the write below is done. */
  const needsWrite = new Set<Entry>()
  /** Entries dead-lettered: a redrive may send them again later. */
  const lettered = new Set<Entry>()
  const aliased = new Map<string, Taught>()
  for (const entry of entries) {
    const { item, outcome } = entry
    if (!item.parked) continue
    // A parked event replayed: settled unless it is to be retried; a refusal becomes a dead letter.
    if (outcome!.status !== 'retry') writes.unpark.push(item.parked.id)
    if (outcome!.status === 'rejected') {
      writes.deadLetters.push(letter(item, outcome!.message))
      lettered.add(entry)
    }
    // An alias kept until one of its ids had an email: both ids resolve to it from now on.
    const { event } = item
    if (event.type === 'alias' && outcome!.status !== 'retry' && !entry.sameAs) {
      // At the time the email was taught, whichever of its ids' rows replays it (an alias makes no one:
      // a delete newer than that still finds them; found by the simulation).
      const at = item.parked.taughtAt
      for (const id of [event.userId, event.previousId]) {
        if (!id) continue
        const userHash = hashIn(hashes, id)
        writes.identities.push({ userHash, email: item.parked.email, emailHash: hashIn(hashes, item.parked.email), at })
        aliased.set(userHash, { email: item.parked.email, at })
      }
    }
    const bringsEmail = entry.replayedBefore === undefined ? entry : byIndex.get(entry.replayedBefore)!
    if (outcome!.status === 'retry' && bringsEmail.outcome!.status !== 'retry') {
      bringsEmail.outcome = retry(`delivered, but earlier parked events of this userId were not: ${outcome!.message}`)
    }
    needsWrite.add(bringsEmail)
  }
  for (const entry of byIndex.values()) {
    const reason = entry.sameAs ? undefined : run.deadLetter?.(entry.item, entry.outcome!)
    if (reason) {
      writes.deadLetters.push(letter(entry.item, reason))
      entry.outcome = rejected(reason, entry.outcome!.issues)
      needsWrite.add(entry)
      lettered.add(entry)
    }
    const { event } = entry.item
    if (event.userId && toRecord.has(hashes.get(event.userId)!)) needsWrite.add(entry)
    // An alias teaches its previousId too: answered only once that is written (found by the simulation).
    if (event.type === 'alias' && event.previousId && toRecord.has(hashes.get(event.previousId)!)) needsWrite.add(entry)
  }
  // Newest wins: a person gets a guard once an event for it may still come again — retried, or
  // dead-lettered (a redrive) — so that what newer events set is stamped and not overwritten by it.
  const guarded = new Set<string>()
  const guard = (emailHash: string) => {
    if (snapshot.contacts.has(emailHash) || guarded.has(emailHash)) return
    guarded.add(emailHash)
    writes.guards.push({ emailHash, fields: {} })
  }
  for (const entry of entries) {
    // A copy took the first one's outcome; it was not planned (no op, not its delete's time) and writes nothing of its own.
    if (entry.sameAs) continue
    const { outcome, op, resolved } = entry
    // Forgotten once the destination deleted the person — or at once when nothing was sent (no person known to delete).
    if (resolved.kind === 'delete' && (outcome!.status === 'delivered' || !op)) {
      writes.forget.push({ userHash: resolved.userHash, emailHash: entry.emailHash, at: entry.at })
      // Found by its userId: its email's guard is marked too, so a late event carrying only the email stays deleted.
      if (op?.kind === 'delete' && op.email && op.key !== op.email) writes.forget.push({ emailHash: hashIn(hashes, op.email), at: entry.at })
      // Not sent because newer events made the person again: the email they used stays known.
      if (entry.remadeAt !== undefined && resolved.userHash && resolved.email) {
        writes.identities.push({ userHash: resolved.userHash, email: resolved.email, emailHash: hashIn(hashes, resolved.email), at: entry.remadeAt })
      }
      needsWrite.add(entry)
    }
    // A delete to be retried: events delivered meanwhile are stamped, so that the re-sent delete sees them.
    if (op?.kind === 'delete' && outcome!.status === 'retry') {
      guard(entry.emailHash!)
      if (op.email && op.key !== op.email) guard(hashIn(hashes, op.email))
    }
    if (entry.emailHash && (op?.kind === 'upsert' || op?.kind === 'enter') && (outcome!.status === 'retry' || lettered.has(entry))) guard(entry.emailHash)
  }
  // A request with a retry comes again whole (Segment re-sends it): its deliveries are skipped then
  // (progress, below), so what they set is stamped now — else an older event that comes meanwhile
  // and is retried overwrites it (found by the simulation). (Queued mode acks them: nothing comes again.)
  if (run.resendsWhole && entries.some((entry) => entry.outcome?.status === 'retry')) {
    for (const { emailHash, op, outcome } of entries) if (emailHash && (op?.kind === 'upsert' || op?.kind === 'enter') && outcome?.status === 'delivered') guard(emailHash)
  }
  for (const entry of entries) {
    const { outcome, op } = entry
    if (!entry.emailHash || !op || (op.kind !== 'upsert' && op.kind !== 'enter') || outcome!.status !== 'delivered') continue
    if (snapshot.contacts.has(entry.emailHash) || guarded.has(entry.emailHash)) writes.guards.push({ emailHash: entry.emailHash, fields: stamp(people, op.person, entry.at) })
  }
  writes.guards = mergedGuards(writes.guards)
  for (const entry of entries) if (entry.sameAs) entry.outcome = entry.sameAs.outcome
  for (const entry of entries) if (entry.index === undefined) run.onReplay?.(entry.item.event.type, entry.outcome!.status, entry.item.event.messageId)
  // A delete of the userId to be retried: what a newer event of the batch taught is recorded as of
  // the delete, no later — else the re-sent delete takes it for the person made again, though that
  // event may not have been delivered (what was delivered is stamped in the guard; found by the simulation).
  const retriedDelete = new Map<string, number>()
  for (const { resolved, outcome } of entries) {
    if (resolved.kind === 'delete' && resolved.userHash && outcome!.status === 'retry') retriedDelete.set(resolved.userHash, Math.min(retriedDelete.get(resolved.userHash) ?? Infinity, resolved.at))
  }
  for (const [userHash, { email, at }] of toRecord) writes.identities.push({ userHash, email, emailHash: hashIn(hashes, email), at: Math.min(at, retriedDelete.get(userHash) ?? Infinity) })
  const outcomes = items.map((_, index) => byIndex.get(index)!.outcome!)
  if (run.recordProgress && outcomes.some((outcome) => outcome.status === 'retry')) {
    for (const entry of byIndex.values()) {
      const messageId = entry.item.event.messageId
      if (!messageId || !entry.op || entry.claim || entry.sameAs) continue
      const { status, message } = entry.outcome!
      if (status === 'delivered') writes.progress.push({ messageId, state: 'done' })
      // (Not where refusals become dead letters: a redrive must try them afresh.)
      else if (status === 'rejected' && !run.deadLetter) writes.progress.push({ messageId, state: 'rejected', reason: message })
    }
  }
  return { outcomes, needsWrite, aliased }
}

/** One guard row per person, each field at the newest time that set it (rows apply in order, the last one's time would stand). */
export function mergedGuards(guards: Writes['guards']): Writes['guards'] {
  const byHash = new Map<string, Record<string, number>>()
  for (const { emailHash, fields } of guards) {
    const into = byHash.get(emailHash) ?? {}
    for (const [name, at] of Object.entries(fields)) into[name] = Math.max(into[name] ?? -Infinity, at)
    byHash.set(emailHash, into)
  }
  return [...byHash].map(([emailHash, fields]) => ({ emailHash, fields }))
}

/**
 * The guards an event that comes again leaves: what every delivery of the run to its person set
 * (else its retry overwrites them; found by the simulation) — for a delete, to each person it
 * finds (key and email), so that its retry sees who was made again beside it.
 */
export function stampsFor({ op, emailHash }: Entry, entries: Entry[], run: DeliveryRun, hashes: Map<string, string>): Writes['guards'] {
  if (!emailHash || !op || (op.kind !== 'upsert' && op.kind !== 'enter' && op.kind !== 'delete')) return []
  const found = op.kind === 'delete' && op.email && op.key !== op.email ? [emailHash, hashIn(hashes, op.email)] : [emailHash]
  return found.flatMap((hash) => [
    { emailHash: hash, fields: {} },
    ...entries.flatMap(({ op, emailHash, at, outcome }) =>
      emailHash === hash && outcome?.status === 'delivered' && (op?.kind === 'upsert' || op?.kind === 'enter') ? [{ emailHash, fields: stamp(run.config.destination.people, op.person, at) }] : [],
    ),
  ])
}
