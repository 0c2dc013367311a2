// Keeps Autopilot call *starts* under AUTOPILOT_MAX_RPS (Autopilot allows 5 requests per
// second per key): a sliding one-second window, so no second ever holds more. Waiters
// are served in order. A 429 pauses for its Retry-After — one call's slot when it gives
// none (Autopilot's do not): the window already spaces the calls. 429s that keep coming
// (someone else using the key) take one call/s off the pace each; every quiet 2 s adds
// one back.

const WINDOW_MS = 1000
/** Timers are coarse: wait a little past the window so the next call is surely outside it. */
const MARGIN_MS = 40
const RECOVER_EVERY_MS = 2000
/** A 429 this soon after another one means contention: slow down. */
const REPEATED_WITHIN_MS = 1500
/** The pause after a 429 without Retry-After: one call's slot at 5 r/s. */
export const UNHINTED_PAUSE_MS = 200

export class Pacer {
  private starts: number[] = []
  private pausedUntil = 0
  private limit: number
  private changedAt = 0
  private lastRateLimited = -Infinity
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

  /** Autopilot said 429: stop for Retry-After (or a moment); when 429s keep coming, go on one call/s slower. */
  rateLimited(retryAfterSeconds?: number): void {
    const now = Date.now()
    const repeated = now - this.lastRateLimited < REPEATED_WITHIN_MS
    this.lastRateLimited = now
    if ((repeated || retryAfterSeconds !== undefined) && now >= this.pausedUntil) {
      this.limit = Math.max(1, this.limit - 1)
      this.changedAt = now
    }
    const pause = retryAfterSeconds === undefined ? UNHINTED_PAUSE_MS : retryAfterSeconds * 1000
    this.pausedUntil = Math.max(this.pausedUntil, now + pause)
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
