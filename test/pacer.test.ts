import { describe, expect, it, vi } from 'vitest'
import { Pacer, UNHINTED_PAUSE_MS } from '../src/pipeline/pacer'

/** A clock the pacer sleeps on: time passes only when it waits, so every assertion is exact. */
function clocked(maxPerSecond: number) {
  let now = 1_000_000
  vi.spyOn(Date, 'now').mockImplementation(() => now)
  const pacer = new Pacer(maxPerSecond, async (ms) => {
    if (!Number.isFinite(ms) || ms > 60_000) throw new Error(`a wait of ${ms} ms: stuck`)
    now += ms
    await new Promise((resolve) => setTimeout(resolve, 0)) // let the test's own steps run in between
  })
  return { pacer, now: () => now, advance: (ms: number) => void (now += ms) }
}

describe('the pacer', () => {
  it('starts at most maxPerSecond calls in any second, in the order they asked', async () => {
    const { pacer, now } = clocked(5)
    const starts: number[] = []
    const order: number[] = []
    await Promise.all(Array.from({ length: 12 }, (_, i) => pacer.wait().then(() => (starts.push(now()), order.push(i)))))
    for (const t of starts) expect(starts.filter((u) => u >= t && u < t + 1000).length).toBeLessThanOrEqual(5)
    expect(starts.filter((u) => u === starts[0])).toHaveLength(5) // the first five at once
    expect(order).toEqual([...order].sort((a, b) => a - b))
  })

  it('refuses a slot it could only give after the latest moment asked for', async () => {
    const { pacer, now } = clocked(1)
    expect(await pacer.wait()).toBe(true)
    expect(await pacer.wait(now() + 100)).toBe(false)
  })

  it('a single 429 without Retry-After pauses one slot and keeps the pace', async () => {
    const { pacer, now } = clocked(5)
    const before = now()
    pacer.rateLimited()
    expect(pacer.pace).toBe(5)
    await pacer.wait()
    expect(now() - before).toBe(UNHINTED_PAUSE_MS)
  })

  it('429s that keep coming (someone else uses the key) take one call/s off each', async () => {
    const { pacer, advance } = clocked(5)
    pacer.rateLimited()
    advance(UNHINTED_PAUSE_MS + 20)
    pacer.rateLimited()
    expect(pacer.pace).toBe(4)
    advance(UNHINTED_PAUSE_MS + 20)
    pacer.rateLimited()
    expect(pacer.pace).toBe(3)
  })

  it('a probe answered 429 again: the one waiting wakes, waits out the new pause and goes as the next probe', async () => {
    const { pacer, now } = clocked(5)
    pacer.rateLimited(1)
    expect(await pacer.wait()).toBe(true) // the probe goes out after the pause
    const second = pacer.wait()
    await new Promise((resolve) => setTimeout(resolve, 0)) // it now waits for the probe's answer
    const probeAt = now()
    pacer.rateLimited(2) // the probe's answer: 429 again
    expect(await second).toBe(true)
    expect(now() - probeAt).toBeGreaterThanOrEqual(2000)
    const third = pacer.wait()
    pacer.answered() // the second probe's answer: not a 429
    expect(await third).toBe(true)
  })

  it('counts 429s answered together (calls in flight side by side) once', () => {
    const pacer = new Pacer(5)
    pacer.rateLimited(1)
    pacer.rateLimited(1)
    pacer.rateLimited(1)
    expect(pacer.pace).toBe(4)
  })
})
