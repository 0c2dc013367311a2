import { describe, expect, it } from 'vitest'
import { KEY, body, clock, order, ortto, person } from './ortto-helpers'

// The Ortto stand-in's transport: auth, content type, routes, the rate limit, the ban, faults,
// latency and its log. Its API: ortto-sandbox.test.ts.
const alice = [person({ 'str::email': 'alice@example.com' })]

describe('Ortto stand-in: auth, content type, routes', () => {
  it('X-Api-Key must be the instance key: missing or wrong -> 401 with the error envelope', async () => {
    const o = ortto()
    for (const headers of [{ 'x-api-key': '' }, { 'x-api-key': 'wrong' }]) {
      const response = await o.call('POST', '/v1/person/merge', { people: alice, merge_by: ['str::email'] }, headers)
      expect(response.status).toBe(401)
      expect(await body(response)).toEqual({ request_id: expect.any(String), code: 401, error: expect.stringContaining('Unauthorized') })
    }
    expect(o.state.people.size).toBe(0)
    expect((await o.merge(alice)).status).toBe(200)
    expect(o.state.calls.map((c) => c.apiKey)).toEqual(['', 'wrong', KEY])
  })

  it('the default key is sandbox-key', async () => {
    const o = ortto({ apiKey: undefined })
    expect((await o.merge(alice)).status).toBe(401)
    expect((await o.call('POST', '/v1/person/merge', { people: alice, merge_by: ['str::email'] }, { 'x-api-key': 'sandbox-key' })).status).toBe(200)
  })

  it('a body that is not application/json -> 415 (a charset is fine)', async () => {
    const o = ortto()
    const text = JSON.stringify({ people: alice, merge_by: ['str::email'] })
    expect((await o.call('POST', '/v1/person/merge', text, { 'content-type': 'text/plain' })).status).toBe(415)
    const bare = new Request('https://api.ap3api.com/v1/person/merge', { method: 'POST', headers: { 'x-api-key': KEY }, body: new TextEncoder().encode(text) })
    expect((await o.state.fetch(bare)).status).toBe(415)
    expect((await o.call('POST', '/v1/person/merge', text, { 'content-type': 'application/json; charset=utf-8' })).status).toBe(200)
  })

  it('unparseable JSON -> 400; unknown path -> 404; a known path with another method -> 405; any host', async () => {
    const o = ortto()
    expect((await o.call('POST', '/v1/person/merge', '{"people": [')).status).toBe(400)
    expect((await o.call('POST', '/v1/person/upsert', {})).status).toBe(404)
    expect((await o.call('POST', '/person/merge', { people: alice, merge_by: ['str::email'] })).status).toBe(404)
    expect((await o.call('GET', '/v1/person/merge')).status).toBe(405)
    const eu = new Request('https://api.eu.ap3api.com/v1/person/merge', {
      method: 'POST',
      headers: { 'x-api-key': KEY, 'content-type': 'application/json' },
      body: JSON.stringify({ people: alice, merge_by: ['str::email'] }),
    })
    expect((await o.state.fetch(eu)).status).toBe(200)
  })
})

describe('Ortto stand-in: rate limit and the ban', () => {
  it('over rateLimit in a sliding second -> 429 with try-in-seconds and no Retry-After', async () => {
    const t = clock()
    const o = ortto({ rateLimit: 2, now: t.now })
    expect((await o.merge(alice)).status).toBe(200)
    t.advance(400)
    expect((await o.merge(alice)).status).toBe(200)
    t.advance(400)
    const limited = await o.merge(alice)
    expect(limited.status).toBe(429)
    expect(limited.headers.get('retry-after')).toBeNull()
    expect(await body(limited)).toEqual({ error: { code: 'rate-limit', message: 'rate limit', 'try-in-seconds': 1 } })
    t.advance(200) // the first call left the window
    expect((await o.merge(alice)).status).toBe(200)
  })

  it('15 refused calls within 15 s ban every call for 15 s (403), then it lifts', async () => {
    const t = clock()
    const o = ortto({ now: t.now })
    for (let i = 0; i < 14; i++) {
      await o.merge([person({ 'str::email': 'x@nodot' })])
      t.advance(1000)
    }
    expect([o.state.banned(), o.state.bans]).toEqual([false, 0])
    await o.call('POST', '/v1/nope', {}) // a 404 counts too: the 15th
    expect([o.state.banned(), o.state.bans]).toEqual([true, 1])
    const banned = await o.merge(alice)
    expect(banned.status).toBe(403)
    expect((await body(banned)).error).toMatch(/^banned/)
    expect(o.state.people.size).toBe(0)
    t.advance(15_000)
    expect((await o.merge(alice)).status).toBe(200)
    expect(o.state.bans).toBe(1)
  })

  it('refusals older than 15 s do not count; 401s, 415s and 429s do', async () => {
    const t = clock()
    const o = ortto({ now: t.now, rateLimit: 1 })
    for (let i = 0; i < 14; i++) {
      await o.call('POST', '/v1/person/merge', {}, { 'x-api-key': 'wrong' })
      t.advance(1100)
    }
    t.advance(1000)
    await o.call('POST', '/v1/person/merge', 'x', { 'content-type': 'text/plain' })
    expect(o.state.banned()).toBe(false) // 15 refusals, but the first two are more than 15 s old
    await o.merge(alice) // 429: the second call within the second
    await o.merge(alice)
    expect(o.state.calls.map((c) => c.status).slice(-3)).toEqual([415, 429, 429])
    expect(o.state.banned()).toBe(true)
  })

  it('the ban can be tuned or switched off', async () => {
    const tuned = ortto({ ban: { after: 2 } })
    await tuned.call('POST', '/v1/nope', {})
    await tuned.call('POST', '/v1/nope', {})
    expect(tuned.state.banned()).toBe(true)
    const off = ortto({ ban: false })
    for (let i = 0; i < 20; i++) await off.call('POST', '/v1/nope', {})
    expect([off.state.banned(), off.state.bans]).toEqual([false, 0])
  })
})

