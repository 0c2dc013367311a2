import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'
import { mulberry32 } from '../sandbox/network.js'
import { fakeQueue, freshDb, rows, setup, setupOrtto } from './helpers'

// Queued mode end to end, for each destination at its own rate, with a quarter of all calls
// failing in every way a destination fails: 500, 503, 429 with a wait and without, and calls
// that hang until the timeout cuts them. Messages go round as Cloudflare Queues moves them
// (a message retried whole comes back; events put back come as new messages). What must hold
// is the end state: every contact there, every journey entered once, the poison event dead-
// lettered with its reason, and nothing stalled (a stalled pacer never lets the run finish).
// This is the case of issue 27, which the suite did not see: every queued test before it had
// at most one 429, never a 429 with a wait beside one without, and never one during a probe.

const PEOPLE = 100
const TRACKED = 12
const PARKED = 3
const TIMEOUT_MS = '400'

type Fault = Record<string, unknown>
const destinations = {
  autopilot: {
    start: (events: ReturnType<typeof fakeQueue>) =>
      setup({ EVENTS: events.queue, AUTOPILOT_MAX_RPS: '5', AUTOPILOT_TIMEOUT_MS: TIMEOUT_MS, AUTOPILOT_TRIGGERS: JSON.stringify({ 'Step Activated': '0001' }) }, { rateLimit: 5, latencyMs: 150 }),
    faults: [{ status: 500 }, { status: 503 }, { status: 429, retryAfter: '1' }, { status: 429 }, { hang: true }] as Fault[],
    /** Issue 27's stall: two calls in flight answered 429, one with a wait and one without. */
    first: [{ status: 429, retryAfter: '1' }, { status: 429 }] as Fault[],
  },
  ortto: {
    start: (events: ReturnType<typeof fakeQueue>) =>
      setupOrtto(
        { EVENTS: events.queue, ORTTO_MAX_RPS: '10', ORTTO_TIMEOUT_MS: TIMEOUT_MS, ORTTO_ACTIVITIES: JSON.stringify({ 'Step Activated': 'act:cm:step-activated' }) },
        { rateLimit: 10, latencyMs: 150 },
      ),
    faults: [{ status: 500 }, { status: 503 }, { status: 429, tryInSeconds: 1 }, { status: 429, tryInSeconds: 0 }, { hang: true }] as Fault[],
    first: [
      { status: 429, tryInSeconds: 1 },
      { status: 429, tryInSeconds: 0 },
    ] as Fault[],
  },
}

beforeEach(freshDb)
afterEach(() => void vi.useRealTimers())

