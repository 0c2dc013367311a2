import { describe, expect, it, vi } from 'vitest'
import identifySeed from '../examples/identify.json'
import { API_KEY, encoder, fakeQueue, identify, json, SECRET, setup, sign, TOKEN, track } from './helpers'
import { MAX_TRAIT_DEPTH, MAX_TRAIT_TEXT } from '../src/segment/schema'
import batchExample from '../examples/batch.json'
import wranglerToml from '../wrangler.toml?raw'
import { version } from '../package.json'
import { DEAD_LETTER_QUEUE, EVENTS_QUEUE, MAX_ATTEMPTS } from '../src/queue/queue'

describe('routes', () => {
  it('GET /health says which settings are present, never their values', async () => {
    const { get } = setup()
    const response = await get('/health')
    expect(response.status).toBe(200)
    const body = await json(response)
    expect(body).toMatchObject({
      status: 'ok',
      mode: 'direct',
      settings: { AUTOPILOT_API_KEY: true, SEGMENT_SHARED_SECRET: true, SEGMENT_WEBHOOK_TOKEN: false, AUTOPILOT_TRIGGERS: 2 },
    })
    const text = JSON.stringify(body)
    expect(text).not.toContain(API_KEY)
    expect(text).not.toContain(SECRET)
  })

  it.each([
    ['GET', '/', 405, 'POST'],
    ['PUT', '/', 405, 'POST'],
    ['POST', '/health', 405, 'GET'],
  ])('%s %s -> %i JSON with Allow', async (method, path, status, allow) => {
    const { request } = setup()
    const response = await request(new Request(`https://worker.test${path}`, { method, body: method === 'GET' ? undefined : '{}' }))
    expect(response.status).toBe(status)
    expect(response.headers.get('allow')).toBe(allow)
    expect((await json(response)).message).toContain(allow)
  })

  it('takes a URL pasted with a trailing slash as the same route', async () => {
    const { get } = setup()
    const response = await get('/health/')
    expect(response.status).toBe(200)
    expect(await json(response)).toMatchObject({ status: 'ok', mode: 'direct' })
  })

  it('answers JSON 404 for any other path', async () => {
    const { request } = setup()
    const response = await request(new Request('https://worker.test/nope', { method: 'POST', body: '{}' }))
    expect(response.status).toBe(404)
    expect((await json(response)).message).toMatch(/not found/i)
  })
})

describe('body shapes', () => {
  it('accepts one event', async () => {
    const { post, autopilot } = setup()
    const response = await post(identifySeed)
    expect(response.status).toBe(200)
    expect(await json(response)).toEqual({ status: 'delivered', message: 'contact upserted' })
    expect(autopilot.contacts.get('john.doe@example.com')).toMatchObject({ FirstName: 'John', LastName: 'Joe' })
  })

  it('accepts {"batch": [...]} like an array', async () => {
    const { post, autopilot } = setup()
    const batch = [1, 2].map((n) => ({ type: 'identify', messageId: `b${n}`, traits: { email: `b${n}@example.com` } }))
    const response = await post({ batch })
    expect(response.status).toBe(200)
    expect(await json(response)).toMatchObject({ counts: { delivered: 2 }, results: [] })
    expect([...autopilot.contacts.keys()]).toEqual(['b1@example.com', 'b2@example.com'])
  })

  it.each([
    ['not json', '{"type": "identify",', 'not valid JSON'],
    ['a JSON string', '"hello"', 'must be a Segment event'],
    ['a number', '42', 'must be a Segment event'],
    ['null', 'null', 'must be a Segment event'],
  ])('answers 400 for %s', async (_, body, message) => {
    const { post, autopilot } = setup()
    const response = await post(body)
    expect(response.status).toBe(400)
    expect((await json(response)).message).toContain(message)
    expect(autopilot.calls).toHaveLength(0)
  })
})

