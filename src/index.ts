import { Hono, type Context, type MiddlewareHandler } from 'hono'
import { bodyLimit } from 'hono/body-limit'
import { HTTPException } from 'hono/http-exception'
import * as v from 'valibot'
import { version } from '../package.json'
import { authenticate, authenticateAdmin } from './auth'
import { AutopilotClient } from './autopilot'
import { configurationProblem, getConfig, type Config, type Env } from './config'
import { rejected, retry, type Outcome } from './deliver'
import { IdentityMap, sweepParked, withEmail, type Parked } from './identity'
import { ledgerFor } from './ledger'
import { RequestLog } from './log'
import { deliverEvents, deliverParked } from './pipeline'
import {
  acceptForQueue,
  consume,
  deleteDeadLetters,
  enqueue,
  EVENTS_QUEUE,
  listDeadLetters,
  messageBytes,
  readDeadLetter,
  redriveDeadLetters,
} from './queue'
import { ACKNOWLEDGED_ONLY, checkEvent, eventsOf, type SegmentEvent } from './schema'

type App = { Bindings: Env; Variables: { config: Config; log: RequestLog } }

const app = new Hono<App>()

app.use('*', async (c, next) => {
  const log = new RequestLog(c.req.header('cf-ray') ?? crypto.randomUUID(), c.env.ANALYTICS)
  c.set('config', getConfig(c.env))
  c.set('log', log)
  await next()
  log.emit({ kind: 'request', method: c.req.method, path: c.req.path, status: c.res.status })
})

app.get('/health', (c) => {
  const { config } = c.var
  return c.json({
    status: config.problems.length ? 'misconfigured' : 'ok',
    version,
    mode: c.env.EVENTS ? 'queued' : 'direct',
    auth: authMode(config),
    settings: {
      AUTOPILOT_API_KEY: Boolean(config.apiKey),
      SEGMENT_SHARED_SECRET: Boolean(config.sharedSecret),
      SEGMENT_WEBHOOK_TOKEN: Boolean(config.webhookToken),
      ALLOW_UNSIGNED: config.allowUnsigned,
      AUTOPILOT_TRIGGERS: config.triggers.size,
      ADMIN_TOKEN: Boolean(config.adminToken),
    },
    identityResolution: c.env.IDENTITIES ? 'on' : 'off (IDENTITIES is not bound)',
    bindings: {
      IDENTITIES: Boolean(c.env.IDENTITIES),
      EVENTS: Boolean(c.env.EVENTS),
      DEAD_LETTERS: Boolean(c.env.DEAD_LETTERS),
      DELIVERIES: Boolean(c.env.DELIVERIES),
      ANALYTICS: Boolean(c.env.ANALYTICS),
    },
    ...(config.problems.length && { problems: config.problems }),
  })
})

app.post('/', limitBody, async (c) => {
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

  const auth = await authenticate(c.req.raw.headers, raw, () => firstEventText(parse()?.value), config)
  log.fields.auth = auth
  if (auth === 'not-configured') {
    return c.json({ message: 'Unauthenticated requests are refused: set SEGMENT_SHARED_SECRET or SEGMENT_WEBHOOK_TOKEN' }, 503)
  }
  if (auth === 'unauthorized') return c.json({ message: 'unauthorized' }, 401)

  const body = parse()
  if (!body) return c.json({ message: 'Body is not valid JSON' }, 400)
  const shape = eventsOf(body.value)
  if (!shape) return c.json({ message: 'Body must be a Segment event, an array of events, or {"batch": [...]}' }, 400)

  const blocker = configurationProblem(config)
  const outcomes: Outcome[] = new Array(shape.events.length)
  const events: (SegmentEvent | undefined)[] = []
  const types: string[] = []
  shape.events.forEach((input, index) => {
    const checked = checkEvent(input)
    if (!checked.ok) {
      types[index] = 'invalid'
      outcomes[index] = rejected(checked.message, checked.issues)
      return
    }
    types[index] = checked.event.type
    if (blocker && !ACKNOWLEDGED_ONLY.has(checked.event.type)) outcomes[index] = retry(blocker)
    else events[index] = checked.event
  })
  if (events.some(Boolean)) {
    const results = c.env.EVENTS
      ? await acceptForQueue(events, c.env.EVENTS, config, Boolean(c.env.IDENTITIES))
      : await deliverEvents(events, {
          config,
          client: AutopilotClient.for(config, { onCall: log.onCall }),
          ledger: ledgerFor(c.env.DELIVERIES),
          identities: c.env.IDENTITIES && new IdentityMap(c.env.IDENTITIES),
        })
    results.forEach((outcome, index) => outcome && (outcomes[index] = outcome))
  }
  outcomes.forEach((outcome, index) => log.count(types[index], outcome.status, messageIdOf(shape.events[index])))
  return shape.batch ? answerBatch(c, shape.events, outcomes) : answerOne(c, outcomes[0])
})

