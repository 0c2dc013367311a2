import fc from 'fast-check'
import { CreationLog } from '../src/store/creations'
import { Sql } from '../src/store/sql'
import { beforeEach, describe, expect, it } from 'vitest'
import { db, freshDb, json, rows, setupOrtto, testDb, type Loose } from './helpers'

// Ortto with no setup under every answer (issue 35): a creation answer read as Ortto gives it,
// each name asked at most once a day across isolates, a hold that never outlives its run, a
// refusal remembered, what cannot be made left out and named, and nothing reported delivered
// that Ortto did not take.
const id = () => `m-${crypto.randomUUID()}`
const CREATE = { ORTTO_CREATE: 'fields,activities', ORTTO_ACTIVITIES: '{}' }
const identify = (userId: string, traits: Loose) => ({ type: 'identify', messageId: id(), userId, traits })
const track = (userId: string, event: string, properties: Loose = {}, traits?: Loose) => ({
  type: 'track',
  messageId: id(),
  userId,
  event,
  properties,
  ...(traits && { context: { traits } }),
})
/** The answer of definitions/activity/create recorded from a live instance (../shared/reference/ortto-api.md), whole. */
const RECORDED_ACTIVITY = {
  custom_activity: {
    name: 'sdk-test-with-attrs',
    activity_field_id: 'act:cm:sdk-test-with-attrs',
    state: 'awaiting_implementation',
    display_mode: { type: 'activity' },
    attributes: [
      { name: 'product-name', field_id: 'str:cm:product-name', display_type: 'text', liquid_name: 'activity.custom.sdk-test-with-attrs.product-name' },
      { name: 'quantity', field_id: 'int:cm:quantity', display_type: 'integer', liquid_name: 'activity.custom.sdk-test-with-attrs.quantity' },
    ],
    icon_id: 'moneys-illustration-icon',
    track_conversion_value: false,
    touch: true,
    filterable: true,
    visible_in_feeds: true,
    created_by: 'Public API',
    created_at: '2025-11-06T00:06:31.725Z',
    edited_at: '2025-11-06T00:06:31.725Z',
  },
}
/** The 4xx answers Ortto gave (each counts toward its ban). */
const refusedCalls = (ortto: { calls: { status: number }[] }) => ortto.calls.filter((c) => c.status >= 400 && c.status < 500).length

beforeEach(freshDb)