describe('validation', () => {
  it.each([
    [{ type: 'launch', userId: 'u' }, 'type', 'must be one of identify, track, page, screen, group, alias, delete'],
    [{ userId: 'u' }, 'type', 'must be one of'],
    [{ type: 'identify', userId: 'u', traits: [] }, 'traits', 'must be an object'],
    [{ type: 'identify', userId: 'u', traits: 'x' }, 'traits', 'must be an object'],
    [{ type: 'identify', userId: 'u', context: 'x' }, 'context', 'must be an object'],
    [{ type: 'track', userId: 'u' }, 'event', 'is required'],
    [{ type: 'track', userId: 'u', event: '  ' }, 'event', 'must be a non-empty event name'],
    [{ type: 'track', userId: 'u', event: 'E', properties: [1] }, 'properties', 'must be an object'],
    [{ type: 'page', userId: 'u', properties: 'x' }, 'properties', 'must be an object'],
  ])('%j -> 400 naming %s', async (event, path, message) => {
    const { post, autopilot } = setup()
    const response = await post(event)
    expect(response.status).toBe(400)
    const body = await json(response)
    expect(body.message).toContain(path)
    expect(body.issues).toContainEqual({ path, message: expect.stringContaining(message) })
    expect(autopilot.calls).toHaveLength(0)
  })

  it.each([
    [{ type: 'identify', traits: { email: 'not-an-email' } }, 400, 'traits.email', 'must be an email address; not used'],
    [{ type: 'identify', traits: { email: 42 } }, 400, 'traits.email', 'must be a string; not used'],
    [{ type: 'identify', traits: { email: 'a@b.co', title: { x: 1 } } }, 200, 'traits.title', 'must be text; not sent'],
    [{ type: 'identify', traits: { email: 'a@b.co', unsubscribed: 'maybe' } }, 200, 'traits.unsubscribed', 'must be true or false; not sent'],
    [{ type: 'identify', traits: { email: 'a@b.co', address: 'Main St 1' } }, 200, 'traits.address', 'must be an object'],
    [{ type: 'track', messageId: 'te', userId: 'u', event: 'Step Activated', properties: { email: 'nope' } }, 202, 'properties.email', 'must be an email address; not used'],
  ])('%j: a reserved trait it cannot send is left out with an issue naming it (%i), not the whole event', async (event, status, path, message) => {
    const { post } = setup()
    const response = await post(event)
    expect(response.status).toBe(status)
    expect((await json(response)).issues).toContainEqual({ path, message: expect.stringContaining(message) })
  })

  it('does not echo the event back in a validation error', async () => {
    const { post } = setup()
    const response = await post({ type: 'identify', traits: { email: 'secret-person@', ssn: '123-45-6789' } })
    expect(response.status).toBe(400)
    const text = await response.text()
    expect(text).not.toContain('secret-person')
    expect(text).not.toContain('123-45-6789')
  })

  it('is liberal about fields it does not read', async () => {
    const { post } = setup()
    const response = await post({
      ...identifySeed,
      version: '1.1',
      channel: 'server',
      request_ip: '203.0.113.9',
      timestamp: '2026-11-28T15:30:00+05:30',
      context: { ...identifySeed.context, library: 42, extra: [1, 2] },
      integrations: { All: true },
    })
    expect(response.status).toBe(200)
  })

  it('accepts the other types and sends nothing', async () => {
    const { post, autopilot } = setup()
    for (const event of [
      { type: 'page', userId: 'u', name: 'Pricing', properties: { path: '/' } },
      { type: 'screen', userId: 'u', name: 'Home' },
      // A group sets the contact's Company: with only an anonymousId there is no contact to set it on.
      { type: 'group', anonymousId: 'a', groupId: 'g', traits: { name: 'G' } },
      { type: 'delete', userId: 'u' },
    ]) {
      const response = await post(event)
      expect(response.status).toBe(200)
      expect(await json(response)).toMatchObject({ status: 'skipped' })
    }
    // An alias whose ids have no email yet waits for one (issue 36).
    const alias = await post({ type: 'alias', userId: 'u', previousId: 'p' })
    expect(alias.status).toBe(202)
    expect(await json(alias)).toMatchObject({ status: 'deferred' })
    expect(autopilot.calls).toHaveLength(0)
  })
})

describe('unexpected errors', () => {
  it('answer JSON 500 with a request id, never a bare 500 or the error text', async () => {
    const { post } = setup()
    vi.spyOn(crypto.subtle, 'verify').mockRejectedValue(new Error(`boom ${SECRET}`))
    const response = await post(identifySeed)
    expect(response.status).toBe(500)
    const body = await json(response)
    expect(body.message).toMatch(/^Internal error \(request [\w-]+\)/)
    expect(JSON.stringify(body)).not.toContain(SECRET)
  })
})