// Dead letters (queued mode): inspect, re-drive, delete. ADMIN_TOKEN only.
app.use('/dead-letters/*', adminOnly)
app.use('/dead-letters', adminOnly)
app.get('/dead-letters', async (c) => {
  const limit = Math.min(1000, Math.max(1, Number(c.req.query('limit')) || 100))
  return c.json({ message: 'dead letters, oldest first', ...(await listDeadLetters(c.env.DELIVERIES!, limit, c.req.query('cursor'))) })
})
app.post('/dead-letters/redrive', async (c) => {
  const { keys } = await deadLetterKeys(c)
  const result = await redriveDeadLetters(c.env.DELIVERIES!, c.env.EVENTS!, keys, 100)
  return c.json({ message: `re-drove ${result.redriven} dead letters to ${EVENTS_QUEUE}`, ...result })
})
app.delete('/dead-letters', async (c) => {
  const { keys } = await deadLetterKeys(c)
  if (!keys) return c.json({ message: 'Give the keys to delete: {"keys": [...]}' }, 400)
  return c.json({ message: 'deleted', ...(await deleteDeadLetters(c.env.DELIVERIES!, keys)) })
})
app.get('/dead-letters/:key', async (c) => {
  const letter = await readDeadLetter(c.env.DELIVERIES!, c.req.param('key'))
  return letter ? c.json({ message: letter.reason, key: c.req.param('key'), ...letter }) : c.json({ message: 'No such dead letter' }, 404)
})

app.all('/', (c) => methodNotAllowed(c, 'POST'))
app.all('/health', (c) => methodNotAllowed(c, 'GET'))
app.notFound((c) => c.json({ message: `Not found: ${c.req.method} ${c.req.path}` }, 404))

app.onError((error, c) => {
  if (error instanceof HTTPException) return c.json({ message: error.message || 'request refused' }, error.status)
  // Never a bare 500, never details that could carry secrets: the request id ties it to the log.
  const log = c.get('log') as RequestLog | undefined
  if (log) log.fields.error = error.name
  return c.json({ message: `Internal error (request ${log?.requestId ?? 'unknown'}); Segment will retry` }, 500)
})

export default {
  fetch: app.fetch,
  queue: consume,
  // Cron: parked events that expired are logged and dropped; those whose email is now known are replayed.
  scheduled: (_controller, env) => sweepIdentities(env),
} satisfies ExportedHandler<Env>

// ---------------------------------------------------------------------------

/**
 * The cron sweep of parked events: expired ones are logged and dropped; those whose
 * userId's email became known meanwhile (taught in another place before KV caught
 * up, or whose replay failed) are replayed — through the queue in queued mode,
 * delivered at once in direct mode.
 */
async function sweepIdentities(env: Env): Promise<void> {
  if (!env.IDENTITIES) return
  const config = getConfig(env)
  const log = new RequestLog(`sweep:${crypto.randomUUID()}`, env.ANALYTICS)
  const replay = async (items: { email: string; parked: Parked }[]): Promise<string[]> => {
    if (configurationProblem(config)) return []
    if (env.EVENTS) {
      // (An event too large for a queue message stays parked until it expires, logged.)
      const fitting = items.flatMap(({ parked, email }) => {
        const body = withEmail(parked.event, email)
        const bytes = messageBytes(body)
        return bytes === undefined ? [] : [{ key: parked.key, body, bytes }]
      })
      await enqueue(env.EVENTS, fitting)
      return fitting.map(({ key }) => key)
    }
    return deliverParked(items, { config, client: AutopilotClient.for(config, { onCall: log.onCall }), ledger: ledgerFor(env.DELIVERIES) })
  }
  const result = await sweepParked(new IdentityMap(env.IDENTITIES), replay, (line) => console.log(JSON.stringify(line)))
  log.emit({ kind: 'sweep', sweep: result })
}

async function adminOnly(c: Context<App>, next: () => Promise<void>) {
  if (!c.env.EVENTS || !c.env.DELIVERIES) return c.json({ message: 'Dead letters exist only in queued mode (EVENTS and DELIVERIES bound)' }, 404)
  const result = await authenticateAdmin(c.req.raw.headers, c.var.config)
  if (result === 'not-configured') return c.json({ message: 'Set ADMIN_TOKEN (wrangler secret put ADMIN_TOKEN) to use the dead-letter endpoints' }, 403)
  if (result === 'unauthorized') return c.json({ message: 'unauthorized' }, 401)
  c.var.log.fields.auth = 'admin'
  await next()
}

