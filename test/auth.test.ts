import { describe, expect, it } from 'vitest'
import batchExample from '../examples/batch.json'
import identifySeed from '../examples/identify.json'
import { json, SECRET, setup, sign, TOKEN } from './helpers'

const body = JSON.stringify(identifySeed)

describe('X-Signature (SEGMENT_SHARED_SECRET)', () => {
  it('lets in a request signed over its raw body', async () => {
    const { post, autopilot } = setup()
    const response = await post(body, { signature: await sign(body) })
    expect(response.status).toBe(200)
    expect(autopilot.calls).toHaveLength(1)
  })

  it('accepts an upper-case hex signature', async () => {
    const { post } = setup()
    expect((await post(body, { signature: (await sign(body)).toUpperCase() })).status).toBe(200)
  })

  it('lets in an array of one event signed over JSON.stringify(events[0]), as Segment signs arrays', async () => {
    const { post, autopilot } = setup()
    const raw = JSON.stringify([identifySeed], null, 2)
    const response = await post(raw, { signature: await sign(JSON.stringify(identifySeed)) })
    expect(response.status).toBe(200)
    expect(autopilot.contacts.size).toBe(1)
  })

  it('lets in a batch signed over its whole raw body', async () => {
    const { post, autopilot } = setup()
    const response = await post(JSON.stringify(batchExample, null, 2)) // signed over the raw body
    expect(response.status).toBe(200)
    expect(autopilot.enrolments).toHaveLength(1)
  })

  describe('forged batches: a signature over the first event vouches for that event alone', () => {
    const forged = [
      { type: 'track', messageId: 'forged-1', event: 'Step Activated', context: { traits: { email: 'victim@example.com' } } },
      { type: 'identify', messageId: 'forged-2', traits: { email: 'victim@example.com', unsubscribed: false } },
    ]

    it('refuses a captured signed event with forged events after it (503: retried, never delivered), and calls nothing', async () => {
      const { post, autopilot } = setup()
      const captured = JSON.stringify(identifySeed)
      const response = await post(JSON.stringify([identifySeed, ...forged]), { signature: await sign(captured) })
      expect(response.status).toBe(503)
      expect((await json(response)).message).toContain('SEGMENT_WEBHOOK_TOKEN')
      expect(autopilot.calls).toHaveLength(0)
    })

    it("refuses Segment's own first-event signature over a real batch the same way, naming the fix", async () => {
      const { post, logLines } = setup()
      const response = await post(JSON.stringify(batchExample), { signature: await sign(JSON.stringify(batchExample[0])) })
      expect(response.status).toBe(503)
      expect((await json(response)).message).toMatch(/signed over its first event only.*SEGMENT_WEBHOOK_TOKEN/)
      expect(logLines()[0]).toMatchObject({ auth: 'first-event-only', status: 503 })
    })

    it('refuses it also when SEGMENT_WEBHOOK_TOKEN is set next to the secret: the token is required', async () => {
      const { post, autopilot } = setup({ SEGMENT_WEBHOOK_TOKEN: TOKEN })
      const response = await post(JSON.stringify([identifySeed, ...forged]), { signature: await sign(JSON.stringify(identifySeed)) })
      expect(response.status).toBe(401)
      expect(autopilot.calls).toHaveLength(0)
    })

    it('cannot reorder a forged event in front of a signed one', async () => {
      const { post } = setup()
      const response = await post(JSON.stringify([...forged, identifySeed]), { signature: await sign(JSON.stringify(identifySeed)) })
      expect(response.status).toBe(401)
    })
  })

  it.each([
    ['no signature', 'none'],
    ['a signature with another secret', 'other-secret'],
    ['a signature of another body', 'other-body'],
    ['a malformed signature', 'zz-not-hex'],
    ['a truncated signature', 'truncated'],
  ])('refuses %s with 401 JSON and forwards nothing', async (_, kind) => {
    const { post, autopilot } = setup()
    const signature =
      kind === 'none' ? 'none' : kind === 'other-secret' ? await sign(body, 'other-secret') : kind === 'other-body' ? await sign('{}') : kind === 'truncated' ? (await sign(body)).slice(0, 39) : kind
    const response = await post(body, { signature })
    expect(response.status).toBe(401)
    expect(await json(response)).toEqual({ message: 'unauthorized' })
    expect(autopilot.calls).toHaveLength(0)
  })

  it('does not accept a first-event signature for a single-event body', async () => {
    const { post } = setup()
    const raw = JSON.stringify({ batch: batchExample })
    expect((await post(raw, { signature: await sign(JSON.stringify(batchExample[0])) })).status).toBe(401)
  })

  it('refuses unparseable bodies with 401 before saying anything about them', async () => {
    const { post } = setup()
    const response = await post('[{"type":', { signature: await sign('nope') })
    expect(response.status).toBe(401)
  })
})