describe('body size (MAX_BODY_BYTES, hono/body-limit)', () => {
  it('refuses a body whose Content-Length is over the limit with 413 JSON', async () => {
    const { post, autopilot } = setup({ MAX_BODY_BYTES: '1000' })
    const response = await post(identify({ email: 'a@example.com', bio: 'x'.repeat(2000) }))
    expect(response.status).toBe(413)
    expect((await json(response)).message).toContain('MAX_BODY_BYTES (1000 bytes)')
    expect(autopilot.calls).toHaveLength(0)
  })

  it('stops reading a streamed body once it passes the limit', async () => {
    const { request } = setup({ MAX_BODY_BYTES: '10240' })
    let pulled = 0
    const chunk = encoder.encode(' '.repeat(1024))
    const stream = new ReadableStream<Uint8Array>({
      pull(controller) {
        pulled++
        if (pulled > 100) controller.close()
        else controller.enqueue(chunk)
      },
    })
    const response = await request(new Request('https://worker.test/', { method: 'POST', body: stream, headers: { 'x-signature': await sign('') } }))
    expect(response.status).toBe(413)
    expect(pulled).toBeLessThan(20)
  })

  it('defaults to 5 MiB, enough for Segment batches of thousands of events', async () => {
    const { post } = setup()
    const events = Array.from({ length: 3000 }, (_, i) => ({ type: 'page', messageId: `p${i}`, userId: 'u', name: 'x'.repeat(1000) }))
    const response = await post(events)
    expect(response.status).toBe(200)
    const tooBig = await post([{ type: 'page', name: 'x'.repeat(5 * 1024 * 1024) }])
    expect(tooBig.status).toBe(413)
  })
})