const KeysBody = v.optional(v.object({ keys: v.optional(v.array(v.string('must be a string'), 'must be an array'), undefined) }, 'must be an object'))
/** `{"keys": [...]}`, or nothing (all). */
async function deadLetterKeys(c: Context<App>): Promise<{ keys?: string[] }> {
  const text = await c.req.text()
  let body: unknown
  try {
    body = text ? JSON.parse(text) : undefined
  } catch {
    throw new HTTPException(400, { message: 'Body is not valid JSON' })
  }
  const result = v.safeParse(KeysBody, body)
  if (!result.success) throw new HTTPException(400, { message: `keys ${result.issues[0].message}` })
  return { keys: result.output?.keys }
}

const limiters = new Map<number, MiddlewareHandler>()
/** hono/body-limit, built once per configured size: refuses before reading the whole body. */
function limitBody(c: Context<App>, next: () => Promise<void>) {
  const maxSize = c.var.config.maxBodyBytes
  let limiter = limiters.get(maxSize)
  if (!limiter) {
    limiter = bodyLimit({
      maxSize,
      onError: (c) => c.json({ message: `Body is larger than MAX_BODY_BYTES (${maxSize} bytes)` }, 413),
    })
    limiters.set(maxSize, limiter)
  }
  return limiter(c, next)
}

function authMode(config: Config): string {
  if (config.allowUnsigned) return 'off (ALLOW_UNSIGNED=true)'
  const modes = [config.sharedSecret && 'signature', config.webhookToken && 'token'].filter(Boolean)
  return modes.length ? modes.join('+') : 'locked (no SEGMENT_SHARED_SECRET or SEGMENT_WEBHOOK_TOKEN)'
}

function firstEventText(body: unknown): string | undefined {
  if (!Array.isArray(body) || body.length === 0) return undefined
  try {
    return JSON.stringify(body[0])
  } catch {
    return undefined
  }
}

function messageIdOf(event: unknown): string | undefined {
  const id = (event as { messageId?: unknown } | null)?.messageId
  return typeof id === 'string' ? id.slice(0, 256) : undefined
}

function answerOne(c: Context<App>, outcome: Outcome) {
  if (outcome.retryAfter !== undefined) c.header('Retry-After', String(outcome.retryAfter))
  const { status, message, issues } = outcome
  return c.json({ status, message, ...(issues && { issues }), ...(status === 'queued' && { queued: 1 }) }, outcome.httpStatus as 200)
}

/**
 * 200 with a result per event when each was delivered, skipped or permanently
 * rejected (202 when some were queued or parked); 503 — or 429 when every retryable
 * failure was a rate limit — when any can succeed later: Segment then re-sends the
 * whole batch.
 */
function answerBatch(c: Context<App>, events: unknown[], outcomes: Outcome[]) {
  const results = outcomes.map(({ status, message, issues }, index) => ({
    index,
    ...(messageIdOf(events[index]) && { messageId: messageIdOf(events[index]) }),
    status,
    message,
    ...(issues && { issues }),
  }))
  const counts = new Map<string, number>()
  for (const { status } of outcomes) counts.set(status, (counts.get(status) ?? 0) + 1)
  const summary = [...counts].map(([status, n]) => `${n} ${status}`).join(', ') || 'no events'
  const retryable = outcomes.filter((outcome) => outcome.status === 'retry')
  const queuedCount = counts.get('queued') ?? 0
  const accepted = queuedCount + (counts.get('deferred') ?? 0)
  if (!retryable.length) {
    return c.json({ message: summary, ...(queuedCount && { queued: queuedCount }), results }, accepted ? 202 : 200)
  }
  const rateLimited = retryable.every((outcome) => outcome.httpStatus === 429)
  if (rateLimited) c.header('Retry-After', String(Math.max(...retryable.map((outcome) => outcome.retryAfter ?? 1))))
  return c.json(
    { message: `${summary}: ${retryable[0].message}; Segment will re-send the batch`, results },
    rateLimited ? 429 : 503,
  )
}

function methodNotAllowed(c: Context<App>, allow: string) {
  c.header('Allow', allow)
  return c.json({ message: `Method ${c.req.method} not allowed on ${c.req.path}; use ${allow}` }, 405)
}
