// Queued mode: the ingress packs validated events into queue messages (up to 100
// events each) and answers 202 at once; the consumer delivers them at the destination's
// pace — bulk, merged, several calls in flight — and settles each event on its own:
// delivered, retried later (only the events that failed go back on the queue), or
// dead-lettered with the reason.
import { configurationProblem, getConfig, type Config, type Env } from '../config'
import type { Item } from '../pipeline/identity'
import { RequestLog } from '../log'
import { queued, rejected, retry, skipped, type Outcome } from '../pipeline/outcome'
import { deliverEvents } from '../pipeline/pipeline'
import { deliveryRun } from '../pipeline/run'
import { checkEvent, type SegmentEvent } from '../segment/schema'
import { Sql } from '../store/sql'
import { consumedBefore, envelopeIdOf, finishedMessages, newEnvelopeId, recordConsumed } from './consumed'
import { emptyWrites, Store } from '../store/store'
import { eventEmail, memberEmailOf } from '../segment/traits'
import { toOperation } from '../transform'

export const EVENTS_QUEUE = 'autopilot-events'
export const DEAD_LETTER_QUEUE = 'autopilot-events-dlq'
/** An event still failing at its 20th attempt becomes a dead letter, with the reason. */
export const MAX_ATTEMPTS = 20
const MAX_DELAY_SECONDS = 3600
// Cloudflare Queues: at most 100 messages and 256 KB per sendBatch, 128 KB per message.
const SEND_BATCH_MESSAGES = 100
const SEND_BATCH_BYTES = 250 * 1024
export const MAX_MESSAGE_BYTES = 120 * 1024
/** One bulk call's worth (both destinations take 100 people a call): a message of identifies is one call. */
export const EVENTS_PER_MESSAGE = 100

/** A queue message: events, when each reached the Worker, and how often each was tried. */
export interface Envelope {
  v: 2
  /** Kept once its message is acknowledged: Queues may deliver it again (consumed.ts). */
  id?: string
  /** `waits`: passes it went back untried because the destination was down (they count no attempt, but lengthen the wait). */
  items: { event: unknown; at: number; attempts?: number; waits?: number }[]
}

const encoder = new TextEncoder()
const sizeOf = (value: unknown) => encoder.encode(JSON.stringify(value)).byteLength

/** Packs items into as few messages as the limits allow, and sends them in as few sendBatch calls. */
export async function enqueue(queue: Queue<unknown>, items: Envelope['items'], delaySeconds?: number): Promise<void> {
  const messages: { body: Envelope; bytes: number }[] = []
  let current: Envelope | undefined
  let bytes = 0
  for (const item of items) {
    const size = sizeOf(item) + 1
    if (!current || current.items.length === EVENTS_PER_MESSAGE || bytes + size > MAX_MESSAGE_BYTES) {
      if (current) messages.push({ body: current, bytes })
      current = { v: 2, id: newEnvelopeId(), items: [] }
      bytes = 70
    }
    current.items.push(item)
    bytes += size
  }
  if (current) messages.push({ body: current, bytes })
  let chunk: MessageSendRequest<unknown>[] = []
  let chunkBytes = 0
  for (const { body, bytes: size } of messages) {
    if (chunk.length === SEND_BATCH_MESSAGES || chunkBytes + size > SEND_BATCH_BYTES) {
      await queue.sendBatch(chunk)
      chunk = []
      chunkBytes = 0
    }
    chunk.push({ body, contentType: 'json', ...(delaySeconds && { delaySeconds }) })
    chunkBytes += size
  }
  if (chunk.length) await queue.sendBatch(chunk)
}

/** Whether an event fits in a queue message on its own. */
const fitsMessage = (event: unknown) => sizeOf(event) + 40 <= MAX_MESSAGE_BYTES

/**
 * Queued mode's ingress: what needs Autopilot or the store goes on the queue, identifies
 * first — consumer batches then fill whole bulk calls, and a person's contact exists
 * before their track asks for a journey. The rest is answered now, as direct mode would.
 */
