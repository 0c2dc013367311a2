// What became of one event, and what this one event alone would be answered with.
import { CallError } from '../destinations/transport'
import { Stopped } from './gate'
import type { Issue } from '../segment/schema'

export type OutcomeStatus = 'delivered' | 'skipped' | 'rejected' | 'retry' | 'queued' | 'deferred'

export interface Outcome {
  status: OutcomeStatus
  message: string
  /** What this event alone would be answered with. */
  httpStatus: number
  /** Seconds, with 429. */
  retryAfter?: number
  /** Fields that were not sent, and why. */
  issues?: Issue[]
  /** Retry: no call was made for it (budget, deadline, a failure that stopped the run). */
  notAttempted?: boolean
  /** Not attempted because the destination failed every call before (an outage), not for lack of budget or time. */
  outage?: boolean
  /** Retry: the call got no answer (timeout, reset), so it may have taken effect. */
  unanswered?: boolean
}

export const delivered = (message: string, issues?: Issue[]): Outcome => ({
  status: 'delivered',
  message,
  httpStatus: 200,
  ...(issues?.length && { issues }),
})
export const skipped = (message: string): Outcome => ({ status: 'skipped', message, httpStatus: 200 })
export const deferred = (issues?: Issue[]): Outcome => ({
  status: 'deferred',
  message: "parked until this userId's email is known",
  httpStatus: 202,
  ...(issues?.length && { issues }),
})
export const queued = (): Outcome => ({ status: 'queued', message: 'queued for delivery', httpStatus: 202 })
export const rejected = (message: string, issues?: Issue[]): Outcome => ({
  status: 'rejected',
  message,
  httpStatus: 400,
  ...(issues?.length && { issues }),
})
export const retry = (message: string, retryAfter?: number): Outcome =>
  retryAfter === undefined ? { status: 'retry', message, httpStatus: 503 } : { status: 'retry', message, httpStatus: 429, retryAfter }

/** What Segment is told to wait after a 429 that did not say (Autopilot sends no Retry-After). */
const DEFAULT_RETRY_AFTER_SECONDS = 1

/** A failure of a call (or of the chance to make one) as an outcome. */
export function fromError(error: unknown): Outcome {
  if (error instanceof Stopped) {
    const cause = error.failure
    const wait = error.retryAfter ?? (cause?.kind === 'rate_limited' ? (cause.retryAfter ?? DEFAULT_RETRY_AFTER_SECONDS) : undefined)
    const outcome = retry(error.message, wait)
    return { ...outcome, notAttempted: true, ...(cause && cause.kind !== 'rate_limited' && { outage: true }) }
  }
  if (!(error instanceof CallError)) throw error
  if (error.kind === 'rate_limited') return retry(error.message, error.retryAfter ?? DEFAULT_RETRY_AFTER_SECONDS)
  if (error.retryable) return error.answered ? retry(error.message) : { ...retry(error.message), unanswered: true }
  return rejected(error.message)
}
