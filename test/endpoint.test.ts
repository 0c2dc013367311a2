import { describe, expect, it, vi } from 'vitest'
import identifySeed from '../examples/identify.json'
import { API_KEY, json, SECRET, setup } from './helpers'

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
