// Keeps a destination's call *starts* under its rate (AUTOPILOT_MAX_RPS, ORTTO_MAX_RPS):
// - spaced, not in bursts: one start per 1/rate s (up to 1,000/s: below 1 ms the clock cannot
//   time it), and never more than `rate` in any window of a second plus a margin that absorbs
//   the jitter between a start here and its arrival there. The margin is learned: it starts at
//   10 % of the interval (the pace within 2 % of the rate), widens when a call this
//   pacer started (so it kept its own count) is answered 429 anyway — arrivals bunched on the
//   way — and narrows again after quiet; such 429s slow the pace (below) only once the margin
//   is at its widest (half the interval), when jitter no longer explains them;
// - a 429 pauses every start for the wait it gave (capped by RATE_LIMIT_MAX_PAUSE_SECONDS), or
//   for one call's slot when it gave none; after a pause the destination asked for, one call
//   (the probe) goes alone, and the others follow once *that* call has ended in anything but a
//   429 — only its owner's ticket clears it;
// - 429s that keep coming (someone else uses the key) take one call/s off the pace each; every
//   quiet 2 s adds one back.
// Every waiter sleeps on its own timer to its next possible start (a wake-up from another call's
// answer only comes sooner), so no wait hangs on a promise nothing resolves; the deadline ends
// only waits that could not start in time. A waiter whose isolate stopped running it (a request
// cancelled mid-wait) is passed over, and a probe that never reports back expires.

export interface Clock {
  now(): number
  sleep(ms: number): Promise<unknown>
}

const realClock: Clock = { now: () => Date.now(), sleep: (ms) => new Promise((resolve) => setTimeout(resolve, ms)) }

const WINDOW_MS = 1000
const RECOVER_EVERY_MS = 2000
/** The window's margin, as shares of the interval between starts: where it starts, and its bounds. */
const MARGIN_START = 0.1
const MARGIN_MAX = 0.5
/** A 429 on a call within the pacer's own count widens the margin at least this much (shares of the interval), or doubles it. */
const MARGIN_STEP = 0.1
/** Quiet this long (no such 429) narrows the margin by a quarter. */
export const MARGIN_QUIET_MS = 30_000
/** A 429 this soon after another one means contention: slow down. */
const REPEATED_WITHIN_MS = 1500
/** The pause after a 429 without Retry-After: one call's slot at 5 r/s. */
export const UNHINTED_PAUSE_MS = 200
/** While a probe is out, waiters look again at least this often (its answer wakes them sooner). */
const PROBE_CHECK_MS = 1000
/** A probe that has not reported back in this long (its isolate stopped) no longer holds the others. */
export const PROBE_EXPIRES_MS = 30_000
/** A waiter this late for its own wake-up is no longer running (its request was cancelled). */
const STALE_WAITER_MS = 2000

/** A granted start; hand it back with how the call ended. */
export type Ticket = number

interface Waiter {
  ticket: Ticket
  /** When it will look again (its own timer). */
  wakeAt: number
  wake?: () => void
}

export class Pacer {
  private starts: number[] = []
  private pausedUntil = 0
  private limit: number
  private changedAt = 0
  private lastRateLimited = -Infinity
  private readonly waiters: Waiter[] = []
  private tickets = 0
  /** A requested pause ends with a probe: the next start is it. */
  private probeNeeded = false
  private probe?: { ticket: Ticket; since: number }
  /** The learned margin, in ms, and when it last changed. */
  private margin: number
  private marginChangedAt: number
  private widenedAt = -Infinity
  /** When each call still out started: a 429 on one of them is one on a start within the count. */
  private readonly startedAt = new Map<Ticket, number>()
  /** Told of each start and the window in force at that instant (the fake-clock test checks the rate against it). */
  onGrant?: (at: number, windowMs: number) => void

  constructor(
    readonly maxPerSecond: number,
    private readonly clock: Clock = realClock,
  ) {
    this.limit = maxPerSecond
    this.margin = this.minMargin
    this.marginChangedAt = clock.now()
  }

  private get minMargin(): number {
    return (MARGIN_START * WINDOW_MS) / this.maxPerSecond
  }

  /** Calls per second allowed right now. */
  get pace(): number {
    return this.limit
  }

