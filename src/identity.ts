// Identity: Autopilot keys contacts by email and has no external id, while Segment
// often sends only a userId. The IDENTITIES KV namespace remembers userId -> email;
// events whose email is not known yet are parked until it is.
//
//   user:<h>                 -> email                  (no expiry; removed by a Segment delete)
//   park:<h>:<time>:<uuid>   -> the event (JSON)        metadata {parkedAt, type, messageId}
//
// <h> is the SHA-256 of the userId, so keys have a fixed length and carry no ids.
import type { SegmentEvent } from './schema'
import { eventEmail, newEmailIn } from './transform'

export const PARK_DAYS = 7
const DAY_MS = 24 * 3600 * 1000
/** KV removes a parked event a day after the sweep should have logged and dropped it. */
const PARK_TTL_SECONDS = (PARK_DAYS + 1) * 24 * 3600
export const MAX_PARKED_PER_USER = 100

export interface ParkedMeta {
  parkedAt: number
  type: string
  messageId?: string
}
export interface Parked {
  key: string
  event: SegmentEvent
}

const encoder = new TextEncoder()
async function hashOf(userId: string): Promise<string> {
  const digest = await crypto.subtle.digest('SHA-256', encoder.encode(userId))
  return [...new Uint8Array(digest)].map((b) => b.toString(16).padStart(2, '0')).join('')
}

/**
 * What this isolate read or wrote lately, per namespace, so an active user's events
 * skip the KV read. To resolve a userId-only event an entry is trusted for 60 s —
 * as long as KV's own edge cache keeps a read, so no staleness KV does not already
 * have. An event that carries its email needs the map only to see whether it is new
 * or changed (to record it, and to replay parked events the first time): for that an
 * entry is trusted for 10 minutes; a parked event this misses is replayed by the sweep.
 */
const RESOLVE_MS = 60_000
const TEACH_MS = 600_000
const RECENT_MAX = 10_000
const recentByNamespace = new WeakMap<KVNamespace, Map<string, { email: string | null; at: number }>>()
const hashes = new Map<string, Promise<string>>()

/** userId -> email and parked events. One per request or queue batch. */
export class IdentityMap {
  /** What this request or batch knows: loaded by load(), changed by remember() and forget(). */
  private readonly known = new Map<string, string | null>()
  private readonly writes: Promise<void>[] = []
  private readonly recent: Map<string, { email: string | null; at: number }>

  constructor(readonly kv: KVNamespace) {
    let recent = recentByNamespace.get(kv)
    if (!recent) recentByNamespace.set(kv, (recent = new Map()))
    this.recent = recent
  }

  private hash(userId: string): Promise<string> {
    let hash = hashes.get(userId)
    if (!hash) {
      if (hashes.size >= RECENT_MAX) hashes.clear()
      hashes.set(userId, (hash = hashOf(userId)))
    }
    return hash
  }

  private note(userId: string, email: string | null) {
    this.known.set(userId, email)
    if (this.recent.size >= RECENT_MAX) this.recent.delete(this.recent.keys().next().value!)
    this.recent.delete(userId)
    this.recent.set(userId, { email, at: Date.now() })
  }

  /** Reads the emails of these userIds at once (KV only where the isolate's memory is too old). */
  async load(userIds: Iterable<string>, teachingOnly: ReadonlySet<string> = new Set()): Promise<void> {
    const now = Date.now()
    const reads: Promise<void>[] = []
    for (const userId of userIds) {
      if (this.known.has(userId)) continue
      const cached = this.recent.get(userId)
      if (cached && now - cached.at < (teachingOnly.has(userId) ? TEACH_MS : RESOLVE_MS)) {
        this.known.set(userId, cached.email)
        continue
      }
      this.known.set(userId, null) // until the read lands, below
      reads.push(this.hash(userId).then(async (hash) => this.note(userId, await this.kv.get(`user:${hash}`))))
    }
    await Promise.all(reads)
  }

  /** The email of a userId passed to load(). */
  emailOf(userId: string): string | undefined {
    return this.known.get(userId) ?? undefined
  }

  /** Records userId -> email, only when it changed. The write completes in flush(). */
  remember(userId: string, email: string): void {
    if (this.known.get(userId) === email) return
    this.note(userId, email)
    this.writes.push(this.hash(userId).then((hash) => this.kv.put(`user:${hash}`, email)))
  }

  /** Waits for the writes remember() started. */
  async flush(): Promise<void> {
    await Promise.all(this.writes.splice(0))
  }

