// The journey ledger's keys and its pruning. A row is keyed by the first 16 bytes of the
// SHA-256 of the messageId (a blob: 16 bytes where the id's text was 36 or more), so that the
// ledger holds a day at Ortto's full rate within one D1. Keys travel to SQL as hex in one JSON
// text and become blobs there (unhex). Because the keys are uniform, the sweep prunes the table
// in ranges of the key space sized to a bounded number of rows each, resuming where the last
// run stopped: no query scans more than about PRUNE_ROWS_PER_QUERY rows, whatever the size.
import { sha256 } from '@noble/hashes/sha2.js'
import type { Sql } from './sql'

const HEX = Array.from({ length: 256 }, (_, byte) => byte.toString(16).padStart(2, '0'))
const encoder = new TextEncoder()
export const KEY_BYTES = 16

/** The ledger's key for a messageId, as hex (32 characters). */
export function ledgerKey(messageId: string): string {
  const digest = sha256(encoder.encode(messageId))
  let hex = ''
  for (let i = 0; i < KEY_BYTES; i++) hex += HEX[digest[i]]
  return hex
}

export const STATE = { claimed: 0, done: 1, rejected: 2 } as const
export const STATE_NAME = ['claimed', 'done', 'rejected'] as const

/** The table the ledger was before migration 0008 (text keys): read beside it until it empties. */
export const LEGACY_TABLE = 'messages'

/** Rows one prune query may scan (D1 allows 30 s a query: this takes well under one). */
export const PRUNE_ROWS_PER_QUERY = 250_000
/** Where the sweep's prune stopped (the next run goes on from there). */
export const PRUNE_CURSOR_KEY = 'ledger:prune'

/** Key positions are the keys' first 4 bytes as a number: 2^32 of them. */
const SPACE = 2 ** 32
/** The first range of a run: 1/256 of the keys, which tells how dense the rest is. */
const FIRST_WIDTH = SPACE / 256
const MIN_WIDTH = SPACE / 65_536
const position = (at: number) => (at >= SPACE ? 'ff'.repeat(KEY_BYTES + 1) : Math.floor(at).toString(16).padStart(8, '0'))

export interface PruneRun {
  /** Ledger rows deleted (both tables). */
  deleted: number
  queries: number
  /** The whole key space was covered: the next run starts again from the beginning. */
  complete: boolean
  /** Where to go on from next time (a key position), when not complete. */
  cursor: number
  /** The most rows any one query read. */
  maxRowsRead: number
}

/**
 * Deletes ledger rows no attempt can need any more (settled before `before`, or claims whose
 * lease ended before it), range by range of the key space from `from`, at most `maxQueries`
 * queries. Each range is sized from the density the previous one showed, so a query reads about
 * PRUNE_ROWS_PER_QUERY rows: a million-row ledger takes a handful of queries, 86 million a few
 * hundred (spread over runs by `maxQueries`, each run going on from where the last stopped).
 */
export async function pruneLedger(sql: Sql, before: number, from: number, maxQueries: number, rowsPerQuery = PRUNE_ROWS_PER_QUERY): Promise<PruneRun> {
  const run: PruneRun = { deleted: 0, queries: 0, complete: false, cursor: from, maxRowsRead: 0 }
  let width = from === 0 ? FIRST_WIDTH : FIRST_WIDTH / 4
  // What the previous migration left: the same rule, a bounded number of rows a query, until it is empty.
  if (from === 0) {
    const legacy = await sql.run(
      sql
        .prepare(
          `DELETE FROM ${LEGACY_TABLE} WHERE message_id IN (SELECT message_id FROM ${LEGACY_TABLE}
             WHERE (state <> 'claimed' AND at < ?1) OR (state = 'claimed' AND lease_until < ?1) LIMIT ?2)`,
        )
        .bind(before, rowsPerQuery),
    )
    run.queries++
    run.deleted += legacy.meta.changes ?? 0
  }
  while (run.queries < maxQueries && run.cursor < SPACE) {
    const upTo = Math.min(SPACE, run.cursor + width)
    const result = await sql.run(
      sql
        .prepare(
          `DELETE FROM ledger WHERE key >= unhex(?1) AND key < unhex(?2)
             AND ((state <> 0 AND at < ?3) OR (state = 0 AND lease_until < ?3))`,
        )
        .bind(position(run.cursor), position(upTo), before),
    )
    run.queries++
    run.deleted += result.meta.changes ?? 0
    const read = result.meta.rows_read ?? 0
    run.maxRowsRead = Math.max(run.maxRowsRead, read)
    run.cursor = upTo
    // The next range holds about rowsPerQuery rows at the density this one showed (at most 8× wider: density varies little, keys are uniform).
    const fitting = read > 0 ? (rowsPerQuery / read) * width : width * 8
    width = Math.max(MIN_WIDTH, Math.min(width * 8, fitting))
  }
  run.complete = run.cursor >= SPACE
  if (run.complete) run.cursor = 0
  return run
}
