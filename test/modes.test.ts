import { describe, expect, it } from 'vitest'
import { fakeQueue, freshDb, setup, setupOrtto, testDb } from './helpers'

// The shared cases, for every destination and both modes, from one table.
const id = () => `m-${crypto.randomUUID()}`

function world(destination: 'autopilot' | 'ortto', mode: 'direct' | 'queued', settings: Record<string, string> = {}) {
  const queue = fakeQueue()
  const env = { ...settings, ...(mode === 'queued' && { EVENTS: queue.queue }) }
  const ortto = destination === 'ortto' ? setupOrtto(env) : undefined
  const base = ortto ?? setup(env)
  const standIn = ortto ? { ortto: ortto.ortto } : { autopilot: base.autopilot }
  /** Posts as Segment does (again while the answer says retry), then lets the queue run dry. */
  async function deliver(events: unknown[]) {
    for (let attempt = 0; attempt < 5 && (await base.post(events)).status >= 429; attempt++);
    for (let round = 0; round < 20 && queue.sent.length; round++) {
      const messages = queue.sent.splice(0).map((m, i) => ({ body: m.body, id: `r${round}-${i}` }))
      const result = await base.consume(messages)
      for (const { msgId } of result.retryMessages) queue.sent.push({ body: messages.find((m) => m.id === msgId)!.body })
    }
  }
  const byUserId = (userId: string) => [...(ortto?.ortto.people.values() ?? [])].filter((p) => p.fields['str::ei'] === userId)
  const person = (email: string) => (standIn.ortto ? [...standIn.ortto.people.values()].some((p) => p.fields['str::email'] === email) : standIn.autopilot!.contacts.has(email))
  const entries = (email: string) => (standIn.ortto ? standIn.ortto.activities.filter((a) => a.email === email).length : standIn.autopilot!.enrolments.filter((e) => e.email === email).length)
  return { deliver, person, entries, byUserId, ortto: ortto?.ortto }
}

const track = (userId: string, email?: string) => ({ type: 'track', messageId: id(), userId, event: 'Order Completed', properties: email ? { email } : {} })

describe.each([
  ['autopilot', 'direct'],
  ['autopilot', 'queued'],
  ['ortto', 'direct'],
  ['ortto', 'queued'],
] as const)('%s, %s mode', (destination, mode) => {
  it('delivers an identify and enters a journey once, across a re-send of the same batch', async () => {
    await freshDb()
    const { deliver, person, entries } = world(destination, mode)
    const batch = [{ type: 'identify', messageId: id(), userId: 'u-a', traits: { email: 'a@example.com' } }, track('u-a', 'a@example.com')]
    await deliver(batch)
    await deliver(batch)
    expect(person('a@example.com')).toBe(true)
    expect(entries('a@example.com')).toBe(1)
  })

  it('parks a userId-only track, sends nothing for it, and replays it once its email is known (Ortto: people found by email)', async () => {
    await freshDb()
    const { deliver, person, entries } = world(destination, mode, { ORTTO_MERGE_BY: 'str::email' })
    const parked = track('u-p')
    await deliver([parked])
    expect(person('p@example.com')).toBe(false)
    await deliver([{ type: 'identify', messageId: id(), userId: 'u-p', traits: { email: 'p@example.com' } }])
    await deliver([parked]) // Segment re-sends it too
    expect(entries('p@example.com')).toBe(1)
  })

  it('keeps a deleted person deleted: an older event re-sent later does not bring them back', async () => {
    await freshDb()
    const { deliver, person } = world(destination, mode)
    const identify = { type: 'identify', messageId: id(), userId: 'u-d', traits: { email: 'd@example.com' }, timestamp: '2026-01-01T00:00:00Z' }
    await deliver([identify])
    await deliver([{ type: 'delete', messageId: id(), userId: 'u-d', timestamp: '2026-01-02T00:00:00Z' }])
    expect(person('d@example.com')).toBe(false)
    await deliver([{ ...identify, messageId: id() }])
    expect(person('d@example.com')).toBe(false)
  })
})

