import { describe, expect, it } from 'vitest'
import { fakeQueue, json, setup, setupOrtto, TOKEN, type Loose } from './helpers'
import { autopilotWorld, basic, id, library, sender, type SendOptions } from './tracking-helpers'

// Segment's HTTP Tracking API (/v1/batch, /v1/identify...), as the server libraries send it:
// `Authorization: Basic base64(writeKey + ":")`, the write key being SEGMENT_WEBHOOK_TOKEN.
// scripts/libraries-test.js drives both real libraries from Node against the built Worker; the
// clock-skew correction: below.
describe('the write key', () => {
  const batch = (email: string) => ({ batch: [{ type: 'identify', messageId: id(), userId: 'u-k', traits: { email } }], sentAt: new Date().toISOString() })

  it('missing, wrong, empty, as the password or as a bearer token: 401, and nothing is sent or queued', async () => {
    const queue = fakeQueue()
    for (const env of [{}, { EVENTS: queue.queue }]) {
      const { send, fetchSpy, logLines } = autopilotWorld(env)
      for (const authorization of [null, basic('not-the-token'), `Basic ${btoa(`:${TOKEN}`)}`, `Bearer ${TOKEN}`, basic(''), 'Basic !!!']) {
        for (const path of ['/v1/batch', '/v1/identify']) {
          const body = batch('key@example.com')
          const response = await send(path, path === '/v1/batch' ? body : body.batch[0], { authorization })
          expect(response.status, `${authorization} ${path}`).toBe(401)
          expect(await json(response)).toEqual({ message: 'unauthorized' })
        }
      }
      expect(fetchSpy).not.toHaveBeenCalled()
      expect(new Set(logLines().map((line) => line.auth))).toEqual(new Set(['unauthorized']))
    }
    expect(queue.sent).toHaveLength(0)
  })

  it('the real @segment/analytics-node with a wrong write key: 401, the library reports the events failed, nothing sent', async () => {
    const { request, fetchSpy } = autopilotWorld()
    const { analytics, statuses, errors } = library(request, 'not-the-token')
    analytics.identify({ userId: 'u-k', traits: { email: 'key@example.com' } })
    await analytics.closeAndFlush()
    expect(statuses).toEqual([401])
    expect(errors).toMatchObject([{ code: 'delivery_failure' }])
    expect(fetchSpy).not.toHaveBeenCalled()
  })

  it('the right key is accepted, and never written to the log', async () => {
    const { send, autopilot, logs, logLines } = autopilotWorld()
    const response = await send('/v1/batch', batch('key@example.com'))
    expect(response.status).toBe(200)
    expect(autopilot.contacts.has('key@example.com')).toBe(true)
    expect(logLines()[0]).toMatchObject({ auth: 'write-key', path: '/v1/batch', status: 200 })
    expect(logs.join('\n')).not.toContain(TOKEN)
  })

  it('without SEGMENT_WEBHOOK_TOKEN (only a shared secret): 503 naming it, so a library keeps the events and retries', async () => {
    const { send, fetchSpy } = autopilotWorld({ SEGMENT_WEBHOOK_TOKEN: undefined })
    const response = await send('/v1/batch', batch('key@example.com'))
    expect(response.status).toBe(503)
    expect((await json(response)).message).toMatch(/SEGMENT_WEBHOOK_TOKEN.*wrangler secret put SEGMENT_WEBHOOK_TOKEN/)
    expect(fetchSpy).not.toHaveBeenCalled()
  })

  it('ALLOW_UNSIGNED (npm start) takes any key or none', async () => {
    const { send, autopilot } = autopilotWorld({ SEGMENT_WEBHOOK_TOKEN: undefined, SEGMENT_SHARED_SECRET: undefined, ALLOW_UNSIGNED: 'true' })
    expect((await send('/v1/batch', batch('open@example.com'), { authorization: null })).status).toBe(200)
    expect(autopilot.contacts.has('open@example.com')).toBe(true)
  })
})

