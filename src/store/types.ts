// What the store reads and writes, as types: the snapshot one read gives a run, the holds taken
// before any call, the writes one batch makes. The queries are in store.ts.
import type { SegmentEvent } from '../segment/schema'

export interface Identity {
  email: string | null
  taughtAt: number
  deletedAt: number | null
}
export type MessageState = { state: 'claimed'; leaseUntil: number; by: string | null } | { state: 'done' } | { state: 'rejected'; reason: string }
export interface ContactGuard {
  /** Field -> Segment timestamp of the newest event that set it. */
  fields: Record<string, number>
  deletedAt: number | null
}

/** What one read returns, keyed as asked. */
export interface Snapshot {
  identities: Map<string, Identity>
  parkedCounts: Map<string, number>
  messages: Map<string, MessageState>
  contacts: Map<string, ContactGuard>
  cache: Map<string, { value: string; fetchedAt: number }>
}
export const emptySnapshot = (): Snapshot => ({
  identities: new Map(),
  parkedCounts: new Map(),
  messages: new Map(),
  contacts: new Map(),
  cache: new Map(),
})

export interface ParkedRow {
  id: number
  userHash: string
  messageId: string | null
  parkedAt: number
  event: SegmentEvent
  /** What an earlier attempt did with its messageId, if anything. */
  state?: MessageState
}

/** Appended to an alias's messageId for its row under the previousId (an alias waits under both ids; parked messageIds are unique). */
export const OTHER_ROW = '#previousId'

/** Taken before Autopilot is called: events parked, journey triggers claimed. */
export interface Holds {
  park: { userHash: string; messageId?: string; type: string; event: SegmentEvent }[]
  claims: string[]
  leaseUntil: number
  by: string
}

export interface DeadLetterInput {
  reason: string
  attempts: number
  firstSeen: number
  messageId?: string
  type?: string
  event: unknown
}

/** What a delivery leaves behind, written in one batch. */
export interface Writes {
  identities: { userHash: string; email: string; emailHash: string; at: number }[]
  /** Segment deletes: the identity becomes a tombstone, its parked events go, the contact is guarded. */
  forget: { userHash?: string; emailHash?: string; at: number }[]
  unpark: number[]
  /** Journey triggers that succeeded. */
  confirm: string[]
  /** Journey triggers that failed with an answer: another attempt may claim them at once. */
  release: string[]
  /** Only when a request stopped early: what it finished, so the re-send skips it. */
  progress: { messageId: string; state: 'done' | 'rejected'; reason?: string }[]
  /** Field timestamps merged into the contact's guard (created when missing). */
  guards: { emailHash: string; fields: Record<string, number> }[]
  deadLetters: DeadLetterInput[]
  cache: { key: string; value: string }[]
}
export const emptyWrites = (): Writes => ({
  identities: [],
  forget: [],
  unpark: [],
  confirm: [],
  release: [],
  progress: [],
  guards: [],
  deadLetters: [],
  cache: [],
})
