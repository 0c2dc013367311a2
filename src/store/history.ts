// Delivery history: counters per hour (migrations/0004_history.sql). The pipeline tallies a
// run's events and calls into a few rows; the store adds them in the write the run already
// makes (one more statement, no round trip of its own); the operator page and
// /admin/history.json read them back.
import type { CallRecord } from '../destinations/transport'
import type { Outcome } from '../pipeline/outcome'
import { json, type Sql } from './sql'

export interface Counter {
  kind: 'event' | 'test' | 'call' | 'ms' | 'reason'
  key: string
  n: number
}

export interface HistoryRow extends Counter {
  hour: number
}

export const HOUR_MS = 3_600_000
export const KEEP_HOURS = 14 * 24
/** Upper bounds (ms) of the call duration buckets: enough for p50 and p95. */
export const BUCKETS = [100, 250, 500, 1000, 2000, 4000, 10_000, Infinity] as const
/** The longest a held count's timer waits: Cloudflare keeps an isolate 30 s for waitUntil work. */
export const MAX_TIMER_MS = 25_000
/** Events whose messageId starts so are the operator page's test events. */
export const TEST_PREFIX = 'test-'

const EMAIL = /[^\s"'<>()[\]]+@[^\s"'<>()[\]]+/g
/** A rejection's reason as kept: short, no email in it. */
export const reasonKey = (message: string) => message.replace(EMAIL, '[email]').slice(0, 160)

/** The answer's class, for the failure counts. */
export function callClass(status: CallRecord['status']): string {
  if (typeof status !== 'number') return 'unavailable'
  if (status < 300) return 'ok'
  if (status < 400) return 'redirected'
  if (status === 429) return 'rate_limited'
  if (status === 401 || status === 403) return 'key'
  return status < 500 ? 'refused' : 'unavailable'
}

const OUTCOME: Record<string, string> = { delivered: 'delivered', skipped: 'skipped', rejected: 'rejected', retry: 'retried', deferred: 'parked', queued: 'queued' }

/** One run's counters: events by type and outcome (test events apart), dead letters, calls by class and duration, rejection reasons. */
export function tally(events: { type: string; messageId?: string | null }[], outcomes: readonly Outcome[], calls: readonly CallRecord[], deadLettered: number): Counter[] {
  const counts = new Map<string, Counter>()
  const count = (kind: Counter['kind'], key: string) => {
    const id = `${kind}\u0000${key}`
    const counter = counts.get(id)
    if (counter) counter.n++
    else counts.set(id, { kind, key, n: 1 })
  }
  outcomes.forEach((outcome, i) => {
    const { type, messageId } = events[i]
    const kind = messageId?.startsWith(TEST_PREFIX) ? 'test' : 'event'
    count(kind, `${type}:${OUTCOME[outcome.status] ?? outcome.status}`)
    if (outcome.status === 'rejected') count('reason', reasonKey(outcome.message))
  })
  for (let i = 0; i < deadLettered; i++) count('event', 'any:dead-lettered')
  for (const call of calls) {
    count('call', callClass(call.status))
    count('ms', String(BUCKETS.find((bound) => call.ms < bound)))
  }
  return [...counts.values()]
}

/** What a run's counts became (after − before): a correction to add, counts that went down negative. */
export function difference(after: readonly Counter[], before: readonly Counter[]): Counter[] {
  const counts = new Map<string, Counter>()
  for (const counter of after) counts.set(`${counter.kind}\u0000${counter.key}`, { ...counter })
  for (const { kind, key, n } of before) {
    const id = `${kind}\u0000${key}`
    const known = counts.get(id)
    if (known) known.n -= n
    else counts.set(id, { kind, key, n: -n })
  }
  return [...counts.values()].filter((counter) => counter.n !== 0)
}

/**
 * The counters of this isolate not yet in D1. A request adds its own here; once `everyMs` has
 * passed since the last flush, the lot goes in one statement beside that request's write. So a
 * single-event request costs no history row of its own (D1 bills rows written). Counts held
 * back are sent when they come due even with no further traffic: the request that held them
 * leaves a timer to that moment (waitUntil keeps it), one per isolate and flush period.
 */
class Pending {
  private counts = new Map<string, Counter>()
  private flushedAt = 0
  private sending = false
  /** When the timer left by `flushWhenDue` fires (-1: none): one timer per flush period. */
  private timerAt = -1

  /** Adds a run's counters; returns them all when they are due (the caller sends them, then says how it went). */
  add(counters: readonly Counter[], everyMs: number, now = Date.now()): Counter[] | undefined {
    this.merge(counters)
    // (A clock that went back, as a test's may, makes them due.)
    if (this.sending || !this.counts.size || (now >= this.flushedAt && now - this.flushedAt < everyMs)) return undefined
    this.sending = true
    this.flushedAt = now
    // A count that a correction brought back to 0 is no row.
    const due = [...this.counts.values()].filter((counter) => counter.n !== 0)
    this.counts = new Map()
    if (due.length) return due
    this.sending = false
    return undefined
  }

  /** Adds counts that go with the next flush, never one of their own (a correction, a flush that failed). */
  merge(counters: readonly Counter[]): void {
    for (const counter of counters) {
      const id = `${counter.kind}\u0000${counter.key}`
      const known = this.counts.get(id)
      if (known) known.n += counter.n
      else this.counts.set(id, { ...counter })
    }
  }

  /**
   * Counts held back are sent when they come due, with no further traffic: a timer to that
   * moment, kept alive by `waitUntil` (at most `everyMs` ahead; Cloudflare keeps an isolate
   * 30 s for it). Requests of one flush period share one timer; none while nothing is held.
   */
  flushWhenDue(everyMs: number, waitUntil: (promise: Promise<unknown>) => void, send: (due: Counter[]) => Promise<boolean>, now = Date.now()): void {
    const at = this.flushedAt + everyMs
    if (!everyMs || !this.counts.size || at === this.timerAt || at - now > MAX_TIMER_MS) return
    this.timerAt = at
    waitUntil(
      new Promise((resolve) => setTimeout(resolve, Math.max(0, at - now))).then(async () => {
        if (this.timerAt === at) this.timerAt = -1
        const due = this.add([], everyMs)
        if (due) this.settled(due, await send(due))
      }),
    )
  }

  /** Drops what is pending (tests start each case with an empty history). */
  forget(): void {
    this.counts = new Map()
    this.flushedAt = 0
    this.sending = false
    this.timerAt = -1
  }

  /** After a flush: on failure its counts come back for the next one. */
  settled(due: Counter[], ok: boolean): boolean {
    this.sending = false
    if (!ok) this.merge(due)
    return ok
  }
}
export const history = new Pending()

/** The statement that adds a run's counters to their hour. */
export function addHistory(sql: Sql, counters: readonly Counter[], now = Date.now()): D1PreparedStatement {
  return sql
    .prepare(
      `INSERT INTO history (hour, kind, key, n) SELECT ?2, value->>'k', value->>'y', value->>'n' FROM json_each(?1) WHERE true
       ON CONFLICT (hour, kind, key) DO UPDATE SET n = history.n + excluded.n`,
    )
    .bind(json(counters.map((c) => ({ k: c.kind, y: c.key, n: c.n }))), Math.floor(now / HOUR_MS))
}

/** The counters of the last `hours` hours (never below 0: a correction that crossed an hour's boundary). */
export async function readHistory(sql: Sql, hours: number, now = Date.now()): Promise<HistoryRow[]> {
  const from = Math.floor(now / HOUR_MS) - hours + 1
  const { results } = await sql.all<HistoryRow>(sql.prepare('SELECT hour, kind, key, max(n, 0) AS n FROM history WHERE hour >= ?1 ORDER BY hour').bind(from))
  return results
}

/** Hours older than KEEP_HOURS go (the sweep). */
export async function pruneHistory(sql: Sql, now = Date.now()): Promise<number> {
  const result = await sql.run(sql.prepare('DELETE FROM history WHERE hour < ?1').bind(Math.floor(now / HOUR_MS) - KEEP_HOURS))
  return result.meta.changes ?? 0
}