// The same pipeline and answers as POST /, for each destination and both modes.
describe.each([
  ['autopilot', 'direct'],
  ['autopilot', 'queued'],
  ['ortto', 'direct'],
  ['ortto', 'queued'],
] as const)('%s, %s mode', (destination, mode) => {
  // People of their own per destination and mode: the database is the file's.
  const tag = `${destination}-${mode}`
  function world() {
    const queue = fakeQueue()
    const env = { SEGMENT_WEBHOOK_TOKEN: TOKEN, ...(mode === 'queued' && { EVENTS: queue.queue }) }
    const ortto = destination === 'ortto' ? setupOrtto(env) : undefined
    const base = ortto ?? setup(env)
    const send = sender(base)
    /** Lets the queue run dry (queued mode). */
    async function drain() {
      for (let round = 0; round < 20 && queue.sent.length; round++) {
        const messages = queue.sent.splice(0).map((m, i) => ({ body: m.body, id: `r${round}-${i}` }))
        const result = await base.consume(messages)
        for (const { msgId } of result.retryMessages) queue.sent.push({ body: messages.find((m) => m.id === msgId)!.body })
      }
    }
    /** Sends as a library does (again while the answer is 5xx or 429), then lets the queue run dry. */
    async function deliver(path: string, body: unknown) {
      let response = await send(path, structuredClone(body))
      for (let attempt = 0; attempt < 5 && response.status >= 429; attempt++) response = await send(path, structuredClone(body))
      await drain()
      return response
    }
    const person = (email: string) => (ortto ? [...ortto.ortto.people.values()].some((p) => p.fields['str::email'] === email) : base.autopilot.contacts.has(email))
    const entries = (email: string) => (ortto ? ortto.ortto.activities.filter((a) => a.email === email).length : base.autopilot.enrolments.filter((e) => e.email === email).length)
    return { request: base.request, drain, deliver, person, entries }
  }

  // It runs inside workerd (it needs only fetch); RudderStack's needs Node: scripts/libraries-test.js.
  it('the real @segment/analytics-node, its host the Worker: an identify and a mapped track arrive', async () => {
    const { request, drain, person, entries } = world()
    const { analytics, statuses } = library(request, TOKEN)
    analytics.identify({ userId: `u-lib-${tag}`, traits: { email: `lib-${tag}@example.com`, firstName: 'Lib' } })
    analytics.track({ userId: `u-lib-${tag}`, event: 'Order Completed', properties: { product: 'Tea' }, context: { traits: { email: `lib-${tag}@example.com` } } })
    await analytics.closeAndFlush()
    await drain()
    expect(statuses).toEqual([mode === 'queued' ? 202 : 200])
    expect(person(`lib-${tag}@example.com`)).toBe(true)
    expect(entries(`lib-${tag}@example.com`)).toBe(1)
  })

  it('/v1/batch (Segment’s and RudderStack’s shapes), /v1/identify and /v1/track: identifies and mapped tracks arrive, each track entered once', async () => {
    const { deliver, person, entries } = world()
    const now = new Date().toISOString()
    // RudderStack's: traits (also) in context.traits, originalTimestamp, rudderId, channel, _metadata.
    const rudder = { rudderId: crypto.randomUUID(), channel: 'server', anonymousId: 'anon-r', _metadata: { nodeVersion: '20.20.2' }, originalTimestamp: now, sentAt: now }
    const body = {
      batch: [
        { type: 'identify', messageId: id(), userId: `u-b-${tag}`, traits: { email: `b-${tag}@example.com` }, timestamp: now },
        { type: 'track', messageId: id(), userId: `u-b-${tag}`, event: 'Order Completed', properties: { email: `b-${tag}@example.com` }, timestamp: now },
        { ...rudder, type: 'identify', messageId: id(), userId: `u-r-${tag}`, context: { traits: { email: `r-${tag}@example.com`, firstName: 'Rud' }, library: { name: 'analytics-node' } } },
        { ...rudder, type: 'track', messageId: id(), userId: `u-r-${tag}`, event: 'Order Completed', properties: {}, context: { traits: { email: `r-${tag}@example.com` } } },
      ],
      sentAt: now,
      writeKey: TOKEN, // Segment's library sends it in the body too: not read
    }
    const response = await deliver('/v1/batch', body)
    expect(response.status).toBe(mode === 'queued' ? 202 : 200)
    expect(await json(response)).toMatchObject({ counts: mode === 'queued' ? { queued: 4 } : { delivered: 4 } })
    await deliver('/v1/batch', body) // re-sent: nothing twice

    const identified = await deliver('/v1/identify', { messageId: id(), userId: `u-s-${tag}`, traits: { email: `s-${tag}@example.com` }, sentAt: now })
    expect(await json(identified)).toMatchObject({ status: mode === 'queued' ? 'queued' : 'delivered' })
    // A type in the body that says otherwise does not change what the path is.
    await deliver('/v1/track', { type: 'identify', messageId: id(), userId: `u-s-${tag}`, event: 'Order Completed', properties: { email: `s-${tag}@example.com` } })
    for (const email of [`b-${tag}@example.com`, `r-${tag}@example.com`, `s-${tag}@example.com`]) {
      expect(person(email), email).toBe(true)
      expect(entries(email), email).toBe(1)
    }
  })
})

