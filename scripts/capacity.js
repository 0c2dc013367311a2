// @ts-check
// `npm run capacity`: how much one D1 database holds. Fills a local D1 (Miniflare, migrations/
// applied) with rows as the pipeline writes them — the statements are store.ts's, the values
// their real shapes: a ledger entry (16 bytes of SHA-256 of a messageId), an identity (two
// SHA-256 hex keys and an email), a parked track (the Segment event's JSON), a contact guard,
// a delivery history counter — in random key order, as production writes them, and measures the
// bytes each row adds (D1's own size_after, so B-tree pages as full as random inserts leave them).
// Then: for each table, what one database holds at the current settings (LEDGER_DAYS from the
// environment, else 1) on Workers Paid (10 GB) and Free (500 MB), beside each destination's own
// ceiling. Writes bench/results/capacity-*.json.
//   npm run capacity                       # 100,000 ledger rows and the rest in proportion
//   CAPACITY_ROWS=400000 npm run capacity  # more rows, steadier numbers
import { createHash, randomUUID } from 'node:crypto'
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { Miniflare } from 'miniflare'
import { migrationStatements } from './worker.js'

const ROWS = Number(process.env.CAPACITY_ROWS ?? 100_000)
const LEDGER_DAYS = Number(process.env.LEDGER_DAYS ?? 1)
const BATCH = 2000
const GB = 1000 ** 3
const PLANS = { paid: 10 * GB, free: 0.5 * GB }
/** The sweep runs every 30 minutes: a row outlives its retention by up to that. */
const SWEEP_DAYS = 1 / 48
const sha = (/** @type {string} */ text) => createHash('sha256').update(text).digest('hex')

const mf = new Miniflare({ modules: true, script: 'export default { fetch: () => new Response("") }', d1Databases: ['DB'], compatibilityDate: '2026-04-01' })
await mf.ready
const db = await mf.getD1Database('DB')
for (const sql of migrationStatements()) await db.prepare(sql).run()
const sizeNow = async () => /** @type {number} */ ((await db.prepare('SELECT 1').run()).meta.size_after)

const now = Date.now()
const track = JSON.parse(readFileSync('examples/track.json', 'utf8'))

/**
 * The tables, each with the statement the pipeline writes it with (src/store/store.ts) and one
 * row's values as it writes them.
 * @type {{ table: string, rows: number, sql: string, row: (i: number) => unknown, extra?: unknown[], kept: string, per: string }[]}
 */
const tables = [
  {
    table: 'ledger',
    rows: ROWS,
    // The confirmation of a journey entry (a claim is the same row with a lease).
    sql: `INSERT INTO ledger (key, state, at) SELECT unhex(value), 1, ?2 FROM json_each(?1) WHERE true
          ON CONFLICT (key) DO UPDATE SET state = 1, at = ?2, lease_until = 0, note = NULL`,
    row: () => sha(randomUUID()).slice(0, 32),
    kept: `LEDGER_DAYS (${LEDGER_DAYS})`,
    per: 'mapped track (Ortto activity, Autopilot journey entry)',
  },
  {
    table: 'identities',
    rows: Math.round(ROWS / 2),
    sql: `INSERT INTO identities (user_hash, email, email_hash, taught_at)
          SELECT value->>'u', value->>'e', value->>'h', value->>'t' FROM json_each(?1) WHERE true
          ON CONFLICT (user_hash) DO NOTHING`,
    row: (i) => ({ u: sha(`user-${i}-${randomUUID()}`), e: `customer.${i}@example.com`, h: sha(`customer.${i}@example.com`), t: now }),
    kept: 'for good (one per userId)',
    per: 'userId with a known email',
  },
  {
    table: 'parked',
    rows: Math.round(ROWS / 10),
    sql: `INSERT OR IGNORE INTO parked (user_hash, message_id, type, parked_at, event)
          SELECT value->>'u', value->>'m', value->>'t', ?2, value->>'e' FROM json_each(?1)`,
    row: (i) => {
      const messageId = `ajs-next-${randomUUID()}`
      const userId = `user-${i}`
      const event = { ...track, messageId, userId, context: { library: track.context.library } }
      return { u: sha(userId), m: messageId, t: 'track', e: JSON.stringify(event) }
    },
    kept: 'until its email comes, at most 7 days',
    per: 'userId-only event waiting for its email',
  },
  {
    table: 'contacts',
    rows: Math.round(ROWS / 5),
    sql: `INSERT INTO contacts (email_hash, fields, updated_at)
          SELECT value->>'h', value->>'f', ?2 FROM json_each(?1) WHERE true ON CONFLICT (email_hash) DO NOTHING`,
    row: (i) => ({ h: sha(`guarded.${i}.${randomUUID()}@example.com`), f: JSON.stringify({ FirstName: now, LastName: now, plan: now }) }),
    kept: '30 days after its last change',
    per: 'person one of whose events failed (or was deleted)',
  },
  {
    table: 'history',
    rows: Math.round(ROWS / 20),
    sql: `INSERT INTO history (hour, kind, key, n) SELECT value->>'h', value->>'k', value->>'c', 1 FROM json_each(?1) WHERE true
          ON CONFLICT (hour, kind, key) DO UPDATE SET n = n + 1`,
    row: (i) => ({ h: Math.floor(now / 3600_000) - (i % (14 * 24)), k: ['event', 'call', 'ms', 'reason'][i % 4], c: `track:delivered#${i}` }),
    kept: '14 days, a few dozen rows an hour whatever the volume',
    per: 'counter (hour, kind, key)',
  },
]

