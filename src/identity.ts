// Identity: Autopilot keys contacts by email and has no external id, while Segment
// often sends only a userId. The IDENTITIES KV namespace remembers userId -> email;
// events whose email is not known yet are parked until it is.
//
//   user:<h>                 -> email                  (no expiry; removed by a Segment delete)
//   park:<h>:<time>:<uuid>   -> the event (JSON)        metadata {parkedAt, type, messageId}
//
// <h> is the SHA-256 of the userId, so keys have a fixed length and carry no ids.
import type { SegmentEvent } from './schema'
import { eventEmail, newEmailOf } from './transform'

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

/** userId -> email and parked events. One per request or queue batch: it caches what it read. */
export class IdentityMap {
  private readonly emails = new Map<string, string | null>()
  private readonly hashes = new Map<string, Promise<string>>()

  constructor(readonly kv: KVNamespace) {}

  private hash(userId: string): Promise<string> {
    let hash = this.hashes.get(userId)
    if (!hash) this.hashes.set(userId, (hash = hashOf(userId)))
    return hash
  }

  async emailOf(userId: string): Promise<string | undefined> {
    if (!this.emails.has(userId)) this.emails.set(userId, await this.kv.get(`user:${await this.hash(userId)}`))
    return this.emails.get(userId) ?? undefined
  }

  /** Records userId -> email; writes only when it changed. */
  async remember(userId: string, email: string): Promise<void> {
    if ((await this.emailOf(userId)) === email) return
    await this.kv.put(`user:${await this.hash(userId)}`, email)
    this.emails.set(userId, email)
  }

  /** Forgets the userId and drops its parked events. Returns how many were dropped. */
  async forget(userId: string): Promise<number> {
    const hash = await this.hash(userId)
    const parked = await this.parkedKeys(hash)
    await Promise.all([this.kv.delete(`user:${hash}`), ...parked.map(({ name }) => this.kv.delete(name))])
    this.emails.set(userId, null)
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
  // First pass: what this batch teaches (the last email seen per userId wins).
  const taught = new Map<string, string>()
  for (const event of events) {
    if (!event?.userId || (event.type !== 'identify' && event.type !== 'track')) continue
    const email = eventEmail(event)
    if (email) taught.set(event.userId, (event.type === 'identify' && newEmailOf(event)) || email)
  }
  const replays: Resolution['replays'] = []
  const replayed = new Set<string>()
  const pending = new Map<string, string>()
  /** Brings a userId's parked events along, once, if it had no email before this batch. */
  const replay = async (userId: string, email: string, before: number, knownBefore: string | undefined) => {
    if (knownBefore || replayed.has(userId)) return
    replayed.add(userId)
    for (const parked of await identities.parked(userId)) replays.push({ before, email, parked })
  }
  const remember = async (userId: string, email: string) => {
    if (replays.some((replay) => replay.parked.event.userId === userId)) pending.set(userId, email)
    else await identities.remember(userId, email)
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
      const knownBefore = await identities.emailOf(userId)
      const own = eventEmail(event)
      const email = own ?? taught.get(userId) ?? knownBefore
      if (!email) {
        resolved[index] = (await identities.park(userId, event)) ? { kind: 'deferred' } : { kind: 'parking-full' }
        continue
      }
      await replay(userId, email, index, knownBefore)
      if (own) await remember(userId, (event.type === 'identify' && newEmailOf(event)) || own)
      resolved[index] = { kind: 'deliver', event: own ? event : withEmail(event, email) }
    } else if (event.type === 'alias') {
      resolved[index] = await alias(event.previousId ?? undefined, userId ?? undefined, index)
    } else if (event.type === 'delete') {
      const email = userId ? await identities.emailOf(userId) : undefined
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
  return { resolved, replays, pending }

  /** previousId and userId are one person: whichever email is known, both get it. */
  async function alias(previousId: string | undefined, userId: string | undefined, index: number): Promise<Resolved> {
    const ids = [userId, previousId].filter((id): id is string => Boolean(id))
    const known = await Promise.all(ids.map((id) => identities.emailOf(id)))
    const email = known.find(Boolean)
    if (!email) return { kind: 'noted', message: 'alias noted: no email is known for either id yet' }
    for (const [i, id] of ids.entries()) {
      if (known[i]) continue
      await replay(id, email, index, undefined)
      await remember(id, email)
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
