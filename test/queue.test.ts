import { reset } from 'cloudflare:test'
import { beforeEach, describe, expect, it } from 'vitest'
import { pacerFor } from '../src/pacer'
import { MAX_ATTEMPTS } from '../src/queue'
import { fakeQueue, identify, json, kv, setup, track } from './helpers'

const identifies = (n: number, prefix = 'q') =>
  Array.from({ length: n }, (_, i) => ({ type: 'identify', messageId: `${prefix}-${i}`, traits: { email: `${prefix}${i}@example.com` } }))

/**
 * A worker in queued mode: fake producers that record, the real (local) KV. Paced
 * at 1000 r/s unless a test is about pacing, so tests do not wait on each other.
 */
function queued(env: Record<string, unknown> = {}, autopilotOptions = {}) {
  const events = fakeQueue()
  const deadLetters = fakeQueue()
  const worker = setup({ EVENTS: events.queue, DEAD_LETTERS: deadLetters.queue, DELIVERIES: kv(), AUTOPILOT_MAX_RPS: '1000', ...env }, autopilotOptions)
  return { ...worker, events, deadLetters }
}

beforeEach(async () => {
  await reset()
})

describe('queued ingress', () => {
  it('enqueues a valid event and answers 202 {"queued": 1} without calling Autopilot', async () => {
    const { post, events, autopilot } = queued()
    const event = identify({ email: 'a@example.com' })
    const response = await post(event)
    expect(response.status).toBe(202)
    expect(await json(response)).toEqual({ status: 'queued', message: 'queued for delivery', queued: 1 })
    expect(events.sent.map((m) => m.body)).toEqual([event])
    expect(autopilot.calls).toHaveLength(0)
  })

  it('answers 202 even while Autopilot is down', async () => {
    const { post, autopilot } = queued()
    autopilot.inject({ status: 503 }, { status: 503 })
    expect((await post(identifies(3))).status).toBe(202)
  })

  it('sends at most 100 messages per sendBatch', async () => {
    const { post, events } = queued()
    const response = await post(identifies(250))
    expect(response.status).toBe(202)
    expect((await json(response)).queued).toBe(250)
    expect(events.batches).toEqual([100, 100, 50])
  })

  it('keeps each sendBatch under 256 KB', async () => {
    const { post, events } = queued()
    const big = Array.from({ length: 10 }, (_, i) => identify({ email: `big${i}@example.com`, bio: 'x'.repeat(30_000), more: 'y'.repeat(30_000) }))
    expect((await post(big)).status).toBe(202)
    expect(events.batches.length).toBeGreaterThan(2)
    expect(events.batches.reduce((a, b) => a + b)).toBe(10)
  })

  it('reports invalid events per event and does not enqueue them', async () => {
    const { post, events } = queued()
    const good = identify({ email: 'good@example.com' })
    const response = await post([good, { type: 'identify', traits: { email: 5 } }, { type: 'page', userId: 'u' }])
    expect(response.status).toBe(202)
    const body = await json(response)
    expect(body.queued).toBe(1)
    expect(body.results.map((r: { status: string }) => r.status)).toEqual(['queued', 'rejected', 'skipped'])
    expect(events.sent.map((m) => m.body)).toEqual([good])
  })

  it('rejects (400) an event too large for a queue message, and queues the rest', async () => {
    const { post, events } = queued()
    const huge = identify({ email: 'huge@example.com', ...Object.fromEntries(Array.from({ length: 5 }, (_, i) => [`bio${i}`, 'x'.repeat(30_000)])) })
    const response = await post([huge, identify({ email: 'small@example.com' })])
    const { results } = await json(response)
    expect(results.map((r: { status: string }) => r.status)).toEqual(['rejected', 'queued'])
    expect(results[0].message).toContain('larger than a queue message')
    expect(events.sent).toHaveLength(1)
  })

  it('answers 503 when the queue refuses, so Segment retries', async () => {
    const { post } = setup({ EVENTS: fakeQueue({ refuse: true }).queue })
    const response = await post(identify({ email: 'a@example.com' }))
    expect(response.status).toBe(503)
    expect((await json(response)).message).toContain('queue')
  })

  it('says queued mode in /health', async () => {
    const { get } = queued()
    expect(await json(await get('/health'))).toMatchObject({ mode: 'queued', bindings: { EVENTS: true, DEAD_LETTERS: true, DELIVERIES: true } })
  })
})

