// Work a destination began and must finish on the re-send, shared by every isolate through D1
// (migrations/0009): Ortto's archived people, whose delete failed — person/get no longer finds
// them, so their ids are kept until the delete goes through. Keys are hashed (a key may be an
// email or a userId); values are the destination's own ids. The sweep drops what is older than
// Segment's retry window with a margin.
import type { Checkpoints } from '../destinations/destination'
import { sha256Hex } from '../pipeline/sha256'
import { json, type Sql } from './sql'

/** Segment retries for 4 h; a checkpoint is kept a week, then the sweep drops it. */
export const CHECKPOINT_KEEP_MS = 7 * 24 * 3_600_000

export class CheckpointLog implements Checkpoints {
  constructor(private readonly sql: Sql) {}

  async read(keys: readonly string[]): Promise<Map<string, string>> {
    const found = new Map<string, string>()
    if (!keys.length) return found
    const byHash = new Map(keys.map((key) => [sha256Hex(key), key]))
    const { results } = await this.sql.all<{ key: string; value: string }>(
      this.sql.prepare('SELECT key, value FROM checkpoints WHERE key IN (SELECT value FROM json_each(?1))').bind(json([...byHash.keys()])),
    )
    for (const row of results) found.set(byHash.get(row.key)!, row.value)
    return found
  }

  async save(entries: readonly (readonly [string, string])[]): Promise<void> {
    if (!entries.length) return
    await this.sql.run(
      this.sql
        .prepare(
          `INSERT INTO checkpoints (key, value, at) SELECT value->>'k', value->>'v', ?2 FROM json_each(?1) WHERE true
           ON CONFLICT (key) DO UPDATE SET value = excluded.value, at = excluded.at`,
        )
        .bind(json(entries.map(([key, value]) => ({ k: sha256Hex(key), v: value }))), Date.now()),
    )
  }

  async clear(keys: readonly string[]): Promise<void> {
    if (!keys.length) return
    await this.sql.run(this.sql.prepare('DELETE FROM checkpoints WHERE key IN (SELECT value FROM json_each(?1))').bind(json(keys.map(sha256Hex))))
  }
}

/** The sweep's prune. */
export async function pruneCheckpoints(sql: Sql, now = Date.now()): Promise<number> {
  const result = await sql.run(sql.prepare('DELETE FROM checkpoints WHERE at < ?1').bind(now - CHECKPOINT_KEEP_MS))
  return result.meta.changes ?? 0
}
