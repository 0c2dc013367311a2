// The journey ledger as tests see it: rows by messageId and state name (the table keys them by
// a hash of the messageId and stores the state as a number: src/store/ledger.ts).
import { env } from 'cloudflare:workers'
import { ledgerKey, STATE, STATE_NAME } from '../src/store/ledger'

type State = keyof typeof STATE

/** The messageId's ledger row, its state by name, or undefined. */
export async function ledgerRow(messageId: string, database: D1Database = env.DB!) {
  const row = await database
    .prepare('SELECT state, at, lease_until, note FROM ledger WHERE key = unhex(?1)')
    .bind(ledgerKey(messageId))
    .first<{ state: number; at: number; lease_until: number; note: string | null }>()
  return row ? { ...row, state: STATE_NAME[row.state] } : undefined
}

/** The messageId's state in the ledger ('claimed', 'done', 'rejected'), or undefined. */
export const ledgerState = async (messageId: string, database?: D1Database) => (await ledgerRow(messageId, database))?.state

/** Writes ledger rows directly (as an earlier attempt, or another isolate, left them). */
export async function putLedger(rows: { messageId: string; state: State; at: number; leaseUntil?: number; note?: string }[], database: D1Database = env.DB!) {
  await database.batch(
    rows.map((row) =>
      database
        .prepare('INSERT INTO ledger (key, state, at, lease_until, note) VALUES (unhex(?1), ?2, ?3, ?4, ?5)')
        .bind(ledgerKey(row.messageId), STATE[row.state], row.at, row.leaseUntil ?? 0, row.note ?? null),
    ),
  )
}
