// What the pipeline remembers, in D1 (SQL in migrations/). Set-based: a request or queue
// batch reads everything it needs in one query (read), takes what must be held before
// calling Autopilot in one round trip (hold), and writes what it learned in one more
// (write). Many rows travel as one JSON text read with json_each, so no statement needs
// more than a handful of bound parameters whatever the batch size.
import type { SegmentEvent } from '../segment/schema'
import { addHistory, type Counter } from './history'
import { json, jsonChunks, type Sql } from './sql'
import { LEGACY_TABLE, ledgerKey, STATE, STATE_NAME } from './ledger'

export { StoreError } from './sql'

export * from './types'
import { emptySnapshot, type Holds, type MessageState, type ParkedRow, type Snapshot, type Writes } from './types'

export class Store {
  constructor(readonly sql: Sql) {}

  /**
   * Everything a batch needs, in one query. Rows name their key by its position in the
   * list asked for (users, messages), not by the key itself: a 64-character hash per row
   * is most of what would travel otherwise.
   */
  async read(keys: { users: string[]; emails: string[]; messages: string[]; cache?: string[] }): Promise<Snapshot> {
    const snapshot = emptySnapshot()
    const { users, messages } = keys
    if (!users.length && !keys.emails.length && !messages.length && !keys.cache?.length) return snapshot
    type Row = { k: string; i: number | string; a: string | null; b: number | null; c: number | null }
    const { results } = await this.sql.all<Row>(
      this.sql
        .prepare(
          `SELECT 'u' AS k, j.key AS i, s.email AS a, s.taught_at AS b, s.deleted_at AS c
             FROM json_each(?1) j JOIN identities s ON s.user_hash = j.value
           UNION ALL SELECT 'p', j.key, NULL, count(*), NULL
             FROM json_each(?1) j JOIN parked p ON p.user_hash = j.value GROUP BY j.key
           UNION ALL SELECT 'c', email_hash, fields, deleted_at, NULL
             FROM contacts WHERE email_hash IN (
               SELECT value FROM json_each(?2)
               UNION SELECT email_hash FROM identities WHERE user_hash IN (SELECT value FROM json_each(?1)))
           UNION ALL SELECT 'm', j.key, iif(m.key IS NULL, l.note, m.note), iif(m.key IS NULL, l.lease_until, m.lease_until),
               iif(m.key IS NULL, CASE l.state WHEN 'claimed' THEN 0 WHEN 'done' THEN 1 ELSE 2 END, m.state)
             FROM json_each(?3) j LEFT JOIN ledger m ON m.key = unhex(j.value->>1)
               LEFT JOIN ${LEGACY_TABLE} l ON l.message_id = j.value->>0
             WHERE m.key IS NOT NULL OR l.message_id IS NOT NULL
           UNION ALL SELECT 'f', key, value, fetched_at, NULL
             FROM account_cache WHERE key IN (SELECT value FROM json_each(?4))`,
        )
        .bind(json(users), json(keys.emails), json(messages.map((id) => [id, ledgerKey(id)])), json(keys.cache ?? [])),
    )
    for (const { k, i, a, b, c } of results) {
      if (k === 'u') snapshot.identities.set(users[i as number], { email: a, taughtAt: b ?? 0, deletedAt: c })
      else if (k === 'p') snapshot.parkedCounts.set(users[i as number], b ?? 0)
      else if (k === 'c') snapshot.contacts.set(i as string, { fields: parseFields(a), deletedAt: b })
      else if (k === 'f') snapshot.cache.set(i as string, { value: a ?? '', fetchedAt: b ?? 0 })
      else if (k === 'm') snapshot.messages.set(messages[i as number], messageState(STATE_NAME[c ?? 1] ?? 'done', b ?? null, a))
    }
    return snapshot
  }

  /** Parked events of these users, oldest first. */
  async parkedFor(userHashes: string[]): Promise<ParkedRow[]> {
    if (!userHashes.length) return []
    const { results } = await this.sql.all<ParkedSql>(
      this.sql
        .prepare(
          `SELECT p.id, p.user_hash, p.message_id, p.parked_at, p.event
           FROM parked p WHERE p.user_hash IN (SELECT value FROM json_each(?1)) ORDER BY p.id`,
        )
        .bind(json(userHashes)),
    )
    return this.withStates(results.map(toParked))
  }

  /**
   * What earlier attempts did with these parked events' messageIds: one more query, when any has
   * one (the ledger is keyed by a hash SQL cannot compute, so it is not joined to `parked`).
   */
  async withStates<T extends ParkedRow>(rows: T[]): Promise<T[]> {
    const ids = [...new Set(rows.flatMap((row) => (row.messageId ? [row.messageId] : [])))]
    if (!ids.length) return rows
    const { messages } = await this.read({ users: [], emails: [], messages: ids })
    return rows.map((row) => {
      const state = row.messageId ? messages.get(row.messageId) : undefined
      return state ? { ...row, state } : row
    })
  }