// Ortto finds a person by Segment's userId first (ORTTO_MERGE_BY's default): nothing waits for an email.
describe.each(['direct', 'queued'] as const)('ortto, %s mode, people found by userId', (mode) => {
  it('sends a userId-only track at once, on the person of that external id; a later email joins the same person', async () => {
    await freshDb()
    const { deliver, byUserId, ortto } = world('ortto', mode)
    const first = track('u-now')
    await deliver([first])
    expect(byUserId('u-now')).toHaveLength(1)
    expect(ortto!.activities.filter((a) => a.ei === 'u-now')).toHaveLength(1)
    await deliver([{ type: 'identify', messageId: id(), userId: 'u-now', traits: { email: 'now@example.com' } }])
    await deliver([first]) // Segment re-sends it: not entered twice
    expect(byUserId('u-now').map((p) => p.fields['str::email'])).toEqual(['now@example.com'])
    expect(ortto!.activities.filter((a) => a.ei === 'u-now')).toHaveLength(1)
  })

  it('deletes a person known only by userId, and keeps them deleted', async () => {
    await freshDb()
    const { deliver, byUserId } = world('ortto', mode)
    const identify = { type: 'identify', messageId: id(), userId: 'u-gone', traits: { plan: 'pro' }, timestamp: '2026-01-01T00:00:00Z' }
    await deliver([identify])
    expect(byUserId('u-gone')).toHaveLength(1)
    await deliver([{ type: 'delete', messageId: id(), userId: 'u-gone', timestamp: '2026-01-02T00:00:00Z' }])
    expect(byUserId('u-gone')).toHaveLength(0)
    await deliver([{ ...identify, messageId: id() }])
    expect(byUserId('u-gone')).toHaveLength(0)
  })
})

// One 4,000-event Actions batch in direct mode, per destination: every request inside the Free plan's caps.
describe.each([
  ['autopilot', 'Step Activated', 10],
  ['ortto', 'Order Completed', 5],
] as const)('%s: a 4,000-event batch', (destination, mapped, maxRequests) => {
  it('keeps every request within the Free plan: ≤ 50 D1 queries and ≤ 50 calls, finished in a bounded number of re-sends', async () => {
    await freshDb()
    // messageIds of its own: an isolate remembers the journeys it entered by messageId.
    const store = testDb()
    const ortto = destination === 'ortto' ? setupOrtto({ DB: store.db }) : undefined
    const { post, fetchSpy, autopilot } = ortto ?? setup({ DB: store.db })
    const batch = [
      ...Array.from({ length: 2500 }, (_, i) => ({ type: 'identify', messageId: `${destination}-big-i${i}`, userId: `big-${i}`, traits: { email: `big${i}@example.com`, plan: 'pro' } })),
      ...Array.from({ length: 1000 }, (_, i) => ({ type: 'track', messageId: `${destination}-big-t${i}`, userId: `big-${i}`, event: i % 10 ? 'Unmapped Event' : mapped })),
      ...Array.from({ length: 500 }, (_, i) => ({ type: 'page', messageId: `${destination}-big-p${i}`, userId: `big-${i}` })),
    ]
    let requests = 0
    for (;;) {
      store.statements.length = 0
      fetchSpy.mockClear()
      const response = await post(batch)
      requests++
      expect(store.statements.length).toBeLessThanOrEqual(50)
      expect(fetchSpy.mock.calls.length).toBeLessThanOrEqual(50)
      if (response.status === 200) break
      expect(response.status).toBe(503)
      expect(requests).toBeLessThan(maxRequests)
    }
    if (ortto) {
      expect(ortto.ortto.people.size).toBe(2500)
      expect(ortto.ortto.activities).toHaveLength(100)
    } else {
      expect(autopilot.contacts.size).toBe(2500)
      expect(autopilot.enrolments).toHaveLength(100)
      expect(new Set(autopilot.enrolments.map((e) => e.email)).size).toBe(100)
    }
  })
})
