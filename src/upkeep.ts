// The store's upkeep and administration, apart from the per-request path (store.ts): the
// sweep's queries, dead letters, and whether the migrations were applied.
import { toParked, type ParkedRow, type ParkedSql } from './store'
import { json, type Sql } from './sql'

export interface DeadLetterRow {
  id: number
  reason: string
  attempts: number
  firstSeen: number
  lastSeen: number
  messageId: string | null
  type: string | null
}

const TABLES = ['identities', 'parked', 'messages', 'contacts', 'dead_letters', 'account_cache'] as const

export class Upkeep {
  constructor(private readonly sql: Sql) {}

  /** Removes parked events parked before `before`; returns what they were (no personal data). */
  async expireParked(before: number): Promise<{ messageId: string | null; type: string; parkedAt: number }[]> {
    const { results } = await this.sql.all<{ message_id: string | null; type: string; parked_at: number }>(
      this.sql.prepare('DELETE FROM parked WHERE parked_at < ?1 RETURNING message_id, type, parked_at').bind(before),
    )
    return results.map((row) => ({ messageId: row.message_id, type: row.type, parkedAt: row.parked_at }))
  }

  /** Parked events whose userId's email is known now, oldest first: one query over all of them. */
  async resolvableParked(limit: number): Promise<(ParkedRow & { email: string; emailHash: string })[]> {
    const { results } = await this.sql.all<ParkedSql & { email: string; email_hash: string }>(
      this.sql
        .prepare(
          `SELECT p.id, p.user_hash, p.message_id, p.parked_at, p.event, m.state, m.lease_until, m.note, i.email, i.email_hash
           FROM parked p JOIN identities i ON i.user_hash = p.user_hash
           LEFT JOIN messages m ON m.message_id = p.message_id
           WHERE i.email IS NOT NULL ORDER BY p.id LIMIT ?1`,
        )
        .bind(limit),
    )
    return results.map((row) => ({ ...toParked(row), email: row.email, emailHash: row.email_hash }))
  }

  /** Forgets what no attempt can need any more. */
  async prune(messagesBefore: number, guardsBefore: number): Promise<void> {
    await this.sql.batch([
      this.sql
        .prepare(`DELETE FROM messages WHERE (state <> 'claimed' AND at < ?1) OR (state = 'claimed' AND lease_until < ?1)`)
        .bind(messagesBefore),
      this.sql.prepare('DELETE FROM contacts WHERE deleted_at IS NULL AND updated_at < ?1').bind(guardsBefore),
    ])
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
        : this.sql
            .prepare('SELECT * FROM dead_letters WHERE (?2 IS NULL OR instr(lower(reason), lower(?2)) > 0) ORDER BY id LIMIT ?1')
            .bind(choice.limit, choice.reason ?? null),
    )
    return results.map((row) => ({ ...toDeadLetter(row), event: JSON.parse(String(row.event)) }))
  }

  async deleteDeadLetters(idList: number[]): Promise<number> {
    if (!idList.length) return 0
    const result = await this.sql.run(this.sql.prepare('DELETE FROM dead_letters WHERE id IN (SELECT value FROM json_each(?1))').bind(json(idList)))
    return result.meta.changes ?? 0
  }

  /** Tables the migrations should have made that are missing. */
  async missingTables(): Promise<string[]> {
    const { results } = await this.sql.all<{ name: string }>(
      this.sql.prepare(`SELECT name FROM sqlite_master WHERE type = 'table' AND name IN (SELECT value FROM json_each(?1))`).bind(json(TABLES)),
    )
    const present = new Set(results.map((row) => row.name))
    return TABLES.filter((name) => !present.has(name))
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
