// The record of what the Worker created in the destination's account (Ortto's custom fields and
// activity definitions, and any other kind of definition), shared by every isolate through D1.
// It makes a name asked of the destination at most once a day: a run holds a name while it
// creates it (one of the day's slots, taken in one statement, so two isolates cannot both take
// the last one), and the hold ends by itself when the run's answer is due, so a hold a failure
// left behind blocks the name no longer than one retry. What was made is never asked again; a
// refusal for good is kept with its reason and not asked again that day. Doctor and the
// operator page read it: what was created, when, and what was left out and why.
import type { Creations, LeftOut, Reservation, Standing } from '../destinations/destination'
import { json, type Sql } from './sql'

export interface CreatedRow {
  kind: string
  name: string
  day: string
  id: string | null
  at: number
  note: string | null
  /** 'held' (being created), 'created', 'refused' (for good today), 'left' (left out: the day's cap, or an attribute an activity lacks). */
  state: string
}

/** A row as it stands at `now`. */
function standingOf(row: { state: string; id: string | null; note: string | null; until: number }, now: number): Standing {
  if (row.state === 'created') return { state: 'created', ...(row.id && { id: row.id }) }
  if (row.state === 'refused') return { state: 'refused', reason: row.note ?? 'refused' }
  if (row.state === 'held') return row.until > now ? { state: 'taken' } : { state: 'expired' }
  return { state: 'left' }
}

const dayOf = (ms: number) => new Date(ms).toISOString().slice(0, 10)
/** Left-out names kept a day, at most this many: a flood of made-up names must not fill the table either. */
const MAX_LEFT_OUT_A_DAY = 100
/** The name that stands for every name of a kind (a refusal of them all: the plan's cap). */
export const EVERY_NAME = '*'
/** A hold when the run gave no time: long enough for one call. */
const DEFAULT_HOLD_MS = 30_000

export class CreationLog implements Creations {
  /**
   * @param holdUntil when a hold this run takes ends by itself (epoch ms): when the run's answer
   * is due, so that no hold outlives the answer of the run that took it.
   */
  constructor(
    private readonly sql: Sql,
    private readonly holdUntil = Date.now() + DEFAULT_HOLD_MS,
    /** The clock (a test's fake one). */
    private readonly clock: () => number = Date.now,
  ) {}

  async look(items: readonly { kind: string; name: string }[]): Promise<Map<string, Standing>> {
    const standing = new Map<string, Standing>()
    if (!items.length) return standing
    const now = this.clock()
    type Row = { kind: string; name: string; state: string; id: string | null; note: string | null; until: number }
    const { results } = await this.sql.all<Row>(
      this.sql
        .prepare(
          `SELECT kind, name, state, id, note, until FROM created
             WHERE day = ?2 AND ((kind || ':' || name) IN (SELECT value FROM json_each(?1)) OR (name = ?3 AND state = 'refused'))`,
        )
        .bind(json(items.map(({ kind, name }) => `${kind}:${name}`)), dayOf(now), EVERY_NAME),
    )
    const every = new Map(results.filter((row) => row.name === EVERY_NAME).map((row) => [row.kind, row.note ?? 'refused']))
    for (const row of results) {
      if (row.name === EVERY_NAME) continue
      standing.set(`${row.kind}:${row.name}`, standingOf(row, now))
    }
    // A refusal of every name of a kind (the plan's cap) stands for the names not made today.
    for (const { kind, name } of items) {
      const reason = every.get(kind)
      const key = `${kind}:${name}`
      if (reason !== undefined && standing.get(key)?.state !== 'created') standing.set(key, { state: 'refused', reason })
    }
    return standing
  }

