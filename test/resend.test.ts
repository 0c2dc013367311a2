import { beforeEach, describe, expect, it } from 'vitest'
import { MAX_LISTED } from '../src/http/answer'
import { fakeQueue, freshDb, identify, json, setup, track } from './helpers'

// Direct mode against an Autopilot that allows 5 requests/s (20 where the rate is not the
// subject), as Segment re-sends: every
// re-send makes progress (what finished is recorded and skipped) and nothing enters a
// journey twice. No answer takes longer than Segment waits: test/deadline.test.ts.
const strict = (env: Record<string, unknown> = {}) => setup({ AUTOPILOT_MAX_RPS: '5', ...env }, { rateLimit: 5 })
const people = (n: number, prefix: string) => Array.from({ length: n }, (_, i) => identify({ email: `${prefix}${i}@example.com`, n: i }, { messageId: `${prefix}-${i}`, userId: `${prefix}-u${i}` }))

/** Posts the batch as Segment does: again after every non-2xx. Returns the statuses. */
async function resend(post: (body: unknown) => Promise<Response>, batch: unknown, limit = 10, between?: () => void) {
  const statuses: number[] = []
  for (;;) {
    const response = await post(batch)
    statuses.push(response.status)
    if (response.ok || statuses.length >= limit) return statuses
    between?.()
  }
}

beforeEach(freshDb)

describe('progress across Segment re-sends', () => {
  it('completes a 700-identify batch, each re-send continuing where the last stopped', { timeout: 30_000 }, async () => {
    // Three calls per request: as if the rest of the budget went elsewhere.
    const { post, autopilot } = strict({ AUTOPILOT_MAX_CALLS: '3' })
    const seen: number[] = []
    const statuses = await resend(post, people(700, 'p700'), 10, () => seen.push(autopilot.contacts.size))
    expect(statuses).toEqual([503, 503, 200])
    expect(seen).toEqual([300, 600])
    expect(autopilot.contacts.size).toBe(700)
    expect(autopilot.calls.filter((call) => call.status === 200)).toHaveLength(7) // nothing sent twice
  })

  it('continues after a 429 from an account someone else also uses', { timeout: 30_000 }, async () => {
    const { post, autopilot } = strict()
    autopilot.inject({ status: 429, retryAfter: '1', match: (call) => call.body?.contacts?.[0]?.Email === 'busy300@example.com' })
    const statuses = await resend(post, people(700, 'busy'))
    expect(statuses).toEqual([429, 200])
    expect(autopilot.contacts.size).toBe(700)
    expect(autopilot.calls.filter((call) => call.status === 200)).toHaveLength(7)
  })

  it('isolates a poison contact in a bulk of 100: rejected with the reason, the other 99 delivered', { timeout: 30_000 }, async () => {
    // Finding it takes a call per halving: an account allowing 20 a second keeps the test short.
    const { post, autopilot } = setup({ AUTOPILOT_MAX_RPS: '20' }, { rateLimit: 20 })
    const batch = people(100, 'poison')
    batch[42] = identify({ email: 'poison@localhost' }, { messageId: 'poison-42' })
    const statuses = await resend(post, batch)
    expect(statuses.at(-1)).toBe(200)
    expect(statuses.length).toBeLessThanOrEqual(2)
    expect(autopilot.contacts.size).toBe(99)
    const last = await json(await post(batch))
    expect(last.results).toEqual([expect.objectContaining({ index: 42, status: 'rejected', message: expect.stringContaining('Invalid contact_id_or_email') })])
  })

  it('enters 12 new contacts into their journey exactly once over the re-sends it takes', { timeout: 60_000 }, async () => {
    const { post, autopilot } = strict()
    const tracks = Array.from({ length: 12 }, (_, i) => track('Step Activated', `journey${i}@example.com`, { messageId: `journey-${i}` }))
    const statuses = await resend(post, tracks)
    expect(statuses.at(-1)).toBe(200)
    expect(statuses.length).toBeGreaterThan(1) // 36 calls at 5 r/s do not fit in one answer
    expect(statuses.length).toBeLessThanOrEqual(4)
    expect(autopilot.enrolments).toHaveLength(12)
    expect(new Set(autopilot.enrolments.map((e) => e.email)).size).toBe(12)
    expect(autopilot.calls.filter((call) => call.status === 429)).toEqual([])
  })
})