describe('Ortto creation: answers read as Ortto gives them (item 1)', () => {
  it('a new activity answered in the recorded live shape (id nested) is entered in the same request: one create, no 503, no refused call', async () => {
    const { post, ortto, fetchSpy, calls } = setupOrtto(CREATE)
    // Whatever the stand-in says, Ortto's own recorded answer, byte for byte, after it made the activity.
    fetchSpy.mockImplementation(async (input: RequestInfo | URL, init?: RequestInit) => {
      const request = new Request(input, init)
      const answer = await ortto.fetch(request)
      return new URL(request.url).pathname.endsWith('/definitions/activity/create') && answer.ok ? Response.json(RECORDED_ACTIVITY) : answer
    })
    const body = await json(await post(track('u-r', 'sdk-test-with-attrs', { 'product-name': 'Tea', quantity: 2 })))
    expect(body).toMatchObject({ status: 'delivered' })
    expect(body.issues).toBeUndefined()
    expect(calls('/definitions/activity/create')).toHaveLength(1)
    expect(ortto.activities).toEqual([expect.objectContaining({ activity_id: 'act:cm:sdk-test-with-attrs', attributes: { 'str:cm:product-name': 'Tea', 'int:cm:quantity': 2 } })])
    expect(await rows('SELECT kind, name, id, state FROM created')).toEqual([{ kind: 'activity', name: 'sdk-test-with-attrs', id: 'act:cm:sdk-test-with-attrs', state: 'created' }])
    // Segment's re-send and a later event: nothing made again, nothing refused.
    expect((await json(await post(track('u-r2', 'sdk-test-with-attrs', { quantity: 3 })))).status).toBe('delivered')
    expect(calls('/definitions/activity/create')).toHaveLength(1)
    expect(refusedCalls(ortto)).toBe(0)
  })

  it('ORTTO_CREATE_MAX=2 and eight new activities: two are made, never more; the six tracks are named, not delivered', async () => {
    const { post, calls } = setupOrtto({ ...CREATE, ORTTO_CREATE_MAX: '2' })
    const events = Array.from({ length: 8 }, (_, i) => track(`u${i}`, `Thing ${i}`, { n: i }, { firstName: `P${i}` }))
    const body = await json(await post(events))
    expect(calls('/definitions/activity/create')).toHaveLength(2)
    expect(body.counts).toEqual({ delivered: 2, rejected: 6 })
    expect(body.results).toHaveLength(6)
    for (const result of body.results) expect(result.issues[0]).toEqual({ path: 'event', message: expect.stringContaining('ORTTO_CREATE_MAX') })
    expect((await json(await post(events.map((e) => ({ ...e, messageId: id() }))))).counts).toEqual({ delivered: 2, rejected: 6 })
    expect(calls('/definitions/activity/create')).toHaveLength(2)
  })

  it('a 2xx whose answer lacks the id: made once, its id read back from the account in the same request; never made again', async () => {
    const { post, ortto, fetchSpy, calls } = setupOrtto(CREATE)
    fetchSpy.mockImplementation(async (input: RequestInfo | URL, init?: RequestInit) => {
      const request = new Request(input, init)
      const answer = await ortto.fetch(request)
      return new URL(request.url).pathname.endsWith('/create') && !request.url.includes('/activities/') && answer.ok ? Response.json({ ok: true }) : answer
    })
    const body = await json(await post([identify('u-x', { shoe: 42 }), track('u-x', 'Shoe Bought', { size: 42 })]))
    expect(body.counts).toEqual({ delivered: 2 })
    expect(ortto.activities).toEqual([expect.objectContaining({ activity_id: 'act:cm:shoe-bought', attributes: { 'int:cm:size': 42 } })])
    expect([...ortto.people.values()][0].fields['int:cm:shoe']).toBe(42)
    expect(await rows('SELECT kind, id, state FROM created ORDER BY kind')).toEqual([
      { kind: 'activity', id: 'act:cm:shoe-bought', state: 'created' },
      { kind: 'field', id: 'int:cm:shoe', state: 'created' },
    ])
    // A second isolate whose copy of the account is older: the record says made, so it reads, never creates.
    const other = setupOrtto(CREATE)
    other.fetchSpy.mockImplementation(async (input: RequestInfo | URL, init?: RequestInit) => ortto.fetch(new Request(input, init)))
    expect((await json(await other.post([identify('u-y', { shoe: 43 }), track('u-y', 'Shoe Bought', { size: 43 })]))).counts).toEqual({ delivered: 2 })
    expect([...calls('/person/custom-field/create'), ...calls('/definitions/activity/create')]).toHaveLength(2)
    expect(refusedCalls(ortto)).toBe(0)
  })
})

describe('Ortto creation: a request counts the calls it made (item 2)', () => {
  it('one identify with 12 new traits and ORTTO_CREATE_MAX=2: delivered at once with 2 made and 10 named, and the re-send makes no call', async () => {
    const { post, ortto, calls } = setupOrtto({ ...CREATE, ORTTO_CREATE_MAX: '2' })
    const traits = Object.fromEntries(Array.from({ length: 12 }, (_, i) => [`t${i}`, i]))
    const event = identify('u-12', { email: 'twelve@example.com', ...traits })
    const body = await json(await post(event))
    expect(body.status).toBe('delivered')
    expect(body.issues).toHaveLength(10)
    for (const issue of body.issues) expect(issue.message).toContain('ORTTO_CREATE_MAX')
    expect(calls('/person/custom-field/create')).toHaveLength(2)
    const person = [...ortto.people.values()].find((p) => p.fields['str::ei'] === 'u-12')!
    expect(Object.keys(person.fields).filter((f) => f.includes(':cm:t'))).toHaveLength(2)
    expect((await post({ ...event, messageId: id() })).status).toBe(200)
    expect(calls('/person/custom-field/create')).toHaveLength(2)
    expect(ortto.calls.map((c) => c.status).filter((s) => s >= 500)).toEqual([])
  })

  it('with the default cap, 12 new traits: 8 made now (the request’s calls), 4 named and made by the next event that carries them', async () => {
    const { post, calls, logLines } = setupOrtto(CREATE)
    const traits = Object.fromEntries(Array.from({ length: 12 }, (_, i) => [`t${i}`, `v${i}`]))
    const first = await json(await post(identify('u-d', traits)))
    expect(first.status).toBe('delivered')
    expect(first.issues).toHaveLength(4)
    expect(calls('/person/custom-field/create')).toHaveLength(8)
    expect(logLines().at(-1)!.d1.queries).toBeLessThanOrEqual(50)
    expect((await json(await post(identify('u-d', traits)))).issues).toBeUndefined()
    expect(calls('/person/custom-field/create')).toHaveLength(12)
  })
})

