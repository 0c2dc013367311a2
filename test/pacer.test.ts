import { describe, expect, it } from 'vitest'
import { Pacer, UNHINTED_PAUSE_MS } from '../src/pipeline/pacer'

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

describe('the pacer', () => {
  it('starts at most maxPerSecond calls in any second, in the order they asked', async () => {
    const pacer = new Pacer(5)
    const starts: number[] = []
    const order: number[] = []
    await Promise.all(Array.from({ length: 12 }, (_, i) => pacer.wait().then(() => (starts.push(Date.now()), order.push(i)))))
    for (const t of starts) expect(starts.filter((u) => u >= t && u < t + 1000).length).toBeLessThanOrEqual(5)
    expect(order).toEqual([...order].sort((a, b) => a - b))
  })

  it('refuses a slot it could only give after the latest moment asked for', async () => {
    const pacer = new Pacer(1)
    expect(await pacer.wait()).toBe(true)
    expect(await pacer.wait(Date.now() + 100)).toBe(false)
  })

  it('a single 429 without Retry-After pauses one slot and keeps the pace', async () => {
    const pacer = new Pacer(5)
    const before = Date.now()
    pacer.rateLimited()
    expect(pacer.pace).toBe(5)
    await pacer.wait()
    expect(Date.now() - before).toBeGreaterThanOrEqual(UNHINTED_PAUSE_MS - 5)
  })

  it('429s that keep coming (someone else uses the key) take one call/s off each', async () => {
    const pacer = new Pacer(5)
    pacer.rateLimited()
    await sleep(UNHINTED_PAUSE_MS + 20)
    pacer.rateLimited()
    expect(pacer.pace).toBe(4)
    await sleep(UNHINTED_PAUSE_MS + 20)
    pacer.rateLimited()
    expect(pacer.pace).toBe(3)
  })

  it('counts 429s answered together (calls in flight side by side) once', () => {
    const pacer = new Pacer(5)
    pacer.rateLimited(1)
    pacer.rateLimited(1)
    pacer.rateLimited(1)
    expect(pacer.pace).toBe(4)
  })
})
