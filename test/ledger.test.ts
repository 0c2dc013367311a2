import { applyD1Migrations, env as testEnv } from 'cloudflare:test'
import { beforeEach, describe, expect, it } from 'vitest'
import { ledgerKey, pruneLedger, PRUNE_ROWS_PER_QUERY } from '../src/store/ledger'
import { Sql } from '../src/store/sql'
import { StoreAdmin } from '../src/store/store-admin'
import { getConfig } from '../src/config'
import { checkSetup } from '../src/setup'
import { databaseSize, describeSize, sizeAlert, sizeAlertFor } from '../src/store/size'
import { db, emptyDb, freshDb, json, rows, setup, track } from './helpers'
import { ledgerState } from './ledger-helpers'

// What one D1 holds (issue 39). The journey ledger: keyed by 16 bytes of the messageId's SHA-256, kept
// LEDGER_DAYS, pruned in bounded ranges of its keys; a database migrated in place still knows
// the messageIds it saw before.
const EMAIL = 'ledger@example.com'
const DAY = 24 * 3600 * 1000

beforeEach(freshDb)

describe('migration 0008, in place', () => {
  it('a database upgraded with rows in it still enters a journey once for a messageId seen before the upgrade', async () => {
    await emptyDb()
    const before = testEnv.TEST_MIGRATIONS.filter((m) => m.name < '0008')
    await applyD1Migrations(db(), before)
    const now = Date.now()
    await db()
      .prepare("INSERT INTO messages (message_id, state, at, lease_until, note) VALUES ('seen-done', 'done', ?1, 0, NULL), ('seen-claimed', 'claimed', ?1, ?2, 'old-attempt')")
      .bind(now - 3600_000, now + 600_000)
      .run()
    await applyD1Migrations(db(), testEnv.TEST_MIGRATIONS)

    const { post, autopilot } = setup()
    autopilot.contacts.set(EMAIL, { Email: EMAIL, custom: {} })
    const done = await post(track('Step Activated', EMAIL, { messageId: 'seen-done' }))
    expect(done.status).toBe(200)
    expect((await json(done)).message).toContain('already delivered')
    // A claim an attempt before the upgrade still holds: not taken over before its lease ends.
    const claimed = await post(track('Step Activated', EMAIL, { messageId: 'seen-claimed' }))
    expect(claimed.status).toBe(503)
    expect((await json(claimed)).message).toContain('another attempt is entering this journey now')
    expect(autopilot.enrolments).toHaveLength(0)
    // A new messageId goes into the new table, by its hash: no text of it is stored.
    expect((await post(track('Step Activated', EMAIL, { messageId: 'after-upgrade' }))).status).toBe(200)
    expect(await ledgerState('after-upgrade')).toBe('done')
    expect(await rows('SELECT count(*) AS n FROM ledger WHERE key = ?1', 'after-upgrade')).toEqual([{ n: 0 }])
    expect(await rows('SELECT length(key) AS bytes FROM ledger')).toEqual([{ bytes: 16 }])
  })

  it('the sweep empties the table from before the upgrade as its rows age out', async () => {
    await emptyDb()
    await applyD1Migrations(
      db(),
      testEnv.TEST_MIGRATIONS.filter((m) => m.name < '0008'),
    )
    const now = Date.now()
    await db()
      .prepare("INSERT INTO messages (message_id, state, at) VALUES ('old', 'done', ?1), ('young', 'done', ?2)")
      .bind(now - 2 * DAY, now)
      .run()
    await applyD1Migrations(db(), testEnv.TEST_MIGRATIONS)
    const run = await pruneLedger(new Sql(db(), 5000), now - DAY, 0, 10)
    expect(run.deleted).toBe(1)
    expect(await rows('SELECT message_id FROM messages')).toEqual([{ message_id: 'young' }])
  })
})