  async reserve(kind: string, name: string, max: number, takeOver = false): Promise<Reservation> {
    const now = this.clock()
    const day = dayOf(now)
    if (takeOver) {
      // Its run is over (or gave it up unsure): this run takes it over, and looks in the account first.
      const taken = await this.sql.run(
        this.sql.prepare(`UPDATE created SET until = ?4, at = ?5 WHERE kind = ?1 AND name = ?2 AND day = ?3 AND state = 'held' AND until <= ?5`).bind(kind, name, day, this.holdUntil, now),
      )
      return (taken.meta.changes ?? 0) > 0 ? { state: 'new', unsure: true } : { state: 'taken' }
    }
    // New today, or left out earlier (today's cap): a slot if one is free.
    const result = await this.sql.run(
      this.sql
        .prepare(
          `INSERT INTO created (kind, name, day, at, state, until) SELECT ?1, ?2, ?3, ?4, 'held', ?6
             WHERE (SELECT count(*) FROM created WHERE day = ?3 AND state IN ('held', 'created')) < ?5
           ON CONFLICT (kind, name, day) DO UPDATE SET at = excluded.at, until = excluded.until, state = 'held', note = NULL
             WHERE created.state = 'left'`,
        )
        .bind(kind, name, day, now, max, this.holdUntil),
    )
    if ((result.meta.changes ?? 0) > 0) return { state: 'new' }
    // Taken by another isolate since it was looked at, or no slot is free.
    const row = await this.sql.first<Parameters<typeof standingOf>[0]>(this.sql.prepare('SELECT state, id, note, until FROM created WHERE kind = ?1 AND name = ?2 AND day = ?3').bind(kind, name, day))
    const now2 = this.clock()
    const standing = row ? standingOf(row, now2) : undefined
    if (!standing || standing.state === 'left') return { state: 'full' }
    return standing.state === 'expired' ? { state: 'taken' } : standing
  }

  async created(kind: string, name: string, id?: string): Promise<void> {
    const now = this.clock()
    await this.sql.run(
      this.sql
        .prepare(
          `INSERT INTO created (kind, name, day, at, id, state) VALUES (?1, ?2, ?3, ?4, ?5, 'created')
           ON CONFLICT (kind, name, day) DO UPDATE SET state = 'created', id = coalesce(excluded.id, created.id), note = NULL, until = 0`,
        )
        .bind(kind, name, dayOf(now), now, id ?? null),
    )
  }

  async release(kind: string, name: string, unsure = false): Promise<void> {
    const mine = `kind = ?1 AND name = ?2 AND day = ?3 AND state = 'held' AND until = ?4`
    const day = dayOf(this.clock())
    // Unsure (a call went and may have made it): the slot stays counted, and the next run looks in the account first.
    const statement = unsure ? `UPDATE created SET until = 0 WHERE ${mine}` : `DELETE FROM created WHERE ${mine}`
    await this.sql.run(this.sql.prepare(statement).bind(kind, name, day, this.holdUntil))
  }

  async refused(kind: string, name: string, reason: string, every = false): Promise<void> {
    const now = this.clock()
    const upsert = this.sql.prepare(
      `INSERT INTO created (kind, name, day, at, note, state) VALUES (?1, ?2, ?3, ?4, ?5, 'refused')
       ON CONFLICT (kind, name, day) DO UPDATE SET state = 'refused', note = excluded.note, id = NULL, until = 0, at = excluded.at WHERE created.state <> 'created'`,
    )
    const names = every ? [name, EVERY_NAME] : [name]
    await this.sql.batch(names.map((n) => upsert.bind(kind, n, dayOf(now), now, reason)))
  }

  async leftOut(items: readonly LeftOut[]): Promise<void> {
    if (!items.length) return
    const now = this.clock()
    await this.sql.run(
      this.sql
        .prepare(
          `INSERT INTO created (kind, name, day, at, note, state)
             SELECT json_extract(value, '$.kind'), json_extract(value, '$.name'), ?2, ?3, json_extract(value, '$.reason'), 'left' FROM json_each(?1)
             WHERE (SELECT count(*) FROM created WHERE day = ?2 AND state = 'left') < ?4
           ON CONFLICT (kind, name, day) DO NOTHING`,
        )
        .bind(json(items), dayOf(now), now, MAX_LEFT_OUT_A_DAY),
    )
  }

  /** The last days' rows, newest first (doctor, the operator page). */
  async recent(days = 7, limit = 200): Promise<CreatedRow[]> {
    const since = dayOf(this.clock() - (days - 1) * 86_400_000)
    const { results } = await this.sql.all<CreatedRow>(
      this.sql.prepare('SELECT kind, name, day, id, at, note, state FROM created WHERE day >= ?1 AND name <> ?3 ORDER BY at DESC LIMIT ?2').bind(since, limit, EVERY_NAME),
    )
    return results
  }

  /** Slots today's creations hold. */
  async usedToday(): Promise<number> {
    const row = await this.sql.first<{ n: number }>(this.sql.prepare(`SELECT count(*) AS n FROM created WHERE day = ?1 AND state IN ('held', 'created')`).bind(dayOf(this.clock())))
    return row?.n ?? 0
  }

  /** Rows older than `days` go (the sweep). */
  async prune(days = 30): Promise<void> {
    await this.sql.run(this.sql.prepare('DELETE FROM created WHERE day < ?1').bind(dayOf(this.clock() - days * 86_400_000)))
  }
}
