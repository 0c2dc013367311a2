// Keeps Autopilot call *starts* under AUTOPILOT_MAX_RPS (Autopilot allows 5 requests per
// second per key): a sliding one-second window, so no second ever holds more. Waiters
// are served in order. A 429 (someone else using the key, or Autopilot counting
// differently) pauses for its Retry-After and takes one call/s off the pace, once per
// pause; each quiet 2 s adds one back.

const WINDOW_MS = 1000
/** Timers are coarse: wait a little past the window so the next call is surely outside it. */
const MARGIN_MS = 15
const RECOVER_EVERY_MS = 2000

export class Pacer {
  private starts: number[] = []
  private pausedUntil = 0
  private limit: number
  private changedAt = 0
  private line: Promise<unknown> = Promise.resolve()

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

  /** Resolves true when one more call may start now; false if that would be after `latest` (ms). */
  wait(latest = Infinity): Promise<boolean> {
    const turn = this.line.then(() => this.acquire(latest))
    this.line = turn.catch(() => undefined)
    return turn
  }

  private async acquire(latest: number): Promise<boolean> {
    for (;;) {
      const now = Date.now()
      if (now < this.pausedUntil) {
        if (this.pausedUntil > latest) return false
        await this.sleep(this.pausedUntil - now)
        continue
      }
      if (this.limit < this.maxPerSecond && now - this.changedAt >= RECOVER_EVERY_MS) {
        this.limit++
        this.changedAt = now
      }
      this.starts = this.starts.filter((at) => now - at < WINDOW_MS + MARGIN_MS)
      if (this.starts.length < this.limit) {
        if (now > latest) return false
        this.starts.push(now)
        return true
      }
      const next = this.starts[this.starts.length - this.limit] + WINDOW_MS + MARGIN_MS
      if (next > latest) return false
      await this.sleep(next - now)
    }
  }

  /** Autopilot said 429: stop for Retry-After, then go on one call/s slower (once per pause). */
  rateLimited(retryAfterSeconds: number): void {
    const now = Date.now()
    if (now >= this.pausedUntil) {
      this.limit = Math.max(1, this.limit - 1)
      this.changedAt = now
    }
    this.pausedUntil = Math.max(this.pausedUntil, now + retryAfterSeconds * 1000)
  }
}

const pacers = new Map<number, Pacer>()
/** One pacer per isolate and rate: every call this isolate makes to the account shares it. */
export function pacerFor(maxPerSecond: number): Pacer {
  let pacer = pacers.get(maxPerSecond)
  if (!pacer) pacers.set(maxPerSecond, (pacer = new Pacer(maxPerSecond)))
  return pacer
}

/** Forgets every pacer (tests start each case with a fresh account pace). */
export function resetPacers(): void {
  pacers.clear()
}