describe('who gets in', () => {
  it('fails closed: with neither secret nor token, events get 503 naming both, and nothing is forwarded', async () => {
    const { post, get, autopilot } = setup({ SEGMENT_SHARED_SECRET: undefined })
    const response = await post(body, { signature: 'none' })
    expect(response.status).toBe(503)
    const { message } = await json(response)
    expect(message).toContain('SEGMENT_SHARED_SECRET')
    expect(message).toContain('SEGMENT_WEBHOOK_TOKEN')
    expect(autopilot.calls).toHaveLength(0)
    expect((await json(await get('/health'))).auth).toMatch(/^locked/)
  })

  it('opens only with ALLOW_UNSIGNED="true", and /health says so', async () => {
    const { post, get } = setup({ SEGMENT_SHARED_SECRET: undefined, ALLOW_UNSIGNED: 'true' })
    expect((await post(body, { signature: 'none' })).status).toBe(200)
    expect((await json(await get('/health'))).auth).toBe('off (ALLOW_UNSIGNED=true)')
  })

  it.each(['1', 'yes', 'TRUE ', 'false'])('does not open for ALLOW_UNSIGNED=%j', async (value) => {
    const { post } = setup({ SEGMENT_SHARED_SECRET: undefined, ALLOW_UNSIGNED: value })
    expect((await post(body, { signature: 'none' })).status).toBe(503)
  })

  describe('token only (SEGMENT_WEBHOOK_TOKEN)', () => {
    const tokenOnly = { SEGMENT_SHARED_SECRET: undefined, SEGMENT_WEBHOOK_TOKEN: TOKEN }

    it.each([`Bearer ${TOKEN}`, `bearer ${TOKEN}`, `Bearer  ${TOKEN} `])('lets in Authorization: %j', async (authorization) => {
      const { post } = setup(tokenOnly)
      expect((await post(body, { signature: 'none', headers: { authorization } })).status).toBe(200)
    })

    it('lets in an unsigned batch with the token (the safer choice for batches)', async () => {
      const { post, autopilot } = setup(tokenOnly)
      const response = await post(batchExample, { signature: 'none', headers: { authorization: `Bearer ${TOKEN}` } })
      expect(response.status).toBe(200)
      expect(autopilot.calls.length).toBeGreaterThan(0)
    })

    it.each([
      ['no Authorization', undefined],
      ['a wrong token', 'Bearer wrong-token'],
      ['a token prefix', `Bearer ${TOKEN.slice(0, -1)}`],
      ['a longer token', `Bearer ${TOKEN}x`],
      ['another scheme', `Basic ${TOKEN}`],
      ['a bare token', TOKEN],
      ['an empty bearer', 'Bearer '],
    ])('refuses %s with 401 {"message":"unauthorized"}', async (_, authorization) => {
      const { post, autopilot } = setup(tokenOnly)
      const response = await post(body, { signature: 'none', headers: authorization ? { authorization } : {} })
      expect(response.status).toBe(401)
      expect(await json(response)).toEqual({ message: 'unauthorized' })
      expect(autopilot.calls).toHaveLength(0)
    })

    it('ignores a signature when only the token is configured', async () => {
      const { post } = setup(tokenOnly)
      expect((await post(body, { signature: await sign(body) })).status).toBe(401)
    })
  })

  describe('secret and token both configured: the token is required on every request', () => {
    const both = { SEGMENT_WEBHOOK_TOKEN: TOKEN }

    it('refuses a valid signature without the token', async () => {
      const { post, autopilot } = setup(both)
      expect((await post(body)).status).toBe(401)
      expect(autopilot.calls).toHaveLength(0)
    })

    it('lets in a valid token without a signature', async () => {
      const { post } = setup(both)
      expect((await post(body, { signature: 'none', headers: { authorization: `Bearer ${TOKEN}` } })).status).toBe(200)
    })

    it('lets in a valid token even with a wrong signature', async () => {
      const { post } = setup(both)
      expect((await post(body, { signature: await sign('{}'), headers: { authorization: `Bearer ${TOKEN}` } })).status).toBe(200)
    })

    it('refuses a valid signature with a wrong token', async () => {
      const { post } = setup(both)
      expect((await post(body, { headers: { authorization: 'Bearer wrong' } })).status).toBe(401)
    })

    it('refuses a wrong signature with a wrong token, saying only "unauthorized"', async () => {
      const { post } = setup(both)
      const response = await post(body, { signature: await sign(body, 'nope'), headers: { authorization: 'Bearer wrong' } })
      expect(response.status).toBe(401)
      expect(await json(response)).toEqual({ message: 'unauthorized' })
    })

    it('refuses an unsigned batch without the token', async () => {
      const { post } = setup(both)
      expect((await post(batchExample, { signature: 'none' })).status).toBe(401)
    })
  })

  it('never echoes the secret or the token', async () => {
    const { post, get, logs } = setup({ SEGMENT_WEBHOOK_TOKEN: TOKEN })
    const answers = [
      await (await post(body, { signature: 'bad' })).text(),
      await (await post(body, { headers: { authorization: `Bearer ${TOKEN}` } })).text(),
      await (await get('/health')).text(),
    ].join('\n')
    for (const secret of [SECRET, TOKEN]) {
      expect(answers).not.toContain(secret)
      expect(logs.join('\n')).not.toContain(secret)
    }
  })
})