  /** The least time between two starts at the current pace. */
  get spacingMs(): number {
    return WINDOW_MS / this.limit
  }

  /**
   * A window of a second plus the learned margin: jitter on the way there stays inside the rate.
   * (A fixed 30 % of the interval cost 6–8 % of the rate where no jitter needed it; a fixed 10 %
   * let 13 of 1,015 Ortto calls arrive an 11th in a second at 100,000 events, `npm run bench:sync`.)
   */
  get windowMs(): number {
    return WINDOW_MS + this.margin
  }

  /** Resolves with a ticket when one more call may start now; false if that would be after `latest` (epoch ms). */
  async wait(latest = Infinity): Promise<Ticket | false> {
    const me: Waiter = { ticket: ++this.tickets, wakeAt: this.clock.now() }
    this.waiters.push(me)
    let granted = false
    try {
      for (;;) {
        // A Worker's clock stands still while it computes and moves on at I/O: a timer (even of
        // 0 ms) makes it current before a start is recorded, or the next call would go too soon.
        await this.clock.sleep(0)
        const now = this.clock.now()
        const at = this.startFor(me, now)
        if (at <= now) {
          if (now > latest) return false
          granted = true
          return this.grant(me.ticket, now)
        }
        // Given up only when not even the first in line could start in time.
        // (While a probe is out nobody knows when: wait for its answer, up to the deadline.)
        const first = this.nextStart(now)
        if (now > latest || (first !== Infinity && first > latest)) return false
        // Its own timer to the next possible start; while a probe is out that is its answer, so look again now and then.
        const until = Math.min(
          at === Infinity ? Math.min(now + PROBE_CHECK_MS, (this.probe?.since ?? now) + PROBE_EXPIRES_MS) : at,
          latest + 1,
          // The pace recovers, or the margin narrows, then: the slot may come sooner.
          this.limit < this.maxPerSecond ? this.changedAt + RECOVER_EVERY_MS : Infinity,
          this.margin > this.minMargin ? this.marginChangedAt + MARGIN_QUIET_MS : Infinity,
        )
        me.wakeAt = until
        await Promise.race([this.clock.sleep(until - now), new Promise<void>((resolve) => (me.wake = resolve))])
        me.wake = undefined
      }
    } finally {
      const index = this.waiters.indexOf(me)
      if (index >= 0) this.waiters.splice(index, 1)
      // One that gave up leaves its turn to those behind it.
      if (!granted) this.wakeAll()
    }
  }

  /** The call ended in anything but a 429 (done, refused, 5xx, timed out): if it was the probe, the others may go. */
  answered(ticket: Ticket): void {
    this.startedAt.delete(ticket)
    if (this.probe?.ticket !== ticket) return
    this.probe = undefined
    this.wakeAll()
  }

  /** The call never went out after all: if it was to be the probe, the next start is. */
  abandoned(ticket: Ticket): void {
    this.startedAt.delete(ticket)
    if (this.probe?.ticket !== ticket) return
    this.probe = undefined
    this.probeNeeded = true
    this.wakeAll()
  }

  /** The destination said 429: stop for its wait (or one slot); when 429s keep coming, go on one call/s slower. */
  rateLimited(ticket: Ticket, retryAfterSeconds?: number): void {
    const now = this.clock.now()
    // A call this pacer started, so within its own count: the destination saw the starts closer
    // together than they left (jitter on the way). Widen the margin; quiet narrows it again.
    // (Once per moment: a call started before the last widening says nothing of the new margin.)
    // Jitter explains it while the margin can still widen (or the call left under a narrower one):
    // then it is not taken for someone else using the key, and the pace stays.
    const started = this.startedAt.get(ticket)
    this.startedAt.delete(ticket)
    const widest = (MARGIN_MAX * WINDOW_MS) / this.maxPerSecond
    const jitter = started !== undefined && (started <= this.widenedAt || this.margin < widest)
    if (started !== undefined && started > this.widenedAt && this.margin < widest) {
      this.margin = Math.min(widest, Math.max(2 * this.margin, this.margin + (MARGIN_STEP * WINDOW_MS) / this.maxPerSecond))
      this.marginChangedAt = now
      this.widenedAt = now
    }
    // Soon after the last 429, or after the pause it asked for ended (a pause of 2 s must not hide contention).
    const repeated = now - Math.max(this.lastRateLimited, this.pausedUntil) < REPEATED_WITHIN_MS
    this.lastRateLimited = now
    // One 429 (or several answered together, in flight side by side) is a moment: its pause covers
    // it. Another soon after the pause ended means someone else uses the key: slow down.
    if (repeated && now >= this.pausedUntil && !jitter) {
      this.limit = Math.max(1, this.limit - 1)
      this.changedAt = now
    }
    const pause = retryAfterSeconds === undefined ? UNHINTED_PAUSE_MS : retryAfterSeconds * 1000
    this.pausedUntil = Math.max(this.pausedUntil, now + pause)
    if (this.probe?.ticket === ticket) this.probe = undefined
    // A pause the destination asked for ends with a probe; a 429 that named none only takes its slot.
    if (retryAfterSeconds !== undefined) this.probeNeeded = true
    this.wakeAll()
  }

