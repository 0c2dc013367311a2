import { describe, expect, it } from 'vitest'
import engageAudience from '../examples/identify-engage-audience.json'
import identifySeed from '../examples/identify.json'
import trackSeed from '../examples/track.json'
import { API_KEY, fakeQueue, identify, json, setup, track } from './helpers'
import { ANSWERS, kindOf } from '../src/destinations/autopilot/client'

describe('identify -> POST /contact', () => {
  it('sends the mapped contact with the API key header', async () => {
    const { post, autopilot } = setup()
    const response = await post(identify({ email: 'ada@example.com', firstName: 'Ada', plan: 'pro', logins: 3 }))
    expect(response.status).toBe(200)
    expect(autopilot.calls).toEqual([
      expect.objectContaining({
        method: 'POST',
        path: '/contact',
        apiKey: API_KEY,
        body: { contact: { Email: 'ada@example.com', FirstName: 'Ada', custom: { 'string--plan': 'pro', 'float--logins': 3 } } },
      }),
    ])
  })

  it('delivers an Engage audience entry (true) and exit (false)', async () => {
    const { post, autopilot } = setup()
    expect((await post(engageAudience)).status).toBe(200)
    expect(autopilot.contacts.get('buyer@example.com')?.custom).toEqual({ 'boolean--order_completed_last_30days': true })
    const exit = { ...engageAudience, messageId: 'exit-1', traits: { ...engageAudience.traits, order_completed_last_30days: false } }
    expect((await post(exit)).status).toBe(200)
    expect(autopilot.contacts.get('buyer@example.com')?.custom).toEqual({ 'boolean--order_completed_last_30days': false })
  })

  it('answers 400 with the exact message when there is neither email nor userId, and sends nothing', async () => {
    const { post, autopilot } = setup()
    const response = await post({ type: 'identify', anonymousId: 'anon', traits: { plan: 'pro' } })
    expect(response.status).toBe(400)
    expect((await json(response)).message).toBe('Missing unique identifier traits. Either email or user_id traits must be provided')
    expect(autopilot.calls).toHaveLength(0)
  })

  it('parks a userId without email until the email is known (202 deferred), and sends nothing yet', async () => {
    const { post, autopilot } = setup()
    const response = await post({ type: 'identify', messageId: 'park-u7', userId: 'u-7', traits: { plan: 'pro' } })
    expect(response.status).toBe(202)
    expect(await json(response)).toMatchObject({ status: 'deferred' })
    expect(autopilot.calls).toHaveLength(0)
  })
})

describe('track -> journey trigger', () => {
  it('triggers the mapped journey for a known contact, email URL-encoded', async () => {
    const { post, autopilot } = setup()
    autopilot.contacts.set('a+b@example.com', { Email: 'a+b@example.com', custom: {} })
    const response = await post(track('Step Activated', 'a+b@example.com'))
    expect(response.status).toBe(200)
    expect(await json(response)).toEqual({ status: 'delivered', message: 'entered journey trigger 0001' })
    expect(autopilot.calls.map((call) => call.path)).toEqual(['/trigger/0001/contact/a%2Bb%40example.com'])
    expect(autopilot.enrolments).toMatchObject([{ triggerId: '0001', email: 'a+b@example.com' }])
  })

  it('on 404 for an unknown contact, upserts it (email + context.traits) and triggers once more', async () => {
    const { post, autopilot } = setup()
    const response = await post(trackSeed)
    expect(response.status).toBe(200)
    expect(autopilot.calls.map((call) => `${call.path} ${call.status}`)).toEqual([
      '/trigger/0001/contact/john.doe%40example.com 404',
      '/contact 200',
      '/trigger/0001/contact/john.doe%40example.com 200',
    ])
    expect(autopilot.calls[1].body).toEqual({ contact: { Email: 'john.doe@example.com' } })
    expect(autopilot.enrolments).toHaveLength(1)
  })

  it('answers 503 when the trigger still answers 404 after the upsert (wrong trigger id)', async () => {
    const { post, autopilot } = setup({}, { triggers: ['9999'] })
    const response = await post(track('Step Activated', 'x@example.com'))
    expect(response.status).toBe(503)
    expect((await json(response)).message).toContain('AUTOPILOT_TRIGGERS')
    expect(autopilot.enrolments).toHaveLength(0)
  })

  it('answers 200 with the reason for an unmapped event and sends nothing', async () => {
    const { post, autopilot } = setup()
    const response = await post(track('Clicked Button', 'x@example.com'))
    expect(response.status).toBe(200)
    expect(await json(response)).toMatchObject({ status: 'skipped', message: expect.stringContaining('"Clicked Button"') })
    expect(autopilot.calls).toHaveLength(0)
  })

  it('still upserts for an unmapped event whose context.traits carry more than the email', async () => {
    const { post, autopilot } = setup()
    const response = await post(track('Clicked Button', undefined, { context: { traits: { email: 'x@example.com', plan: 'pro' } } }))
    expect(response.status).toBe(200)
    expect(autopilot.contacts.get('x@example.com')?.custom).toEqual({ 'string--plan': 'pro' })
    expect(autopilot.enrolments).toHaveLength(0)
  })

  it('answers 400 with the exact message for a track with no email and no userId', async () => {
    const { post, autopilot } = setup()
    const response = await post({ type: 'track', event: 'Step Activated', anonymousId: 'anon' })
    expect(response.status).toBe(400)
    expect((await json(response)).message).toBe('Missing unique identifier traits. Either email or user_id traits must be provided')
    expect(autopilot.calls).toHaveLength(0)
  })
})

