import { describe, expect, it } from 'vitest'
import identifySeed from '../examples/identify.json'
import trackSeed from '../examples/track.json'
import { API_KEY, json, setup } from './helpers'

// Autopilot's answers -> ours, chosen for Segment's retry rules.
describe('Autopilot faults', () => {
  it('429 -> 429 with Retry-After (Autopilot\'s, when it sends one)', async () => {
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

  it('another 4xx -> 400 carrying Autopilot\'s message (Segment drops it and shows why)', async () => {
    const { post } = setup()
    const response = await post({ ...identifySeed, traits: { email: 'someone@localhost' } })
    expect(response.status).toBe(400)
    expect((await json(response)).message).toContain('Invalid contact_id_or_email value provided.')
  })

  it('a fault during the 404 -> upsert -> trigger sequence is retryable', async () => {
    const { post, autopilot } = setup()
    autopilot.inject({ status: 502, match: (call) => call.path === '/contact' })
    const response = await post(trackSeed)
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
