// What one entry needs, decided from what the run read: an outcome now (parked, skipped, already
// done, refused), or an operation for the destination — and, for a journey entry, a claim in the
// ledger before any call. Pure but for the holds it lists.
import type { Entry } from './conclude'
import { entered } from './conclude'
import { withoutNewer } from './guards'
import { hashIn, MAX_PARKED_PER_USER, userKey } from './identity'
import { deferred, delivered, rejected, retry, skipped, type Outcome } from './outcome'
import type { DeliveryRun } from './run'
import { OTHER_ROW, type Snapshot } from '../store/store'
import { emailOf, normalEmail } from '../segment/traits'
import { toOperation } from '../transform'

const DELETED = 'not sent: this person was deleted (a Segment delete) after this event happened'

/** What the run read, as planning needs it. */
export interface Known {
  snapshot: Snapshot
  hashes: Map<string, string>
  /** The store did not answer the read: nothing that needs it may go ahead. */
  storeDown: boolean
  /** The destination's account (its fields, its activities), as the mapping reads it. */
  account: unknown
  now: number
  /** Each person key (or email) a delete in this batch names, and that delete's time: the batch's older events of it are refused. */
  deletedInBatch?: Map<string, number>
}

/** What must be held in D1 before any call: events to park, journey entries to claim. */
export interface Holds {
  /** `messageId`: the row's own, where one event is parked twice (an alias, under each id). */
  park: { entry: Entry; userHash: string; messageId?: string }[]
  claims: Entry[]
}

/** An outcome now, or undefined with `entry.op` set (and a hold listed) for later. */
export function plan(entry: Entry, known: Known, holds: Holds, run: DeliveryRun): Outcome | undefined {
  const { destination } = run.config
  const { people } = destination
  const { snapshot, hashes } = known
  const { resolved } = entry
  switch (resolved.kind) {
    case 'park': {
      holds.park.push({ entry, userHash: resolved.userHash })
      const { messageId } = entry.item.event
      if (resolved.alias) holds.park.push({ entry, userHash: resolved.alias, ...(messageId && { messageId: `${messageId}${OTHER_ROW}` }) })
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
      // The delete's own time (an older event that carries it late stands in for it).
      entry.at = resolved.at
      // Found by its userId where the destination can (Ortto's external id), else by the email it resolves to.
      const key = destination.keysByUserId && userId ? userKey(userId) : resolved.email
      if (!key) {
        const dropped = resolved.userHash ? (snapshot.parkedCounts.get(resolved.userHash) ?? 0) : 0
        return skipped(
          `No email is known for this userId, so there is no ${destination.label} person to delete${dropped ? `; its parked events older than the delete are dropped (${dropped} parked)` : ''}`,
        )
      }
      entry.emailHash = hashIn(hashes, key)
      // Newest wins for a delete too: retried or re-sent after newer events made the person again, it is not sent.
      // (So is a late one whose userId an event newer than it taught an email: the userId's person was
      // made again. Not so a delete carried to one email — by an alias, by an event of it — which
      // only that email, or the person found by the userId itself, taught again remakes.)
      const identity = resolved.userHash ? snapshot.identities.get(resolved.userHash) : undefined
      const byItself = key !== resolved.email && Boolean(userId) && hashIn(hashes, userId!) === resolved.userHash
      const taughtAt = identity && (entry.item.event.type === 'delete' || identity.email === resolved.email || byItself) ? identity.taughtAt : -Infinity
      const remadeAt = Math.max(taughtAt, newestStamp(snapshot, [entry.emailHash, ...(resolved.email && resolved.email !== key ? [hashIn(hashes, resolved.email)] : [])]))
      if (remadeAt > entry.at) {
        // The email stays known to the userId — unless the userId was taught another since the delete.
        if (!(identity?.email && identity.email !== resolved.email && identity.taughtAt > entry.at)) entry.remadeAt = remadeAt
        return skipped('not sent: newer events made this person again after this delete happened (events older than it stay refused)')
      }
      entry.op = { kind: 'delete', key, ...(resolved.email && { email: resolved.email }), ...(destination.keysByUserId && userId && { userId }) }
      return undefined
    }
    case 'deliver':
      break
  }
  const { state } = entry
  if (state?.state === 'done') return delivered('already delivered by an earlier attempt; not repeated')
  if (state?.state === 'rejected') return rejected(state.reason)
  let op = toOperation(destination, resolved.event, known.account, resolved.email)
  if (op.kind === 'retry') return retry(op.message)
  if (op.kind !== 'upsert' && op.kind !== 'enter') {
    entry.op = op
    return undefined
  }
  // Newest wins: fields a newer event already set are not sent again; a deleted person stays deleted.
  entry.emailHash = hashIn(hashes, people.key(op.person))
  const guard = snapshot.contacts.get(entry.emailHash)
  if (guard?.deletedAt != null && entry.at <= guard.deletedAt) return skipped(DELETED)
  // Keyed by userId (Ortto), it carries an email a delete by another userId marked: it stays deleted too.
  const email = people.email(op.person)
  const byEmail = email && normalEmail(email) !== people.key(op.person) ? snapshot.contacts.get(hashIn(hashes, normalEmail(email))) : undefined
  if (byEmail?.deletedAt != null && entry.at <= byEmail.deletedAt) return skipped(DELETED)
  // A delete later in time, in this same batch: its tombstone is not written yet, but it refuses this event as it would a re-send.
  // (By its key, or by its email: a delete by userId finds the person by the email too.)
  const deletedLater = Math.max(known.deletedInBatch?.get(people.key(op.person)) ?? -Infinity, email ? (known.deletedInBatch?.get(normalEmail(email)) ?? -Infinity) : -Infinity)
  if (entry.at <= deletedLater) return skipped(DELETED)
  if (guard) {
    const { person, dropped } = withoutNewer(people, op.person, guard, entry.at)
    if (dropped) op = { ...op, person }
    if (op.kind === 'upsert' && dropped && people.bare(person)) return delivered('not sent: newer events already set every field it carries')
    if (op.kind === 'enter') op = { ...op, setFirst: op.setFirst && !people.bare(person) }
  }
  entry.op = op
  if (op.kind !== 'enter') return undefined
  // A journey entry: once per messageId, claimed in the ledger before the call.
  const messageId = resolved.event.messageId
  if (!messageId) return undefined
  if (known.storeDown) return retry('the journey ledger is unavailable; will retry')
  if (entered.has(messageId)) return delivered(`already entered ${destination.journeyNoun} ${op.journey}; not repeated`)
  if (state?.state === 'claimed' && state.leaseUntil >= known.now) return retry('another attempt is entering this journey now; will retry')
  entry.claim = messageId
  holds.claims.push(entry)
  return undefined
}

/** The newest time a delivered event set a field of these people (their guards), or -Infinity. */
function newestStamp(snapshot: Snapshot, emailHashes: string[]): number {
  let newest = -Infinity
  for (const hash of emailHashes) for (const at of Object.values(snapshot.contacts.get(hash)?.fields ?? {})) newest = Math.max(newest, at)
  return newest
}
