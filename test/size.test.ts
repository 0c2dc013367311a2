import { describe, expect, it } from 'vitest'
import { getConfig } from '../src/config'
import { checkSetup } from '../src/setup'
import { databaseSize, describeSize, sizeAlert, sizeAlertFor } from '../src/store/size'
import { Sql } from '../src/store/sql'
import { StoreAdmin } from '../src/store/store-admin'
import { db, freshDb, setup } from './helpers'

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
