import { describe, expect, it, vi } from 'vitest'
import wranglerToml from '../wrangler.toml?raw'
import { version } from '../package.json'
import identifySeed from '../examples/identify.json'
import { API_KEY, fakeQueue, json, SECRET, setup } from './helpers'

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