export async function acceptForQueue(events: readonly (SegmentEvent | undefined)[], queue: Queue<unknown>, config: Config): Promise<(Outcome | undefined)[]> {
  const outcomes: (Outcome | undefined)[] = new Array(events.length)
  const accepted: { index: number; event: SegmentEvent }[] = []
  for (const [index, event] of events.entries()) {
    if (!event) continue
    const answer = answerNow(event, config)
    if (answer) outcomes[index] = answer
    else if (!fitsMessage(event)) outcomes[index] = rejected(`Event is larger than a queue message may be (${MAX_MESSAGE_BYTES} bytes)`)
    else accepted.push({ index, event })
  }
  if (!accepted.length) return outcomes
  accepted.sort((a, b) => Number(b.event.type === 'identify') - Number(a.event.type === 'identify'))
  const at = Date.now()
  let outcome = queued()
  try {
    await enqueue(
      queue,
      accepted.map(({ event }) => ({ event, at })),
    )
  } catch {
    outcome = retry('The queue did not accept the events; Segment will retry')
  }
  for (const { index } of accepted) outcomes[index] = outcome
  return outcomes
}

/** The answer for an event that need not be queued, or undefined when it must be. */
function answerNow(event: SegmentEvent, config: Config): Outcome | undefined {
  if (event.type === 'alias' || event.type === 'delete') return undefined
  // A userId without an email: the consumer resolves it (or parks it).
  if (event.userId && (event.type === 'identify' || event.type === 'track') && !eventEmail(event)) return undefined
  if (event.userId && event.type === 'group' && !memberEmailOf(event).email) return undefined
  const op = toOperation(config.destination, event)
  if (op.kind === 'upsert' || op.kind === 'enter' || op.kind === 'retry') return undefined
  return op.kind === 'reject' ? rejected(op.message, op.issues) : skipped(op.kind === 'skip' ? op.message : 'skipped')
}

/** Exponential backoff with jitter: base, 2×base, 4×base… capped at an hour, each ×0.5–1. */
function backoffSeconds(attempts: number, baseSeconds: number): number {
  const ceiling = Math.min(MAX_DELAY_SECONDS, baseSeconds * 2 ** Math.max(0, attempts - 1))
  return Math.max(1, Math.ceil(ceiling * (0.5 + Math.random() / 2)))
}

type Tally = { acked: number; retried: number; deadLettered: number; requeued: number }

export async function consume(batch: MessageBatch<unknown>, env: Env, ctx?: ExecutionContext): Promise<void> {
  const config = getConfig(env)
  const log = new RequestLog(`queue:${batch.messages[0]?.id ?? 'empty'}`, env.ANALYTICS, config.destination.id)
  const tally: Tally = { acked: 0, retried: 0, deadLettered: 0, requeued: 0 }
  const sql = env.DB && new Sql(env.DB, config.storeTimeoutMs)
  const store = sql && new Store(sql)
  try {
    if (batch.queue === DEAD_LETTER_QUEUE) await storeDeadLetters(batch, store, tally)
    else await consumeEvents(batch, env, config, store, log, tally, ctx && ((promise) => ctx.waitUntil(promise)))
  } finally {
    if (sql) log.fields.d1 = sql.stats
    log.emit({ kind: 'queue', queue: batch.queue, messages: batch.messages.length, ...tally })
  }
}

/** The items of a message: an envelope (v2), or a bare event (sent by an earlier version). */
function itemsOf(message: Message<unknown>): Envelope['items'] {
  const body = message.body as Partial<Envelope> | null
  return body && body.v === 2 && Array.isArray(body.items) ? body.items : [{ event: message.body, at: message.timestamp.getTime() }]
}

/** Attempts before this one: the envelope counts re-enqueues, Queues counts whole-message retries. */
const withRetries = (message: Message<unknown>) => (item: Envelope['items'][number]) => ({ ...item, attempts: (item.attempts ?? 0) + message.attempts - 1 })