describe('settings', () => {
  it('answers 503 naming AUTOPILOT_API_KEY when it is missing, and sends nothing', async () => {
    const { post, autopilot } = setup({ AUTOPILOT_API_KEY: undefined })
    for (const event of [identifySeed, trackSeed]) {
      const response = await post(event)
      expect(response.status).toBe(503)
      expect((await json(response)).message).toContain('AUTOPILOT_API_KEY')
    }
    expect(autopilot.calls).toHaveLength(0)
  })

  it.each([
    ['not JSON', '{"Step Activated": '],
    ['an array', '["0001"]'],
    ['a non-string id', '{"Step Activated": 1}'],
  ])('treats AUTOPILOT_TRIGGERS that is %s as a configuration error (503), not a crash', async (_, value) => {
    const { post, get, autopilot } = setup({ AUTOPILOT_TRIGGERS: value })
    const response = await post(trackSeed)
    expect(response.status).toBe(503)
    expect((await json(response)).message).toContain('AUTOPILOT_TRIGGERS')
    expect(autopilot.calls).toHaveLength(0)
    const health = await json(await get('/health'))
    expect(health.status).toBe('misconfigured')
    expect(health.problems.join()).toContain('AUTOPILOT_TRIGGERS')
  })

  it.each([
    ['AUTOPILOT_FIELD_TYPES', '{"logins": "int"}'],
    ['AUTOPILOT_BASE_URL', 'not a url'],
    ['AUTOPILOT_TIMEOUT_MS', 'soon'],
    ['MAX_BODY_BYTES', '-5'],
  ])('treats a malformed %s as a configuration error (503) naming it', async (name, value) => {
    const { post, get, autopilot } = setup({ [name]: value })
    const response = await post(identifySeed)
    expect(response.status).toBe(503)
    expect((await json(response)).message).toContain(name)
    expect(autopilot.calls).toHaveLength(0)
    expect((await json(await get('/health'))).status).toBe('misconfigured')
  })

  it('accepts AUTOPILOT_TRIGGERS as a TOML table (an object var)', async () => {
    const { post, autopilot } = setup({ AUTOPILOT_TRIGGERS: { 'Step Activated': '0042' } })
    autopilot.contacts.set('x@example.com', { Email: 'x@example.com', custom: {} })
    expect((await post(track('Step Activated', 'x@example.com'))).status).toBe(200)
    expect(autopilot.enrolments).toMatchObject([{ triggerId: '0042' }])
  })
})

