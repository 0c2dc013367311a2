// Queued mode: the ingress enqueues validated events and answers 202 at once; this
// consumer delivers them through Autopilot's 5 requests/s — bulk, merged, paced —
// retries what can succeed later and dead-letters, with the reason, what cannot.
import { AutopilotClient } from './autopilot'
import { configurationProblem, getConfig, type Config, type Env } from './config'
import { haltOnAccountWide, queued, rejected, retry, skipped, type Outcome } from './deliver'
import { IdentityMap } from './identity'
import { ledgerFor } from './ledger'
import { RequestLog } from './log'
import { pacerFor } from './pacer'
import { deliverEvents } from './pipeline'
import { checkEvent, type SegmentEvent } from './schema'
import { eventEmail, toAction, type Action } from './transform'

export const EVENTS_QUEUE = 'autopilot-events'
export const DEAD_LETTER_QUEUE = 'autopilot-events-dlq'
/** Dead-letter with our own reason one attempt before Queues would (max_retries = 20 in wrangler.toml). */
export const MAX_ATTEMPTS = 20
const MAX_DELAY_SECONDS = 3600
/** 429s repeated in place before the messages go back to the queue for later. */
const RATE_LIMIT_RETRIES = 5
// Cloudflare Queues: at most 100 messages and 256 KB per sendBatch, 128 KB per message.
const SEND_BATCH_MESSAGES = 100
const SEND_BATCH_BYTES = 250 * 1024
export const MAX_MESSAGE_BYTES = 120 * 1024

const encoder = new TextEncoder()

/** Sends event bodies in as few sendBatch calls as the limits allow. Throws if the queue refuses. */
export async function enqueue(queue: Queue<unknown>, bodies: { body: unknown; bytes: number }[]): Promise<void> {
  let chunk: MessageSendRequest<unknown>[] = []
  let bytes = 0
  for (const { body, bytes: size } of bodies) {
    if (chunk.length === SEND_BATCH_MESSAGES || bytes + size > SEND_BATCH_BYTES) {
      await queue.sendBatch(chunk)
      chunk = []
      bytes = 0
    }
    chunk.push({ body, contentType: 'json' })
    bytes += size
  }
  if (chunk.length) await queue.sendBatch(chunk)
}

/** An event's size as a queue message, or undefined when it is too large for one. */
export function messageBytes(event: unknown): number | undefined {
  const bytes = encoder.encode(JSON.stringify(event)).byteLength
  return bytes <= MAX_MESSAGE_BYTES ? bytes : undefined
}

/**
 * Queued mode's ingress: what needs Autopilot (or the identity map) goes on the
 * queue, identifies first — consumer batches then fill whole bulk calls, and a
 * person's contact exists before their track asks for a journey. The rest is
 * answered now, as direct mode would.
 */
export async function acceptForQueue(
  events: readonly (SegmentEvent | undefined)[],
  queue: Queue<unknown>,
  config: Config,
  identitiesOn: boolean,
): Promise<(Outcome | undefined)[]> {
  const outcomes: (Outcome | undefined)[] = new Array(events.length)
  const bodies: { index: number; body: unknown; bytes: number; identify: boolean }[] = []
  for (const [index, event] of events.entries()) {
    if (!event) continue
    const answer = answerNow(event, config, identitiesOn)
    if (answer) {
      outcomes[index] = answer
      continue
    }
    const bytes = messageBytes(event)
    if (bytes === undefined) outcomes[index] = rejected(`Event is larger than a queue message may be (${MAX_MESSAGE_BYTES} bytes)`)
    else bodies.push({ index, body: event, bytes, identify: event.type === 'identify' })
  }
  if (!bodies.length) return outcomes
  bodies.sort((a, b) => Number(b.identify) - Number(a.identify))
  let outcome = queued()
  try {
    await enqueue(queue, bodies)
  } catch {
    outcome = retry('The queue did not accept the events; Segment will retry')
  }
  for (const { index } of bodies) outcomes[index] = outcome
  return outcomes
}

/** The answer for an event that need not be queued, or undefined when it must be. */
function answerNow(event: SegmentEvent, config: Config, identitiesOn: boolean): Outcome | undefined {
  if (event.type === 'alias' || event.type === 'delete') return identitiesOn ? undefined : toOutcome(toAction(event, config))
  const action = toAction(event, config)
  if (action.kind === 'upsert' || action.kind === 'trigger') return undefined
  // A userId without an email: the consumer resolves it (or parks it) with the identity map.
  if (identitiesOn && event.userId && (event.type === 'identify' || event.type === 'track') && !eventEmail(event)) return undefined
  return toOutcome(action)
}

