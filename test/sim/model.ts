// What must be true once the faults stop and the sweep has run, from what was sent and what
// each event ended as: every event delivered once, or rejected with a reason, or
// dead-lettered, or expired and logged; no journey entry twice; each person holds the newest
// value of each field; deleted people stay deleted unless a newer event made them again.
//
// An event that ended rejected, dead-lettered or expired may still have reached the
// destination on an earlier attempt whose answer was lost: the model allows it ("maybe"),
// never requires it.
import type { Destination, Mode } from './world'
import { emailAt, MAPPED, timeOf, UNMAPPED, userId, type Spec } from './events'

/**
 * Known defects (issue 36's nine, fixed; 10 and 11 found by this simulation). While a number is here,
 * a violation with that defect's exact signature is tolerated (and counted); remove the number
 * once its fix is merged, and the simulation holds the fix. `SIM_KNOWN` (a comma list, or
 * empty for none) overrides it for one run.
 * 1 queued: dead letters lost when the batch's D1 read fails   2 D1's 2 MB bound string
 * 3 no backoff during an outage (queued)   4 unmapped userId-only tracks fill the parking cap
 * 5 a delete overriding a newer identify   6 a redriven dead letter overwriting newer data
 * 7 an alias before either id has an email, dropped   8 the store's retry repeating writes
 * 9 a queue message retried whole re-delivering what it delivered
 * 11 (found by this simulation, fixed) a delete dropped its userId's parked events newer than itself
 * 10 (found by this simulation, fixed) a delete that arrives after an identify was delivered but
 *    its userId → email write failed deletes no one; the identify's re-send was then skipped as
 *    older than the delete, and the person it made stayed (now that re-send carries the delete)
 */
export const KNOWN_DEFECTS: ReadonlySet<number> = new Set<number>()

export interface Sent {
  spec: Spec
  seq: number
  messageId: string
  /** Each time Segment sent it (a count over all of Segment's requests). */
  arrivals: number[]
  /** Queued: after which request a consumer batch holding it crashed (Queues delivers it again, unordered, with nothing recorded). */
  requeued?: number[]
}

export interface Ending {
  /** Segment's answers for each messageId, in order. */
  answers: Map<string, { status: string; message: string }[]>
  /** Segment's last answer for each messageId. */
  lastAnswer: Map<string, { status: string; message: string }>
  /** dead_letters rows by messageId (count, reasons). */
  deadLetters: Map<string, string[]>
  /** messageIds the sweep logged as expired. */
  expired: Set<string>
  /** messageIds still parked just before the sweep that expires them. */
  parkedBeforeExpiry: string[]
  parkedAfter: number
  /** messageIds a consumer's log line listed as rejected. */
  loggedRejected: Set<string>
  /** messageIds that were dead letters when a redrive ran. */
  redriven: Set<string>
  /** Journey entries (Autopilot) or activities (Ortto) per mapped event name. */
  entries: Map<string, number>
  /** Entries made by invocations that crashed before recording them (may be made again). */
  enteredBeforeCrash: Map<string, number>
  /** messageIds of invocations whose write and its fallback both failed: nothing recorded them then (a documented residual). */
  unrecorded: Set<string>
  /** The person the destination holds for this email and userId (Autopilot finds people by email, Ortto by userId). */
  person: (email: string, userId: string) => { first?: unknown; last?: unknown } | undefined
  /** Ortto: the person is there, archived (a delete stopped between its archive and its delete call). */
  archived: (email: string, userId: string) => boolean
}

export interface Violation {
  what: string
  /** The known defect (issue 36) whose signature this is, if any. */
  defect?: number
}

type Class = 'delivered' | 'rejected' | 'dead-lettered' | 'expired'