  /** Parks events and claims journey triggers in one round trip; returns the claims won. */
  async hold(holds: Holds): Promise<Set<string>> {
    const statements: D1PreparedStatement[] = []
    const now = Date.now()
    // Several texts when the events are many (D1's 2 MB string limit), one statement each.
    for (const rows of jsonChunks(holds.park.map((p) => ({ u: p.userHash, m: p.messageId ?? null, t: p.type, e: json(p.event) })))) {
      statements.push(
        this.sql
          .prepare(
            `INSERT OR IGNORE INTO parked (user_hash, message_id, type, parked_at, event)
             SELECT value->>'u', value->>'m', value->>'t', ?2, value->>'e' FROM json_each(?1) j
             WHERE j.value->>'m' IS NOT NULL OR NOT EXISTS (SELECT 1 FROM parked p
               WHERE p.user_hash = j.value->>'u' AND p.parked_at = ?2 AND p.event = j.value->>'e')`,
          )
          .bind(rows, now),
      )
    }
    if (holds.claims.length) {
      // New ids are claimed; an existing claim only once its lease has run out (a crashed attempt),
      // or by the same claimant again (its own hold repeated after an answer was lost).
      statements.push(
        this.sql
          .prepare(
            `INSERT INTO ledger (key, state, at, lease_until, note)
             SELECT unhex(value), 0, ?2, ?3, ?4 FROM json_each(?1) WHERE true
             ON CONFLICT (key) DO UPDATE SET at = ?2, lease_until = ?3, note = ?4
               WHERE ledger.state = 0 AND (ledger.lease_until < ?2 OR ledger.note = ?4)
             RETURNING lower(hex(key)) AS k`,
          )
          .bind(json(holds.claims.map(ledgerKey)), now, holds.leaseUntil, holds.by),
      )
    }
    if (!statements.length) return new Set()
    const results = await this.sql.batch(statements)
    const claimed = new Set(holds.claims.length ? (results.at(-1)!.results as { k: string }[]).map((row) => row.k) : [])
    return new Set(holds.claims.filter((messageId) => claimed.has(ledgerKey(messageId))))
  }

