// The answer to Segment: a status chosen for its retry rules, and a body with a hard
// size bound whatever the input — Event Delivery shows it, and production Workers have
// 128 MB: a batch lists only the events that need a person's eye, and counts the rest.
import type { Context } from 'hono'
import type { Outcome } from '../pipeline/outcome'
import type { Issue } from '../segment/schema'

/** Events listed in a batch answer, at most. */
export const MAX_LISTED = 50
const MAX_ISSUES_ONE = 20
const MAX_ISSUES_LISTED = 3
const MAX_TEXT = 300

const clip = (text: string, max = MAX_TEXT) => (text.length > max ? `${text.slice(0, max - 1)}…` : text)
const clipIssues = (issues: Issue[] | undefined, max: number) =>
  issues?.length ? issues.slice(0, max).map(({ path, message }) => ({ path: clip(path, 200), message: clip(message, 200) })) : undefined

export function answerOne(c: Context, outcome: Outcome) {
  if (outcome.retryAfter !== undefined) c.header('Retry-After', String(outcome.retryAfter))
  const issues = clipIssues(outcome.issues, MAX_ISSUES_ONE)
  return c.json({ status: outcome.status, message: clip(outcome.message, 1000), ...(issues && { issues }), ...(outcome.status === 'queued' && { queued: 1 }) }, outcome.httpStatus as 200)
}

/**
 * 200 when every event was delivered, skipped or permanently rejected (202 when some were
 * queued or parked); 503 — or 429 when every retryable failure was a rate limit — when any
 * can succeed later: Segment then re-sends the whole batch (what finished is skipped).
 */
export function answerBatch(c: Context, messageIds: (string | undefined)[], outcomes: Outcome[]) {
  const counts: Record<string, number> = {}
  const results: Record<string, unknown>[] = []
  let omitted = 0
  for (const [index, { status, message, issues }] of outcomes.entries()) {
    counts[status] = (counts[status] ?? 0) + 1
    if (status !== 'rejected' && status !== 'retry' && !issues?.length) continue
    if (results.length >= MAX_LISTED) {
      omitted++
      continue
    }
    const messageId = messageIds[index]
    const listed = clipIssues(issues, MAX_ISSUES_LISTED)
    results.push({ index, ...(messageId && { messageId: clip(messageId, 100) }), status, message: clip(message), ...(listed && { issues: listed }) })
  }
  const summary =
    Object.entries(counts)
      .map(([status, n]) => `${n} ${status}`)
      .join(', ') || 'no events'
  const body = { counts, results, ...(omitted && { omitted }) }
  const retryable = outcomes.filter((outcome) => outcome.status === 'retry')
  if (!retryable.length) {
    const accepted = (counts.queued ?? 0) + (counts.deferred ?? 0)
    return c.json({ message: summary, ...(counts.queued && { queued: counts.queued }), ...body }, accepted ? 202 : 200)
  }
  const rateLimited = retryable.every((outcome) => outcome.httpStatus === 429)
  if (rateLimited) c.header('Retry-After', String(Math.max(...retryable.map((outcome) => outcome.retryAfter ?? 1))))
  return c.json({ message: `${summary}: ${clip(retryable[0].message)}; Segment will re-send the batch`, ...body }, rateLimited ? 429 : 503)
}
