import { describe, expect, it } from 'vitest'
import { Pacer, PROBE_EXPIRES_MS, UNHINTED_PAUSE_MS } from '../src/pipeline/pacer'
import { FakeClock } from './fake-clock'

function clocked(maxPerSecond: number) {
  const clock = new FakeClock()
  return { clock, pacer: new Pacer(maxPerSecond, clock) }
}

/** Starts `count` waiters; returns when each started (or false). */
function waiters(pacer: Pacer, clock: FakeClock, count: number, latest = Infinity) {
  const starts: (number | false)[] = Array(count)
  const tickets: (number | false)[] = Array(count)
  const done = Array.from({ length: count }, (_, i) =>
    pacer.wait(latest).then((ticket) => {
      tickets[i] = ticket
      starts[i] = ticket === false ? false : clock.now()
    }),
  )
  return { starts, tickets, done: Promise.all(done) }
}

describe('the pacer', () => {
  it('spaces starts 1/rate apart, in the order they asked, never more than rate in a window', async () => {
    const { pacer, clock } = clocked(5)
    const { starts, done } = waiters(pacer, clock, 12)
    await clock.run()
    await done
    const at = starts as number[]
    for (let i = 1; i < at.length; i++) expect(at[i] - at[i - 1]).toBeGreaterThanOrEqual(200)
    for (let i = 5; i < at.length; i++) expect(at[i] - at[i - 5]).toBeGreaterThanOrEqual(pacer.windowMs)
    expect(pacer.windowMs).toBe(1060) // a margin of 30 % of the 200 ms interval
  })

  it('refuses a slot it could only give after the latest moment asked for', async () => {
    const { pacer, clock } = clocked(1)
    const first = waiters(pacer, clock, 1)
    await clock.run()
    expect(first.starts[0]).toBe(1_000_000)
    const second = waiters(pacer, clock, 1, clock.now() + 100)
    await clock.run()
    expect(second.starts[0]).toBe(false)
  })

  it('a single 429 without Retry-After pauses one slot and keeps the pace', async () => {
    const { pacer, clock } = clocked(5)
    const before = clock.now()
    pacer.rateLimited(0)
    expect(pacer.pace).toBe(5)
    const { starts } = waiters(pacer, clock, 1)
    await clock.run()
    expect(starts[0]).toBe(before + UNHINTED_PAUSE_MS)
  })

  it('429s that keep coming (someone else uses the key) take one call/s off each, and quiet time gives it back', async () => {
    const { pacer, clock } = clocked(5)
    pacer.rateLimited(0)
    clock.at(clock.now() + UNHINTED_PAUSE_MS + 20, () => pacer.rateLimited(0))
    await clock.run()
    expect(pacer.pace).toBe(4)
    clock.at(clock.now() + UNHINTED_PAUSE_MS + 20, () => pacer.rateLimited(0))
    await clock.run()
    expect(pacer.pace).toBe(3)
    clock.at(clock.now() + 10_000, () => undefined)
    await clock.run()
    expect(pacer.nextStart()).toBe(clock.now())
    expect(pacer.pace).toBe(4)
  })

  it('a 429 soon after a long pause ended is contention too: one call/s off', async () => {
    const { pacer, clock } = clocked(5)
    pacer.rateLimited(0, 2) // a 2 s pause
    clock.at(clock.now() + 2100, () => pacer.rateLimited(1, 2)) // the probe, 100 ms after it ended: 429 again
    await clock.run()
    expect(pacer.pace).toBe(4)
  })

  it('counts 429s answered together (calls in flight side by side) as one moment: the pause covers it, the pace stays', () => {
    const pacer = new Pacer(5)
    pacer.rateLimited(1, 1)
    pacer.rateLimited(2, 1)
    pacer.rateLimited(3, 1)
    expect(pacer.pace).toBe(5)
  })

  it('after a requested pause one probe goes alone; only its own answer lets the others go', async () => {
    const { pacer, clock } = clocked(5)
    const t0 = clock.now()
    pacer.rateLimited(0, 1)
    const probe = waiters(pacer, clock, 1)
    const rest = waiters(pacer, clock, 2)
    clock.at(t0 + 1500, () => pacer.answered(999)) // some other call's answer: not the probe's
    clock.at(t0 + 2000, () => pacer.answered(probe.tickets[0] as number))
    await clock.run()
    expect(probe.starts[0]).toBe(t0 + 1000)
    expect(rest.starts).toEqual([t0 + 2000, t0 + 2200])
  })

  it('a probe answered 429 again: the others wait out the new pause, and the next one goes as the probe', async () => {
    const { pacer, clock } = clocked(5)
    const t0 = clock.now()
    pacer.rateLimited(0, 1)
    const probe = waiters(pacer, clock, 1)
    const rest = waiters(pacer, clock, 2)
    clock.at(t0 + 1300, () => pacer.rateLimited(probe.tickets[0] as number, 2))
    clock.at(t0 + 3500, () => pacer.answered(rest.tickets[0] as number))
    await clock.run()
    expect(rest.starts).toEqual([t0 + 3300, t0 + 3500]) // the repeated 429 took one call/s off at 1300; 2 s later it is back
  })

  // The stall of issue 27: a 429 with a wait and one without, answered together, then the probe
  // out; the old pacer left the next waiter on a promise already resolved, spinning forever.
  it('a hinted and an unhinted 429 answered together, then the probe: the next waiter sleeps, then goes after the probe', async () => {
    const { pacer, clock } = clocked(5)
    const t0 = clock.now()
    pacer.rateLimited(1, 1)
    pacer.rateLimited(2)
    const probe = waiters(pacer, clock, 1)
    const next = waiters(pacer, clock, 1)
    clock.at(t0 + 1250, () => pacer.rateLimited(probe.tickets[0] as number))
    await clock.run(1000)
    await next.done
    expect(probe.starts[0]).toBe(t0 + 1000)
    expect(next.starts[0]).toBe(t0 + 1250 + UNHINTED_PAUSE_MS)
  })

  it('a probe that never went out, or never reports back, does not hold the others', async () => {
    const { pacer, clock } = clocked(5)
    const t0 = clock.now()
    pacer.rateLimited(0, 1)
    const abandoned = waiters(pacer, clock, 1)
    const second = waiters(pacer, clock, 1)
    const third = waiters(pacer, clock, 1)
    clock.at(t0 + 1100, () => pacer.abandoned(abandoned.tickets[0] as number))
    await clock.run()
    expect(second.starts[0]).toBe(t0 + 1200) // the next probe, one slot on
    expect(third.starts[0]).toBe(t0 + 1200 + PROBE_EXPIRES_MS) // the second never reported: it expired
  })
})