  /** Writes what a delivery learned, in one atomic batch (giving up after `timeoutMs`, when given). */
  async write(writes: Writes, timeoutMs?: number): Promise<void> {
    const now = Date.now()
    const statements: D1PreparedStatement[] = []
    const add = (sql: string, ...values: unknown[]) => statements.push(this.sql.prepare(sql).bind(...values))
    // Newest wins, and nothing older than a delete brings the person back.
    for (const rows of jsonChunks(writes.identities.map((l) => ({ u: l.userHash, e: l.email, h: l.emailHash, t: l.at })))) {
      add(
        `INSERT INTO identities (user_hash, email, email_hash, taught_at)
         SELECT value->>'u', value->>'e', value->>'h', value->>'t' FROM json_each(?1) WHERE true
         ON CONFLICT (user_hash) DO UPDATE SET email = excluded.email, email_hash = excluded.email_hash, taught_at = excluded.taught_at
           WHERE excluded.taught_at >= identities.taught_at AND excluded.taught_at > coalesce(identities.deleted_at, -1)`,
        rows,
      )
    }
    const forgetUsers = writes.forget.filter((f) => f.userHash)
    if (forgetUsers.length) {
      const rows = json(forgetUsers.map((f) => ({ u: f.userHash, t: f.at })))
      // A delete forgets the email an event older than it taught, never one a newer event taught
      // (a delete retried or re-sent after a newer identify, or beside one in the same batch).
      add(
        `INSERT INTO identities (user_hash, email, email_hash, taught_at, deleted_at)
         SELECT value->>'u', NULL, NULL, value->>'t', value->>'t' FROM json_each(?1) WHERE true
         ON CONFLICT (user_hash) DO UPDATE SET
           email = CASE WHEN identities.taught_at > excluded.deleted_at THEN identities.email END,
           email_hash = CASE WHEN identities.taught_at > excluded.deleted_at THEN identities.email_hash END,
           deleted_at = max(coalesce(identities.deleted_at, 0), excluded.deleted_at)`,
        rows,
      )
      // Its parked events older than it go with it; newer ones (sent after the delete) stay to wait
      // for an email like any other (their time as the pipeline reads it: Segment's timestamp, else arrival).
      // A parked alias stays: it only ties ids, and newer events of either id still need the tie (found by the simulation).
      add(
        `DELETE FROM parked WHERE type <> 'alias' AND EXISTS (SELECT 1 FROM json_each(?1) d WHERE d.value->>'u' = parked.user_hash
           AND coalesce(CAST(round((julianday(parked.event ->> '$.timestamp') - 2440587.5) * 86400000) AS INTEGER), parked.parked_at) <= d.value->>'t')`,
        rows,
      )
    }
    const forgetContacts = writes.forget.filter((f) => f.emailHash)
    if (forgetContacts.length) {
      add(
        `INSERT INTO contacts (email_hash, deleted_at, updated_at)
         SELECT value->>'h', value->>'t', ?2 FROM json_each(?1) WHERE true
         ON CONFLICT (email_hash) DO UPDATE SET updated_at = ?2,
           fields = coalesce((SELECT json_group_object(key, value) FROM json_each(contacts.fields) WHERE value > excluded.deleted_at), '{}'),
           deleted_at = max(coalesce(contacts.deleted_at, 0), excluded.deleted_at)`,
        json(forgetContacts.map((f) => ({ h: f.emailHash, t: f.at }))),
        now,
      )
    }
    if (writes.unpark.length) add('DELETE FROM parked WHERE id IN (SELECT value FROM json_each(?1))', json(writes.unpark))
    if (writes.confirm.length) {
      add(
        `INSERT INTO ledger (key, state, at) SELECT unhex(value), 1, ?2 FROM json_each(?1) WHERE true
         ON CONFLICT (key) DO UPDATE SET state = 1, at = ?2, lease_until = 0, note = NULL`,
        json(writes.confirm.map(ledgerKey)),
        now,
      )
    }
    if (writes.release.length) {
      add(`DELETE FROM ledger WHERE key IN (SELECT unhex(value) FROM json_each(?1)) AND state = 0`, json(writes.release.map(ledgerKey)))
    }
    if (writes.progress.length) {
      add(
        `INSERT INTO ledger (key, state, at, note)
         SELECT unhex(value->>'k'), value->>'s', ?2, value->>'r' FROM json_each(?1) WHERE true
         ON CONFLICT (key) DO UPDATE SET state = excluded.state, at = ?2, lease_until = 0, note = excluded.note
           WHERE ledger.state <> 1`,
        json(writes.progress.map((p) => ({ k: ledgerKey(p.messageId), s: STATE[p.state], r: p.reason ?? null }))),
        now,
      )
    }
    for (const rows of jsonChunks(writes.guards.map((g) => ({ h: g.emailHash, f: json(g.fields) })))) {
      add(
        `INSERT INTO contacts (email_hash, fields, updated_at)
         SELECT value->>'h', value->>'f', ?2 FROM json_each(?1) WHERE true
         ON CONFLICT (email_hash) DO UPDATE SET fields = json_patch(contacts.fields, excluded.fields), updated_at = ?2`,
        rows,
        now,
      )
    }
    // One letter per event: a write D1 applied but whose answer was lost is tried again (sql.ts),
    // and an event dead-lettered again (a whole message retried) already has its letter.
    const letters = writes.deadLetters.map((d) => ({ r: d.reason.slice(0, 500), a: d.attempts, f: d.firstSeen, m: d.messageId?.slice(0, 256) ?? null, t: d.type ?? null, e: json(d.event) }))
    for (const rows of jsonChunks(letters)) {
      add(
        `INSERT INTO dead_letters (reason, attempts, first_seen, last_seen, message_id, type, event)
         SELECT value->>'r', value->>'a', value->>'f', ?2, value->>'m', value->>'t', value->>'e' FROM json_each(?1) j
         WHERE NOT EXISTS (SELECT 1 FROM dead_letters d WHERE d.message_id IS j.value->>'m' AND d.redriven_at IS NULL
           AND (j.value->>'m' IS NOT NULL OR (d.last_seen = ?2 AND d.event = j.value->>'e')))`,
        rows,
        now,
      )
    }
    for (const { key, value } of writes.cache) {
      add(
        `INSERT INTO account_cache (key, value, fetched_at) VALUES (?1, ?2, ?3)
         ON CONFLICT (key) DO UPDATE SET value = excluded.value, fetched_at = excluded.fetched_at`,
        key,
        value,
        now,
      )
    }
    if (statements.length) await this.sql.batch(statements, timeoutMs)
  }

  /**
   * Adds a run's counters to the delivery history: one statement, sent beside the run's write
   * (at the same time, so no round trip is added), and never failing the run.
   */
  async count(history: Counter[]): Promise<boolean> {
    if (!history.length) return true
    try {
      await this.sql.run(addHistory(this.sql, history))
      return true
    } catch {
      return false
    }
  }
}

function parseFields(text: string | null): Record<string, number> {
  try {
    const value: unknown = JSON.parse(text ?? '{}')
    return value && typeof value === 'object' ? (value as Record<string, number>) : {}
  } catch {
    return {}
  }
}

export type ParkedSql = {
  id: number
  user_hash: string
  message_id: string | null
  parked_at: number
  event: string
}

export function toParked(row: ParkedSql): ParkedRow {
  return {
    id: row.id,
    userHash: row.user_hash,
    messageId: row.message_id,
    parkedAt: row.parked_at,
    event: JSON.parse(row.event) as SegmentEvent,
  }
}

function messageState(state: string, leaseUntil: number | null, note: string | null): MessageState {
  if (state === 'claimed') return { state, leaseUntil: leaseUntil ?? 0, by: note }
  if (state === 'rejected') return { state, reason: note ?? '' }
  return { state: 'done' }
}
