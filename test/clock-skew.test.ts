import { describe, expect, it } from 'vitest'
import { fakeQueue, TOKEN, type Loose } from './helpers'
import { autopilotWorld, id } from './tracking-helpers'

// Newest wins compares event times: a library's clock is corrected by its sentAt, as Segment's API does.
describe('clock skew', () => {
  const HOUR = 3_600_000
  const at = (ms: number) => new Date(ms).toISOString()
  // Each test its own person: the database is the file's.
  const identify = (who: string, plan: string, timestamp: string, extra: Record<string, unknown> = {}) => ({
    type: 'identify',
    messageId: id(),
    userId: `u-${who}`,
    traits: { email: `${who}@example.com`, plan },
    timestamp,
    ...extra,
  })

  // A person's fields are guarded by the times that set them once one of its deliveries failed:
  // the first attempt fails, the library re-sends (a new sentAt, its clock having moved on).
  it('a library whose clock runs an hour fast does not win against a later event', async () => {
    const { send, post, autopilot } = autopilotWorld()
    const fast = Date.now() + HOUR
    autopilot.inject({ status: 503 })
    expect((await send('/v1/batch', { batch: [identify('fast', 'fast clock', at(fast - 1000))], sentAt: at(fast) })).status).toBe(503)
    expect((await send('/v1/batch', { batch: [identify('fast', 'fast clock', at(fast - 1000))], sentAt: at(fast + 2000) })).status).toBe(200)
    // A minute later, from Segment's Webhooks (whose times are Segment's own).
    expect((await post(identify('fast', 'later', at(Date.now() + 60_000)), { headers: { authorization: `Bearer ${TOKEN}` } })).status).toBe(200)
    expect(autopilot.contacts.get('fast@example.com')?.custom).toEqual({ 'string--plan': 'later' })
  })

  it('nor does one an hour slow lose to an earlier event that arrives after it', async () => {
    const { send, post, autopilot } = autopilotWorld()
    const slow = Date.now() - HOUR
    autopilot.inject({ status: 503 })
    expect((await send('/v1/identify', { ...identify('slow', 'slow clock', at(slow - 1000)), sentAt: at(slow) })).status).toBe(503)
    expect((await send('/v1/identify', { ...identify('slow', 'slow clock', at(slow - 1000)), sentAt: at(slow + 2000) })).status).toBe(200)
    // Happened half a minute ago (before the slow clock's event), delivered after it.
    expect((await post(identify('slow', 'earlier', at(Date.now() - 30_000)), { headers: { authorization: `Bearer ${TOKEN}` } })).status).toBe(200)
    expect(autopilot.contacts.get('slow@example.com')?.custom).toEqual({ 'string--plan': 'slow clock' })
  })

  it('corrects timestamp (Segment’s libraries) or originalTimestamp (RudderStack’s) by receipt − sentAt, keeps the sender’s in originalTimestamp; an event’s own sentAt first', async () => {
    const queue = fakeQueue()
    const { send } = autopilotWorld({ EVENTS: queue.queue })
    const sentAt = Date.parse('2026-01-01T12:00:00Z')
    const before = Date.now()
    await send('/v1/batch', {
      batch: [
        identify('corrected', 'a', at(sentAt - 5000)),
        { ...identify('corrected', 'b', undefined!), originalTimestamp: at(sentAt - 7000) },
        identify('corrected', 'c', at(sentAt - 5000), { sentAt: at(sentAt - 2000) }),
        identify('corrected', 'd', 'not a time'),
      ],
      sentAt: at(sentAt),
    })
    const after = Date.now()
    const events: Loose[] = queue.sent.flatMap((m) => (m.body as Loose).items.map((item: Loose) => item.event))
    const byPlan = Object.fromEntries(events.map((event) => [event.traits.plan, event]))
    const within = (event: Loose, ago: number) => {
      const time = Date.parse(event.timestamp)
      expect(time).toBeGreaterThanOrEqual(before - ago)
      expect(time).toBeLessThanOrEqual(after - ago)
    }
    within(byPlan.a, 5000)
    expect(byPlan.a.originalTimestamp).toBe(at(sentAt - 5000))
    within(byPlan.b, 7000)
    expect(byPlan.b.originalTimestamp).toBe(at(sentAt - 7000))
    within(byPlan.c, 3000)
    expect(byPlan.d.timestamp).toBe('not a time') // left to fall back on the arrival time
  })

  it('without sentAt the stamp stays, but none is newer than its arrival', async () => {
    const queue = fakeQueue()
    const { send } = autopilotWorld({ EVENTS: queue.queue })
    const before = Date.now()
    await send('/v1/batch', { batch: [identify('unsent', 'past', '2026-01-01T12:00:00.000Z'), identify('unsent', 'future', at(Date.now() + HOUR))] })
    const after = Date.now()
    const events: Loose[] = queue.sent.flatMap((m) => (m.body as Loose).items.map((item: Loose) => item.event))
    const byPlan = Object.fromEntries(events.map((event) => [event.traits.plan, event]))
    expect(byPlan.past.timestamp).toBe('2026-01-01T12:00:00.000Z')
    expect(Date.parse(byPlan.future.timestamp)).toBeGreaterThanOrEqual(before)
    expect(Date.parse(byPlan.future.timestamp)).toBeLessThanOrEqual(after)
  })

  it('events from Segment’s Webhooks (POST /) keep their timestamps, sentAt or not', async () => {
    const queue = fakeQueue()
    const { post } = autopilotWorld({ EVENTS: queue.queue })
    const fast = at(Date.now() + HOUR)
    const event = identify('webhook', 'webhook', fast, { sentAt: fast })
    await post([event], { headers: { authorization: `Bearer ${TOKEN}` } })
    const queued: Loose = (queue.sent[0].body as Loose).items[0].event
    expect(queued.timestamp).toBe(fast)
    expect(queued.originalTimestamp).toBeUndefined()
  })
})