// Autopilot's answers -> ours, chosen for Segment's retry rules.
describe('Autopilot faults', () => {
  it("429 -> 429 with Retry-After (Autopilot's, when it sends one)", async () => {
    const { post, autopilot } = setup()
    autopilot.inject({ status: 429, retryAfter: '7' })
    const response = await post(identifySeed)
    expect(response.status).toBe(429)
    expect(response.headers.get('retry-after')).toBe('7')
    expect((await json(response)).message).toContain('rate limit')
  })

  it('429 without Retry-After -> 429 with a default Retry-After', async () => {
    const { post, autopilot } = setup()
    autopilot.inject({ status: 429 })
    const response = await post(identifySeed)
    expect(response.status).toBe(429)
    expect(Number(response.headers.get('retry-after'))).toBeGreaterThan(0)
  })

  it.each([500, 502, 503, 504])('%i -> 503 (retried by Segment)', async (status) => {
    const { post, autopilot } = setup()
    autopilot.inject({ status })
    const response = await post(identifySeed)
    expect(response.status).toBe(503)
    expect((await json(response)).message).toContain(`unavailable (${status})`)
  })

  it('a network error -> 503', async () => {
    const { post, autopilot } = setup()
    autopilot.inject({ network: true })
    const response = await post(identifySeed)
    expect(response.status).toBe(503)
    expect((await json(response)).message).toContain('Could not reach Autopilot')
  })

  it('a hang -> our own timeout aborts the call -> 503', async () => {
    const { post, autopilot } = setup({ AUTOPILOT_TIMEOUT_MS: '50' })
    autopilot.inject({ hang: true })
    const response = await post(identifySeed)
    expect(response.status).toBe(503)
    expect((await json(response)).message).toBe('Autopilot did not answer within 50 ms')
  })

  it('a rejected key (401) -> 503 saying the key was rejected, without the key', async () => {
    const { post } = setup({ AUTOPILOT_API_KEY: 'ap-wrong-key-0000' })
    const response = await post(identifySeed)
    expect(response.status).toBe(503)
    const text = await response.text()
    expect(JSON.parse(text).message).toContain('rejected the API key')
    expect(text).not.toContain('ap-wrong-key-0000')
  })

  it("another 4xx -> 400 carrying Autopilot's message (Segment drops it and shows why)", async () => {
    const { post } = setup()
    const response = await post({ ...identifySeed, traits: { email: 'someone@localhost' } })
    expect(response.status).toBe(400)
    expect((await json(response)).message).toContain('Invalid contact_id_or_email value provided.')
  })

  it('a fault during the 404 -> upsert -> trigger sequence is retryable', async () => {
    const { post, autopilot } = setup()
    autopilot.inject({ status: 502, match: (call) => call.path === '/contact' })
    // Its own messageId: the isolate remembers the journeys it entered (the seed's is entered above).
    const response = await post({ ...trackSeed, messageId: `fault-${crypto.randomUUID()}` })
    expect(response.status).toBe(503)
    expect(autopilot.enrolments).toHaveLength(0)
  })

  it('never puts the API key in an answer or a log line', async () => {
    const { post, autopilot, logs } = setup()
    const answers: string[] = []
    for (const fault of [{ status: 429 }, { status: 500 }, { network: true }, { status: 400 }, { status: 401 }]) {
      autopilot.inject(fault)
      answers.push(await (await post(identifySeed)).text())
    }
    answers.push(await (await post(trackSeed)).text())
    expect(answers.join('\n')).not.toContain(API_KEY)
    expect(logs.join('\n')).not.toContain(API_KEY)
  })
})

