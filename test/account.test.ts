import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'
const FIELDS_KEY = 'autopilot:custom_fields'
import { freshDb, identify, json, rows, setup, testDb } from './helpers'

// The account's own custom fields: read from Autopilot, kept per isolate and in D1.
const discovering = (env: Record<string, unknown> = {}, customFields: Record<string, string> = { Age: 'integer', 'Favorite Color': 'string', Birthday: 'date' }) =>
  setup({ AUTOPILOT_FIELDS_REFRESH_SECONDS: '3600', ...env }, { customFields })
const reads = (calls: { path: string }[]) => calls.filter((call) => call.path === '/contacts/custom_fields').length

beforeEach(freshDb)
afterEach(() => {
  vi.useRealTimers()
})

describe("the account's field types", () => {
  it('sends a trait into the field the account already has, in its type and spelling: integer--Age, not a second float--age', async () => {
    const { post, autopilot } = discovering()
    const response = await post(identify({ email: 'a@example.com', age: 42, 'favorite color': 'teal', birthday: '1990-04-01', logins: 3 }))
    expect(response.status).toBe(200)
    expect(autopilot.contacts.get('a@example.com')?.custom).toEqual({
      'integer--Age': 42,
      'string--Favorite--Color': 'teal',
      'date--Birthday': '1990-04-01',
      'float--logins': 3, // no field yet: today's rules
    })
  })

  it('converts a value when that is exact ("42" into an integer field), and reports it when it is not', async () => {
    const { post, autopilot } = discovering()
    expect((await post(identify({ email: 'b@example.com', age: '42' }))).status).toBe(200)
    expect(autopilot.contacts.get('b@example.com')?.custom).toEqual({ 'integer--Age': 42 })
    const response = await post(identify({ email: 'c@example.com', age: 42.5, plan: 'x' }))
    expect(response.status).toBe(200)
    expect((await json(response)).issues).toEqual([{ path: 'traits.age', message: 'is not a whole number, and the account\'s field "Age" is integer; not sent' }])
    expect(autopilot.contacts.get('c@example.com')?.custom).toEqual({ 'string--plan': 'x' })
  })

  it('lets AUTOPILOT_FIELD_TYPES win over the account', async () => {
    const { post, autopilot } = discovering({ AUTOPILOT_FIELD_TYPES: JSON.stringify({ score: 'integer' }) }, { score: 'float' })
    await post(identify({ email: 'd@example.com', score: 7 }))
    expect(autopilot.calls.at(-1)!.body.contact.custom).toEqual({ 'integer--score': 7 })
  })
})

describe('discovery', () => {
  it('reads the list once per isolate, and keeps it in D1 for other isolates', async () => {
    const { post, autopilot } = discovering()
    await post(identify({ email: 'e@example.com', age: 1 }))
    await post(identify({ email: 'f@example.com', age: 2 }))
    expect(reads(autopilot.calls)).toBe(1)
    const stored = await rows<{ value: string }>('SELECT value FROM account_cache WHERE key = ?1', FIELDS_KEY)
    expect(JSON.parse(stored[0].value)).toContainEqual({ name: 'Age', type: 'integer' })
    // Another isolate (another parsed config) finds it in D1, without asking Autopilot.
    const other = discovering()
    await other.post(identify({ email: 'g@example.com', age: 3 }))
    expect(reads(other.autopilot.calls)).toBe(0)
    expect(other.autopilot.contacts.get('g@example.com')?.custom).toEqual({ 'integer--Age': 3 })
  })

  it('reads it again once it is older than AUTOPILOT_FIELDS_REFRESH_SECONDS (a field made in the UI meanwhile)', async () => {
    const { post, autopilot } = discovering({ AUTOPILOT_FIELDS_REFRESH_SECONDS: '60' })
    await post(identify({ email: 'h@example.com', plan: 'x' }))
    autopilot.fieldTypes.set('Tier', 'integer') // made in Autopilot's UI
    vi.useFakeTimers({ toFake: ['Date'], shouldAdvanceTime: true }) // the clock still moves: the pacer spaces calls in time
    vi.setSystemTime(Date.now() + 61_000)
    await post(identify({ email: 'i@example.com', tier: 2 }))
    expect(reads(autopilot.calls)).toBe(2)
    expect(autopilot.contacts.get('i@example.com')?.custom).toEqual({ 'integer--Tier': 2 })
  })

  it('uses the last list it knew when Autopilot cannot list the fields, and asks again a minute later, not on every request', async () => {
    const { post, autopilot, logLines } = discovering({ AUTOPILOT_FIELDS_REFRESH_SECONDS: '60' })
    await post(identify({ email: 'j@example.com', age: 1 }))
    vi.useFakeTimers({ toFake: ['Date'], shouldAdvanceTime: true }) // the clock still moves: the pacer spaces calls in time
    vi.setSystemTime(Date.now() + 61_000)
    autopilot.inject({ status: 500, match: (call) => call.path === '/contacts/custom_fields' })
    expect((await post(identify({ email: 'k@example.com', age: 2 }))).status).toBe(200)
    expect(autopilot.contacts.get('k@example.com')?.custom).toEqual({ 'integer--Age': 2 }) // the stale list
    expect(logLines().at(-1)!.problems).toEqual({ fields: expect.stringContaining('custom fields: Autopilot is unavailable (500)') })
    await post(identify({ email: 'l@example.com', age: 3 }))
    expect(reads(autopilot.calls)).toBe(2)
  })

  it("falls back to today's rules when there has never been a list", async () => {
    const { post, autopilot } = discovering()
    autopilot.inject({ status: 503, match: (call) => call.path === '/contacts/custom_fields' })
    expect((await post(identify({ email: 'm@example.com', age: 4 }))).status).toBe(200)
    expect(autopilot.calls.at(-1)!.body.contact.custom).toEqual({ 'float--age': 4 })
  })

  it('still delivers when D1 cannot keep the list', async () => {
    const store = testDb()
    store.fail('account_cache')
    const { post, autopilot } = discovering({ DB: store.db })
    expect((await post(identify({ email: 'n@example.com', age: 5 }))).status).toBe(200)
    expect(autopilot.contacts.get('n@example.com')?.custom).toEqual({ 'integer--Age': 5 })
  })
})

