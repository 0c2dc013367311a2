// The seam: everything a destination owns, and nothing else. A destination is a
// declaration (as in Segment's action-destinations): its settings, a pure mapping from a
// Segment event to one operation, how its people's fields are named for "newest wins",
// how it sends a batch of operations (its client and answer table inside), what it reads
// from the account and for how long that is kept, its setup check, and its default pace.
// Identity, the store, the ledger, parking, pacing, the queue, the sweep, dead letters,
// answers and logs are the pipeline's, and never name a destination.
import type { Outcome } from '../pipeline/outcome'
import type { Issue, SegmentEvent } from '../segment/schema'
import type { CallOptions } from './transport'

export type DestinationId = 'autopilot' | 'ortto'

/** What one Segment event asks of the destination. `P` is the destination's person payload. */
export type Operation<P> =
  | { kind: 'upsert'; person: P; message: string; issues?: Issue[] }
  /** Enter a journey (an Autopilot trigger, an Ortto activity). setFirst: the person's fields are set before. */
  | { kind: 'enter'; journey: string; person: P; setFirst: boolean; issues?: Issue[]; attributes?: Record<string, unknown> }
  /** `key`: as People.key names the person (the email; `user:<userId>` where the destination finds people by it). */
  | { kind: 'delete'; key: string; email?: string; userId?: string }
  | { kind: 'skip'; message: string }
  | { kind: 'reject'; message: string; issues?: Issue[] }
  /** Cannot be mapped now (the account's fields could not be read): retried, nothing sent. */
  | { kind: 'retry'; message: string }

export interface Job<P> {
  op: Operation<P>
  /** Segment timestamp: when several events for one person merge, the newest wins per field. */
  at: number
  /** 1: runs after this batch's deletes (an event newer than a delete of the same person). */
  phase: 0 | 1
}

export interface Result {
  outcome: Outcome
  /** Journey entries: 'yes' entered; 'unknown' the call got no answer (it may have entered). */
  entered?: 'yes' | 'unknown'
}

/** How "newest wins" sees a person: its key and the names of the fields it sets. */
export interface People<P> {
  /** What identifies the person: the email, or `user:<userId>` where the destination finds people by it. */
  key(person: P): string
  /** The email it carries, if any (a delete by email reaches it even where the key is the userId). */
  email(person: P): string | undefined
  /** Field names as the guard records them (stable across a field's type). */
  names(person: P): string[]
  /** The person without the fields `newer` names, and how many were dropped. */
  without(person: P, newer: (name: string) => boolean): { person: P; dropped: number }
  /** It sets nothing but its key. */
  bare(person: P): boolean
}

export interface Check {
  check: string
  ok: boolean
  message: string
  /** Not a failure: worth knowing (ALLOW_UNSIGNED locally). */
  note?: boolean
}

/** What the destination reads from the account (custom fields, schemas), kept per isolate and in D1. */
export interface AccountSource<A> {
  /** Its key in the account cache (D1). */
  key: string
  /** How long a read is good for; 0: never read (the mapping goes without). */
  refreshMs: number
  read(options: CallOptions): Promise<A>
  /** As kept in D1, and back. */
  store(account: A): string
  restore(text: string): A
  /** What the mapping gets when reading is off. */
  none: A
  /** What it gets when the read failed and nothing is known yet (default: `none`). */
  unknown?: A
}

/**
 * What the Worker created in the destination's account when it was missing, shared by every
 * isolate (D1), with a daily cap: any kind of definition (Ortto's person fields and activities,
 * its account fields), by name. A name is asked of the destination at most once a day. The
 * store implements it; a destination that creates definitions (Ortto's ORTTO_CREATE) uses it.
 */
export type Reservation =
  /** This run holds one of today's slots for it: create it. `unsure`: an earlier run may have made it (its hold ended unanswered): look in the account first. */
  | { state: 'new'; unsure?: boolean }
  /** Another run holds it now; that hold ends when that run's answer is due. */
  | { state: 'taken' }
  /** Made today; its id when the destination's answer (or a read) said it. */
  | { state: 'created'; id?: string }
  /** Refused for good today, and why: not asked again today. */
  | { state: 'refused'; reason: string }
  /** Today's cap is used up. */
  | { state: 'full' }

/** Something left out, shown to the operator: a definition not made (the cap), an attribute an activity lacks. */
export interface LeftOut {
  kind: string
  name: string
  /** Why, and what to do. */
  reason: string
}