// One row of the table in src/autopilot.ts (and the README) per case: what reaches Segment.
describe('the outcome table: every class of Autopilot answer', () => {
  it('has a row for every status class, and the trigger-only 404', () => {
    for (const status of [100, 200, 204, 301, 302, 307, 308, 400, 401, 403, 404, 408, 409, 413, 422, 425, 429, 500, 502, 503, 504, 599]) {
      expect(() => kindOf(status, 'contacts')).not.toThrow()
    }
    expect(ANSWERS.filter((row) => row.ops).map((row) => [row.statuses, row.ops, row.kind])).toEqual([
      ['404', ['trigger'], 'not_found'],
      ['404', ['delete'], 'ok'],
    ])
  })

  it.each([301, 302, 307, 308])('%i: a redirect is never followed (a POST must not become a GET that "succeeds"); 503, logged as a misconfiguration', async (status) => {
    const { post, autopilot, logLines } = setup()
    autopilot.inject({ status, location: 'https://autopilot.test/v1/contact' })
    const response = await post(identifySeed)
    expect(response.status).toBe(503)
    expect((await json(response)).message).toMatch(/redirected.*never followed.*AUTOPILOT_BASE_URL/)
    expect(autopilot.calls.map((call) => call.method)).toEqual(['POST']) // no GET to the Location
    expect(autopilot.contacts.size).toBe(0)
    expect(logLines()[0].autopilot).toEqual([{ op: 'contact', status, ms: expect.any(Number) }])
  })

  it('a 2xx whose body says error is not a success: 503', async () => {
    const { post, autopilot } = setup()
    autopilot.inject({ status: 200, body: { error: 'Bad Request', message: 'Something went wrong.' } })
    const response = await post(identifySeed)
    expect(response.status).toBe(503)
    expect((await json(response)).message).toContain('its body says error: Something went wrong.')
  })

  it.each([408, 425])('%i (transient) -> 503, never a 4xx Segment would drop', async (status) => {
    const { post, autopilot } = setup()
    autopilot.inject({ status })
    expect((await post(identifySeed)).status).toBe(503)
  })

  it.each(['/contact', '/contacts'])('a 404 on POST %s (a wrong base URL, a deploy at Autopilot) -> 503 naming AUTOPILOT_BASE_URL', async (path) => {
    const { post, autopilot } = setup()
    autopilot.inject({ status: 404, match: (call) => call.path === path })
    const response = await post(path === '/contact' ? identifySeed : [identify({ email: 'a@example.com' }), identify({ email: 'b@example.com' })])
    expect(response.status).toBe(503)
    expect(JSON.stringify(await json(response))).toContain('check AUTOPILOT_BASE_URL')
  })

  it('a 404 on a trigger means "unknown contact": upsert it, then trigger', async () => {
    const { post, autopilot } = setup()
    const response = await post({ ...trackSeed, messageId: 'unknown-contact-404' })
    expect(response.status).toBe(200)
    expect(autopilot.calls.map((call) => call.status)).toEqual([404, 200, 200])
  })

  it('a 404 on a delete means the contact is gone anyway: delivered', async () => {
    const { post } = setup()
    await post(identify({ email: 'gone@example.com' }, { userId: 'u-gone' }))
    const response = await post({ type: 'delete', messageId: 'del-gone', userId: 'u-gone' })
    expect(response.status).toBe(200)
  })

  it.each([403])('%i (the key refused) -> 503 like 401', async (status) => {
    const { post, autopilot } = setup()
    autopilot.inject({ status })
    expect((await post(identifySeed)).status).toBe(503)
  })

  it.each([409, 413, 422])("%i (any other 4xx) -> 400 with Autopilot's message, which Segment shows and drops", async (status) => {
    const { post, autopilot } = setup()
    autopilot.inject({ status })
    const response = await post(identifySeed)
    expect(response.status).toBe(400)
    expect((await json(response)).message).toContain(`Autopilot rejected it (${status})`)
  })

  it('drives queued retries the same way: a redirect or a 408 goes back on the queue, a 422 becomes a dead letter', async () => {
    const events = fakeQueue()
    const { consume, autopilot, env } = setup({ EVENTS: events.queue })
    autopilot.inject({ status: 302 }, { status: 408 }, { status: 408 }, { status: 408 }, { status: 422, match: (call) => call.body?.contact?.Email === 'c@example.com' })
    await consume([identify({ email: 'a@example.com' })])
    await consume([identify({ email: 'b@example.com' })])
    await consume([identify({ email: 'c@example.com' })])
    expect(events.sent).toHaveLength(2)
    expect((await env.DB!.prepare('SELECT reason FROM dead_letters').all()).results).toEqual([{ reason: expect.stringContaining('Autopilot rejected it (422)') }])
  })

  it('tracks take the same table: a 3xx on the trigger releases the claim and retries', async () => {
    const { post, autopilot } = setup()
    autopilot.contacts.set('t@example.com', { Email: 't@example.com', custom: {} })
    autopilot.inject({ status: 301, match: (call) => call.path.startsWith('/trigger') })
    const event = track('Step Activated', 't@example.com')
    expect((await post(event)).status).toBe(503)
    expect((await post(event)).status).toBe(200)
    expect(autopilot.enrolments).toHaveLength(1)
  })
})