describe('hostile input gets a 4xx naming the problem, never a 500', () => {
  it('deeply nested arrays as the body', async () => {
    const { post } = setup()
    const response = await post('['.repeat(100_000) + ']'.repeat(100_000))
    expect(response.status).toBe(200) // a batch of one invalid event, reported per event
    const { results } = await json(response)
    expect(results).toEqual([{ index: 0, status: 'rejected', message: 'Invalid event: an event must be a JSON object', issues: [expect.any(Object)] }])
  })

  it('a trait nested deeper than the limit', async () => {
    const { post, autopilot } = setup()
    let deep: unknown = 'leaf'
    for (let i = 0; i < MAX_TRAIT_DEPTH + 5; i++) deep = { deeper: deep }
    const response = await post(identify({ email: 'a@example.com', deep }))
    expect(response.status).toBe(400)
    const body = await json(response)
    expect(body.issues).toEqual([{ path: 'traits.deep', message: expect.stringContaining('nested at most') }])
    expect(autopilot.calls).toHaveLength(0)
  })

  it('a huge string trait', async () => {
    const { post } = setup()
    const response = await post(identify({ email: 'a@example.com', bio: 'x'.repeat(MAX_TRAIT_TEXT + 1) }))
    expect(response.status).toBe(400)
    expect((await json(response)).issues).toEqual([{ path: 'traits.bio', message: expect.stringContaining(`${MAX_TRAIT_TEXT} characters`) }])
  })

  it.each([
    ['a NUL in the email', { email: 'a\u0000b@example.com' }, 'traits.email'],
    ['a lone surrogate in the email', { email: 'a\ud800@example.com' }, 'traits.email'],
    ['an email of 300 characters', { email: `${'a'.repeat(290)}@example.com` }, 'traits.email'],
  ])('%s: not used, said so; the userId resolves (here: parks) the event', async (_, traits, path) => {
    const { post, autopilot } = setup()
    const response = await post(identify(traits))
    expect(response.status).toBe(202)
    expect((await json(response)).issues[0].path).toBe(path)
    expect(autopilot.calls).toHaveLength(0)
  })

  it.each([
    ['messageId', { messageId: 'm'.repeat(300) }],
    ['userId', { userId: 'u'.repeat(600) }],
    ['event', { event: 'e'.repeat(300) }],
  ])('an oversized %s', async (field, extra) => {
    const { post } = setup()
    const response = await post({ type: 'track', userId: 'u', event: 'E', properties: { email: 'a@example.com' }, ...extra })
    expect(response.status).toBe(400)
    expect((await json(response)).issues[0].path).toBe(field)
  })

  it('odd Unicode in trait names and values reaches Autopilot as well-formed text', async () => {
    const { post, autopilot } = setup()
    const response = await post(identify({ email: 'a@example.com', 'na\u0000me\u200f': 'v\ud800al\u0000ue', firstName: 'J\udfffo' }))
    expect(response.status).toBe(200)
    const { contact } = autopilot.calls[0].body
    expect(contact.FirstName).toBe('J\ufffdo')
    expect(contact.custom).toEqual({ 'string--name\u200f': 'v\ufffdal\u0000ue' })
  })

  it('__proto__, constructor and prototype neither crash, reach Autopilot, nor change the email', async () => {
    const { post, autopilot } = setup()
    const raw =
      '{"type":"identify","userId":"u","traits":{"email":"real@example.com","__proto__":{"email":"evil@example.com","isAdmin":true},' +
      '"constructor":{"prototype":{"x":1}},"prototype":"p","ok":true},"context":{"__proto__":{"traits":{"email":"evil2@example.com"}}}}'
    const response = await post(raw)
    expect(response.status).toBe(200)
    expect(autopilot.calls[0].body).toEqual({ contact: { Email: 'real@example.com', custom: { 'boolean--ok': true } } })
    expect(({} as Record<string, unknown>).isAdmin).toBeUndefined()
  })

  it('a track whose properties carry __proto__ uses the real email', async () => {
    const { post, autopilot } = setup()
    const raw = '{"type":"track","userId":"u","event":"Clicked","properties":{"__proto__":{"email":"evil@example.com"}},"context":{"traits":{"email":"real@example.com","plan":"x"}}}'
    expect((await post(raw)).status).toBe(200)
    expect(autopilot.calls[0].body.contact.Email).toBe('real@example.com')
  })

  it('wrong types in a batch: the good events are delivered, the bad ones (and a bad field) reported', async () => {
    const { post, autopilot } = setup()
    const response = await post([
      identify({ email: 'good@example.com' }),
      7,
      null,
      'text',
      { type: 'identify', traits: { email: 'x@example.com', address: 'not an object' } },
      { type: 'track', event: ['E'], properties: { email: 'x@example.com' } },
    ])
    expect(response.status).toBe(200)
    const { results, counts } = await json(response)
    expect(counts).toEqual({ delivered: 2, rejected: 4 })
    expect(results.map((r: { index: number; status: string }) => [r.index, r.status])).toEqual([
      [1, 'rejected'],
      [2, 'rejected'],
      [3, 'rejected'],
      [4, 'delivered'],
      [5, 'rejected'],
    ])
    expect(results[3].issues[0].path).toBe('traits.address')
    expect(results[4].issues[0].path).toBe('event')
    expect([...autopilot.contacts.keys()]).toEqual(['good@example.com', 'x@example.com'])
  })
})

const identifies = (n: number, from = 0) =>
  Array.from({ length: n }, (_, i) => ({
    type: 'identify',
    messageId: `id-${from + i}`,
    userId: `u-${from + i}`,
    traits: { email: `person${from + i}@example.com`, plan: 'pro' },
  }))