const toOutcome = (action: Action): Outcome =>
  action.kind === 'reject' ? rejected(action.message) : skipped(action.kind === 'skip' ? action.message : 'skipped')

/** Exponential backoff with jitter: base, 2×base, 4×base… capped at an hour, each ×0.5–1. */
export function backoffSeconds(attempts: number, baseSeconds: number): number {
  const ceiling = Math.min(MAX_DELAY_SECONDS, baseSeconds * 2 ** Math.max(0, attempts - 1))
  return Math.max(1, Math.ceil(ceiling * (0.5 + Math.random() / 2)))
}

/** What the dead-letter queue carries: the event and why it could not be delivered. */
export interface DeadLetter {
  deadLetter: true
  reason: string
  attempts: number
  failedAt: string
  messageId?: string
  type?: string
  event: unknown
}

export async function consume(batch: MessageBatch<unknown>, env: Env): Promise<void> {
  const log = new RequestLog(`queue:${batch.messages[0]?.id ?? 'empty'}`, env.ANALYTICS)
  const tally = { acked: 0, retried: 0, deadLettered: 0 }
  try {
    if (batch.queue === DEAD_LETTER_QUEUE) await storeDeadLetters(batch, env, tally)
    else await deliverBatch(batch, env, log, tally)
  } finally {
    log.emit({ kind: 'queue', queue: batch.queue, messages: batch.messages.length, ...tally })
  }
}

type Tally = { acked: number; retried: number; deadLettered: number }

async function deliverBatch(batch: MessageBatch<unknown>, env: Env, log: RequestLog, tally: Tally) {
  const config = getConfig(env)
  const blocker = configurationProblem(config)
  const settle = settler(env, config, tally)
  const events: (SegmentEvent | undefined)[] = []
  for (const [i, message] of batch.messages.entries()) {
    const checked = checkEvent(message.body)
    if (!checked.ok) {
      log.count('invalid', 'rejected', message.id)
      await settle(message, rejected(checked.message))
    } else if (blocker) {
      log.count(checked.event.type, 'retry', checked.event.messageId)
      await settle(message, retry(blocker), checked.event.type)
    } else {
      events[i] = checked.event
    }
  }
  if (!events.some(Boolean)) return
  const pacer = pacerFor(config.maxRps)
  const client = AutopilotClient.for(config, {
    onCall: log.onCall,
    beforeCall: () => pacer.wait(),
    onRateLimited: (seconds) => pacer.rateLimited(seconds),
    // A 429 means "slower", not "failed": the pacer pauses, then the call goes again.
    rateLimitRetries: RATE_LIMIT_RETRIES,
  })
  const outcomes = await deliverEvents(events, {
    config,
    client,
    ledger: ledgerFor(env.DELIVERIES),
    identities: env.IDENTITIES && new IdentityMap(env.IDENTITIES),
    halts: haltOnAccountWide,
  })
  for (const [i, outcome] of outcomes.entries()) {
    const event = events[i]
    if (!outcome || !event) continue
    log.count(event.type, outcome.status, event.messageId)
    await settle(batch.messages[i], outcome, event.type)
  }
}

/** ack, retry later, or dead-letter one message according to its outcome. */
function settler(env: Env, config: Config, tally: Tally) {
  return async (message: Message<unknown>, outcome: Outcome, type?: string) => {
    if (outcome.status === 'delivered' || outcome.status === 'skipped' || outcome.status === 'deferred') {
      message.ack()
      tally.acked++
      return
    }
    if (outcome.status === 'rejected') {
      await deadLetter(env, message, outcome.message, type, tally)
      return
    }
    if (outcome.httpStatus === 429) {
      // Rate limiting only means "later": it must not use up the message's attempts.
      const delaySeconds = Math.min(MAX_DELAY_SECONDS, Math.max(1, outcome.retryAfter ?? 1))
      if (message.attempts < MAX_ATTEMPTS || !env.EVENTS) {
        message.retry({ delaySeconds })
      } else {
        await env.EVENTS.send(message.body, { contentType: 'json', delaySeconds })
        message.ack()
      }
      tally.retried++
      return
    }
    if (message.attempts >= MAX_ATTEMPTS) {
      await deadLetter(env, message, `gave up after ${message.attempts} attempts: ${outcome.message}`, type, tally)
      return
    }
    message.retry({ delaySeconds: backoffSeconds(message.attempts, config.retryBaseSeconds) })
    tally.retried++
  }
}