describe('Ortto creation: no hold outlives its run (item 3)', () => {
  it('a hold whose write committed after the Worker gave up on it blocks the name no longer than that run’s answer', async () => {
    const store = testDb()
    const { post, calls } = setupOrtto({ ...CREATE, DB: store.db, STORE_TIMEOUT_MS: '400', DIRECT_DEADLINE_MS: '1000' })
    await post(identify('u-0', { email: 'zero@example.com' })) // the account is read
    store.delay('INSERT INTO created (kind, name, day, at, state, until) SELECT', 800)
    const event = identify('u-h', { email: 'h@example.com', colour: 'teal' })
    const started = Date.now()
    expect((await post(event)).status).toBe(503)
    expect(calls('/person/custom-field/create')).toHaveLength(0)
    await new Promise((resolve) => setTimeout(resolve, Math.max(900, started + 1_750 - Date.now()))) // the slow write lands; the answer was due
    expect(await rows(`SELECT state FROM created WHERE name = 'colour'`)).toEqual([{ state: 'held' }])
    // Segment's retry comes after the answer: the hold has ended with it.
    expect((await json(await post(event))).status).toBe('delivered')
    expect(calls('/person/custom-field/create')).toHaveLength(1)
  })

  it('a create that failed and whose release failed too: the next run after the hold looks in the account, then makes it once', async () => {
    const store = testDb()
    const { post, ortto, calls } = setupOrtto({ ...CREATE, DB: store.db, DIRECT_DEADLINE_MS: '1000' })
    await post(identify('u-0', { email: 'zero@example.com' })) // the account is read
    ortto.inject({ status: 503, match: (call) => call.path === '/v1/person/custom-field/create' })
    store.fail('UPDATE created SET until = 0', 2)
    const event = identify('u-r', { email: 'r@example.com', colour: 'teal' })
    const started = Date.now()
    expect((await post(event)).status).toBe(503)
    expect(await rows(`SELECT state, until > 0 AS live FROM created WHERE name = 'colour'`)).toEqual([{ state: 'held', live: 1 }])
    await new Promise((resolve) => setTimeout(resolve, Math.max(0, started + 1_750 - Date.now())))
    const reads = calls('/person/custom-field/get').length
    expect((await json(await post(event))).status).toBe('delivered')
    expect(calls('/person/custom-field/get').length).toBeGreaterThan(reads) // looked before making it again
    expect(calls('/person/custom-field/create').map((c) => c.status)).toEqual([503, 200])
    expect(await rows(`SELECT state, id FROM created WHERE name = 'colour'`)).toEqual([{ state: 'created', id: 'str:cm:colour' }])
  })
})

describe('Ortto creation: a refusal is remembered (item 4)', () => {
  it('the field cap reached: one refused call, then 16 identifies with new traits are delivered without them, named; nothing held back', async () => {
    const { post, ortto, calls } = setupOrtto(CREATE, { maxCustomFields: 9 }) // the test account has 9
    const answers = []
    for (let i = 0; i < 16; i++) answers.push(await json(await post(identify(`u${i}`, { email: `p${i}@example.com`, [`trait${i % 3}`]: i }))))
    for (const answer of answers) {
      expect(answer.status).toBe('delivered')
      expect(answer.issues).toEqual([{ path: expect.stringMatching(/^traits\.trait/), message: expect.stringContaining("raise the Ortto plan's limit on custom fields") }])
    }
    expect(calls('/person/custom-field/create')).toHaveLength(1)
    expect(refusedCalls(ortto)).toBe(1)
    const plain = await json(await post(identify('u-plain', { email: 'plain@example.com', firstName: 'P' })))
    expect(plain.status).toBe('delivered')
    expect(await rows(`SELECT name, state FROM created WHERE state = 'refused' ORDER BY name`)).toEqual([
      { name: '*', state: 'refused' },
      { name: 'trait0', state: 'refused' },
    ])
  })

  it('a name Ortto refuses (400) is asked once a day, in any isolate; the reason is kept and shown to doctor', async () => {
    const one = setupOrtto(CREATE)
    one.ortto.inject({ status: 400, body: { error: 'name not allowed' }, match: (call) => call.path === '/v1/person/custom-field/create' })
    const first = await json(await one.post(identify('u-a', { email: 'a@example.com', odd: 'x' })))
    expect(first.issues).toEqual([{ path: 'traits.odd', message: expect.stringContaining('name not allowed') }])
    const other = setupOrtto(CREATE)
    other.fetchSpy.mockImplementation(async (input: RequestInfo | URL, init?: RequestInit) => one.ortto.fetch(new Request(input, init)))
    const second = await json(await other.post(identify('u-b', { email: 'b@example.com', odd: 'y' })))
    expect(second.status).toBe('delivered')
    expect(second.issues).toEqual([{ path: 'traits.odd', message: expect.stringContaining('not asked again today') }])
    expect(one.calls('/person/custom-field/create')).toHaveLength(1)
    expect(await rows(`SELECT state, note FROM created WHERE name = 'odd'`)).toEqual([{ state: 'refused', note: expect.stringContaining('name not allowed') }])
  })

  it('a trait name Ortto could not take (over 100 characters) is never asked: named, no refused call', async () => {
    const { post, ortto } = setupOrtto(CREATE)
    const body = await json(await post(identify('u-l', { email: 'l@example.com', ['x'.repeat(101)]: 1 })))
    expect(body.issues).toEqual([{ path: `traits.${'x'.repeat(101)}`, message: expect.stringContaining('no name a field can take') }])
    expect(ortto.calls.filter((c) => c.path.endsWith('/create') && !c.path.includes('activities'))).toEqual([])
    expect(refusedCalls(ortto)).toBe(0)
  })
})