  /** Forgets the userId and drops its parked events. Returns how many were dropped. */
  async forget(userId: string): Promise<number> {
    const hash = await this.hash(userId)
    const parked = await this.parkedKeys(hash)
    await Promise.all([this.kv.delete(`user:${hash}`), ...parked.map(({ name }) => this.kv.delete(name))])
    this.note(userId, null)
    return parked.length
  }

  /** Parks an event until its userId's email is known; false when the user already has too many. */
  async park(userId: string, event: SegmentEvent): Promise<boolean> {
    const hash = await this.hash(userId)
    if ((await this.parkedKeys(hash)).length >= MAX_PARKED_PER_USER) return false
    const parkedAt = Date.now()
    const metadata: ParkedMeta = { parkedAt, type: event.type, ...(event.messageId && { messageId: event.messageId }) }
    const key = `park:${hash}:${String(parkedAt).padStart(15, '0')}:${crypto.randomUUID()}`
    await this.kv.put(key, JSON.stringify(event), { expirationTtl: PARK_TTL_SECONDS, metadata })
    return true
  }

  /** The userId's parked events, oldest first. */
  async parked(userId: string): Promise<Parked[]> {
    const keys = await this.parkedKeys(await this.hash(userId))
    const events = await Promise.all(keys.map(({ name }) => this.kv.get<SegmentEvent>(name, 'json')))
    return keys.flatMap(({ name }, i) => (events[i] ? [{ key: name, event: events[i] }] : []))
  }

  async unpark(keys: readonly string[]): Promise<void> {
    await Promise.all(keys.map((key) => this.kv.delete(key)))
  }

  private async parkedKeys(hash: string) {
    const page = await this.kv.list<ParkedMeta>({ prefix: `park:${hash}:`, limit: MAX_PARKED_PER_USER })
    return page.keys
  }
}

/** The same event, carrying the email (where the mapping reads it). */
export function withEmail(event: SegmentEvent, email: string): SegmentEvent {
  if (event.type === 'identify') return { ...event, traits: { ...event.traits, email } }
  if (event.type === 'track') return { ...event, context: { ...event.context, traits: { ...event.context?.traits, email } } }
  return event
}

/** What identity resolution decided for one input event. */
export type Resolved =
  | { kind: 'deliver'; event: SegmentEvent }
  | { kind: 'delete'; userId: string; email: string }
  | { kind: 'deferred' }
  | { kind: 'parking-full' }
  | { kind: 'noted'; message: string }

export interface Resolution {
  /** Per input event (undefined where there was none: invalid input). */
  resolved: (Resolved | undefined)[]
  /** Parked events to deliver now, each placed before the input event at `before`. */
  replays: { before: number; email: string; parked: Parked }[]
  /**
   * Mappings to record once these users' replayed events are settled: until then the
   * userId stays unknown, so the next event that teaches its email replays again.
   */
  pending: Map<string, string>
}

/**
 * Resolves userIds to emails for a batch of events, in order. Emails the batch
 * itself teaches count for every event in it; an event that teaches a userId's
 * email for the first time brings that userId's parked events along, oldest first,
 * ahead of it.
 */