/** How a name stands today before any slot is taken (one read for them all). */
export type Standing = { state: 'created'; id?: string } | { state: 'refused'; reason: string } | { state: 'taken' } | { state: 'expired' } | { state: 'left' }

export interface Creations {
  /** How each of these names stands today, keyed `kind:name`; a name with no record today is absent. One read. */
  look(items: readonly { kind: string; name: string }[]): Promise<Map<string, Standing>>
  /** Takes one of today's `max` slots for this definition (`takeOver`: a hold that has ended), or says how it stands. */
  reserve(kind: string, name: string, max: number, takeOver?: boolean): Promise<Reservation>
  /** Made (its id when known): never asked again today. */
  created(kind: string, name: string, id?: string): Promise<void>
  /** Not made by this run. `unsure`: a call went and may have made it (the slot stays counted; the next run looks first); else the slot is freed. */
  release(kind: string, name: string, unsure?: boolean): Promise<void>
  /** Refused for good today, and why (`every`: every name of the kind, the plan's cap): not asked again today. */
  refused(kind: string, name: string, reason: string, every?: boolean): Promise<void>
  /** Left out, and why: shown to the operator. */
  leftOut(items: readonly LeftOut[]): Promise<void>
}

/**
 * Work a destination began and must finish on the re-send (ids it can no longer look up),
 * shared by every isolate (D1). Keys are the destination's own (the store hashes them).
 */
export interface Checkpoints {
  read(keys: readonly string[]): Promise<Map<string, string>>
  save(entries: readonly (readonly [string, string])[]): Promise<void>
  clear(keys: readonly string[]): Promise<void>
}

/** What the pipeline hands `send` besides the calls' gate. */
export interface SendContext {
  creations?: Creations
  checkpoints?: Checkpoints
  /** Something the operator must know that is no event's failure alone (it goes on the log line). */
  onProblem?: (stage: string, message: string) => void
}

export interface Destination<P = unknown, A = unknown> {
  id: DestinationId
  /** Its name in messages: "Autopilot", "Ortto". */
  label: string
  /** What a journey entry is called in messages: "journey trigger", "activity". */
  journeyNoun: string
  /** Settings that do not parse, each naming the setting: events are answered 503 while any exist. */
  problems: string[]
  /** Why nothing can be sent now (the API key is missing), naming the setting; events answer 503. */
  unready?: string
  /** Call starts per second, calls per direct-mode request (subrequests), one call's timeout. */
  maxRps: number
  maxCalls: number
  timeoutMs: number
  /** People per bulk call: sizes queue messages so a consumer batch fills whole calls. */
  bulkLimit: number
  /** For /health: each setting's presence or size, never a value. */
  settings: Record<string, boolean | number>
  account?: AccountSource<A>
  /** Pure: a function of the event, the settings and the account read. `knownEmail`: resolved from its userId. */
  map(event: SegmentEvent, account: A, knownEmail?: string): Operation<P>
  people: People<P>
  /** Sends the jobs in as few calls as its API allows; one result per job, in order. */
  send(jobs: readonly Job<P>[], options: CallOptions, context?: SendContext): Promise<Result[]>
  /**
   * It finds a person by Segment's userId (Ortto's external id): an event with a userId and no
   * email is sent at once instead of waiting for one, and the person's key is `user:<userId>`.
   */
  keysByUserId?: boolean
  /** It creates what the account lacks (Ortto's ORTTO_CREATE), at most `max` definitions a day. */
  creates?: { max: number }
  /** What sending found out in this isolate that an operator must act on (shown on /admin and by the setup check). */
  notices?: () => Check[]
  /** The setup check against the account (key, journeys, fields), in words an admin can act on. */
  check(options: CallOptions): Promise<{ checks: Check[]; details: Record<string, unknown> }>
}

/** A destination whose person and account types are not known to the caller. */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type AnyDestination = Destination<any, any>

/** One value per account read (the mapping's settings object, which caches per-name plans): made once, kept as long as the read. */
export function perAccount<A extends object, T>(make: (account: A) => T): (account: A) => T {
  const made = new WeakMap<A, T>()
  return (account) => {
    let value = made.get(account)
    if (value === undefined) made.set(account, (value = make(account)))
    return value
  }
}

/** What every destination's settings say alike: problems, readiness, pace and budget. */
export type Common = Pick<Destination, 'problems' | 'unready' | 'maxRps' | 'maxCalls' | 'timeoutMs'>
export const common = ({ problems, unready, maxRps, maxCalls, timeoutMs }: Common): Common => ({ problems, unready, maxRps, maxCalls, timeoutMs })