describe('queue consumer', () => {
  it('sends identifies in one POST /contacts per 100 and acks them', async () => {
    const { consume, autopilot } = queued()
    const result = await consume(identifies(100))
    expect(autopilot.calls.map((call) => [call.path, call.body.contacts.length])).toEqual([['/contacts', 100]])
    expect(result.explicitAcks).toHaveLength(100)
    expect(result.retryMessages).toEqual([])
  })

  it('merges several events for one email into one contact, the later value winning per field', async () => {
    const { consume, autopilot } = queued()
    await consume([
      identify({ email: 'm@example.com', plan: 'free', firstName: 'M' }),
      identify({ email: 'other@example.com' }),
      identify({ email: 'm@example.com', plan: 'pro' }),
    ])
    expect(autopilot.calls[0].body.contacts).toEqual([
      { Email: 'm@example.com', FirstName: 'M', custom: { 'string--plan': 'pro' } },
      { Email: 'other@example.com' },
    ])
  })

  it('splits a bulk call Autopilot rejects, delivers the rest, dead-letters the bad contact with the reason', async () => {
    const { consume, autopilot, deadLetters } = queued()
    const events = identifies(100)
    events[61] = { type: 'identify', messageId: 'poison', traits: { email: 'poison@localhost' } }
    const result = await consume(events)
    expect(autopilot.contacts.size).toBe(99)
    expect(result.explicitAcks).toHaveLength(100)
    expect(deadLetters.sent).toEqual([
      {
        body: expect.objectContaining({ deadLetter: true, messageId: 'poison', type: 'identify', attempts: 1, reason: expect.stringContaining('Invalid contact_id_or_email'), event: events[61] }),
        delaySeconds: undefined,
      },
    ])
  })

  it('retries 5xx with exponential backoff and jitter', async () => {
    const { consume, autopilot } = queued({ QUEUE_RETRY_BASE_SECONDS: '10' })
    autopilot.inject({ status: 502 })
    const first = await consume([{ body: identify({ email: 'a@example.com' }), attempts: 1 }])
    expect(first.retryMessages[0].delaySeconds).toBeGreaterThanOrEqual(5)
    expect(first.retryMessages[0].delaySeconds).toBeLessThanOrEqual(10)
    autopilot.inject({ status: 502 })
    const fourth = await consume([{ body: identify({ email: 'a@example.com' }), attempts: 4 }])
    expect(fourth.retryMessages[0].delaySeconds).toBeGreaterThanOrEqual(40)
    expect(fourth.retryMessages[0].delaySeconds).toBeLessThanOrEqual(80)
  })

  it.each([
    ['a timeout', { hang: true }],
    ['a network error', { network: true }],
    ['a rejected key', { status: 401 }],
    ['a 503', { status: 503 }],
  ])('retries %s', async (_, fault) => {
    const { consume, autopilot, deadLetters } = queued({ AUTOPILOT_TIMEOUT_MS: '50' })
    autopilot.inject(fault)
    const result = await consume([identify({ email: 'a@example.com' })])
    expect(result.retryMessages).toHaveLength(1)
    expect(deadLetters.sent).toHaveLength(0)
  })

  it('dead-letters with the reason once retries are exhausted, never acking silently', async () => {
    const { consume, autopilot, deadLetters } = queued()
    autopilot.inject({ status: 500 })
    const result = await consume([{ body: identify({ email: 'a@example.com' }), attempts: MAX_ATTEMPTS }])
    expect(result.retryMessages).toEqual([])
    expect(deadLetters.sent[0].body).toMatchObject({ reason: expect.stringMatching(/^gave up after 20 attempts: Autopilot is unavailable/) })
  })

  it('treats a 429 as "slower": pauses for Retry-After, slows the pace, repeats the call', async () => {
    // Its own AUTOPILOT_MAX_RPS, so its own pacer: the pause must not slow other tests.
    const { consume, autopilot } = queued({ AUTOPILOT_MAX_RPS: '6' })
    autopilot.inject({ status: 429, retryAfter: '1' })
    const result = await consume([identify({ email: 'a@example.com' })])
    expect(result.explicitAcks).toEqual(['msg-0'])
    expect(autopilot.calls.map((call) => call.status)).toEqual([429, 200])
    expect(autopilot.calls[1].at - autopilot.calls[0].at).toBeGreaterThanOrEqual(1000)
    expect(pacerFor(6).pace).toBe(5)
  })

  // Each with its own AUTOPILOT_MAX_RPS, so its own pacer (six 429s slow it six times).
  const persistent429s = () => Array.from({ length: 6 }, () => ({ status: 429, retryAfter: '0' }))

  it('sends messages back for later when 429s persist', async () => {
    const { consume, autopilot, deadLetters } = queued({ AUTOPILOT_MAX_RPS: '64' })
    autopilot.inject(...persistent429s())
    const result = await consume([identify({ email: 'a@example.com' }), track('Step Activated', 'a@example.com')])
    expect(autopilot.calls).toHaveLength(6)
    expect(result.retryMessages.map((m: { msgId: string }) => m.msgId)).toEqual(['msg-0', 'msg-1'])
    expect(deadLetters.sent).toHaveLength(0)
  })

  it('never dead-letters for 429s: at the last attempt the message is re-sent fresh', async () => {
    const { consume, autopilot, deadLetters, events } = queued({ AUTOPILOT_MAX_RPS: '63' })
    autopilot.inject(...persistent429s())
    const last = await consume([{ body: identify({ email: 'b@example.com' }), attempts: MAX_ATTEMPTS }])
    expect(last.explicitAcks).toEqual(['msg-0'])
    expect(events.sent).toEqual([{ body: expect.objectContaining({ traits: { email: 'b@example.com' } }), delaySeconds: 1 }])
    expect(deadLetters.sent).toHaveLength(0)
  })

  it('keeps going after one message\'s 5xx: only that message is retried', async () => {
    const { consume, autopilot } = queued()
    for (const email of ['x@example.com', 'y@example.com', 'z@example.com']) autopilot.contacts.set(email, { Email: email, custom: {} })
    autopilot.inject({ status: 500, match: (call) => call.path.includes('x%40') })
    const result = await consume(['x@example.com', 'y@example.com', 'z@example.com'].map((email) => track('Step Activated', email)))
    expect(result.retryMessages.map((m: { msgId: string }) => m.msgId)).toEqual(['msg-0'])
    expect(result.explicitAcks).toEqual(['msg-1', 'msg-2'])
  })

  it('stops calling when Autopilot rejects the key: every message is retried', async () => {
    const { consume, autopilot } = queued({ AUTOPILOT_API_KEY: 'wrong-key' })
    for (const email of ['x@example.com', 'y@example.com']) autopilot.contacts.set(email, { Email: email, custom: {} })
    const result = await consume(['x@example.com', 'y@example.com'].map((email) => track('Step Activated', email)))
    expect(autopilot.calls).toHaveLength(1)
    expect(result.retryMessages).toHaveLength(2)
  })

  it('retries (never acks) a permanent failure when DEAD_LETTERS is not bound', async () => {
    const { consume } = queued({ DEAD_LETTERS: undefined })
    const result = await consume([identify({ email: 'bad@localhost' })])
    expect(result.explicitAcks).toEqual([])
    expect(result.retryMessages).toHaveLength(1)
  })

  it('dead-letters a message that is not a valid event', async () => {
    const { consume, deadLetters } = queued()
    const result = await consume([{ type: 'identify', traits: 'nope' }])
    expect(result.explicitAcks).toEqual(['msg-0'])
    expect(deadLetters.sent[0].body).toMatchObject({ reason: 'Invalid event: traits must be an object' })
  })

  it('retries while AUTOPILOT_API_KEY is missing', async () => {
    const { consume, autopilot } = queued({ AUTOPILOT_API_KEY: undefined })
    const result = await consume([identify({ email: 'a@example.com' })])
    expect(result.retryMessages).toHaveLength(1)
    expect(autopilot.calls).toHaveLength(0)
  })

  it('enters a journey: 404 -> upsert -> trigger, then records the messageId in KV', async () => {
    const { consume, autopilot } = queued()
    const event = track('Step Activated', 'new@example.com')
    const result = await consume([event])
    expect(result.explicitAcks).toEqual(['msg-0'])
    expect(autopilot.calls.map((call) => `${call.path} ${call.status}`)).toEqual([
      '/trigger/0001/contact/new%40example.com 404',
      '/contact 200',
      '/trigger/0001/contact/new%40example.com 200',
    ])
    expect(await kv().get(`sent:${event.messageId}`)).toBe('1')
  })

  it('does not trigger again a track whose messageId was delivered before (another isolate, via KV)', async () => {
    const { consume, autopilot } = queued()
    const event = track('Step Activated', 'known@example.com')
    await kv().put(`sent:${event.messageId}`, '1')
    const result = await consume([event])
    expect(result.explicitAcks).toEqual(['msg-0'])
    expect(autopilot.calls).toHaveLength(0)
  })

  it('paces calls to AUTOPILOT_MAX_RPS: a strict 10 r/s Autopilot never answers 429', async () => {
    const { consume, autopilot } = queued({ AUTOPILOT_MAX_RPS: '10' }, { rateLimit: 10 })
    const emails = Array.from({ length: 25 }, (_, i) => `paced${i}@example.com`)
    for (const email of emails) autopilot.contacts.set(email, { Email: email, custom: {} })
    const result = await consume(emails.map((email) => track('Step Activated', email)))
    expect(result.explicitAcks).toHaveLength(25)
    expect(autopilot.calls.filter((call) => call.status === 429)).toEqual([])
    const times = autopilot.calls.map((call) => call.at)
    for (const t of times) expect(times.filter((u) => u >= t && u < t + 1000).length).toBeLessThanOrEqual(10)
  })

  it('logs one line per batch with acked/retried/dead-lettered counts, no emails', async () => {
    const { consume, autopilot, logLines, logs } = queued()
    autopilot.inject({ status: 500, match: (call) => call.path.startsWith('/trigger') })
    await consume([identify({ email: 'logged@example.com' }), track('Step Activated', 'logged@example.com'), { type: 'bogus' }])
    expect(logLines()).toEqual([
      expect.objectContaining({ queue: 'autopilot-events', messages: 3, acked: 1, retried: 1, deadLettered: 1 }),
    ])
    expect(logs.join('\n')).not.toContain('logged@example.com')
  })
})

