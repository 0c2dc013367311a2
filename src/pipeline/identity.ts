// Identity: destinations key people by email (Autopilot has no external id; Ortto's is
// not enough to find a person Segment knows only by email), while Segment often sends
// only a userId. The store remembers userId -> email (newest wins) and parks
// events whose email is not known yet. This module decides, for a batch, what each
// event becomes; it reads a snapshot the pipeline loaded in one query and does no I/O.
import { Memo } from '../cache'
import { sha256Hex } from './sha256'
import type { SegmentEvent } from '../segment/schema'
import type { Snapshot } from '../store/store'
import { eventEmail, memberEmailOf, newEmailIn, normalEmail } from '../segment/traits'

export const PARK_DAYS = 7
export const MAX_PARKED_PER_USER = 100

/** An id's email and when the event that tied them happened (Segment time). */
export interface Taught {
  email: string
  at: number
}

/** One event to deliver: from Segment, a queue message, or a parked row being replayed. */
export interface Item {
  event: SegmentEvent
  /** When it reached the Worker (ms): the tie-breaker after Segment's timestamp. */
  at: number
  /** Queued mode: attempts before this one. */
  attempts?: number
  /** A parked event being replayed, the email it now resolves to, and when its id learned that email (an alias passes that time on). */
  parked?: { id: number; email: string; taughtAt: number }
  /** Replayed because an alias taught its userId the email (pipeline.ts): no further such round. */
  aliasFollowUp?: boolean
}

/** Segment's `timestamp` (when it happened), else when it arrived. */
export function eventTime(item: Item): number {
  const stamp = (item.event as { timestamp?: unknown }).timestamp
  const time = typeof stamp === 'string' ? Date.parse(stamp) : NaN
  return Number.isFinite(time) ? time : item.at
}

/** Digests done (hex), per isolate: active users' ids and emails recur. */
const done = new Memo<string, string>(20_000)

/** SHA-256, hex. */
export const hashOf = async (text: string): Promise<string> => hashNow(text)

function hashNow(text: string): string {
  let hex = done.get(text)
  if (hex === undefined) done.put(text, (hex = sha256Hex(text)))
  return hex
}

/** The text's hash from `hashes`, added there if missing. */
export function hashIn(hashes: Map<string, string>, text: string): string {
  let hex = hashes.get(text)
  if (hex === undefined) hashes.set(text, (hex = hashNow(text)))
  return hex
}

/** What identity resolution decided for one item. */
export type Resolved =
  | { kind: 'deliver'; event: SegmentEvent; email?: string }
  | { kind: 'delete'; email?: string; userHash?: string; at: number }
  /** Waits for the userId's email; an alias waits under both its ids (`alias`: the other one's hash). */
  | { kind: 'park'; userHash: string; alias?: string }
  | { kind: 'parking-full' }
  | { kind: 'noted'; message: string }
  | { kind: 'deleted' }
  /** Needs the store, which did not answer. */
  | { kind: 'unavailable' }

export interface Resolution {
  resolved: Resolved[]
  /** Each item's eventTime. */
  times: number[]
  /** userId -> email to record (newest wins; only where it changed). */
  toRecord: Map<string, { email: string; at: number }>
  /** Users whose parked events are replayed, before the item at `before`, with this email (taught at `at`). */
  replays: Map<string, { email: string; before: number; at: number }>
}

/** What a batch reads by: each event's own email (normalised), and the hashes and keys the store is read with. */
export interface BatchKeys {
  /** Each item's own email (identify, track), normalised: computed once per event. */
  own: (string | undefined)[]
  /** userIds (and alias previousIds) and emails -> their hashes. */
  hashes: Map<string, string>
  users: Set<string>
  emails: Set<string>
  messages: Set<string>
}

/** A person's key where the destination finds people by Segment's userId. */
export const userKey = (userId: string) => `user:${userId}`
/** A group's key ("newest wins" for what a `group` sets on the group itself, where the destination keeps groups). */
export const groupKey = (groupId: string) => `group:${groupId}`

/** The email an event carries for its person: identify and track where Segment puts it; a group only in context.traits (its traits are the group's). */
function ownEmail(event: SegmentEvent): string | undefined {
  if (event.type === 'identify' || event.type === 'track') return eventEmail(event)
  return event.type === 'group' ? memberEmailOf(event).email : undefined
}

/**
 * The hashes a batch needs: userIds (and alias previousIds) and the emails events carry; with
 * `byUserId` (the destination finds people by userId) also each userId's person key.
 */