  /** Milliseconds left of a pause a 429 imposed (0: none). */
  pauseLeft(now = this.clock.now()): number {
    return Math.max(0, this.pausedUntil - now)
  }

  /** When the next call could start, for the first in line (Infinity while a probe is out). */
  nextStart(now = this.clock.now()): number {
    return this.slots(now, 1)[0]
  }

  /** The waiter's own earliest start: after those ahead of it in line have taken theirs. */
  private startFor(me: Waiter, now: number): number {
    // Passed over: waiters that stopped looking (their isolate no longer runs them).
    for (let i = this.waiters.length - 1; i >= 0; i--) {
      if (this.waiters[i] !== me && now - this.waiters[i].wakeAt > STALE_WAITER_MS) this.waiters.splice(i, 1)
    }
    // One passed over while its isolate was busy, but running again, takes its place at the end.
    if (!this.waiters.includes(me)) this.waiters.push(me)
    const position = this.waiters.indexOf(me)
    return this.slots(now, position + 1)[position]
  }

  /** The next `count` possible starts, in order. */
  private slots(now: number, count: number): number[] {
    if (this.probe && now - this.probe.since >= PROBE_EXPIRES_MS) {
      this.probe = undefined
      this.probeNeeded = true
    }
    if (this.limit < this.maxPerSecond && now - this.changedAt >= RECOVER_EVERY_MS) {
      this.limit++
      this.changedAt = now
    }
    if (this.margin > this.minMargin && now - this.marginChangedAt >= MARGIN_QUIET_MS) {
      this.margin = Math.max(this.minMargin, this.margin * 0.75)
      this.marginChangedAt = now
    }
    const window = this.windowMs
    // Below the clock's 1 ms a spacing cannot be timed (only costs a timer): the window still holds the rate.
    const spacing = this.spacingMs >= 1 ? this.spacingMs : 0
    // Kept for the widest window the margin may reach, not the current one: a start forgotten
    // while the window was narrow would not count once a 429 widens it (the fake-clock test found it).
    this.starts = this.starts.filter((at) => now - at < WINDOW_MS + (MARGIN_MAX * WINDOW_MS) / this.maxPerSecond)
    const planned = [...this.starts]
    const result: number[] = []
    for (let i = 0; i < count; i++) {
      // While a probe is out (or the first start after a pause is to be one), only it may go.
      if (this.probe || (this.probeNeeded && i > 0)) return [...result, ...Array(count - i).fill(Infinity)]
      let at = Math.max(now, this.pausedUntil)
      if (planned.length && spacing) at = Math.max(at, planned[planned.length - 1] + spacing)
      if (planned.length >= this.limit) at = Math.max(at, planned[planned.length - this.limit] + window)
      planned.push(at)
      result.push(at)
    }
    return result
  }

  private grant(ticket: Ticket, now: number): Ticket {
    this.starts.push(now)
    this.onGrant?.(now, this.windowMs)
    this.startedAt.set(ticket, now)
    // Calls that never reported back (their isolate stopped) are forgotten after a while.
    if (this.startedAt.size > 1000) for (const [old, at] of this.startedAt) if (now - at > PROBE_EXPIRES_MS) this.startedAt.delete(old)
    if (this.probeNeeded) {
      this.probeNeeded = false
      this.probe = { ticket, since: now }
    }
    return ticket
  }

  private wakeAll(): void {
    for (const waiter of this.waiters) waiter.wake?.()
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