export async function resolveIdentities(events: readonly (SegmentEvent | undefined)[], identities: IdentityMap): Promise<Resolution> {
  // First pass: what this batch teaches (the last email seen per userId wins), and
  // which userIds need resolving rather than only recording.
  const taught = new Map<string, string>()
  const ids = new Set<string>()
  const resolving = new Set<string>()
  for (const event of events) {
    if (!event?.userId) continue
    ids.add(event.userId)
    const email = (event.type === 'identify' || event.type === 'track') && eventEmail(event)
    if (email) taught.set(event.userId, (event.type === 'identify' && newEmailIn(event.traits)) || email)
    else resolving.add(event.userId)
    if (event.type === 'alias' && event.previousId) {
      ids.add(event.previousId)
      resolving.add(event.previousId)
    }
  }
  // Every userId's email at once, rather than one KV read after another.
  await identities.load(ids, new Set([...ids].filter((id) => !resolving.has(id))))

  const replays: Resolution['replays'] = []
  const replayed = new Set<string>()
  const pending = new Map<string, string>()
  /** Brings a userId's parked events along, once, if it had no email before this batch. */
  const replay = async (userId: string, email: string, before: number, knownBefore: string | undefined) => {
    if (knownBefore || replayed.has(userId)) return
    replayed.add(userId)
    for (const parked of await identities.parked(userId)) replays.push({ before, email, parked })
  }
  const remember = (userId: string, email: string) => {
    if (replayed.has(userId) && replays.some((replay) => replay.parked.event.userId === userId)) pending.set(userId, email)
    else identities.remember(userId, email)
  }

  const resolved: (Resolved | undefined)[] = []
  for (const [index, event] of events.entries()) {
    if (!event) continue
    const { userId } = event
    if (event.type === 'identify' || event.type === 'track') {
      if (!userId) {
        resolved[index] = { kind: 'deliver', event }
        continue
      }
      const knownBefore = identities.emailOf(userId)
      const own = eventEmail(event)
      const email = own ?? taught.get(userId) ?? knownBefore
      if (!email) {
        resolved[index] = (await identities.park(userId, event)) ? { kind: 'deferred' } : { kind: 'parking-full' }
        continue
      }
      await replay(userId, email, index, knownBefore)
      if (own) remember(userId, (event.type === 'identify' && newEmailIn(event.traits)) || own)
      resolved[index] = { kind: 'deliver', event: own ? event : withEmail(event, email) }
    } else if (event.type === 'alias') {
      resolved[index] = await alias(event.previousId ?? undefined, userId ?? undefined, index)
    } else if (event.type === 'delete') {
      const email = userId ? identities.emailOf(userId) : undefined
      if (userId && email) {
        resolved[index] = { kind: 'delete', userId, email }
      } else {
        const dropped = userId ? await identities.forget(userId) : 0
        resolved[index] = { kind: 'noted', message: `No email is known for this userId, so there is no Autopilot contact to delete${dropped ? `; ${dropped} parked events dropped` : ''}` }
      }
    } else {
      resolved[index] = { kind: 'deliver', event }
    }
  }
  await identities.flush()
  return { resolved, replays, pending }

  /** previousId and userId are one person: whichever email is known, both get it. */
  async function alias(previousId: string | undefined, userId: string | undefined, index: number): Promise<Resolved> {
    const ids = [userId, previousId].filter((id): id is string => Boolean(id))
    const known = ids.map((id) => identities.emailOf(id))
    const email = known.find(Boolean)
    if (!email) return { kind: 'noted', message: 'alias noted: no email is known for either id yet' }
    for (const [i, id] of ids.entries()) {
      if (known[i]) continue
      await replay(id, email, index, undefined)
      remember(id, email)
    }
    return { kind: 'noted', message: 'alias recorded: both ids now resolve to the same contact' }
  }
}

/**
 * The periodic sweep (cron): parked events older than PARK_DAYS are logged (ids and
 * types, no personal data) and dropped; parked events whose userId's email has become
 * known meanwhile (taught in another place, before KV caught up) are replayed.
 */
export async function sweepParked(
  identities: IdentityMap,
  replay: (items: { email: string; parked: Parked }[]) => Promise<string[]>,
  log: (line: Record<string, unknown>) => void,
  maxKeys = 1000,
): Promise<{ expired: number; replayed: number; waiting: number }> {
  const { kv } = identities
  const now = Date.now()
  const expired: string[] = []
  const byUser = new Map<string, string[]>()
  let cursor: string | undefined
  let seen = 0
  do {
    const page = await kv.list<ParkedMeta>({ prefix: 'park:', cursor, limit: 1000 })
    for (const { name, metadata } of page.keys) {
      if (!metadata || now - metadata.parkedAt > PARK_DAYS * DAY_MS) {
        expired.push(name)
        log({ event: 'parked-event-expired', messageId: metadata?.messageId, type: metadata?.type, parkedDays: metadata && Math.floor((now - metadata.parkedAt) / DAY_MS) })
      } else {
        const hash = name.split(':')[1]
        byUser.set(hash, [...(byUser.get(hash) ?? []), name])
      }
    }
    seen += page.keys.length
    cursor = page.list_complete ? undefined : page.cursor
  } while (cursor && seen < maxKeys)
  await identities.unpark(expired)

  const items: { email: string; parked: Parked }[] = []
  let waiting = 0
  for (const [hash, keys] of byUser) {
    const email = await kv.get(`user:${hash}`)
    if (!email) {
      waiting += keys.length
      continue
    }
    for (const key of keys.sort()) {
      const event = await kv.get<SegmentEvent>(key, 'json')
      if (event) items.push({ email, parked: { key, event } })
    }
  }
  const settled = items.length ? await replay(items) : []
  await identities.unpark(settled)
  return { expired: expired.length, replayed: settled.length, waiting: waiting + items.length - settled.length }
}