describe('bodies', () => {
  const identify = (email: string) => ({ type: 'identify', messageId: id(), userId: 'u-z', traits: { email } })

  it('a gzip or deflate body (RudderStack gzips by default) is inflated', async () => {
    const { send, autopilot } = autopilotWorld()
    for (const encoding of ['gzip', 'deflate']) {
      const response = await send('/v1/batch', { batch: [identify(`${encoding}@example.com`)] }, { encoding })
      expect(response.status).toBe(200)
      expect(autopilot.contacts.has(`${encoding}@example.com`)).toBe(true)
    }
  })

  it('a compressed body larger than MAX_BODY_BYTES once inflated is 413, nothing sent', async () => {
    const { send, fetchSpy } = autopilotWorld({ MAX_BODY_BYTES: '4096' })
    const body = { batch: [{ ...identify('big@example.com'), traits: { email: 'big@example.com', notes: ' '.repeat(100_000) } }] }
    const response = await send('/v1/batch', body, { encoding: 'gzip' })
    expect(response.status).toBe(413)
    expect((await json(response)).message).toContain('MAX_BODY_BYTES')
    expect(fetchSpy).not.toHaveBeenCalled()
  })

  it('what cannot be read is a 4xx naming why, nothing sent', async () => {
    const { send, request, fetchSpy } = autopilotWorld()
    const cases: [string, unknown, SendOptions, number, string][] = [
      ['/v1/batch', undefined, { encoding: 'gzip', raw: '{"batch": []}' }, 400, 'Body is not valid gzip'],
      ['/v1/batch', undefined, { encoding: 'br', raw: 'x' }, 415, 'Content-Encoding br is not supported: send gzip, deflate or none'],
      ['/v1/batch', undefined, { raw: '{"batch": [' }, 400, 'Body is not valid JSON'],
      ['/v1/batch', [identify('shape@example.com')], {}, 400, 'Body must be {"batch": [...]}'],
      ['/v1/batch', identify('shape@example.com'), {}, 400, 'Body must be {"batch": [...]}'],
      ['/v1/identify', [identify('shape@example.com')], {}, 400, 'Body must be one identify event (a JSON object)'],
    ]
    for (const [path, body, options, status, message] of cases) {
      const response = await send(path, body, options)
      expect(response.status, message).toBe(status)
      expect((await json(response)).message).toBe(message)
    }
    const got = await request(new Request('https://worker.test/v1/batch'))
    expect(got.status).toBe(405)
    expect(got.headers.get('allow')).toBe('POST')
    expect((await request(new Request('https://worker.test/v1/import', { method: 'POST' }))).status).toBe(404)
    expect(fetchSpy).not.toHaveBeenCalled()
  })

  it('an invalid event in a batch is rejected by name; the others go through', async () => {
    const { send, autopilot } = autopilotWorld()
    const response = await send('/v1/batch', { batch: [identify('valid@example.com'), { type: 'track', userId: 'u-z' }] })
    expect(response.status).toBe(200)
    expect(await json(response)).toMatchObject({ counts: { delivered: 1, rejected: 1 }, results: [{ index: 1, status: 'rejected', message: expect.stringContaining('event') }] })
    expect(autopilot.contacts.has('valid@example.com')).toBe(true)
  })

  it('the batch’s context applies to every event (its email finds the person), an event’s own keys winning', async () => {
    const { send, autopilot } = autopilotWorld()
    const track = (traits?: Record<string, unknown>) => ({ type: 'track', messageId: id(), userId: 'u-c', event: 'Step Activated', properties: {}, ...(traits && { context: { traits } }) })
    const response = await send('/v1/batch', { batch: [track(), track({ email: 'own@example.com' }), { ...track(), context: 'not an object' }], context: { traits: { email: 'batch@example.com' } } })
    expect(autopilot.enrolments.map((e) => e.email).sort()).toEqual(['batch@example.com', 'own@example.com'])
    expect(await json(response)).toMatchObject({ results: [{ index: 2, status: 'rejected', message: expect.stringContaining('context') }] })
  })

  it('page, screen, group and alias have their paths too (answered as POST / answers them)', async () => {
    const { send } = autopilotWorld()
    for (const [type, extra] of [
      ['page', { name: 'Home' }],
      ['screen', { name: 'Home' }],
      ['group', { groupId: 'g-1', traits: { name: 'Acme' } }],
      ['alias', { previousId: 'anon-1' }],
    ] as const) {
      const response = await send(`/v1/${type}`, { messageId: id(), userId: 'u-o', ...extra })
      expect(response.status, type).toBeLessThan(300)
      expect((await json(response)).status, type).not.toBe('rejected')
    }
  })
})