describe('batches', () => {
  it('delivers the Webhooks (Actions) example: bulk identify, trigger, skipped page', async () => {
    const { post, autopilot } = setup()
    const signed = await post(batchExample)
    expect(signed.status).toBe(200)
    // Delivered events are counted, not listed: the answer lists what needs a person's eye.
    expect(await json(signed)).toEqual({ message: '2 delivered, 1 skipped', counts: { delivered: 2, skipped: 1 }, results: [] })
    expect(autopilot.enrolments).toMatchObject([{ triggerId: '0002', email: 'one@example.com' }])
  })

  it('sends identifies through POST /contacts, one call per 100 contacts', async () => {
    const { post, autopilot } = setup()
    const response = await post(identifies(250))
    expect(response.status).toBe(200)
    expect(autopilot.calls.map((call) => [call.path, call.body.contacts.length])).toEqual([
      ['/contacts', 100],
      ['/contacts', 100],
      ['/contacts', 50],
    ])
    expect(autopilot.contacts.size).toBe(250)
  })

  it('merges identifies for the same email into one contact, later values winning', async () => {
    const { post, autopilot } = setup()
    const response = await post([
      { type: 'identify', messageId: 'a', traits: { email: 'same@example.com', plan: 'free', firstName: 'A' } },
      { type: 'identify', messageId: 'b', traits: { email: 'other@example.com' } },
      { type: 'identify', messageId: 'c', traits: { email: 'same@example.com', plan: 'pro' } },
    ])
    expect(response.status).toBe(200)
    expect(autopilot.calls).toHaveLength(1)
    expect(autopilot.calls[0].body.contacts).toEqual([{ Email: 'same@example.com', FirstName: 'A', custom: { 'string--plan': 'pro' } }, { Email: 'other@example.com' }])
  })

  it('isolates a poison contact in a rejected bulk call and delivers the rest', async () => {
    const { post, autopilot } = setup()
    const events = identifies(100)
    events[37] = { ...events[37], traits: { email: 'poison@localhost', plan: 'pro' } }
    const response = await post(events)
    expect(response.status).toBe(200)
    const { results } = await json(response)
    expect(results.filter((r: { status: string }) => r.status === 'rejected')).toEqual([
      { index: 37, messageId: 'id-37', status: 'rejected', message: expect.stringContaining('Invalid contact_id_or_email') },
    ])
    expect(autopilot.contacts.size).toBe(99)
    expect(autopilot.calls.filter((call) => call.status === 200).length).toBeLessThanOrEqual(8)
  })

  it('reports invalid events per event and still delivers the good ones', async () => {
    const { post, autopilot } = setup()
    const response = await post([identifies(1)[0], { type: 'identify', traits: { email: 7 } }, { type: 'nope' }])
    expect(response.status).toBe(200)
    const { results, counts } = await json(response)
    expect(counts).toEqual({ delivered: 1, rejected: 2 })
    expect(results.map((r: { index: number; status: string }) => [r.index, r.status])).toEqual([
      [1, 'rejected'],
      [2, 'rejected'],
    ])
    expect(results[0].issues).toEqual([{ path: 'traits.email', message: 'must be a string; not used' }])
    expect(autopilot.contacts.size).toBe(1)
  })

  it('answers 503 with per-event results when any event hit a retryable failure', async () => {
    const { post, autopilot } = setup()
    autopilot.inject({ status: 500, match: (call) => call.path === '/contacts' })
    const response = await post([...identifies(2), { type: 'page', messageId: 'p', userId: 'u' }])
    expect(response.status).toBe(503)
    const body = await json(response)
    expect(body.message).toContain('Segment will re-send')
    expect(body.counts).toEqual({ retry: 2, skipped: 1 })
    expect(body.results.map((r: { index: number; status: string }) => [r.index, r.status])).toEqual([
      [0, 'retry'],
      [1, 'retry'],
    ])
  })

  it('answers 429 when the only retryable failures were rate limits', async () => {
    const { post, autopilot } = setup()
    autopilot.inject({ status: 429, retryAfter: '3' })
    const response = await post(identifies(3))
    expect(response.status).toBe(429)
    expect(response.headers.get('retry-after')).toBe('3')
  })

  it('goes on after one 5xx, and the re-send repeats only what failed', async () => {
    const { post, autopilot } = setup()
    autopilot.inject({ status: 503, match: (call) => call.path === '/contacts' && call.body.contacts.length === 100 })
    const batch = [...identifies(150), track('Step Activated', 'person1@example.com')]
    const first = await post(batch)
    expect(first.status).toBe(503)
    // The first 100 failed; the other 50 landed; the track waits for its person's contact.
    expect(autopilot.calls.map((call) => [call.path, call.status])).toEqual([
      ['/contacts', 503],
      ['/contacts', 200],
    ])
    autopilot.calls.length = 0
    expect((await post(batch)).status).toBe(200)
    expect(autopilot.calls.map((call) => [call.path, call.body?.contacts?.length ?? 0])).toEqual([
      ['/contacts', 100],
      ['/trigger/0001/contact/person1%40example.com', 0],
    ])
  })

  it('stops calling Autopilot after two retryable failures in a row', async () => {
    const { post, autopilot } = setup()
    autopilot.inject({ status: 503 }, { status: 503 })
    const response = await post([...identifies(350), track('Step Activated', 'person1@example.com')])
    expect(response.status).toBe(503)
    expect(autopilot.calls.length).toBeLessThanOrEqual(4) // calls already in flight when the second failure came
    expect(autopilot.calls.filter((call) => call.status === 200).length).toBeLessThanOrEqual(2)
  })

  it('does not trigger a journey twice when Segment re-sends the batch', async () => {
    const { post, autopilot } = setup()
    for (const email of ['a@example.com', 'b@example.com']) autopilot.contacts.set(email, { Email: email, custom: {} })
    const batch = [track('Step Activated', 'a@example.com'), track('Step Activated', 'b@example.com')]
    autopilot.inject({ status: 500, match: (call) => call.path.endsWith('b%40example.com') })
    const first = await post(batch)
    expect(first.status).toBe(503)
    expect(await json(first)).toMatchObject({ counts: { delivered: 1, retry: 1 }, results: [{ index: 1, status: 'retry' }] })
    const again = await post(batch)
    expect(again.status).toBe(200)
    expect(autopilot.enrolments.map((e) => e.email)).toEqual(['a@example.com', 'b@example.com'])
  })

  it('answers an empty batch with 200', async () => {
    const { post, autopilot } = setup()
    const response = await post([])
    expect(response.status).toBe(200)
    expect(await json(response)).toEqual({ message: 'no events', counts: {}, results: [] })
    expect(autopilot.calls).toHaveLength(0)
  })
})