export function check(sent: Sent[], emailOf: number[], ending: Ending, destination: Destination, mode: Mode): Violation[] {
  const violations: Violation[] = []
  const fail = (what: string, defect?: number) => violations.push({ what, ...(defect !== undefined && { defect }) })
  const time = (s: Sent) => timeOf(s.spec, s.seq)

  // Every event ends somewhere, with a reason when it did not go through.
  const classOf = new Map<Sent, Class>()
  for (const s of sent) {
    const letters = ending.deadLetters.get(s.messageId)
    const answer = ending.lastAnswer.get(s.messageId)
    let c: Class = 'delivered'
    if (letters?.length) c = 'dead-lettered'
    else if (ending.expired.has(s.messageId)) c = 'expired'
    else if (answer?.status === 'rejected') c = 'rejected'
    classOf.set(s, c)
    if (letters && letters.length > 1) fail(`${s.messageId}: ${letters.length} dead letters for one event`, 8)
    if (letters?.some((reason) => !reason)) fail(`${s.messageId}: a dead letter without a reason`)
    if (c === 'rejected' && !answer?.message) fail(`${s.messageId}: rejected without a reason`)
    if (answer?.status === 'retry' || answer?.status === 'retry-batch') fail(`${s.messageId}: still answered retry after the faults stopped`)
  }
  for (const id of ending.parkedBeforeExpiry) if (!ending.expired.has(id)) fail(`${id}: parked event removed by the expiry sweep without its log line`, 8)
  if (ending.parkedAfter) fail(`${ending.parkedAfter} parked events left after the expiry sweep`)

  const sure = (s: Sent) => classOf.get(s) === 'delivered'
  const ownersOf = (email: number) => [...emailOf.keys()].filter((u) => emailOf[u] === email)
  const of = (kind: Spec['kind'], users: number[]) => sent.filter((s) => s.spec.kind === kind && users.includes(s.spec.user))
  /** Whether the Worker must have tied the user's userId (or, `byAlias`, its anonymous id) to its email: an event that carried it was delivered. */
  // Queued mode answers a track that maps to nothing at once, without queuing it: it teaches no email (docs/state.md).
  const teaches = (s: Sent) => !(mode === 'queued' && s.spec.kind === 'track' && s.spec.name === UNMAPPED)
  const directBy = (counts: (s: Sent) => boolean) => (u: number, byAlias: boolean) =>
    sent.some((s) => counts(s) && s.spec.user === u && teaches(s) && (s.spec.kind === 'track' ? s.spec.withEmail && s.spec.byAlias === byAlias : !byAlias && s.spec.kind === 'identify'))
  const linkedBy =
    (counts: (s: Sent) => boolean) =>
    (u: number, byAlias: boolean): boolean =>
      directBy(counts)(u, byAlias) || (of('alias', [u]).some(counts) && directBy(counts)(u, !byAlias))
  const linked = linkedBy(sure)
  /** Whether it may have: such an event reached it at all (its content teaches the email even when its own call was refused). */
  const mayHaveLinked = linkedBy((s) => s.arrivals.length > 0)

  /** Answered retry before anything was recorded: for want of its store (docs/state.md, Newest wins), or refused by the queue (queued mode). */
  const traceless = (message: string) => message.includes('the identity store is unavailable') || message.includes('The queue did not accept the events')
  /**
   * Answered retry itself, in a way that left a trace (a guard): not one that recorded nothing
   * (`traceless`), and not only as part of a batch answered 503 for another event (a batch lists
   * each event answered retry: an unlisted one went through).
   */
  const failed = (s: Sent) => (ending.answers.get(s.messageId) ?? []).some((a) => a.status === 'retry' && !traceless(a.message))
  const first = (s: Sent) => Math.min(...s.arrivals)
  /** The sending at which the Worker first took it (an answer that was not retry); the last sending where a crash hid the answers. */
  const settled = (s: Sent) => {
    const answers = ending.answers.get(s.messageId) ?? []
    const at = answers.findIndex((a) => !a.status.startsWith('retry'))
    return answers.length === s.arrivals.length && at >= 0 ? s.arrivals[at] : Math.max(...s.arrivals)
  }

  /** The sending at which the Worker first recorded something of it (not a `traceless` retry); the last sending where a crash hid the answers. */
  const recorded = (s: Sent) => {
    const answers = ending.answers.get(s.messageId) ?? []
    if (answers.length !== s.arrivals.length) return Math.max(...s.arrivals)
    const at = answers.findIndex((a) => !traceless(a.message))
    return at >= 0 ? s.arrivals[at] : Infinity
  }

  // Nothing parked expires once its id's email could be known.
  for (const s of sent) {
    if (classOf.get(s) !== 'expired' || s.spec.kind !== 'track') continue
    const byAlias = s.spec.byAlias
    const deletes = of('delete', [s.spec.user]).filter(sure)
    const lastDelete = Math.max(-Infinity, ...deletes.map(time))
    // Older than a delete of its user (tied by an alias too): it went with that delete.
    if (time(s) <= lastDelete) continue
    const taught = sent.find((o) => sure(o) && o.spec.user === s.spec.user && o.spec.kind === 'identify' && time(o) > lastDelete)
    const aliased = of('alias', [s.spec.user]).some(sure)
    // The documented late delete (applied in arrival order after that identify, which did not fail) forgot the email it taught.
    if (taught && deletes.some((d) => time(d) < time(taught) && recorded(d) > first(taught) && !failed(taught))) continue
    if (!byAlias && taught) fail(`${s.messageId}: expired though ${taught.messageId} taught its userId's email`, deletes.length ? 5 : undefined)
    else if (byAlias && aliased && taught) fail(`${s.messageId}: expired though an alias tied its id to a userId with an email`, 7)
  }

  // Journey entries: each delivered track once; one that may have gone through, at most once.
  for (const name of MAPPED) {
    const tracks = sent.filter((s) => s.spec.kind === 'track' && s.spec.name === name)
    const superseded = (s: Sent) => ownersOf(emailOf[s.spec.user]).some((u) => of('delete', [u]).some((d) => time(d) > time(s)))
    // Autopilot finds people by email: a userId-only track waits (parked) for its id's email.
    const deliverable = (s: Sent) => destination === 'ortto' || (s.spec.kind === 'track' && s.spec.withEmail) || linked(s.spec.user, s.spec.kind === 'track' && s.spec.byAlias)
    for (const s of tracks) {
      if (!sure(s) || superseded(s) || deliverable(s) || mayHaveLinked(s.spec.user, s.spec.kind === 'track' && s.spec.byAlias)) continue
      // Never deliverable: it must have ended parked and expired (logged), not vanished.
      const olderDelete = of('delete', [s.spec.user]).some((d) => time(d) < time(s))
      fail(`${s.messageId}: its id's email was never known, yet it was neither delivered nor expired and logged`, olderDelete ? 11 : undefined)
    }
    const required = tracks.filter((s) => sure(s) && !superseded(s) && deliverable(s)).length
    const actual = ending.entries.get(name) ?? 0
    const lostRejected = tracks.some((s) => mode === 'queued' && ending.loggedRejected.has(s.messageId) && !ending.deadLetters.has(s.messageId))
    // Defect 11's signature: a track newer than a delete of its user (the delete dropped it while parked).
    const droppedByDelete = tracks.some((s) => of('delete', [s.spec.user]).some((d) => time(d) < time(s)))
    if (actual < required) fail(`${name}: ${actual} journey entries, ${required} tracks delivered`, lostRejected ? 1 : droppedByDelete ? 11 : undefined)
    const residual = ending.enteredBeforeCrash.get(name) ?? 0
    if (actual > tracks.length + residual) fail(`${name}: ${actual} journey entries for ${tracks.length} tracks (one entered twice)`, mode === 'queued' ? 9 : undefined)
  }

  // People: the newest value of each field; deleted stays deleted unless a newer event made them again.
  for (const email of new Set(emailOf)) {
    const owners = ownersOf(email)
    // A delete names a userId: it reaches this person only once the Worker has tied that userId to
    // the email (an identify, a track carrying both, or an alias) — taken no later than the delete's
    // last sending; else there is no one to delete (a tie that comes later does not reach back).
    // An earlier delete of the userId, taken before this one, forgot every tie no newer than itself (docs/state.md).
    const forgotten = (s: Sent, d: Sent) => of('delete', [d.spec.user]).some((e) => e !== d && sure(e) && time(s) <= time(e) && time(e) < time(d) && settled(e) <= Math.max(...d.arrivals))
    const reaching = of('delete', owners).filter((d) => linkedBy((s) => sure(s) && settled(s) <= Math.max(...d.arrivals) && !forgotten(s, d))(d.spec.user, false))
    // Every delete of the userId still refuses its older events (its tombstone is on the userId).
    const deletes = of('delete', owners)
    // Two userIds share this person: a delete by one is not knowable from the other's events (Ortto also keys people by userId).
    if (owners.length > 1 && (deletes.length || destination === 'ortto')) continue
    // Ortto keys people by userId: a track from the anonymous id carrying the same email is a second
    // external id for one email, which Ortto itself resolves (not the Worker): not judged here.
    if (destination === 'ortto' && sent.some((s) => s.spec.kind === 'track' && s.spec.byAlias && s.spec.withEmail && owners.includes(s.spec.user))) continue
    const identifies = of('identify', owners)
    const lastDelete = Math.max(-Infinity, ...deletes.filter(sure).map(time))
    const newer = (s: Sent) => time(s) > lastDelete
    const later = identifies.filter(newer)
    const newest = later.filter(sure).sort((a, b) => time(b) - time(a))[0]
    const found = ending.person(emailAt(email), userId(owners[0]))
    const redrove = identifies.some((s) => ending.redriven.has(s.messageId))
    const staleDefect = redrove ? 6 : mode === 'queued' ? 9 : undefined
    if (!newest) {
      // (A track by the anonymous id is refused by the deletes that reached the person, not by the userId's tombstone.)
      const lastReaching = Math.max(-Infinity, ...reaching.filter(sure).map(time))
      const remade = later.length || sent.some((s) => s.spec.kind === 'track' && owners.includes(s.spec.user) && (newer(s) || (s.spec.byAlias && time(s) > lastReaching)))
      // Defect 10's signature: an identify of a deleted userId was answered retry (or its request crashed).
      const unrecorded = identifies.some((s) => (ending.answers.get(s.messageId) ?? []).some((a) => a.status.startsWith('retry')) || s.arrivals.length > (ending.answers.get(s.messageId)?.length ?? 0))
      if (reaching.some(sure) && !remade && found) fail(`${emailAt(email)}: deleted, yet the destination holds it`, unrecorded ? 10 : staleDefect)
      continue
    }
    const deletedAfter = deletes.some((d) => !sure(d) && time(d) > time(newest))
    if (deletedAfter) continue
    // The same documented residual for a delete: older than the newest identify, but first sent
    // after it, the newer one not answered retry (nothing recorded it), it applies in arrival order.
    // (Its sendings that crashed or found no store left no trace: it counts from the first that did.)
    // (Its own failure changes nothing: the guard it leaves stamps only what is delivered after it.)
    const lateDelete = deletes.some((d) => sure(d) && time(d) < time(newest) && recorded(d) > first(newest) && !failed(newest))
    if (!found && lateDelete) continue
    // Documented residual (docs/state.md): Ortto refused a delete after archiving the person; what
    // a newer merge does to an archived person is not documented (the stand-in keeps it archived).
    const halfDeleted = destination === 'ortto' && ending.archived(emailAt(email), userId(owners[0])) && deletes.some((d) => classOf.get(d) === 'rejected' || classOf.get(d) === 'dead-lettered')
    if (!found && halfDeleted) continue
    // Documented residual (docs/state.md, Newest wins: two D1 failures in one invocation): the newest
    // identify's write and its fallback both failed, so its retry's delete found nothing that
    // recorded it — and where that write landed after all (D1 applied it after the Worker stopped
    // waiting), it counts the identify done, and a retry that deleted again does not remake them.
    if (!found && ending.unrecorded.has(newest.messageId)) continue
    if (!found) {
      fail(`${emailAt(email)}: ${newest.messageId} made it after the last delete, yet the destination holds no such person`, deletes.length ? 5 : undefined)
      continue
    }
    for (const [field, value] of [
      ['first', found.first],
      ['last', found.last],
    ] as const) {
      // Documented residual (docs/state.md, Newest wins): events that reach the Worker out of
      // order in separate requests, with nothing failing before, apply in arrival order. So an
      // older identify that Segment sent after the newest first arrived may hold the field;
      // one the Worker itself delivers again (a queue retry, a redrive, a replay) may not.
      // (Queued: a consumer that crashed recorded nothing; Queues delivers its messages again, unordered,
      // as Segment re-sends a request that died in direct mode: docs/state.md.)
      const arrivedAfter = (s: Sent) => [...s.arrivals, ...(s.requeued ?? [])].some((a) => a > Math.min(...newest.arrivals))
      // The residual holds across a delete that was not sent (newer events had made the person
      // again): an identify older than it, first sent after the newest and before the delete, with
      // neither failing, was applied in arrival order, and the delete did not undo it. (Its own
      // failure changes nothing when it first came after the newest was delivered: no guard had stamped that.)
      // (From the sending at which the Worker recorded the delete: one answered retry for want of its
      // store recorded nothing, not even the guard that stamps newer events.)
      const deletedSince = (s: Sent) => Math.min(...deletes.filter((d) => sure(d) && time(d) > time(s)).map(recorded))
      const olderApplied = identifies.filter((s) => !later.includes(s) && arrivedAfter(s) && first(s) < deletedSince(s) && (!failed(s) || first(s) > settled(newest)) && !failed(newest))
      const allowed = [...later.filter((s) => s === newest || (!sure(s) && time(s) > time(newest)) || arrivedAfter(s)), ...olderApplied].map((s) => (s.spec as { first: string; last: string })[field])
      // Defect 5's signature: a delete older than the newest identify wiped what it set.
      const wiped = value === undefined && deletes.some((d) => time(d) < time(newest)) ? 5 : staleDefect
      // Applied in arrival order, that late delete may have left only a person a newer track made again, bare.
      if (lateDelete) allowed.push(undefined as unknown as string)
      if (!allowed.includes(value as string)) fail(`${emailAt(email)}: ${field} is ${JSON.stringify(value)}, the newest is ${JSON.stringify(allowed[0])} (${newest.messageId})`, wiped)
    }
  }
  return violations
}