const measured = []
for (const t of tables) {
  const before = await sizeNow()
  const started = Date.now()
  for (let from = 0; from < t.rows; from += BATCH) {
    const rows = Array.from({ length: Math.min(BATCH, t.rows - from) }, (_, i) => t.row(from + i))
    await db
      .prepare(t.sql)
      .bind(JSON.stringify(rows), ...(t.sql.includes('?2') ? [now] : []))
      .run()
  }
  const count = /** @type {{ n: number }} */ (await db.prepare(`SELECT count(*) AS n FROM ${t.table}`).first()).n
  const bytes = (await sizeNow()) - before
  measured.push({ table: t.table, rows: count, bytesPerRow: +(bytes / count).toFixed(1), seconds: +((Date.now() - started) / 1000).toFixed(1), kept: t.kept, per: t.per })
}
await mf.dispose()

const ledger = measured[0]
const identity = measured[1]
const ledgerDaysKept = LEDGER_DAYS + SWEEP_DAYS
/** Tracks a day the ledger alone holds within `cap`. */
const tracksPerDay = (/** @type {number} */ cap) => cap / (ledger.bytesPerRow * ledgerDaysKept)
const M = (/** @type {number} */ n) => `${(n / 1e6).toFixed(1)} M`
const ceilings = [
  { destination: 'Ortto Professional (10 calls/s × 100 activities)', tracksPerDay: 10 * 100 * 86_400 },
  { destination: 'Ortto Business (30 calls/s × 100)', tracksPerDay: 30 * 100 * 86_400 },
  { destination: 'Autopilot (5 calls/s, one journey entry a call)', tracksPerDay: 5 * 86_400 },
]

console.log(`\nBytes a row adds in one D1 (${ROWS.toLocaleString('en')} ledger rows; random key order, as written in production)\n`)
console.log(`${'table'.padEnd(12)}${'rows'.padStart(10)}${'bytes/row'.padStart(11)}  one row per / kept`)
for (const m of measured) console.log(`${m.table.padEnd(12)}${String(m.rows).padStart(10)}${String(m.bytesPerRow).padStart(11)}  ${m.per}; ${m.kept}`)

console.log(`\nWhat one D1 holds at LEDGER_DAYS = ${LEDGER_DAYS} (rows live up to ${LEDGER_DAYS} d + the sweep's 30 min)\n`)
for (const [plan, cap] of Object.entries(PLANS)) {
  console.log(
    `${plan === 'paid' ? 'Workers Paid, 10 GB' : 'Workers Free, 500 MB'}: the ledger alone ${M(tracksPerDay(cap))} tracks a day (${Math.round(tracksPerDay(cap) / 86_400).toLocaleString('en')}/s sustained); identities alone ${M(cap / identity.bytesPerRow)} users`,
  )
}
console.log('')
for (const c of ceilings) {
  const ledgerBytes = c.tracksPerDay * ledger.bytesPerRow * ledgerDaysKept
  const room = PLANS.paid - ledgerBytes
  console.log(
    `${c.destination.padEnd(50)} ${M(c.tracksPerDay).padStart(9)} a day: ledger ${(ledgerBytes / GB).toFixed(2)} GB of 10 GB (${Math.round((ledgerBytes / PLANS.paid) * 100)} %)${room > 0 ? `, room for ${M(room / identity.bytesPerRow)} identities` : ': past one D1'}`,
  )
}

mkdirSync('bench/results', { recursive: true })
const file = `bench/results/capacity-${new Date().toISOString().replace(/[:.]/g, '-')}.json`
writeFileSync(
  file,
  JSON.stringify(
    {
      date: new Date().toISOString(),
      ledgerDays: LEDGER_DAYS,
      measured,
      perPlan: Object.fromEntries(Object.entries(PLANS).map(([plan, cap]) => [plan, { tracksPerDay: Math.round(tracksPerDay(cap)), users: Math.round(cap / identity.bytesPerRow) }])),
      ceilings: ceilings.map((c) => ({ ...c, ledgerBytes: Math.round(c.tracksPerDay * ledger.bytesPerRow * ledgerDaysKept) })),
    },
    null,
    2,
  ),
)
console.log(`\nwritten to ${file}`)