describe('the ledger prune', () => {
  /** `count` ledger rows with random keys, made in SQL (one statement), settled at `at`. */
  const fill = (count: number, at: number, state = 1, leaseUntil = 0) =>
    db()
      .prepare(
        `WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ?1)
         INSERT INTO ledger (key, state, at, lease_until) SELECT randomblob(16), ?3, ?2, ?4 FROM n`,
      )
      .bind(count, at, state, leaseUntil)
      .run()

  // npm test fills 20,000 rows; `npm run test:prune` the million (about 6 s on a busy 2-core machine).
  const ROWS = Number(testEnv.TEST_PRUNE_ROWS)
  it(`prunes ${ROWS.toLocaleString('en')} rows in ranges, no query reading more than about its share, keeping what is young and live claims`, { timeout: 60_000 }, async () => {
    const now = Date.now()
    // Keys spread evenly over the key space, written in key order (a random order takes a
    // minute for a million here; the prune does not care): 3 in 5 settled two days ago.
    await db()
      .prepare(
        `WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < ?3 - 1)
         INSERT INTO ledger (key, state, at) SELECT unhex(printf('%08x%024x', i * (4294967295 / ?3), i)), 1, iif(i % 5 < 3, ?1, ?2) FROM n`,
      )
      .bind(now - 2 * DAY, now - 3600_000, ROWS)
      .run()
    await fill(5, now - 2 * DAY, 0, now + 600_000) // claims whose lease runs: kept
    await fill(5, now - 2 * DAY, 0, now - DAY - 1) // claims whose lease ended long ago: pruned
    // A query's share as at a million rows, scaled: the same number of ranges whatever ROWS is.
    const perQuery = (PRUNE_ROWS_PER_QUERY * ROWS) / 1_000_000
    const run = await pruneLedger(new Sql(db(), 30_000), now - DAY, 0, 1000, perQuery)
    expect(run.complete).toBe(true)
    expect(run.deleted).toBe((ROWS * 3) / 5 + 5)
    expect(await rows('SELECT count(*) AS n FROM ledger')).toEqual([{ n: (ROWS * 2) / 5 + 5 }])
    // Ranges sized from the density seen: a handful of queries, none reading far past its share.
    expect(run.queries).toBeGreaterThan(3)
    expect(run.queries).toBeLessThan(20)
    expect(run.maxRowsRead).toBeLessThan(2 * perQuery)
  })

  it('stops at its query budget and goes on from there next run, covering every key once', async () => {
    const now = Date.now()
    await fill(20_000, now - 2 * DAY)
    const sql = new Sql(db(), 5000)
    let cursor = 0
    const runs = []
    for (let i = 0; i < 50; i++) {
      const run = await pruneLedger(sql, now - DAY, cursor, 4, 1000)
      runs.push(run)
      cursor = run.cursor
      if (run.complete) break
    }
    expect(runs.length).toBeGreaterThan(1)
    expect(runs.every((run) => run.queries <= 4)).toBe(true)
    expect(runs.at(-1)!.complete).toBe(true)
    expect(runs.reduce((n, run) => n + run.deleted, 0)).toBe(20_000)
    expect(await rows('SELECT count(*) AS n FROM ledger')).toEqual([{ n: 0 }])
  })

  it("the operator page's claim count reads a bounded number of ledger rows, and says when the ledger is larger", async () => {
    const now = Date.now()
    await fill(3000, now - 3600_000)
    await fill(10, now, 0, now + 600_000)
    const sql = new Sql(db(), 5000)
    const all = await new StoreAdmin(sql).overview(now, now)
    expect(all.claims).toMatchObject({ pending: 10, sampled: false })
    const before = sql.stats.rowsRead
    const sampled = await new StoreAdmin(sql).overview(now, now, 1000)
    expect(sampled.claims.sampled).toBe(true)
    expect(sampled.claims.pending).toBeLessThanOrEqual(10)
    expect(sql.stats.rowsRead - before).toBeLessThan(1100)
  })

  it('keys a messageId by 16 bytes of its SHA-256', () => {
    expect(ledgerKey('abc')).toBe('ba7816bf8f01cfea414140de5dae2223')
  })
})