describe('Ortto creation: nothing reported delivered that Ortto did not take (item 5)', () => {
  it('a new activity refused by the plan: its tracks are rejected with the reason and what to do, no bare people made, and doctor and /admin list it', async () => {
    const { post, ortto, calls, request } = setupOrtto({ ...CREATE, ADMIN_TOKEN: 'admin-token-35' }, { maxActivities: 3 }) // the test account has 3
    const body = await json(await post([track('u1', 'Upgraded', { tier: 'gold' }), track('u2', 'Upgraded', { tier: 'gold' }), track('u3', 'Upgraded', { tier: 'silver' })]))
    expect(body.counts).toEqual({ rejected: 3 })
    for (const result of body.results) expect(result.issues[0]).toEqual({ path: 'event', message: expect.stringContaining("raise the Ortto plan's limit on custom activities") })
    expect(calls('/definitions/activity/create')).toHaveLength(1)
    expect(ortto.people.size).toBe(0) // nothing but their keys: not worth a person
    expect(await rows(`SELECT kind, name, state FROM created WHERE name = 'Upgraded'`)).toEqual([{ kind: 'activity', name: 'Upgraded', state: 'refused' }])
    const check = await request(new Request('https://worker.test/health?check=ortto', { headers: { authorization: 'Bearer admin-token-35' } }))
    expect(JSON.stringify(await check.json())).toContain('activity \\"Upgraded\\" (Ortto refused it (403)')
    const page = await request(new Request('https://worker.test/admin', { headers: { authorization: `Basic ${btoa('ops:admin-token-35')}` } }))
    expect(await page.text()).toMatch(/Upgraded<\/td><td class="bad">Ortto refused it \(403\)/)
  })

  it('a track with traits whose activity cannot be made: the person is merged, the event rejected and named', async () => {
    const { post, ortto } = setupOrtto({ ...CREATE, ORTTO_CREATE_MAX: '0' })
    const body = await json(await post(track('u-t', 'Upgraded', { tier: 'gold' }, { email: 't@example.com', firstName: 'T' })))
    expect(body.status).toBe('rejected')
    expect(body.message).toContain('person merged')
    expect(body.issues[0]).toEqual({ path: 'event', message: expect.stringContaining('ORTTO_CREATE_MAX') })
    expect([...ortto.people.values()].map((p) => p.fields['str::first'])).toEqual(['T'])
  })

  it('properties a created activity lacks are named with what to do, and listed for the operator', async () => {
    const { post, ortto } = setupOrtto(CREATE)
    expect((await json(await post(track('u-p', 'Upgraded', { tier: 'gold' })))).issues).toBeUndefined()
    const later = await json(await post(track('u-p', 'Upgraded', { tier: 'gold', coupon: 'X1', seats: 3 })))
    expect(later.status).toBe('delivered')
    expect(later.issues).toEqual([
      { path: 'properties.coupon', message: expect.stringContaining('add the attribute to the activity in Ortto') },
      { path: 'properties.seats', message: expect.stringContaining('add the attribute to the activity in Ortto') },
    ])
    expect(ortto.activities.at(-1)!.attributes).toEqual({ 'str:cm:tier': 'gold' })
    expect(await rows(`SELECT kind, name FROM created WHERE kind = 'attribute' ORDER BY name`)).toEqual([
      { kind: 'attribute', name: 'Upgraded / coupon' },
      { kind: 'attribute', name: 'Upgraded / seats' },
    ])
  })
})

