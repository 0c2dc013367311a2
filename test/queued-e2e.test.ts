import { SELF } from 'cloudflare:test'
import { expect, it, vi } from 'vitest'
import { createAutopilot } from '../sandbox/autopilot.js'
import { API_KEY, sign } from './helpers'

// End to end in Miniflare: the real queue from wrangler.toml's `queued` environment
// (batch size, retries, dead-letter queue), the Worker's own consumer, and an
// Autopilot stand-in that enforces 5 requests/s and fails some calls.
it('delivers everything exactly once through a strict 5 r/s Autopilot that answers 429 and 5xx', { timeout: 60_000 }, async () => {
  const autopilot = createAutopilot({ apiKey: API_KEY, rateLimit: 5 })
  vi.spyOn(globalThis, 'fetch').mockImplementation(async (input: RequestInfo | URL, init?: RequestInit) => autopilot.fetch(new Request(input, init)))
  vi.spyOn(console, 'log').mockImplementation(() => {})
  autopilot.inject({ status: 429 }, { status: 503 }, { status: 500, match: (call) => call.path.startsWith('/trigger') })

  const identifies = Array.from({ length: 150 }, (_, i) => ({ type: 'identify', messageId: `e2e-i${i}`, traits: { email: `e2e${i}@example.com`, n: i } }))
  const tracks = [0, 1, 2, 200, 201].map((i) => ({
    type: 'track',
    messageId: `e2e-t${i}`,
    event: 'Step Activated',
    context: { traits: { email: `e2e${i}@example.com` } },
  }))
  for (const events of [identifies, tracks, tracks /* Segment re-sends: must not enrol twice */]) {
    const body = JSON.stringify(events)
    const response = await SELF.fetch('https://worker.test/', { method: 'POST', body, headers: { 'x-signature': await sign(body) } })
    expect(response.status).toBe(202)
  }

  await vi.waitFor(
    () => {
      expect(autopilot.contacts.size).toBe(152)
      expect(autopilot.enrolments).toHaveLength(5)
    },
    { timeout: 45_000, interval: 250 },
  )
  const statuses = autopilot.calls.map((call) => call.status)
  expect(statuses.filter((status) => status === 429)).toHaveLength(1) // the injected one: pacing avoids the rest
  expect(statuses).toContain(503)
  expect(new Set(autopilot.enrolments.map((e) => e.email)).size).toBe(5)
  const bulk = autopilot.calls.filter((call) => call.path === '/contacts' && call.status === 200)
  expect(bulk.reduce((n, call) => n + call.body.contacts.length, 0)).toBeGreaterThanOrEqual(150)
  expect(bulk.length).toBeLessThanOrEqual(3)
  // Never more than 5 calls in any second, as Autopilot counts them.
  const accepted = autopilot.calls.filter((call) => call.status !== 429).map((call) => call.at)
  for (const t of accepted) expect(accepted.filter((u) => u >= t && u < t + 1000).length).toBeLessThanOrEqual(5)
})
