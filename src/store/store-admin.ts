// The store's administration, apart from the per-request path (store.ts): the
// sweep's queries, dead letters, and whether the migrations were applied.
import { CreationLog } from './creations'
import { Store, toParked, type ParkedRow, type ParkedSql } from './store'
import { OTHER_ROW } from './types'
import { json, type Sql } from './sql'
import { PRUNE_CURSOR_KEY } from './ledger'

export interface DeadLetterRow {
  id: number
  reason: string
  attempts: number
  firstSeen: number
  lastSeen: number
  messageId: string | null
  type: string | null
}

const TABLES = ['identities', 'parked', 'ledger', 'contacts', 'dead_letters', 'account_cache', 'created', 'checkpoints'] as const
/** Columns added to a table by a later migration (0005: what became of each creation). */
const COLUMNS = ['created.state', 'created.until'] as const

/** The account_cache row each sweep overwrites with a summary of itself (one write per sweep). */
export const LAST_SWEEP_KEY = 'sweep:last'

/**
 * Ledger rows a view of the operator page counts claims over: at most this many are read (a
 * second or so of D1), whatever the ledger's size (at Ortto's full rate it holds ~88 million).
 * Its keys are hashes, so the first rows are a fair sample of the rest.
 */
export const CLAIMS_COUNTED = 2_000_000

/** What the operator page counts (src/http/admin.ts), read in one query. */
export interface Overview {
  parked: { count: number; users: number; oldestAt: number | null; expiringSoon: number }
  /** `sampled`: the ledger is larger than what a view counts (CLAIMS_COUNTED rows), so these are lower bounds. */
  claims: { pending: number; stale: number; oldestStaleLease: number | null; sampled: boolean }
  deadLetters: { count: number; reasons: number; firstSeen: number | null; lastSeen: number | null }
  lastSweep: { at: number; summary: string } | null
}

export interface DeadLetterReason {
  reason: string
  count: number
  firstSeen: number
  lastSeen: number
}

export class StoreAdmin {
  constructor(private readonly sql: Sql) {}

  /** The database's size in bytes, as the latest query's answer gave it (undefined before any). */
  get dbBytes(): number | undefined {
    return this.sql.dbBytes
  }

  /** What the destination's account got from this Worker (ORTTO_CREATE), and the day's cap. */
  creations(): CreationLog {
    return new CreationLog(this.sql)
  }

  /** Parked events parked before `before`, at most `limit`: what they were (no personal data). */
  async expiredParked(before: number, limit: number): Promise<{ id: number; messageId: string | null; type: string; parkedAt: number }[]> {
    const { results } = await this.sql.all<{ id: number; message_id: string | null; type: string; parked_at: number }>(
      this.sql.prepare('SELECT id, message_id, type, parked_at FROM parked WHERE parked_at < ?1 ORDER BY id LIMIT ?2').bind(before, limit),
    )
    return results.map((row) => ({ id: row.id, messageId: row.message_id, type: row.type, parkedAt: row.parked_at }))
  }

  /** Removes parked events by id: safe to repeat (sql.ts tries a failed query again), unlike a DELETE … RETURNING. */
  async removeParked(ids: number[]): Promise<void> {
    if (ids.length) await this.sql.run(this.sql.prepare('DELETE FROM parked WHERE id IN (SELECT value FROM json_each(?1))').bind(json(ids)))
  }

  /** Parked events whose userId's email is known now, oldest first: one query over all of them. */
  async resolvableParked(limit: number): Promise<(ParkedRow & { email: string; emailHash: string; taughtAt: number })[]> {
    const { results } = await this.sql.all<ParkedSql & { email: string; email_hash: string; taught_at: number }>(
      this.sql
        .prepare(
          `SELECT p.id, p.user_hash, p.message_id, p.parked_at, p.event, i.email, i.email_hash, i.taught_at
           FROM parked p JOIN identities i ON i.user_hash = p.user_hash
           WHERE i.email IS NOT NULL ORDER BY p.id LIMIT ?1`,
        )
        .bind(limit),
    )
    return new Store(this.sql).withStates(results.map((row) => ({ ...toParked(row), email: row.email, emailHash: row.email_hash, taughtAt: row.taught_at })))
  }