describe.each(Object.keys(destinations) as (keyof typeof destinations)[])('queued mode with 25 %% of %s calls failing', (name) => {
  it('delivers everything, enters each journey once, dead-letters the poison event, and never stalls', { timeout: 120_000 }, async () => {
    const events = fakeQueue()
    const worker = destinations[name].start(events)
    const standIn = 'ortto' in worker ? (worker as unknown as ReturnType<typeof setupOrtto>).ortto : worker.autopilot
    const random = mulberry32(27)
    const faults = destinations[name].faults
    standIn.inject(...(destinations[name].first as never[]))
    const forward = worker.fetchSpy.getMockImplementation()!
    worker.fetchSpy.mockImplementation(async (input: RequestInfo | URL, init?: RequestInit) => {
      if (random() < 0.25) standIn.inject(faults[Math.floor(random() * faults.length)] as never)
      return forward(input, init)
    })

    // Ids of their own: an isolate remembers the journeys it entered by messageId.
    const email = (i: number) => `soak${i}@example.com`
    const people = Array.from({ length: PEOPLE }, (_, i) => ({ type: 'identify', messageId: `${name}-i${i}`, userId: `soak-u${i}`, traits: { email: email(i), n: i } }))
    const tracks = Array.from({ length: TRACKED }, (_, i) => ({ type: 'track', messageId: `${name}-t${i}`, userId: `soak-u${i}`, event: 'Step Activated', context: { traits: { email: email(i) } } }))
    // userId only, sent before the identify that says who they are: parked, then replayed.
    const parked = Array.from({ length: PARKED }, (_, i) => ({ type: 'track', messageId: `${name}-p${i}`, userId: `soak-late${i}`, event: 'Step Activated' }))
    const late = parked.map((_, i) => ({ type: 'identify', messageId: `${name}-li${i}`, userId: `soak-late${i}`, traits: { email: `late${i}@example.com` } }))
    const poison = { type: 'identify', messageId: `${name}-poison`, traits: { email: 'poison@localhost' } }

    for (const batch of [parked, people.slice(0, 50), [...people.slice(50), poison], tracks, late]) {
      expect((await worker.post(batch)).status).toBe(202)
    }

    // Cloudflare Queues, by hand: batches of up to 100 due messages; a retried message comes back
    // with one more attempt, events put back arrive as new messages, each after its delay. When
    // nothing is due the clock jumps to the next message's time (a journey claim's lease, a failed
    // account read's minute pass as they would).
    vi.useFakeTimers({ toFake: ['Date'], shouldAdvanceTime: true })
    type Message = { id: string; body: unknown; attempts: number; due: number }
    let ids = 0
    const arrivals = () => events.sent.splice(0).map((m) => ({ id: `m${ids++}`, body: m.body, attempts: 1, due: Date.now() + (m.delaySeconds ?? 0) * 1000 }))
    const waiting: Message[] = arrivals()
    let batches = 0
    while (waiting.length && batches++ < 200) {
      waiting.sort((a, b) => a.due - b.due)
      if (waiting[0].due > Date.now()) vi.setSystemTime(waiting[0].due)
      const due = waiting.filter((m) => m.due <= Date.now()).slice(0, 100)
      waiting.splice(0, due.length)
      const result = await worker.consume(due.map(({ id, body, attempts }) => ({ id, body, attempts })))
      for (const { msgId, delaySeconds } of result.retryMessages as { msgId: string; delaySeconds?: number }[]) {
        const message = due.find((m) => m.id === msgId)!
        waiting.push({ ...message, attempts: message.attempts + 1, due: Date.now() + (delaySeconds ?? 0) * 1000 })
      }
      waiting.push(...arrivals())
    }
    expect(waiting).toEqual([])

    // Every contact there, with its traits.
    const everyone = [...people.map((_, i) => email(i)), ...late.map((e) => e.traits.email)]
    if (name === 'autopilot') {
      for (const address of everyone) expect(worker.autopilot.contacts.has(address), address).toBe(true)
    } else {
      const orttoWorker = worker as unknown as ReturnType<typeof setupOrtto>
      const known = new Set([...orttoWorker.ortto.people.values()].map((p: { fields: Record<string, unknown> }) => p.fields['str::email']))
      for (const address of everyone) expect(known.has(address), address).toBe(true)
    }

    // Each journey entered once (a hung call's claim held it until its lease ended: the stand-in's hung calls never enter).
    const entered =
      name === 'autopilot' ? worker.autopilot.enrolments.map((e) => e.email) : (worker as unknown as ReturnType<typeof setupOrtto>).ortto.activities.map((a: { email?: string }) => a.email ?? '')
    const expected = [...tracks.map((t) => t.context.traits.email), ...late.map((e) => e.traits.email)]
    for (const address of expected) expect(entered.filter((e) => e === address).length, address).toBe(1)
    expect(entered).toHaveLength(expected.length)

    // The poison event: dead-lettered with the destination's reason; nothing else is.
    const letters = await rows<{ message_id: string; reason: string }>('SELECT message_id, reason FROM dead_letters')
    expect(letters.map((l) => l.message_id)).toEqual([`${name}-poison`])
    expect(letters[0].reason).toMatch(/email/i)
    // The faults did happen, 429s among them.
    expect(standIn.calls.filter((c: { status: number }) => c.status === 429).length).toBeGreaterThan(0)
  })
})
