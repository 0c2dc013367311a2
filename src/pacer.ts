// Keeps Autopilot calls under AUTOPILOT_MAX_RPS (Autopilot allows 5 requests per
// second per key): a sliding one-second window, so no second ever holds more.
// A 429 (someone else using the key, or Autopilot counting differently) pauses
// for its Retry-After and takes one call/s off the pace; each quiet 2 s adds one back.

const WINDOW_MS = 1000
/** Timers are coarse: wait a little past the window so the next call is surely outside it. */
const MARGIN_MS = 15
const RECOVER_EVERY_MS = 2000

export class Pacer {
  private starts: number[] = []
  private pausedUntil = 0
  private limit: number
  private changedAt = 0

  constructor(
    readonly maxPerSecond: number,
    private readonly sleep: (ms: number) => Promise<unknown> = (ms) => new Promise((resolve) => setTimeout(resolve, ms)),
  ) {
    this.limit = maxPerSecond
  }

  /** Calls per second allowed right now. */
  get pace(): number {
    return this.limit
  }

  /** Resolves when one more call may start now. */
  async wait(): Promise<void> {
    for (;;) {
      const now = Date.now()
      if (now < this.pausedUntil) {
        await this.sleep(this.pausedUntil - now)
        continue
      }
      if (this.limit < this.maxPerSecond && now - this.changedAt >= RECOVER_EVERY_MS) {
        this.limit++
        this.changedAt = now
      }
      this.starts = this.starts.filter((at) => now - at < WINDOW_MS + MARGIN_MS)
      if (this.starts.length < this.limit) {
        this.starts.push(now)
        return
      }
      await this.sleep(this.starts[this.starts.length - this.limit] + WINDOW_MS + MARGIN_MS - now)
    }
  }

  /** Autopilot said 429: stop for Retry-After, then go on one call/s slower. */
  rateLimited(retryAfterSeconds: number): void {
    const now = Date.now()
    this.pausedUntil = Math.max(this.pausedUntil, now + retryAfterSeconds * 1000)
    this.limit = Math.max(1, this.limit - 1)
    this.changedAt = now
  }
}

const pacers = new Map<number, Pacer>()
/** One pacer per isolate: the consumer runs with max_concurrency = 1, so that is one per key. */
export function pacerFor(maxPerSecond: number): Pacer {
  let pacer = pacers.get(maxPerSecond)
  if (!pacer) pacers.set(maxPerSecond, (pacer = new Pacer(maxPerSecond)))
  return pacer
}
