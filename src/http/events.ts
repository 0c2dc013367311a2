// POST /: what Segment sends. Authenticate, validate each event, then deliver now
// (direct mode) or put on the queue (queued mode), and answer for Segment's retry rules.
import type { Context } from 'hono'
import { Hono } from 'hono/tiny'
import { answerBatch, answerOne } from './answer'
import { authenticate } from '../segment/auth'
import { configurationProblem, secretPut } from '../config'
import { limitBody, methodNotAllowed, type App } from './context'
import type { Item } from '../pipeline/identity'
import { rejected, retry, skipped, type Outcome } from '../pipeline/outcome'
import { deliverEvents } from '../pipeline/pipeline'
import { acceptForQueue } from '../queue/queue'
import { deliveryRun } from '../pipeline/run'
import { ACKNOWLEDGED_ONLY, checkEvent, eventsOf, type SegmentEvent } from '../segment/schema'
import { Store } from '../store/store'

export const events = new Hono<App>()

events.post('/', limitBody, async (c) => {
  const started = Date.now()
  const { config, log } = c.var
  const raw = await c.req.text()
  let parsed: { value: unknown } | undefined
  const parse = () => {
    try {
      parsed ??= { value: JSON.parse(raw) }
    } catch {
      return undefined
    }
    return parsed
  }

  const auth = await authenticate(c.req.raw.headers, raw, () => firstEvent(parse()?.value), config)
  log.fields.auth = auth
  if (auth === 'not-configured') {
    const how = `${secretPut(config.deployEnv, 'SEGMENT_WEBHOOK_TOKEN')} or ${secretPut(config.deployEnv, 'SEGMENT_SHARED_SECRET')}`
    return c.json({ message: `Unauthenticated requests are refused: set SEGMENT_SHARED_SECRET or SEGMENT_WEBHOOK_TOKEN (${how})` }, 503)
  }
  if (auth === 'first-event-only') {
    // Not 401: Segment would drop the batch. Retried, it is delivered once a token is set.
    return c.json(
      {
        message:
          'This batch is signed over its first event only (as Segment signs batches), which vouches for that event alone: set SEGMENT_WEBHOOK_TOKEN and send it from Segment as "Authorization: Bearer <token>" (see docs/security.md)',
      },
      503,
    )
  }
  if (auth === 'unauthorized') return c.json({ message: 'unauthorized' }, 401)

  const body = parse()
  if (!body) return c.json({ message: 'Body is not valid JSON' }, 400)
  const shape = eventsOf(body.value)
  if (!shape) return c.json({ message: 'Body must be a Segment event, an array of events, or {"batch": [...]}' }, 400)
  return deliverShape(c, shape, started)
})

events.all('/', (c) => methodNotAllowed(c, 'POST'))

/**
 * Validates each event, delivers them now (direct mode) or queues them (queued mode), and
 * answers for the sender's retry rules: one event, or a batch. Shared by `POST /` and the
 * Tracking API's paths (tracking-api.ts).
 * @param started when the request arrived (ms): the events' arrival time.
 */
export async function deliverShape(c: Context<App>, shape: { events: unknown[]; batch: boolean }, started: number) {
  const { config, log, sql } = c.var
  const blocker = configurationProblem(config)
  const outcomes: Outcome[] = new Array(shape.events.length)
  const valid: (SegmentEvent | undefined)[] = []
  const types: string[] = []
  shape.events.forEach((input, index) => {
    const checked = checkEvent(input)
    if (!checked.ok) {
      types[index] = 'invalid'
      outcomes[index] = rejected(checked.message, checked.issues)
      return
    }
    types[index] = checked.event.type
    if (ACKNOWLEDGED_ONLY.has(checked.event.type)) outcomes[index] = skipped(`${checked.event.type} events are acknowledged and not sent to ${config.destination.label}`)
    else if (blocker) outcomes[index] = retry(blocker)
    else valid[index] = checked.event
  })
  if (valid.some(Boolean)) {
    if (c.env.EVENTS) {
      const results = await acceptForQueue(valid, c.env.EVENTS, config)
      results.forEach((outcome, index) => outcome && (outcomes[index] = outcome))
    } else {
      const indices = [...valid.keys()].filter((index) => valid[index])
      const items: Item[] = indices.map((index) => ({ event: valid[index]!, at: started }))
      const results = await deliverEvents(items, deliveryRun('request', { config, store: new Store(sql!), log, started, waitUntil: (promise) => c.executionCtx.waitUntil(promise) }))
      results.forEach((outcome, i) => (outcomes[indices[i]] = outcome))
    }
  }
  const messageIds = shape.events.map(messageIdOf)
  outcomes.forEach((outcome, index) => log.count(types[index], outcome.status, messageIds[index], undefined, outcome.issues?.length))
  return shape.batch ? answerBatch(c, messageIds, outcomes) : answerOne(c, outcomes[0])
}

/** An array body's first event as Segment serialises it for the signature, and the array's length. */
function firstEvent(body: unknown): { text: string; count: number } | undefined {
  if (!Array.isArray(body) || body.length === 0) return undefined
  try {
    return { text: JSON.stringify(body[0]), count: body.length }
  } catch {
    return undefined
  }
}

function messageIdOf(event: unknown): string | undefined {
  const id = (event as { messageId?: unknown } | null)?.messageId
  return typeof id === 'string' ? id.slice(0, 256) : undefined
}