// The database's size against the plan's cap: on /admin, in the setup check (`npm run doctor`),
// and as the alert the sweep posts at 80 %. D1 states the size in every answer's meta.
const ADMIN = 'size-admin-token'
const MB = 1000 ** 2

/** A store whose answers say the database holds `bytes` (a full database cannot be made here). */
class SizedSql extends Sql {
  constructor(private readonly bytes: number) {
    super(db(), 2000)
  }
  override async all<T>(statement: D1PreparedStatement) {
    const result = await super.all<T>(statement)
    this.dbBytes = this.bytes
    return result
  }
}

describe('the database size', () => {
  it('is said against the plan: Paid 10 GB, Free 500 MB', () => {
    const paid = getConfig({ DB: db() }).plan
    const free = getConfig({ DB: db(), WORKERS_PLAN: 'free' }).plan
    expect(describeSize(databaseSize(1_234_000_000, paid))).toBe("1.23 GB of the Paid plan's 10.0 GB (12 %)")
    expect(describeSize(databaseSize(450 * MB, free))).toBe("450 MB of the Free plan's 500 MB (90 %)")
    expect(describeSize(databaseSize(80_000, paid))).toBe("80.0 kB of the Paid plan's 10.0 GB (< 1 %)")
  })

  it('alerts from 80 % of the cap, not below', () => {
    const free = getConfig({ DB: db(), WORKERS_PLAN: 'free' }).plan
    expect(sizeAlert(databaseSize(399 * MB, free))).toBeUndefined()
    expect(sizeAlert(databaseSize(400 * MB, free))).toMatch(/^The D1 database holds 400 MB of the Free plan's 500 MB \(80 %\): D1 refuses writes when it is full/)
    expect(sizeAlert(undefined)).toBeUndefined()
    expect(sizeAlertFor(free, undefined)).toBeUndefined()
    expect(sizeAlertFor(free, 450 * MB)).toContain('(90 %)')
  })

  it('refuses a WORKERS_PLAN it does not know, naming it', () => {
    expect(getConfig({ DB: db(), WORKERS_PLAN: 'enterprise' }).problems).toContain('WORKERS_PLAN must be "paid" or "free": it is "enterprise"')
  })

  it('the setup check (npm run doctor) says the size D1 reported, and fails at 80 % of the cap', async () => {
    await freshDb()
    const config = getConfig(setup({ WORKERS_PLAN: 'free' }).env)
    const real = await checkSetup(config, {}, new StoreAdmin(new Sql(db(), 2000)))
    const database = real.checks.find((c) => c.check === 'database')!
    expect(database.ok).toBe(true)
    expect(database.message).toMatch(/^The D1 database is migrated; it holds \d+(\.\d+)? kB of the Free plan's 500 MB \(< 1 %\)$/)
    expect(real.checks.some((c) => c.check === 'database size')).toBe(false)
    const full = await checkSetup(config, {}, new StoreAdmin(new SizedSql(420 * MB)))
    expect(full.checks.find((c) => c.check === 'database size')).toMatchObject({ ok: false, message: expect.stringContaining("420 MB of the Free plan's 500 MB (84 %)") })
  })

  it('is on the operator page, beside the journey ledger', async () => {
    await freshDb()
    const { request } = setup({ ADMIN_TOKEN: ADMIN })
    const response = await request(new Request('https://worker.test/admin', { headers: { authorization: `Basic ${btoa(`ops:${ADMIN}`)}` } }))
    const text = await response.text()
    expect(text).toMatch(/id="db-size">\d+(\.\d+)? kB of the Paid plan(&#39;|')s 10.0 GB \(&lt; 1 %\)</)
    expect(text).toContain('the sweep removes it 1 day after its lease (LEDGER_DAYS)')
  })
})