describe('request log', () => {
  it('writes one JSON line per request: id, counts by type and outcome, Autopilot calls with status and duration', async () => {
    const { post, autopilot, logLines } = setup()
    autopilot.contacts.set('known@example.com', { Email: 'known@example.com', custom: {} })
    await post([
      { type: 'identify', messageId: 'i1', traits: { email: 'a@example.com' } },
      { type: 'track', messageId: 't1', event: 'Step Activated', properties: { email: 'known@example.com' } },
      { type: 'page', messageId: 'p1' },
      { type: 'bogus', messageId: 'x1' },
    ])
    const lines = logLines()
    expect(lines).toHaveLength(1)
    expect(lines[0]).toMatchObject({
      requestId: expect.any(String),
      method: 'POST',
      path: '/',
      status: 200,
      auth: 'signature',
      ms: expect.any(Number),
      events: { identify: { delivered: 1 }, track: { delivered: 1 }, page: { skipped: 1 }, invalid: { rejected: 1 } },
      notDelivered: [{ messageId: 'x1', outcome: 'rejected' }],
    })
    // Calls for different people run side by side: in any order.
    expect(lines[0].autopilot).toEqual(
      expect.arrayContaining([
        { op: 'contact', status: 200, ms: expect.any(Number) },
        { op: 'trigger', status: 200, ms: expect.any(Number) },
      ]),
    )
    expect(lines[0].autopilot).toHaveLength(2)
  })

  it("uses Cloudflare's cf-ray as the request id when there is one", async () => {
    const { request, logLines } = setup()
    await request(new Request('https://worker.test/health', { headers: { 'cf-ray': '8f1e2d3c4b5a6978-LHR' } }))
    expect(logLines()[0].requestId).toBe('8f1e2d3c4b5a6978-LHR')
  })

  it("keeps emails, traits, properties, keys, secrets, tokens and signatures out of a failing request's log", async () => {
    const { post, autopilot, logs } = setup({ SEGMENT_WEBHOOK_TOKEN: TOKEN })
    const body = JSON.stringify([
      { type: 'identify', messageId: 'f1', traits: { email: 'private.person@example.com', secretTrait: 'trait-value-42' } },
      { type: 'identify', messageId: 'f2', traits: { email: 'poison@localhost', phone: '+1-555-0100' } },
      { type: 'track', messageId: 'f3', event: 'Step Activated', properties: { email: 'buyer@example.com', coupon: 'property-value-SAVE' } },
      { type: 'identify', messageId: 'f4', traits: { email: 'broken-email', ssn: '078-05-1120' } },
    ])
    const signature = await sign(body)
    autopilot.inject({ status: 500, match: (call) => call.path.startsWith('/trigger') })
    const response = await post(body, { signature, headers: { authorization: `Bearer ${TOKEN}` } })
    expect(response.status).toBe(503)
    const unauthorized = await post(body, { signature: signature.replace(/^./, '0'), headers: { authorization: 'Bearer guess' } })
    expect(unauthorized.status).toBe(401)
    const text = logs.join('\n')
    expect(text).toContain('"f3"') // event ids are logged...
    for (const secret of [
      'private.person',
      'poison@localhost',
      'buyer@example.com',
      'broken-email', // ...emails are not
      'trait-value-42',
      'secretTrait',
      '+1-555-0100',
      'property-value-SAVE',
      '078-05-1120',
      API_KEY,
      SECRET,
      TOKEN,
      signature,
      'guess',
    ]) {
      expect(text).not.toContain(secret)
    }
  })
})