describe('the setup check: GET /health?check=autopilot and npm run doctor', () => {
  const ADMIN = 'admin-token-9c1d'
  const check = (request: (r: Request) => Promise<Response>, token = ADMIN) =>
    request(new Request('https://worker.test/health?check=autopilot', { headers: token ? { authorization: `Bearer ${token}` } : {} }))

  it('is for admins only: 401 without ADMIN_TOKEN, while plain /health stays open', async () => {
    const { request, get } = setup({ ADMIN_TOKEN: ADMIN })
    expect((await check(request, '')).status).toBe(401)
    expect((await get('/health')).status).toBe(200)
  })

  it('answers 400 for a check it does not know', async () => {
    const { request } = setup({ ADMIN_TOKEN: ADMIN })
    const response = await request(new Request('https://worker.test/health?check=everything', { headers: { authorization: `Bearer ${ADMIN}` } }))
    expect(response.status).toBe(400)
    expect(await json(response)).toEqual({ message: 'The only check is ?check=autopilot' })
  })

  it('says ready when the key, the trigger ids, the fields and the database check out', async () => {
    const { request } = setup({ ADMIN_TOKEN: ADMIN }, { triggers: ['0001', '0002'], customFields: { Age: 'integer' } })
    const body = await json(await check(request))
    expect(body.status).toBe('ok')
    expect(body.checks.map((c: { check: string }) => c.check)).toEqual(['database', 'api key', 'triggers', 'triggers', 'custom fields'])
    expect(body.customFields).toEqual([{ name: 'Age', type: 'integer' }])
  })

  it('reports a wrong trigger id and a type conflict in words a Segment admin understands', async () => {
    const { request } = setup(
      { ADMIN_TOKEN: ADMIN, AUTOPILOT_TRIGGERS: JSON.stringify({ 'Step Activated': '0001', 'Order Completed': '9999' }), AUTOPILOT_FIELD_TYPES: JSON.stringify({ age: 'float' }) },
      { triggers: ['0001', '0002'], customFields: { Age: 'integer' } },
    )
    const body = await json(await check(request))
    expect(body.status).toBe('problems')
    const failed = body.checks.filter((c: { ok: boolean }) => !c.ok).map((c: { message: string }) => c.message)
    expect(failed).toEqual([
      expect.stringMatching(/^"Order Completed" is mapped to trigger 9999, which your Autopilot account does not have.*0001 \(Journey 0001\), 0002/),
      expect.stringMatching(/^AUTOPILOT_FIELD_TYPES pins "age" to float, but your account's field "Age" is integer/),
    ])
  })

  it('reports a rejected API key, and a database that is not migrated', async () => {
    const { request, env } = setup({ ADMIN_TOKEN: ADMIN, AUTOPILOT_API_KEY: 'ap-wrong-key' })
    await env.DB!.exec('DROP TABLE dead_letters')
    const body = await json(await check(request))
    expect(body.checks).toEqual([
      { check: 'database', ok: false, message: expect.stringContaining('not migrated (missing: dead_letters): run npx wrangler d1 migrations apply segment-autopilot --remote') },
      { check: 'api key', ok: false, message: expect.stringContaining('Autopilot refused AUTOPILOT_API_KEY') },
    ])
    expect(JSON.stringify(body)).not.toContain('ap-wrong-key')
  })
})