export function keysOf(items: readonly Item[], byUserId = false): BatchKeys {
  const own: (string | undefined)[] = new Array(items.length)
  const hashes = new Map<string, string>()
  const users = new Set<string>()
  const emails = new Set<string>()
  const messages = new Set<string>()
  for (let i = 0; i < items.length; i++) {
    const { event, parked } = items[i]
    const { type, userId, messageId } = event
    const found = ownEmail(event)
    const email = found === undefined ? undefined : normalEmail(found)
    own[i] = email
    if (userId) users.add(hashIn(hashes, userId))
    if (userId && byUserId) emails.add(hashIn(hashes, userKey(userId)))
    if (type === 'alias' && event.previousId) users.add(hashIn(hashes, event.previousId))
    const carried = parked ? normalEmail(parked.email) : email
    if (carried) emails.add(hashIn(hashes, carried))
    const groupId = type === 'group' ? (event as { groupId?: unknown }).groupId : undefined
    if (typeof groupId === 'string' && groupId) emails.add(hashIn(hashes, groupKey(groupId)))
    if (messageId && type !== 'page' && type !== 'screen') messages.add(messageId)
  }
  return { own, hashes, users, emails, messages }
}

/**
 * Resolves a batch, in order. An email the batch itself teaches counts for every event
 * of that userId in it; the newest event (by Segment timestamp, then arrival) decides a
 * userId's email. A user with parked events gets them replayed, oldest first, just
 * before the first event that brings the email.
 */
export function resolve(
  items: readonly Item[],
  snapshot: Snapshot,
  { hashes, own: owns }: BatchKeys,
  storeDown: boolean,
  byUserId = false,
  /** Why the mapping would skip this event whatever its email (then it is not parked), if it would. */
  skips?: (event: SegmentEvent) => string | undefined,
): Resolution {
  const hash = (text: string) => hashes.get(text)!
  const times = items.map(eventTime)
  const inBatch = new Map<string, { email: string; at: number }>()
  const emailFromBatch = (userId: string, email: string, at: number) => {
    const known = inBatch.get(userId)
    if (!known || at >= known.at) inBatch.set(userId, { email, at })
  }
  for (let i = 0; i < items.length; i++) {
    const { event } = items[i]
    const own = owns[i]
    if (event.userId && own) emailFromBatch(event.userId, (event.type === 'identify' && newEmailIn(event.traits)) || own, times[i])
  }

  // A userId this batch deletes: an email newer than the delete is recorded even if unchanged, so the delete keeps it.
  const deleting = new Set(items.flatMap(({ event }) => (event.type === 'delete' && event.userId ? [event.userId] : [])))
  const toRecord: Resolution['toRecord'] = new Map()
  const replays: Resolution['replays'] = new Map()
  const parkedInBatch = new Map<string, number>()
  const known = (userId: string) => inBatch.get(userId)?.email ?? snapshot.identities.get(hash(userId))?.email ?? undefined
  /** When the event that tied this id to its email happened: an alias passes that time on (it makes no one). */
  const taughtAt = (userId: string, otherwise: number) => inBatch.get(userId)?.at ?? snapshot.identities.get(hash(userId))?.taughtAt ?? otherwise
  // An alias in the batch ties its ids for every event of the batch, before it or after it (a delete
  // of the userId then finds the email an event of the previousId carried).
  for (let i = 0; i < items.length; i++) {
    const { event } = items[i]
    if (event.type !== 'alias' || !event.userId || !event.previousId) continue
    const source = [event.userId, event.previousId].find((id) => known(id))
    if (source) for (const id of [event.userId, event.previousId]) if (!known(id)) emailFromBatch(id, known(source)!, taughtAt(source, times[i]))
  }
  const record = (userId: string, email: string, at: number) => {
    const h = hash(userId)
    const stored = snapshot.identities.get(h)
    if (stored && (stored.taughtAt > at || (stored.deletedAt ?? -1) >= at)) return
    if (stored?.email === email && !toRecord.has(h) && !deleting.has(userId)) return
    const pending = toRecord.get(h)
    if (!pending || at >= pending.at) toRecord.set(h, { email, at })
  }
  const replayBefore = (userId: string, email: string, before: number, at: number) => {
    const h = hash(userId)
    if ((snapshot.parkedCounts.get(h) ?? 0) > 0 && !replays.has(h)) replays.set(h, { email, before, at })
  }

  const resolved = items.map((item, i): Resolved => {
    const { event } = item
    const at = times[i]
    const { userId } = event
    const identity = userId ? snapshot.identities.get(hash(userId)) : undefined
    // (An alias only ties ids: `record` keeps a delete's tombstone, and what its ties replay is checked on its own; found by the simulation.)
    if (identity?.deletedAt != null && at <= identity.deletedAt && event.type !== 'alias') {
      // Older than the userId's delete, yet it carries an email that delete never reached (no email
      // was known for the userId then: this event's first attempt made the person, but its write
      // failed): the delete goes now, to this email, at the delete's time.
      const own = event.type === 'identify' || event.type === 'track' ? owns[i] : undefined
      const reached = own ? (snapshot.contacts.get(hash(own))?.deletedAt ?? -Infinity) >= identity.deletedAt : true
      if (own && !reached && !storeDown) return { kind: 'delete', email: own, userHash: hash(userId!), at: identity.deletedAt }
      return { kind: 'deleted' }
    }
    if (item.parked) {
      const { email, taughtAt } = item.parked
      return carriedDelete(event, { email, at: taughtAt }, snapshot, hashes) ?? { kind: 'deliver', event, email }
    }

    switch (event.type) {
      case 'identify':
      case 'track':
      case 'group': {
        const own = owns[i]
        // Without the read, a delete's tombstone and newer events' stamps are unknown: nothing goes
        // (an older identify delivered then would make a deleted person again; found by the simulation).
        if (storeDown) return { kind: 'unavailable' }
        if (!userId) return { kind: 'deliver', event }
        const email = own ?? known(userId)
        // The destination finds the person by the userId: nothing waits for an email.
        if (!email && byUserId) return { kind: 'deliver', event }
        if (!email) {
          const skip = skips?.(event)
          if (skip) return { kind: 'noted', message: skip }
          const h = hash(userId)
          const waiting = (snapshot.parkedCounts.get(h) ?? 0) + (parkedInBatch.get(h) ?? 0)
          if (waiting >= MAX_PARKED_PER_USER) return { kind: 'parking-full' }
          parkedInBatch.set(h, (parkedInBatch.get(h) ?? 0) + 1)
          return { kind: 'park', userHash: h }
        }
        if (!storeDown) replayBefore(userId, inBatch.get(userId)?.email ?? email, i, taughtAt(userId, at))
        if (own) record(userId, inBatch.get(userId)?.email ?? own, inBatch.get(userId)?.at ?? at)
        return { kind: 'deliver', event, email }
      }
      case 'alias': {
        if (storeDown) return { kind: 'unavailable' }
        const ids = [userId, event.previousId].filter((id): id is string => Boolean(id))
        const email = ids.map(known).find(Boolean)
        if (!email) {
          // Nothing waits for an email where the destination finds people by userId.
          if (byUserId || !ids.length) return { kind: 'noted', message: 'alias noted: no email is known for either id yet' }
          // Kept until either id's email is known: then both ids resolve to it, and what waits under the other is replayed.
          const [first, other] = ids.map(hash)
          const waiting = (snapshot.parkedCounts.get(first) ?? 0) + (parkedInBatch.get(first) ?? 0)
          if (waiting >= MAX_PARKED_PER_USER) return { kind: 'parking-full' }
          parkedInBatch.set(first, (parkedInBatch.get(first) ?? 0) + 1)
          return { kind: 'park', userHash: first, ...(other && other !== first && { alias: other }) }
        }
        // Recorded at the time the email was taught to the id that had it: a delete newer than that
        // still finds the person (an alias made no one again; found by the simulation).
        const since = taughtAt(
          ids.find((id) => known(id) === email)!,
          at,
        )
        for (const id of ids) {
          replayBefore(id, email, i, since)
          record(id, email, since)
        }
        return carriedDelete(event, { email, at: since }, snapshot, hashes) ?? { kind: 'noted', message: 'alias recorded: both ids now resolve to the same contact' }
      }
      case 'delete': {
        if (storeDown) return { kind: 'unavailable' }
        // The email the userId had at the delete's time: one this batch teaches only after it is a person made anew.
        const later = Boolean(userId) && (inBatch.get(userId!)?.at ?? -Infinity) > at
        const email = userId ? (later ? (snapshot.identities.get(hash(userId))?.email ?? undefined) : known(userId)) : undefined
        return { kind: 'delete', email, userHash: userId ? hash(userId) : undefined, at }
      }
      default:
        return { kind: 'deliver', event }
    }
  })
  return { resolved, times, toRecord, replays }
}