describe('notDelivered', () => {
  it('lists rejected and retried events only, not queued or parked ones', async () => {
    const events = fakeQueue()
    const { post, logLines } = setup({ EVENTS: events.queue })
    await post([
      { type: 'identify', messageId: 'ok-1', traits: { email: 'q@example.com' } },
      { type: 'identify', messageId: 'bad-1', traits: { email: 42 } },
    ])
    expect(logLines()[0].notDelivered).toEqual([{ messageId: 'bad-1', outcome: 'rejected' }])
  })
})

describe('traits left out', () => {
  it('counts every trait left out in the log line, as the answer names them', async () => {
    const { post, logLines } = setup()
    const response = await post({
      type: 'identify',
      messageId: 'lo-1',
      traits: { email: 'lo@example.com', 'Favorite Color': 'red', 'Favorite  Color': 'green', 'Favorite--Color': 'blue', FavoriteColor: 'cyan' },
    })
    const body = await response.json<{ status: string; issues: unknown[] }>()
    expect(body.status).toBe('delivered')
    expect(body.issues).toHaveLength(2)
    expect(logLines().at(-1)!.leftOut).toBe(2)
  })
})

describe('GET /health', () => {
  it('reports version, mode, settings and bindings present (never values)', async () => {
    const { get } = setup({ ADMIN_TOKEN: 'admin-secret-value' })
    const body = await json(await get('/health'))
    expect(body).toEqual({
      status: 'ok',
      destination: 'autopilot',
      version,
      mode: 'direct',
      auth: 'signature',
      settings: {
        AUTOPILOT_API_KEY: true,
        SEGMENT_SHARED_SECRET: true,
        SEGMENT_WEBHOOK_TOKEN: false,
        ALLOW_UNSIGNED: false,
        AUTOPILOT_TRIGGERS: 2,
        ADMIN_TOKEN: true,
      },
      bindings: { DB: true, EVENTS: false, ANALYTICS: false },
    })
    for (const secret of [API_KEY, SECRET, 'admin-secret-value']) expect(JSON.stringify(body)).not.toContain(secret)
  })

  it('reports queued mode and its bindings', async () => {
    const { get } = setup({ EVENTS: fakeQueue().queue })
    expect(await json(await get('/health'))).toMatchObject({ mode: 'queued', bindings: { DB: true, EVENTS: true } })
  })

  it('names the environment in every hint that names a wrangler command (queued mode: --env queued)', async () => {
    const { post, request } = setup({ EVENTS: fakeQueue().queue, AUTOPILOT_API_KEY: undefined, SEGMENT_SHARED_SECRET: undefined, SEGMENT_WEBHOOK_TOKEN: undefined })
    expect((await json(await post(identifySeed, { signature: 'none' }))).message).toContain('npx wrangler secret put SEGMENT_WEBHOOK_TOKEN --env queued')
    const admin = await request(new Request('https://worker.test/dead-letters'))
    expect((await json(admin)).message).toContain('npx wrangler secret put ADMIN_TOKEN --env queued')
    const keyless = setup({ EVENTS: fakeQueue().queue, AUTOPILOT_API_KEY: undefined })
    expect((await json(await keyless.post(identifySeed))).message).toContain('npx wrangler secret put AUTOPILOT_API_KEY --env queued')
    const direct = setup({ AUTOPILOT_API_KEY: undefined })
    expect((await json(await direct.post(identifySeed))).message).toMatch(/npx wrangler secret put AUTOPILOT_API_KEY\)/)
  })

  it('is misconfigured without the D1 database, and events are answered 503 naming it', async () => {
    const { get, post } = setup({ DB: undefined })
    expect(await json(await get('/health'))).toMatchObject({ status: 'misconfigured', problems: [expect.stringContaining('DB (the D1 database) is not bound')] })
    const response = await post(identifySeed)
    expect(response.status).toBe(503)
    expect((await json(response)).message).toContain('DB (the D1 database) is not bound')
  })

  it('answers page and screen events (userId or not) as acknowledged without the D1 database; a group, which needs its person, is retried', async () => {
    const { post } = setup({ DB: undefined })
    expect((await post({ type: 'group', userId: 'u-1', groupId: 'g-1', messageId: 'group-1', traits: { name: 'G' } })).status).toBe(503)
    for (const type of ['page', 'screen']) {
      const response = await post({ type, userId: 'u-1', messageId: `${type}-1` })
      expect(response.status).toBe(200)
      expect(await json(response)).toEqual({ status: 'skipped', message: `${type} events are acknowledged and not sent to Autopilot` })
    }
  })
})