/** To the dead-letter queue with the reason; if that is impossible, retry (never a silent ack). */
async function deadLetter(env: Env, message: Message<unknown>, reason: string, type: string | undefined, tally: Tally) {
  const body = message.body as { messageId?: unknown } | null
  const record: DeadLetter = {
    deadLetter: true,
    reason,
    attempts: message.attempts,
    failedAt: new Date().toISOString(),
    ...(typeof body?.messageId === 'string' && { messageId: body.messageId }),
    ...(type && { type }),
    event: message.body,
  }
  try {
    if (!env.DEAD_LETTERS) throw new Error('DEAD_LETTERS is not bound')
    await env.DEAD_LETTERS.send(record, { contentType: 'json' })
    message.ack()
    tally.deadLettered++
  } catch {
    message.retry()
    tally.retried++
  }
}

// ---------------------------------------------------------------------------
// Dead letters: the DLQ's consumer keeps them in KV until someone re-drives them.

const DEAD_PREFIX = 'dead:'

interface DeadLetterSummary {
  reason: string
  failedAt: string
  attempts: number
  messageId?: string
  type?: string
}

const isDeadLetter = (body: unknown): body is DeadLetter =>
  typeof body === 'object' && body !== null && (body as DeadLetter).deadLetter === true

async function storeDeadLetters(batch: MessageBatch<unknown>, env: Env, tally: Tally) {
  for (const message of batch.messages) {
    // Messages Queues moved here itself (retries exhausted without our verdict) are bare events.
    const letter: DeadLetter = isDeadLetter(message.body)
      ? message.body
      : { deadLetter: true, reason: 'retries exhausted (moved by Cloudflare Queues)', attempts: message.attempts, failedAt: new Date().toISOString(), event: message.body }
    if (!env.DELIVERIES) {
      message.retry()
      tally.retried++
      continue
    }
    const summary: DeadLetterSummary = {
      reason: letter.reason.slice(0, 300),
      failedAt: letter.failedAt,
      attempts: letter.attempts,
      ...(letter.messageId && { messageId: letter.messageId.slice(0, 256) }),
      ...(letter.type && { type: letter.type }),
    }
    await env.DELIVERIES.put(`${DEAD_PREFIX}${letter.failedAt}:${message.id}`, JSON.stringify(letter), { metadata: summary })
    message.ack()
    tally.acked++
  }
}

export async function listDeadLetters(kv: KVNamespace, limit: number, cursor?: string) {
  const page = await kv.list<DeadLetterSummary>({ prefix: DEAD_PREFIX, limit, cursor })
  return {
    deadLetters: page.keys.map(({ name, metadata }) => ({ key: name, ...metadata })),
    ...(!page.list_complete && { cursor: page.cursor }),
  }
}

export async function readDeadLetter(kv: KVNamespace, key: string): Promise<DeadLetter | undefined> {
  if (!key.startsWith(DEAD_PREFIX)) return undefined
  return (await kv.get<DeadLetter>(key, 'json')) ?? undefined
}

/** Puts dead letters back on the events queue (all listed ones, up to `limit`, when no keys are given). */
export async function redriveDeadLetters(kv: KVNamespace, queue: Queue<unknown>, keys: string[] | undefined, limit: number) {
  const chosen = keys ?? (await kv.list({ prefix: DEAD_PREFIX, limit })).keys.map((key) => key.name)
  let redriven = 0
  const missing: string[] = []
  for (const key of chosen) {
    const letter = await readDeadLetter(kv, key)
    if (!letter) {
      missing.push(key)
      continue
    }
    await queue.send(letter.event, { contentType: 'json' })
    await kv.delete(key)
    redriven++
  }
  return { redriven, ...(missing.length && { missing }) }
}

export async function deleteDeadLetters(kv: KVNamespace, keys: string[]) {
  const valid = keys.filter((key) => key.startsWith(DEAD_PREFIX))
  await Promise.all(valid.map((key) => kv.delete(key)))
  return { deleted: valid.length }
}
