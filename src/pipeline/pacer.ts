// Keeps a destination's call *starts* under its rate (AUTOPILOT_MAX_RPS, ORTTO_MAX_RPS): a
// sliding one-second window, so no second ever holds more. Waiters are served in order.
// A 429 pauses for the wait it gave (already capped by RATE_LIMIT_MAX_PAUSE_SECONDS) —
// one call's slot when it gives none (Autopilot's do not): the window already spaces the
// calls. After a pause the destination asked for, one call goes first, alone (a probe):
// the others follow once it has an answer that is not another 429. 429s that keep coming
// (someone else using the key) take one call/s off the pace each; every quiet 2 s adds one back.

const WINDOW_MS = 1000
/** Timers are coarse: wait a little past the window so the next call is surely outside it. */
const MARGIN_MS = 40
const RECOVER_EVERY_MS = 2000
/** While a probe is out, waiters look again at least this often (its answer wakes them sooner). */
const PROBE_CHECK_MS = 1000
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
  /** After a pause: 'open' the next call is the probe; 'out' it is in flight, the others wait for its answer. */
  private probe: 'none' | 'open' | 'out' = 'none'
  private probeAnswered?: () => void
  private probeDone: Promise<void> = Promise.resolve()

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
    // A Worker's clock stands still while it computes and moves on at I/O: a start recorded after
    // mapping a big batch would be dated too early, and the next call let out too soon. A timer
    // of 0 ms is I/O: the clock is current when the start is recorded.
    await this.sleep(0)
    for (;;) {
      const now = Date.now()
      if (now < this.pausedUntil) {
        if (this.pausedUntil > latest) return false
        await this.sleep(this.pausedUntil - now)
        continue
      }
      if (this.probe === 'out') {
        if (now > latest) return false
        await Promise.race([this.probeDone, this.sleep(Math.min(PROBE_CHECK_MS, Math.max(1, latest - now)))])
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
        if (this.probe === 'open') this.probe = 'out'
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
    // Whoever waits on an earlier probe wakes up and waits for this pause instead.
    this.probeAnswered?.()
    // A pause the destination asked for ends with a probe; a 429 that named none only takes its slot.
    if (retryAfterSeconds === undefined) {
      if (this.probe === 'out') this.probe = 'none'
      return
    }
    this.probeDone = new Promise((resolve) => (this.probeAnswered = resolve))
    this.probe = 'open'
  }

  /** A call was answered with anything but a 429: if it was the probe, the others may go. */
  answered(): void {
    if (this.probe !== 'out') return
    this.probe = 'none'
    this.probeAnswered?.()
  }

  /** Milliseconds left of a pause a 429 imposed (0: none). */
  pauseLeft(now = Date.now()): number {
    return Math.max(0, this.pausedUntil - now)
  }
}

const pacers = new Map<string, Pacer>()
/** One pacer per isolate, destination and rate: every call this isolate makes to the account shares it. */
export function pacerFor(maxPerSecond: number, destination = 'autopilot'): Pacer {
  const key = `${destination}:${maxPerSecond}`
  let pacer = pacers.get(key)
  if (!pacer) pacers.set(key, (pacer = new Pacer(maxPerSecond)))
  return pacer
}

/** Forgets every pacer (tests start each case with a fresh account pace). */
export function resetPacers(): void {
  pacers.clear()
}