/**
 * An alias tying an id deleted since its email was taught (that delete found no email then) to
 * that email: the alias carries the delete there, at the delete's time — live, replayed by a run
 * that read the deleted id, or replayed from its row under the deleted id by the follow-up run,
 * which reads both ids (found by the simulation).
 */
export function carriedDelete(event: SegmentEvent, taught: Taught, snapshot: Snapshot, hashes: Map<string, string>): Resolved | undefined {
  if (event.type !== 'alias') return undefined
  const ids = [event.userId, event.previousId].filter((id): id is string => Boolean(id))
  const deleted = ids.map((id) => ({ userHash: hashIn(hashes, id), at: snapshot.identities.get(hashIn(hashes, id))?.deletedAt ?? -Infinity })).find(({ at }) => at >= taught.at)
  if (!deleted || (snapshot.contacts.get(hashIn(hashes, taught.email))?.deletedAt ?? -Infinity) >= deleted.at) return undefined
  return { kind: 'delete', email: taught.email, userHash: deleted.userHash, at: deleted.at }
}

/** The same event, carrying the email (where the mapping reads it). */
export function withEmail(event: SegmentEvent, email: string): SegmentEvent {
  if (event.type === 'identify') return { ...event, traits: { ...event.traits, email } }
  if (event.type === 'track') return { ...event, context: { ...event.context, traits: { ...event.context?.traits, email } } }
  return event
}