  /**
   * Parked aliases of two ids whose own id has no email while the other row of the pair is gone:
   * replayed under the other id, whose tie a delete's tombstone refused this id, and the run that
   * was to replay this row failed. Oldest first; the sweep looks the other id up (its hash is not
   * in SQL). An alias of one id only (or of one id twice) is never picked: it has no other id.
   */
  async strandedAliases(limit: number): Promise<ParkedRow[]> {
    const { results } = await this.sql.all<ParkedSql>(
      this.sql
        .prepare(
          `SELECT p.id, p.user_hash, p.message_id, p.parked_at, p.event
           FROM parked p LEFT JOIN identities i ON i.user_hash = p.user_hash
           WHERE p.type = 'alias' AND i.email IS NULL AND p.message_id IS NOT NULL AND p.event->>'previousId' <> p.event->>'userId' AND NOT EXISTS (SELECT 1 FROM parked s WHERE s.message_id =
             CASE WHEN substr(p.message_id, -length(?2)) = ?2 THEN substr(p.message_id, 1, length(p.message_id) - length(?2)) ELSE p.message_id || ?2 END)
           ORDER BY p.id LIMIT ?1`,
        )
        .bind(limit, OTHER_ROW),
    )
    return results.map(toParked)
  }

  /** Forgets contact guards no retry can need any more; says how many went. (The ledger: pruneLedger, in ranges.) */
  async pruneGuards(before: number): Promise<number> {
    const result = await this.sql.run(this.sql.prepare('DELETE FROM contacts WHERE deleted_at IS NULL AND updated_at < ?1').bind(before))
    return result.meta.changes ?? 0
  }

  /** Where the ledger's prune stopped last run (0: at the start). */
  async pruneCursor(): Promise<number> {
    const row = await this.sql.first<{ value: string }>(this.sql.prepare('SELECT value FROM account_cache WHERE key = ?1').bind(PRUNE_CURSOR_KEY))
    const cursor = Number(row?.value ?? 0)
    return Number.isFinite(cursor) && cursor > 0 ? cursor : 0
  }

  /** Oldest first, `limit` at a time after the id `after`; `reason` matches part of the reason. */
  async listDeadLetters(limit: number, after = 0, reason?: string): Promise<DeadLetterRow[]> {
    const { results } = await this.sql.all<Record<string, unknown>>(
      this.sql
        .prepare(
          `SELECT id, reason, attempts, first_seen, last_seen, message_id, type FROM dead_letters
           WHERE id > ?1 AND (?3 IS NULL OR instr(lower(reason), lower(?3)) > 0) ORDER BY id LIMIT ?2`,
        )
        .bind(after, limit, reason ?? null),
    )
    return results.map(toDeadLetter)
  }

  async deadLetter(id: number): Promise<(DeadLetterRow & { event: unknown }) | undefined> {
    const row = await this.sql.first<Record<string, unknown>>(this.sql.prepare('SELECT * FROM dead_letters WHERE id = ?1').bind(id))
    return row ? { ...toDeadLetter(row), event: JSON.parse(String(row.event)) } : undefined
  }

  /** The dead letters chosen by id (or the oldest `limit`, optionally by reason), with their events. */
  async deadLettersFor(choice: { ids?: number[]; limit: number; reason?: string }): Promise<(DeadLetterRow & { event: unknown })[]> {
    const { results } = await this.sql.all<Record<string, unknown>>(
      choice.ids
        ? this.sql.prepare('SELECT * FROM dead_letters WHERE id IN (SELECT value FROM json_each(?1)) ORDER BY id LIMIT ?2').bind(json(choice.ids), choice.limit)
        : this.sql.prepare('SELECT * FROM dead_letters WHERE (?2 IS NULL OR instr(lower(reason), lower(?2)) > 0) ORDER BY id LIMIT ?1').bind(choice.limit, choice.reason ?? null),
    )
    return results.map((row) => ({ ...toDeadLetter(row), event: JSON.parse(String(row.event)) }))
  }

  /** Marks letters as being re-driven: the event failing again gets a letter of its own (see store.ts). */
  async markRedriven(idList: number[], now: number): Promise<void> {
    if (idList.length) await this.sql.run(this.sql.prepare('UPDATE dead_letters SET redriven_at = ?2 WHERE id IN (SELECT value FROM json_each(?1))').bind(json(idList), now))
  }

  async deleteDeadLetters(idList: number[]): Promise<number> {
    if (!idList.length) return 0
    const result = await this.sql.run(this.sql.prepare('DELETE FROM dead_letters WHERE id IN (SELECT value FROM json_each(?1))').bind(json(idList)))
    return result.meta.changes ?? 0
  }