describe('dead letters', () => {
  const ADMIN = 'admin-token-1f9b'
  const admin = { authorization: `Bearer ${ADMIN}` }

  async function withDeadLetters() {
    const worker = queued({ ADMIN_TOKEN: ADMIN })
    const letter = {
      deadLetter: true,
      reason: 'Autopilot rejected it (400): Invalid contact_id_or_email value provided.',
      attempts: 1,
      failedAt: '2026-11-29T10:00:00.000Z',
      messageId: 'dl-1',
      type: 'identify',
      event: identify({ email: 'fixed@example.com' }, { messageId: 'dl-1' }),
    }
    const bare = track('Step Activated', 'bare@example.com')
    const result = await worker.consume([{ body: letter, id: 'd1' }, { body: bare, id: 'd2', attempts: 21 }], 'autopilot-events-dlq')
    expect(result.explicitAcks).toEqual(['d1', 'd2'])
    return { ...worker, letter, bare }
  }

  it('are kept in KV with their reason, listed by GET /dead-letters', async () => {
    const { request } = await withDeadLetters()
    const response = await request(new Request('https://worker.test/dead-letters', { headers: admin }))
    expect(response.status).toBe(200)
    const { deadLetters } = await json(response)
    expect(deadLetters).toEqual([
      expect.objectContaining({ key: expect.stringMatching(/^dead:/), reason: expect.stringContaining('Invalid contact'), messageId: 'dl-1', type: 'identify' }),
      expect.objectContaining({ key: expect.stringMatching(/^dead:/), reason: 'retries exhausted (moved by Cloudflare Queues)', attempts: 21 }),
    ])
    expect(JSON.stringify(deadLetters)).not.toContain('@example.com') // the list carries no event data
    const one = await request(new Request(`https://worker.test/dead-letters/${encodeURIComponent(deadLetters[0].key)}`, { headers: admin }))
    expect((await json(one)).event.traits.email).toBe('fixed@example.com')
  })

  it('are re-driven to the events queue by POST /dead-letters/redrive, and removed', async () => {
    const { request, events, letter, bare } = await withDeadLetters()
    const response = await request(new Request('https://worker.test/dead-letters/redrive', { method: 'POST', headers: admin }))
    expect(response.status).toBe(200)
    expect(await json(response)).toMatchObject({ redriven: 2 })
    expect(events.sent.map((m) => m.body)).toEqual([letter.event, bare])
    expect((await kv().list({ prefix: 'dead:' })).keys).toEqual([])
  })

  it('can be re-driven or deleted one by one', async () => {
    const { request } = await withDeadLetters()
    const { deadLetters } = await json(await request(new Request('https://worker.test/dead-letters', { headers: admin })))
    const redrive = await request(
      new Request('https://worker.test/dead-letters/redrive', { method: 'POST', headers: admin, body: JSON.stringify({ keys: [deadLetters[0].key] }) }),
    )
    expect(await json(redrive)).toMatchObject({ redriven: 1 })
    const del = await request(new Request('https://worker.test/dead-letters', { method: 'DELETE', headers: admin, body: JSON.stringify({ keys: [deadLetters[1].key] }) }))
    expect(await json(del)).toMatchObject({ deleted: 1 })
    expect((await kv().list({ prefix: 'dead:' })).keys).toEqual([])
  })

  it.each([
    ['no token', {}, 401],
    ['a wrong token', { authorization: 'Bearer nope' }, 401],
  ])('refuse %s with %i', async (_, headers, status) => {
    const { request } = await withDeadLetters()
    const response = await request(new Request('https://worker.test/dead-letters', { headers }))
    expect(response.status).toBe(status)
    expect(await json(response)).toEqual({ message: 'unauthorized' })
  })

  it('answer 400 JSON for a malformed body, and for a DELETE without keys', async () => {
    const { request } = await withDeadLetters()
    const bad = await request(new Request('https://worker.test/dead-letters/redrive', { method: 'POST', headers: admin, body: '{"keys": ' }))
    expect(bad.status).toBe(400)
    expect(await json(bad)).toEqual({ message: 'Body is not valid JSON' })
    const wrongType = await request(new Request('https://worker.test/dead-letters/redrive', { method: 'POST', headers: admin, body: '{"keys": "dead:x"}' }))
    expect(wrongType.status).toBe(400)
    expect((await json(wrongType)).message).toContain('keys')
    const noKeys = await request(new Request('https://worker.test/dead-letters', { method: 'DELETE', headers: admin }))
    expect(noKeys.status).toBe(400)
    expect((await kv().list({ prefix: 'dead:' })).keys).toHaveLength(2)
  })

  it('stay on the dead-letter queue (retried) while DELIVERIES is not bound', async () => {
    const { consume } = queued({ DELIVERIES: undefined })
    const result = await consume([identify({ email: 'a@example.com' })], 'autopilot-events-dlq')
    expect(result.explicitAcks).toEqual([])
    expect(result.retryMessages).toHaveLength(1)
  })

  it('are closed (403) until ADMIN_TOKEN is set, and absent (404) in direct mode', async () => {
    const { request } = queued()
    expect((await request(new Request('https://worker.test/dead-letters', { headers: admin }))).status).toBe(403)
    const direct = setup({ ADMIN_TOKEN: ADMIN })
    expect((await direct.request(new Request('https://worker.test/dead-letters', { headers: admin }))).status).toBe(404)
  })
})
