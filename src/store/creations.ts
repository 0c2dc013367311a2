// The record of what the Worker created in the destination's account (Ortto's custom fields and
// activity definitions), shared by every isolate through D1: it holds the day's cap (a slot is
// taken in one statement, so two isolates cannot both take the last one) and tells doctor and
// the operator page what was created, when, and what was left out and why.
import type { Creations, Reservation } from '../destinations/destination'
import type { Sql } from './sql'

export interface CreatedRow {
  kind: string
  name: string
  day: string
  id: string | null
  at: number
  note: string | null
}

const dayOf = (ms: number) => new Date(ms).toISOString().slice(0, 10)
/** Left-out names kept a day, at most this many: a flood of made-up names must not fill the table either. */
const MAX_LEFT_OUT_A_DAY = 100

export class CreationLog implements Creations {
  constructor(private readonly sql: Sql) {}

  async reserve(kind: string, name: string, max: number): Promise<Reservation> {
    const now = Date.now()
    const day = dayOf(now)
    const result = await this.sql.run(
      this.sql
        .prepare(
          `INSERT INTO created (kind, name, day, at) SELECT ?1, ?2, ?3, ?4
             WHERE (SELECT count(*) FROM created WHERE day = ?3 AND note IS NULL) < ?5
           ON CONFLICT (kind, name, day) DO UPDATE SET at = excluded.at, note = NULL
             WHERE created.note IS NOT NULL AND (SELECT count(*) FROM created WHERE day = ?3 AND note IS NULL) < ?5`,
        )
        .bind(kind, name, day, now, max),
    )
    if ((result.meta.changes ?? 0) > 0) return 'new'
    // Already holding a slot today (another isolate is creating it, or made it): no second one.
    const row = await this.sql.first<{ note: string | null }>(this.sql.prepare('SELECT note FROM created WHERE kind = ?1 AND name = ?2 AND day = ?3').bind(kind, name, day))
    return row !== null && row.note === null ? 'taken' : 'full'
  }

  async settle(kind: string, name: string, id?: string): Promise<void> {
    const day = dayOf(Date.now())
    if (id) await this.sql.run(this.sql.prepare('UPDATE created SET id = ?4 WHERE kind = ?1 AND name = ?2 AND day = ?3').bind(kind, name, day, id))
    else await this.sql.run(this.sql.prepare('DELETE FROM created WHERE kind = ?1 AND name = ?2 AND day = ?3 AND id IS NULL').bind(kind, name, day))
  }

  async leftOut(kind: string, name: string, reason: string): Promise<void> {
    const now = Date.now()
    await this.sql.run(
      this.sql
        .prepare(
          `INSERT INTO created (kind, name, day, at, note) SELECT ?1, ?2, ?3, ?4, ?5
             WHERE (SELECT count(*) FROM created WHERE day = ?3 AND note IS NOT NULL) < ?6
           ON CONFLICT (kind, name, day) DO NOTHING`,
        )
        .bind(kind, name, dayOf(now), now, reason, MAX_LEFT_OUT_A_DAY),
    )
  }

  /** The last days' rows, newest first (doctor, the operator page). */
  async recent(days = 7, limit = 200): Promise<CreatedRow[]> {
    const since = dayOf(Date.now() - (days - 1) * 86_400_000)
    const { results } = await this.sql.all<CreatedRow>(this.sql.prepare('SELECT kind, name, day, id, at, note FROM created WHERE day >= ?1 ORDER BY at DESC LIMIT ?2').bind(since, limit))
    return results
  }

  /** Slots today's creations hold. */
  async usedToday(): Promise<number> {
    const row = await this.sql.first<{ n: number }>(this.sql.prepare('SELECT count(*) AS n FROM created WHERE day = ?1 AND note IS NULL').bind(dayOf(Date.now())))
    return row?.n ?? 0
  }

  /** Rows older than `days` go (the sweep). */
  async prune(days = 30): Promise<void> {
    await this.sql.run(this.sql.prepare('DELETE FROM created WHERE day < ?1').bind(dayOf(Date.now() - days * 86_400_000)))
  }
}