async function consumeEvents(batch: MessageBatch<unknown>, env: Env, config: Config, store: Store | undefined, log: RequestLog, tally: Tally, waitUntil?: (promise: Promise<unknown>) => void) {
  const blocker = configurationProblem(config)
  if (blocker || !store || !env.EVENTS) {
    for (const message of batch.messages) {
      message.retry({ delaySeconds: backoffSeconds(message.attempts, config.retryBaseSeconds) })
      tally.retried++
    }
    log.fields.error = blocker ?? 'EVENTS is not bound'
    return
  }
  const items: (Item & { message: number; waits?: number })[] = []
  const invalid = emptyWrites()
  // A message Queues delivers again after its ack is acknowledged, not consumed again.
  const envelopes = batch.messages.map((message) => envelopeIdOf(message.body))
  const consumed = await consumedBefore(
    store,
    envelopes.filter((id): id is string => Boolean(id)),
    (problem) => log.problem('consumed', problem),
  )
  const fresh = (m: number) => !consumed.has(envelopes[m]!)
  for (const [m, message] of batch.messages.entries()) {
    if (!fresh(m)) continue
    for (const raw of itemsOf(message).map(withRetries(message))) {
      const checked = checkEvent(raw.event)
      if (checked.ok) {
        items.push({ event: checked.event, at: raw.at, attempts: raw.attempts, message: m, ...(raw.waits && { waits: raw.waits }) })
        continue
      }
      log.count('invalid', 'rejected')
      invalid.deadLetters.push({ reason: checked.message, attempts: (raw.attempts ?? 0) + 1, firstSeen: raw.at ?? Date.now(), event: raw.event })
    }
  }
  let outcomes: Outcome[]
  const finished = finishedMessages(
    envelopes.map((id, m) => (fresh(m) ? id : undefined)),
    (i) => items[i].message,
  )
  try {
    if (invalid.deadLetters.length) await store.write(invalid)
    tally.deadLettered += invalid.deadLetters.length
    outcomes = items.length ? await deliverEvents(items, { ...deliveryRun('queue', { config, store, log, waitUntil }), deadLetter, finished }) : []
  } catch (error) {
    // The store refused what must be recorded (dead letters): every message goes back, whole.
    log.fields.error = error instanceof Error ? error.name : 'unknown'
    for (const message of batch.messages) message.retry({ delaySeconds: backoffSeconds(message.attempts, config.retryBaseSeconds) })
    tally.retried += batch.messages.length
    return
  }

  const again = new Map<number, Envelope['items']>()
  const requeued = new Set<string>()
  // One delay per attempt count: events that failed together go back together, in few messages.
  const delays = new Map<number, number>()
  for (const [i, item] of items.entries()) {
    const outcome = outcomes[i]
    log.count(item.event.type, outcome.status, item.event.messageId, undefined, outcome.issues?.length)
    if (outcome.status === 'rejected') tally.deadLettered++
    if (outcome.status !== 'retry') continue
    // Copies of one event (a batch Segment re-sent) go back once.
    const { messageId } = item.event
    if (messageId && requeued.has(messageId)) continue
    if (messageId) requeued.add(messageId)
    // A rate limit or a call never made does not use up an attempt.
    const counts = !outcome.notAttempted && outcome.httpStatus !== 429
    const attempts = (item.attempts ?? 0) + (counts ? 1 : 0)
    // Held back by an outage: no attempt is used up, but each pass waits twice as long as the last
    // (as Segment's and Queues' own retries do, capped), so a backlog costs a few passes, not one a second.
    const waits = outcome.outage ? (item.waits ?? 0) + 1 : (item.waits ?? 0)
    const delay = counts
      ? delayFor(delays, attempts, config.retryBaseSeconds)
      : outcome.outage
        ? delayFor(delays, -waits, config.retryBaseSeconds)
        : Math.min(MAX_DELAY_SECONDS, Math.max(1, outcome.retryAfter ?? 1))
    const list = again.get(delay) ?? []
    list.push({ event: item.event, at: item.at, attempts, ...(waits && { waits }) })
    again.set(delay, list)
  }
  try {
    for (const [delay, list] of again) await enqueue(env.EVENTS, list, delay)
    tally.requeued += [...again.values()].reduce((n, list) => n + list.length, 0)
    for (const message of batch.messages) message.ack()
    tally.acked += batch.messages.length
    await recordConsumed(
      store,
      envelopes.filter((id, m): id is string => Boolean(id) && fresh(m)),
      finished.recorded,
      (problem) => log.problem('consumed', problem),
    )
  } catch {
    // Could not put the failed events back: retry their messages whole. What they finished is
    // recorded first, so the retry skips it (an older identify sent again would overwrite a
    // newer one delivered meanwhile).
    const failing = new Set(items.filter((_, i) => outcomes[i].status === 'retry').map((item) => item.message))
    const progress = emptyWrites().progress
    for (const [i, item] of items.entries()) {
      const { messageId } = item.event
      if (!messageId || !failing.has(item.message)) continue
      // (A refusal is not recorded: refused again, it finds its dead letter, and a redrive must try it afresh.)
      if (outcomes[i].status === 'delivered') progress.push({ messageId, state: 'done' })
    }
    if (progress.length) await store.write({ ...emptyWrites(), progress }).catch((error: unknown) => log.problem('progress', error instanceof Error ? error.message : 'unknown error'))
    for (const [m, message] of batch.messages.entries()) {
      if (failing.has(m)) message.retry({ delaySeconds: backoffSeconds(message.attempts, config.retryBaseSeconds) })
      else message.ack()
    }
    tally.retried += failing.size
    tally.acked += batch.messages.length - failing.size
    await recordConsumed(
      store,
      envelopes.filter((id, m): id is string => Boolean(id) && fresh(m) && !failing.has(m)),
      finished.recorded,
      (problem) => log.problem('consumed', problem),
    )
  }
}