describe('Analytics Engine (optional)', () => {
  it('writes one data point per request: events by outcome, Autopilot calls, latency', async () => {
    const writeDataPoint = vi.fn()
    const { post, autopilot } = setup({ ANALYTICS: { writeDataPoint } as unknown as AnalyticsEngineDataset })
    autopilot.inject({ status: 500, match: (call) => call.path.startsWith('/trigger') })
    autopilot.contacts.set('t@example.com', { Email: 't@example.com', custom: {} })
    await post([
      { type: 'identify', messageId: 'a1', traits: { email: 'a@example.com' } },
      { type: 'track', messageId: 'a2', event: 'Step Activated', properties: { email: 't@example.com' } },
      { type: 'page', messageId: 'a3' },
    ])
    expect(writeDataPoint).toHaveBeenCalledTimes(1)
    const [point] = writeDataPoint.mock.calls[0]
    expect(point.indexes).toEqual(['request'])
    expect(point.blobs).toEqual(['request', '503', '/', 'signature'])
    // delivered, skipped, rejected, retry, queued, deferred, identifies, tracks, calls, failed calls, ms
    expect(point.doubles.slice(0, 10)).toEqual([1, 1, 0, 1, 0, 0, 1, 1, 2, 1])
    expect(JSON.stringify(point)).not.toContain('@example.com')
  })
})

describe('once per isolate, not per event', () => {
  it('imports the HMAC key once for many requests', async () => {
    const { post } = setup()
    const importKey = vi.spyOn(crypto.subtle, 'importKey')
    for (let i = 0; i < 5; i++) expect((await post({ ...identifySeed, messageId: `k${i}` })).status).toBe(200)
    // (The test's own signing imports a 'sign' key per request; the Worker's is for 'verify'.)
    expect(importKey.mock.calls.filter((call) => (call[4] as string[]).includes('verify'))).toHaveLength(1)
  })

  it('parses settings once for many requests', async () => {
    const { post } = setup()
    const parse = vi.spyOn(JSON, 'parse')
    for (let i = 0; i < 5; i++) await post({ ...identifySeed, messageId: `p${i}` })
    const triggersParsed = parse.mock.calls.filter(([text]) => typeof text === 'string' && text.includes('Step Activated'))
    expect(triggersParsed).toHaveLength(1)
  })
})

describe('wrangler.toml', () => {
  it('turns on Workers observability (logs) in both environments', () => {
    expect(wranglerToml).toMatch(/^\[observability\]\nenabled = true/m)
    expect(wranglerToml).toMatch(/^\[env\.queued\.observability\]\nenabled = true/m)
  })
})

// The code and wrangler.toml must agree, or messages would be dead-lettered by
// Queues (without a reason) before the Worker gives up on them itself.
it('dead-letters with a reason before Queues would: MAX_ATTEMPTS <= max_retries', () => {
  const maxRetries = Number(/max_retries\s*=\s*(\d+)/.exec(wranglerToml)?.[1])
  expect(MAX_ATTEMPTS).toBeLessThanOrEqual(maxRetries)
})

it('names the queues the code expects', () => {
  expect(wranglerToml).toContain(`queue = "${EVENTS_QUEUE}"`)
  expect(wranglerToml).toContain(`dead_letter_queue = "${DEAD_LETTER_QUEUE}"`)
})
