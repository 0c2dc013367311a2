import { describe, expect, it } from 'vitest'
import identifySeed from '../examples/identify.json'
import { waitSeconds } from '../src/destinations/transport'
import { json, setup } from './helpers'

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

// A 429's pause comes from the destination; a pause of hours is a broken proxy or a bug.
describe('the pause a rate limit may impose', () => {
  it('caps a bogus Retry-After, logs it as asked and applied, and tells Segment the capped wait', async () => {
    const { post, autopilot, logLines } = setup({ RATE_LIMIT_MAX_PAUSE_SECONDS: '3', DIRECT_DEADLINE_MS: '1000' })
    autopilot.inject({ status: 429, retryAfter: '99999' })
    const first = await post(identifySeed)
    expect(first.status).toBe(429)
    expect(first.headers.get('retry-after')).toBe('3')
    expect(logLines().at(-1)!.autopilot).toEqual([expect.objectContaining({ status: 429, wait: 3, asked: 99999 })])

    // While paused: 429 with the time left, and nothing reaches Autopilot.
    const paused = await post({ ...identifySeed, messageId: 'paused-1' })
    expect(paused.status).toBe(429)
    expect(Number(paused.headers.get('retry-after'))).toBeGreaterThanOrEqual(1)
    expect(Number(paused.headers.get('retry-after'))).toBeLessThanOrEqual(3)
    expect((await json(paused)).message).toContain('s left')
    expect(autopilot.calls).toHaveLength(1)

    // After the capped pause, delivery resumes.
    await sleep(3100)
    const resumed = await post({ ...identifySeed, messageId: 'resumed-1' })
    expect(resumed.status).toBe(200)
    expect(autopilot.calls).toHaveLength(2)
  })

  it('after a pause, one probe call goes first and the others wait for its answer', async () => {
    const { post, autopilot } = setup({ RATE_LIMIT_MAX_PAUSE_SECONDS: '1' })
    autopilot.inject({ status: 429, retryAfter: '1' })
    expect((await post(identifySeed)).status).toBe(429)
    await sleep(1100)
    autopilot.latencyMs = 150
    const batch = Array.from({ length: 3 }, (_, i) => ({ type: 'identify', messageId: `p-${i}`, traits: { email: `p${i}@example.com` } }))
    const responses = await Promise.all(batch.map((event) => post(event)))
    expect(responses.map((r) => r.status)).toEqual([200, 200, 200])
    const [probe, ...rest] = autopilot.calls.slice(1)
    for (const call of rest) expect(call.at).toBeGreaterThanOrEqual(probe.done!)
  })

  it.each([
    ['an HTTP date 3 s ahead', (): string => new Date(Date.now() + 3000).toUTCString(), [2, 4]],
    ['a negative number', (): string => '-5', [1, 1]],
    ['text that is no wait', (): string => 'soon', [1, 1]],
  ] as const)('reads %s as a wait Segment can use', async (_, header, [low, high]) => {
    const { post, autopilot } = setup()
    autopilot.inject({ status: 429, retryAfter: header() })
    const response = await post(identifySeed)
    expect(response.status).toBe(429)
    const wait = Number(response.headers.get('retry-after'))
    expect(wait).toBeGreaterThanOrEqual(low)
    expect(wait).toBeLessThanOrEqual(high)
  })

  it('parses delta-seconds, HTTP dates and body numbers; refuses negative and unparsable values', () => {
    const now = Date.parse('2026-12-04T10:00:00Z')
    expect(waitSeconds('7', now)).toBe(7)
    expect(waitSeconds('Fri, 04 Dec 2026 10:00:30 GMT', now)).toBe(30)
    expect(waitSeconds('Fri, 04 Dec 2026 09:00:00 GMT', now)).toBe(0)
    expect(waitSeconds(12, now)).toBe(12)
    expect(waitSeconds(-1, now)).toBeUndefined()
    expect(waitSeconds('-1', now)).toBeUndefined()
    expect(waitSeconds('tomorrow', now)).toBeUndefined()
    expect(waitSeconds('', now)).toBeUndefined()
  })
})