describe('newest wins', () => {
  it('direct mode: an older identify re-sent after a newer one does not overwrite what the newer one set', async () => {
    const { post, autopilot } = setup()
    const older = identify({ email: 'lu@example.com', plan: 'old', title: 'Intern' }, { timestamp: '2026-11-01T10:00:00Z' })
    autopilot.inject({ status: 503 })
    expect((await post(older)).status).toBe(503)
    expect((await post(identify({ email: 'lu@example.com', plan: 'new' }, { timestamp: '2026-11-01T11:00:00Z' }))).status).toBe(200)
    expect((await post(older)).status).toBe(200) // Segment's retry lands last
    expect(autopilot.contacts.get('lu@example.com')).toMatchObject({ Title: 'Intern', custom: { 'string--plan': 'new' } })
  })

  it('queued mode: an identify whose bulk call failed lands after a newer one without overwriting it (20 of 20 contacts)', async () => {
    const events = fakeQueue()
    const { consume, autopilot } = setup({ EVENTS: events.queue })
    const older = Array.from({ length: 20 }, (_, i) => identify({ email: `q${i}@example.com`, plan: 'old' }, { timestamp: '2026-11-01T10:00:00Z' }))
    autopilot.inject({ status: 500 }, { status: 500 }, { status: 500 })
    await consume(older)
    expect(events.sent).toHaveLength(1) // back on the queue
    await consume(Array.from({ length: 20 }, (_, i) => identify({ email: `q${i}@example.com`, plan: 'new' }, { timestamp: '2026-11-01T11:00:00Z' })))
    await consume([events.sent[0].body])
    for (let i = 0; i < 20; i++) expect(autopilot.contacts.get(`q${i}@example.com`)?.custom).toEqual({ 'string--plan': 'new' })
  })

  it('an older event whose every field a newer one already set is not sent at all', async () => {
    const { post, autopilot } = setup()
    const older = identify({ email: 'all@example.com', plan: 'old' }, { timestamp: '2026-11-01T10:00:00Z' })
    autopilot.inject({ status: 503 })
    expect((await post(older)).status).toBe(503)
    await post(identify({ email: 'all@example.com', plan: 'new' }, { timestamp: '2026-11-01T11:00:00Z' }))
    const calls = autopilot.calls.length
    const retried = await post(older)
    expect(await json(retried)).toMatchObject({ status: 'delivered', message: expect.stringContaining('newer events already set every field') })
    expect(autopilot.calls).toHaveLength(calls)
  })

  it('within one batch, by Segment timestamp rather than position', async () => {
    const { post, autopilot } = setup()
    await post([
      identify({ email: 'order@example.com', plan: 'newer' }, { timestamp: '2026-11-01T11:00:00Z' }),
      identify({ email: 'order@example.com', plan: 'older' }, { timestamp: '2026-11-01T10:00:00Z' }),
    ])
    expect(autopilot.contacts.get('order@example.com')?.custom).toEqual({ 'string--plan': 'newer' })
  })

  it('stores nothing extra per event on the happy path', async () => {
    const { post, env } = setup()
    await post(people(50, 'happy'))
    await post(people(50, 'happy'))
    const counts = await env.DB!.prepare('SELECT (SELECT count(*) FROM contacts) AS guards, (SELECT count(*) FROM ledger) AS messages').first()
    expect(counts).toEqual({ guards: 0, messages: 0 })
  })
})

describe('bounded answers', () => {
  it('answers a 684 KiB body of tiny invalid events with a small body', async () => {
    const { post } = setup()
    const body = `[${Array.from({ length: (684 * 1024) / 3 }, () => '{}').join(',')}]`
    expect(body.length).toBeGreaterThan(684 * 1024)
    const response = await post(body)
    expect(response.status).toBe(200)
    const text = await response.text()
    expect(text.length).toBeLessThan(32 * 1024)
    const answer = JSON.parse(text)
    expect(answer.counts).toEqual({ rejected: 233472 })
    expect(answer.results).toHaveLength(MAX_LISTED)
    expect(answer.omitted).toBe(233472 - MAX_LISTED)
  })

  it('keeps long Autopilot messages and messageIds short in the answer', async () => {
    const { post, autopilot } = setup()
    autopilot.inject({ status: 400, match: () => true })
    const response = await post([identify({ email: 'a@example.com' }, { messageId: 'x'.repeat(256) })])
    const { results } = await json(response)
    expect(results[0].messageId.length).toBeLessThanOrEqual(100)
    expect(results[0].message.length).toBeLessThanOrEqual(300)
  })
})
