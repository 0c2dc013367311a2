// Whether a destination call may start now: the account's pace (pacer.ts), the calls one
// invocation may make (Cloudflare caps subrequests: 50 on the Free plan), the time
// left before the answer is due (Segment waits 5 s), at most six calls in flight (the
// Workers runtime opens six connections at once), and whether an earlier failure
// means every further call would fail too.
import type { CallError, CallGate, CallPass } from '../destinations/transport'
import type { Pacer } from './pacer'

/** A call needs at least this long to be worth starting before the deadline. */
const MIN_CALL_MS = 500
const MAX_IN_FLIGHT = 6

/** No call was made: the budget or the time ran out, or an earlier failure stopped the run. */
export class Stopped extends Error {
  override name = 'Stopped'
  constructor(
    message: string,
    /** The failure that stopped the run, if one did. */
    readonly failure?: CallError,
    /** Seconds until calls may start again, when a rate limit's pause is what stopped it. */
    readonly retryAfter?: number,
  ) {
    super(message)
  }
}

export interface GateOptions {
  pacer: Pacer
  maxCalls: number
  /** Epoch ms by which every call must have ended. */
  deadline?: number
  /** Retryable failures in a row (timeouts, 5xx) after which the run stops. */
  unavailableLimit: number
  /** Rate limits stop the run (direct mode: Segment re-sends later) or only slow it (queued mode). */
  stopOnRateLimit: boolean
}

export class Gate implements CallGate {
  private calls = 0
  private inFlight = 0
  private readonly waiting: (() => void)[] = []
  private unavailableInARow = 0
  private stoppedBy?: CallError

  constructor(private readonly options: GateOptions) {}

  async enter(): Promise<CallPass> {
    const { maxCalls, deadline = Infinity, pacer } = this.options
    this.check()
    if (this.calls >= maxCalls) throw new Stopped(`not attempted: this invocation reached its ${maxCalls} calls`)
    this.calls++
    if (this.inFlight >= MAX_IN_FLIGHT) await new Promise<void>((resolve) => this.waiting.push(resolve))
    this.inFlight++
    let ticket: number | false = false
    try {
      ticket = await pacer.wait(deadline - MIN_CALL_MS)
      if (ticket === false) {
        const left = pacer.pauseLeft()
        if (left > 0) throw new Stopped(`not attempted: the destination asked to wait (rate limit); ${Math.ceil(left / 1000)} s left`, undefined, Math.ceil(left / 1000))
        throw new Stopped('not attempted before the answer was due (Segment waits 5 s)')
      }
      this.check()
    } catch (error) {
      this.calls--
      this.release()
      if (ticket !== false) pacer.abandoned(ticket) // a probe that never went out must not hold the others back
      throw error
    }
    const granted = ticket
    return {
      timeoutMs: Math.max(MIN_CALL_MS, deadline - Date.now()),
      leave: (error, sent) => this.leave(granted, error, sent),
    }
  }

  private leave(ticket: number, error: CallError | undefined, sent: boolean): void {
    this.release()
    const { pacer } = this.options
    if (!sent) pacer.abandoned(ticket)
    else if (error?.kind === 'rate_limited') pacer.rateLimited(ticket, error.retryAfter)
    else pacer.answered(ticket)
    if (!error) {
      if (sent) this.unavailableInARow = 0
      return
    }
    const { kind } = error
    if (kind === 'unavailable') this.unavailableInARow++
    if (
      kind === 'key_rejected' ||
      kind === 'redirected' ||
      (kind === 'rate_limited' && this.options.stopOnRateLimit) ||
      (kind === 'unavailable' && this.unavailableInARow >= this.options.unavailableLimit)
    ) {
      this.stoppedBy ??= error
    }
  }

  private check() {
    if (this.stoppedBy) throw new Stopped(`not attempted: ${this.stoppedBy.message}`, this.stoppedBy)
  }

  private release() {
    this.inFlight--
    this.waiting.shift()?.()
  }
}