describe('Ortto stand-in: faults, latency, log, reset', () => {
  it('inject answers the next matching calls, in order, then the instance answers again', async () => {
    const o = ortto()
    o.state.inject({ status: 500 }, { status: 429, tryInSeconds: 7 }, { status: 503, match: (c) => c.path === '/v1/activities/create' })
    const failed = await o.merge(alice)
    expect([failed.status, (await body(failed)).code]).toEqual([500, 500])
    const limited = await o.merge(alice)
    expect([limited.status, (await body(limited)).error['try-in-seconds'], limited.headers.get('retry-after')]).toEqual([429, 7, null])
    expect((await o.merge(alice)).status).toBe(200)
    expect((await o.track([order({ 'str::email': 'alice@example.com' })])).status).toBe(503)
    expect((await o.track([order({ 'str::email': 'alice@example.com' })])).status).toBe(200)
  })

  it('a 2xx fault answers its body; a network fault throws; a hang waits for the caller to give up', async () => {
    const o = ortto()
    o.state.inject({ status: 200, body: { people: [] } }, { network: true }, { hang: true })
    expect(await body(await o.merge(alice))).toEqual({ people: [] })
    await expect(o.merge(alice)).rejects.toThrow(TypeError)
    const controller = new AbortController()
    const pending = o.call('POST', '/v1/person/merge', { people: alice, merge_by: ['str::email'] }, {}, controller.signal)
    setTimeout(() => controller.abort(new Error('gave up')), 20)
    await expect(pending).rejects.toThrow('gave up')
    expect(o.state.people.size).toBe(0)
  })

  it('failureRate answers a seeded, repeatable share of calls with 429/500/503', async () => {
    const statuses = async (seed: number) => {
      const o = ortto({ failureRate: 0.5, seed })
      const list = []
      for (let i = 0; i < 30; i++) list.push((await o.merge(alice)).status)
      return list
    }
    const first = await statuses(7)
    expect(await statuses(7)).toEqual(first)
    expect(new Set(first.filter((s) => s !== 200))).toEqual(new Set([429, 500, 503]))
    expect(first.filter((s) => s === 200).length).toBeGreaterThan(5)
  })

  it('latencyMs delays every answer', async () => {
    const o = ortto({ latencyMs: 150 })
    const started = Date.now()
    await o.merge(alice)
    expect(Date.now() - started).toBeGreaterThanOrEqual(145)
  })

  it('logs one line per call: method, path, status, what was refused and who, never the key', async () => {
    const lines: string[] = []
    const o = ortto({ log: (line) => lines.push(line) })
    await o.merge([person({ 'str::email': 'alice@example.com', 'str::first': 'Alice' }), person({ 'str::email': 'x@nodot' })])
    await o.track([order({ 'str::email': 'alice@example.com' })])
    await o.call('POST', '/v1/person/merge', {}, { 'x-api-key': 'wrong' })
    expect(lines).toEqual([
      'POST /v1/person/merge -> 200 (1 refused, first: invalid "field str::email is not a valid email: "x@nodot"")  2 people: alice@example.com {"str::first":"Alice"}; x@nodot',
      'POST /v1/activities/create -> 200  1 activities: act:cm:order-completed for alice@example.com {"str:cm:product":"Tea","int:cm:quantity":2}',
      'POST /v1/person/merge -> 401 "Unauthorized: the API key is not valid"',
    ])
    expect(lines.join('\n')).not.toContain(KEY)
  })

  it('reset forgets people, activities, calls, faults and the ban', async () => {
    const o = ortto({ ban: { after: 1 } })
    await o.track([order({ 'str::email': 'alice@example.com' })])
    await o.call('POST', '/v1/nope', {})
    expect(o.state.banned()).toBe(true)
    o.state.inject({ status: 500 })
    o.state.reset()
    expect([o.state.people.size, o.state.activities.length, o.state.calls.length, o.state.banned(), o.state.bans]).toEqual([0, 0, 0, false, 0])
    expect((await o.merge(alice)).status).toBe(200)
  })
})
