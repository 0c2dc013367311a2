import type { Clock } from '../src/pipeline/pacer'

/**
 * A clock that moves only when told: timers fire in order of their time, and between two
 * moments every promise that can settle has settled. Scheduler tests run on it, so what they
 * assert is exact and takes no real time.
 */
export class FakeClock implements Clock {
  private t = 1_000_000
  private timers: { at: number; seq: number; fire: () => void }[] = []
  private seq = 0

  now(): number {
    return this.t
  }

  sleep(ms: number): Promise<void> {
    if (!Number.isFinite(ms) || ms < 0) throw new Error(`a wait of ${ms} ms: stuck`)
    return new Promise((resolve) => this.timers.push({ at: this.t + ms, seq: ++this.seq, fire: resolve }))
  }

  /** Runs `fn` at `at` (epoch ms on this clock). */
  at(at: number, fn: () => void): void {
    this.timers.push({ at: Math.max(at, this.t), seq: ++this.seq, fire: fn })
  }

  get pending(): number {
    return this.timers.length
  }

  /** Lets every promise that can settle now settle (a real macrotask turn). */
  async settle(): Promise<void> {
    await new Promise((resolve) => setTimeout(resolve, 0))
  }

  /** Moves to the next timer's moment and fires every timer due then; false when none is left. */
  async step(): Promise<boolean> {
    await this.settle()
    if (!this.timers.length) return false
    this.sort()
    this.t = this.timers[0].at
    // Timers set for this very moment (a sleep of 0 ms) fire in it too; endlessly many is a livelock.
    let fired = 0
    while (this.timers.length && this.timers[0].at <= this.t) {
      if (++fired > 10_000) throw new Error(`livelock: over 10,000 timers at one moment (${this.t})`)
      this.timers.shift()!.fire()
      await this.settle()
      this.sort()
    }
    return true
  }

  private sort() {
    this.timers.sort((a, b) => a.at - b.at || a.seq - b.seq)
  }

  /** Steps until no timer is left (or `limit` steps, a stuck scheduler). */
  async run(limit = 20_000, afterStep?: () => void): Promise<void> {
    for (let i = 0; i < limit; i++) {
      if (!(await this.step())) return
      afterStep?.()
    }
    throw new Error(`still running after ${limit} steps`)
  }
}