  /** Tables (and columns later migrations added, as table.column) the migrations should have made that are missing. */
  async missingTables(): Promise<string[]> {
    const { results } = await this.sql.all<{ name: string }>(
      this.sql
        .prepare(
          `SELECT name FROM sqlite_master WHERE type = 'table' AND name IN (SELECT value FROM json_each(?1))
           UNION ALL SELECT 'created.' || name FROM pragma_table_info('created') WHERE 'created.' || name IN (SELECT value FROM json_each(?2))`,
        )
        .bind(json(TABLES), json(COLUMNS)),
    )
    const present = new Set(results.map((row) => row.name))
    return [...TABLES, ...COLUMNS].filter((name) => !present.has(name))
  }

  /**
   * Everything the operator page counts, in one query: a few small aggregates joined by
   * UNION ALL, one row each (k names it; n, a, b, c are its numbers or text).
   * @param now claims whose lease ended before this are stale
   * @param expiringBefore parked events parked before this are counted as expiring soon
   * @param claimsCounted ledger rows read to count claims, at most
   */
  async overview(now: number, expiringBefore: number, claimsCounted = CLAIMS_COUNTED): Promise<Overview> {
    type Row = { k: string; n: number | null; a: number | null; b: number | null; c: number | string | null }
    const { results } = await this.sql.all<Row>(
      this.sql
        .prepare(
          `SELECT 'parked' AS k, count(*) AS n, min(parked_at) AS a, count(DISTINCT user_hash) AS b, total(parked_at < ?2) AS c FROM parked
           UNION ALL SELECT 'claims', total(state = 0 AND lease_until >= ?1), min(CASE WHEN state = 0 AND lease_until < ?1 THEN lease_until END),
               total(state = 0 AND lease_until < ?1), count(*)
             FROM (SELECT state, lease_until FROM ledger LIMIT ?4)
           UNION ALL SELECT 'dead', count(*), min(first_seen), max(last_seen), count(DISTINCT reason) FROM dead_letters
           UNION ALL SELECT 'sweep', NULL, fetched_at, NULL, value FROM account_cache WHERE key = ?3`,
        )
        .bind(now, expiringBefore, LAST_SWEEP_KEY, claimsCounted),
    )
    const row = (k: string): Row => results.find((r) => r.k === k) ?? { k, n: 0, a: null, b: 0, c: 0 }
    const [parked, claims, dead, sweep] = ['parked', 'claims', 'dead', 'sweep'].map(row)
    return {
      parked: { count: Number(parked.n ?? 0), users: Number(parked.b ?? 0), oldestAt: parked.a, expiringSoon: Number(parked.c ?? 0) },
      claims: { pending: Number(claims.n ?? 0), stale: Number(claims.b ?? 0), oldestStaleLease: claims.a, sampled: Number(claims.c ?? 0) >= claimsCounted },
      deadLetters: { count: Number(dead.n ?? 0), reasons: Number(dead.c ?? 0), firstSeen: dead.a, lastSeen: dead.b },
      lastSweep: sweep.a === null ? null : { at: Number(sweep.a), summary: String(sweep.c) },
    }
  }

  /** Dead letters grouped by their exact reason, the most recently seen first. */
  async deadLetterReasons(limit: number): Promise<DeadLetterReason[]> {
    const { results } = await this.sql.all<{ reason: string; n: number; first_seen: number; last_seen: number }>(
      this.sql
        .prepare(
          `SELECT reason, count(*) AS n, min(first_seen) AS first_seen, max(last_seen) AS last_seen FROM dead_letters
           GROUP BY reason ORDER BY last_seen DESC, reason LIMIT ?1`,
        )
        .bind(limit),
    )
    return results.map((row) => ({ reason: row.reason, count: row.n, firstSeen: row.first_seen, lastSeen: row.last_seen }))
  }

  /** The oldest `limit` dead letters whose reason is exactly `reason`, with their events. */
  async deadLettersWithReason(reason: string, limit: number): Promise<(DeadLetterRow & { event: unknown })[]> {
    const { results } = await this.sql.all<Record<string, unknown>>(this.sql.prepare('SELECT * FROM dead_letters WHERE reason = ?1 ORDER BY id LIMIT ?2').bind(reason, limit))
    return results.map((row) => ({ ...toDeadLetter(row), event: JSON.parse(String(row.event)) }))
  }
}

function toDeadLetter(row: Record<string, unknown>): DeadLetterRow {
  return {
    id: Number(row.id),
    reason: String(row.reason),
    attempts: Number(row.attempts),
    firstSeen: Number(row.first_seen),
    lastSeen: Number(row.last_seen),
    messageId: (row.message_id as string | null) ?? null,
    type: (row.type as string | null) ?? null,
  }
}