/** One delay per attempt count (negative: per outage wait), so events that failed together go back together. */
function delayFor(delays: Map<number, number>, key: number, baseSeconds: number): number {
  if (!delays.has(key)) delays.set(key, backoffSeconds(Math.abs(key), baseSeconds))
  return delays.get(key)!
}

/** Queued mode's rule for dead letters: refused for good, or still failing at the last attempt. */
function deadLetter(item: Item, outcome: Outcome): string | undefined {
  if (outcome.status === 'rejected') return outcome.message
  if (outcome.status !== 'retry' || outcome.notAttempted || outcome.httpStatus === 429) return undefined
  const attempts = (item.attempts ?? 0) + 1
  return attempts >= MAX_ATTEMPTS ? `gave up after ${attempts} attempts: ${outcome.message}` : undefined
}

/** Messages Cloudflare Queues moved to the dead-letter queue itself (its retries exhausted). */
async function storeDeadLetters(batch: MessageBatch<unknown>, store: Store | undefined, tally: Tally) {
  const writes = emptyWrites()
  for (const message of batch.messages) {
    for (const raw of itemsOf(message)) {
      // A dead letter an earlier version sent here itself carries its reason and event.
      const legacy = raw.event as { deadLetter?: unknown; reason?: unknown; event?: unknown } | null
      const ours = legacy?.deadLetter === true && typeof legacy.reason === 'string'
      const item = ours ? { ...raw, event: legacy.event } : raw
      const event = item.event as { messageId?: unknown; type?: unknown } | null
      writes.deadLetters.push({
        reason: ours ? String(legacy.reason) : 'retries exhausted (moved by Cloudflare Queues)',
        attempts: item.attempts || message.attempts,
        firstSeen: item.at ?? message.timestamp.getTime(),
        ...(typeof event?.messageId === 'string' && { messageId: event.messageId }),
        ...(typeof event?.type === 'string' && { type: event.type }),
        event: item.event,
      })
    }
  }
  try {
    if (!store) throw new Error('DB is not bound')
    await store.write(writes)
    batch.ackAll()
    tally.acked += batch.messages.length
    tally.deadLettered += writes.deadLetters.length
  } catch {
    batch.retryAll()
    tally.retried += batch.messages.length
  }
}