// Newest wins compares event times: a library's clock is corrected by its sentAt, as Segment's API does.
describe('clock skew', () => {
  const HOUR = 3_600_000
  const at = (ms: number) => new Date(ms).toISOString()
  // Each test its own person: the database is the file's.
  const identify = (who: string, plan: string, timestamp: string, extra: Record<string, unknown> = {}) => ({
    type: 'identify',
    messageId: id(),
    userId: `u-${who}`,
    traits: { email: `${who}@example.com`, plan },
    timestamp,
    ...extra,
  })

  // A person's fields are guarded by the times that set them once one of its deliveries failed:
  // the first attempt fails, the library re-sends (a new sentAt, its clock having moved on).
  it('a library whose clock runs an hour fast does not win against a later event', async () => {
    const { send, post, autopilot } = autopilotWorld()
    const fast = Date.now() + HOUR
    autopilot.inject({ status: 503 })
    expect((await send('/v1/batch', { batch: [identify('fast', 'fast clock', at(fast - 1000))], sentAt: at(fast) })).status).toBe(503)
    expect((await send('/v1/batch', { batch: [identify('fast', 'fast clock', at(fast - 1000))], sentAt: at(fast + 2000) })).status).toBe(200)
    // A minute later, from Segment's Webhooks (whose times are Segment's own).
    expect((await post(identify('fast', 'later', at(Date.now() + 60_000)), { headers: { authorization: `Bearer ${TOKEN}` } })).status).toBe(200)
    expect(autopilot.contacts.get('fast@example.com')?.custom).toEqual({ 'string--plan': 'later' })
  })

  it('nor does one an hour slow lose to an earlier event that arrives after it', async () => {
    const { send, post, autopilot } = autopilotWorld()
    const slow = Date.now() - HOUR
    autopilot.inject({ status: 503 })
    expect((await send('/v1/identify', { ...identify('slow', 'slow clock', at(slow - 1000)), sentAt: at(slow) })).status).toBe(503)
    expect((await send('/v1/identify', { ...identify('slow', 'slow clock', at(slow - 1000)), sentAt: at(slow + 2000) })).status).toBe(200)
    // Happened half a minute ago (before the slow clock's event), delivered after it.
    expect((await post(identify('slow', 'earlier', at(Date.now() - 30_000)), { headers: { authorization: `Bearer ${TOKEN}` } })).status).toBe(200)
    expect(autopilot.contacts.get('slow@example.com')?.custom).toEqual({ 'string--plan': 'slow clock' })
  })

  it('corrects timestamp (Segment’s libraries) or originalTimestamp (RudderStack’s) by receipt − sentAt, keeps the sender’s in originalTimestamp; an event’s own sentAt first', async () => {
    const queue = fakeQueue()
    const { send } = autopilotWorld({ EVENTS: queue.queue })
    const sentAt = Date.parse('2026-01-01T12:00:00Z')
    const before = Date.now()
    await send('/v1/batch', {
      batch: [
        identify('corrected', 'a', at(sentAt - 5000)),
        { ...identify('corrected', 'b', undefined!), originalTimestamp: at(sentAt - 7000) },
        identify('corrected', 'c', at(sentAt - 5000), { sentAt: at(sentAt - 2000) }),
        identify('corrected', 'd', 'not a time'),
      ],
      sentAt: at(sentAt),
    })
    const after = Date.now()
    const events: Loose[] = queue.sent.flatMap((m) => (m.body as Loose).items.map((item: Loose) => item.event))
    const byPlan = Object.fromEntries(events.map((event) => [event.traits.plan, event]))
    const within = (event: Loose, ago: number) => {
      const time = Date.parse(event.timestamp)
      expect(time).toBeGreaterThanOrEqual(before - ago)
      expect(time).toBeLessThanOrEqual(after - ago)
    }
    within(byPlan.a, 5000)
    expect(byPlan.a.originalTimestamp).toBe(at(sentAt - 5000))
    within(byPlan.b, 7000)
    expect(byPlan.b.originalTimestamp).toBe(at(sentAt - 7000))
    within(byPlan.c, 3000)
    expect(byPlan.d.timestamp).toBe('not a time') // left to fall back on the arrival time
  })

  it('without sentAt the stamp stays, but none is newer than its arrival', async () => {
    const queue = fakeQueue()
    const { send } = autopilotWorld({ EVENTS: queue.queue })
    const before = Date.now()
    await send('/v1/batch', { batch: [identify('unsent', 'past', '2026-01-01T12:00:00.000Z'), identify('unsent', 'future', at(Date.now() + HOUR))] })
    const after = Date.now()
    const events: Loose[] = queue.sent.flatMap((m) => (m.body as Loose).items.map((item: Loose) => item.event))
    const byPlan = Object.fromEntries(events.map((event) => [event.traits.plan, event]))
    expect(byPlan.past.timestamp).toBe('2026-01-01T12:00:00.000Z')
    expect(Date.parse(byPlan.future.timestamp)).toBeGreaterThanOrEqual(before)
    expect(Date.parse(byPlan.future.timestamp)).toBeLessThanOrEqual(after)
  })

  it('events from Segment’s Webhooks (POST /) keep their timestamps, sentAt or not', async () => {
    const queue = fakeQueue()
    const { post } = autopilotWorld({ EVENTS: queue.queue })
    const fast = at(Date.now() + HOUR)
    const event = identify('webhook', 'webhook', fast, { sentAt: fast })
    await post([event], { headers: { authorization: `Bearer ${TOKEN}` } })
    const queued: Loose = (queue.sent[0].body as Loose).items[0].event
    expect(queued.timestamp).toBe(fast)
    expect(queued.originalTimestamp).toBeUndefined()
  })
})
