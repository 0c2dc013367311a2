import { describe, expect, it } from 'vitest'
import { API_KEY, fakeQueue, SECRET, setup, sign, TOKEN } from './helpers'

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
