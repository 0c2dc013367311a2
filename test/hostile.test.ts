import { describe, expect, it } from 'vitest'
import { MAX_TRAIT_DEPTH, MAX_TRAIT_TEXT } from '../src/segment/schema'
import { encoder, identify, json, setup, sign } from './helpers'

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