describe('Ortto creation: the record’s migration', () => {
  it('a database without migration 0005 is named by the setup check, not called migrated', async () => {
    const { request } = setupOrtto({ ...CREATE, ADMIN_TOKEN: 'admin-token-35' })
    await db().exec('ALTER TABLE created DROP COLUMN until')
    const check = await request(new Request('https://worker.test/health?check=ortto', { headers: { authorization: 'Bearer admin-token-35' } }))
    const database = ((await check.json()) as { checks: { check: string; ok: boolean; message: string }[] }).checks.find((c) => c.check === 'database')!
    expect(database).toMatchObject({ ok: false, message: expect.stringContaining('created.until') })
  })
})

// The record of creations as a scheduler of holds (src/store/creations.ts), on a fake clock,
// under random sequences of runs that make, are refused, fail unanswered, stop short or
// crash between their hold and its end: never more than the day's cap, never a name made or
// refused asked again, and never a name blocked past the end of the hold left on it.
const HOLD_MS = 5_000
const MAX = 2
const NAMES = ['a', 'b', 'c', 'd'] as const
type Ending = 'made' | 'refused' | 'unanswered' | 'stopped' | 'crashed'
type Step = { kind: 'attempt'; name: (typeof NAMES)[number]; ending: Ending } | { kind: 'wait'; ms: number }

const step: fc.Arbitrary<Step> = fc.oneof(
  fc.record({ kind: fc.constant('attempt' as const), name: fc.constantFrom(...NAMES), ending: fc.constantFrom<Ending>('made', 'refused', 'unanswered', 'stopped', 'crashed') }),
  fc.record({ kind: fc.constant('wait' as const), ms: fc.integer({ min: 0, max: 2 * HOLD_MS }) }),
)

describe('the record of creations (holds on a fake clock)', () => {
  it('never more than the cap, nothing asked twice, no name blocked past its hold, under random endings', async () => {
    const sql = new Sql(db(), 2_000)
    await fc.assert(
      fc.asyncProperty(fc.array(step, { maxLength: 25 }), async (steps) => {
        await db().exec('DELETE FROM created')
        let now = Date.parse('2026-12-07T10:00:00Z')
        const settled = new Map<string, 'made' | 'refused'>()
        const heldUntil = new Map<string, number>()
        for (const s of steps) {
          if (s.kind === 'wait') {
            now += s.ms
            continue
          }
          const log = new CreationLog(sql, now + HOLD_MS, () => now)
          const standing = (await log.look([{ kind: 'field', name: s.name }])).get(`field:${s.name}`)
          if (settled.get(s.name) === 'made') expect(standing).toMatchObject({ state: 'created' })
          if (settled.get(s.name) === 'refused') expect(standing).toMatchObject({ state: 'refused' })
          if (standing?.state === 'created' || standing?.state === 'refused') continue
          // A hold whose run's answer is past never blocks the name.
          if ((heldUntil.get(s.name) ?? 0) <= now) expect(standing?.state).not.toBe('taken')
          if (standing?.state === 'taken') continue
          const held = await log.reserve('field', s.name, MAX, standing?.state === 'expired')
          if (held.state !== 'new') {
            expect(held.state).toBe('full')
            continue
          }
          heldUntil.set(s.name, now + HOLD_MS)
          if (s.ending === 'made') await log.created('field', s.name, `str:cm:${s.name}`)
          if (s.ending === 'refused') await log.refused('field', s.name, 'refused')
          if (s.ending === 'unanswered') await log.release('field', s.name, true)
          if (s.ending === 'stopped') await log.release('field', s.name)
          if (s.ending === 'made' || s.ending === 'refused') settled.set(s.name, s.ending)
          if (s.ending === 'unanswered' || s.ending === 'stopped') heldUntil.delete(s.name)
          expect(await log.usedToday()).toBeLessThanOrEqual(MAX)
        }
      }),
      { numRuns: 25 },
    )
  })
})
