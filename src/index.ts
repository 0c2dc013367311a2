import { Hono, type Context, type MiddlewareHandler } from 'hono'
import { bodyLimit } from 'hono/body-limit'
import { HTTPException } from 'hono/http-exception'
import { version } from '../package.json'
import { authenticate } from './auth'
import { AutopilotClient } from './autopilot'
import { getConfig, type Config, type Env } from './config'
import { deliver, MemoryLedger, rejected, retry, type Job, type Outcome } from './deliver'
import { RequestLog } from './log'
import { checkEvent, eventsOf } from './schema'
import { toAction } from './transform'

type App = { Bindings: Env; Variables: { config: Config; log: RequestLog } }

const app = new Hono<App>()
/** Tracks already entered into a journey by this isolate (Segment re-sends whole batches). */
const ledger = new MemoryLedger()

app.use('*', async (c, next) => {
  const log = new RequestLog(c.req.header('cf-ray') ?? crypto.randomUUID())
  c.set('config', getConfig(c.env))
  c.set('log', log)
  await next()
  log.emit({ method: c.req.method, path: c.req.path, status: c.res.status })
})

app.get('/health', (c) => {
  const { config } = c.var
  return c.json({
    status: config.problems.length ? 'misconfigured' : 'ok',
    version,
    mode: 'direct',
    auth: authMode(config),
    settings: {
      AUTOPILOT_API_KEY: Boolean(config.apiKey),
      SEGMENT_SHARED_SECRET: Boolean(config.sharedSecret),
      SEGMENT_WEBHOOK_TOKEN: Boolean(config.webhookToken),
      ALLOW_UNSIGNED: config.allowUnsigned,
      AUTOPILOT_TRIGGERS: config.triggers.size,
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
  const jobs: Job[] = []
  const jobIndex: number[] = []
  const types: string[] = []
  shape.events.forEach((input, index) => {
    const checked = checkEvent(input)
    if (!checked.ok) {
      types[index] = 'invalid'
      outcomes[index] = rejected(checked.message, checked.issues)
      return
    }
    const { event } = checked
    types[index] = event.type
    if (blocker && (event.type === 'identify' || event.type === 'track')) {
      outcomes[index] = retry(blocker)
      return
    }
    jobs.push({ messageId: event.messageId, action: toAction(event, config) })
    jobIndex.push(index)
  })
  if (jobs.length) {
    const client = new AutopilotClient({ baseUrl: config.baseUrl, apiKey: config.apiKey!, timeoutMs: config.timeoutMs, onCall: log.onCall })
    const results = await deliver(jobs, client, ledger)
    results.forEach((outcome, i) => (outcomes[jobIndex[i]] = outcome))
  }
  outcomes.forEach((outcome, index) => log.count(types[index], outcome.status, messageIdOf(shape.events[index])))
  return shape.batch ? answerBatch(c, shape.events, outcomes) : answerOne(c, outcomes[0])
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

export default { fetch: app.fetch }

// ---------------------------------------------------------------------------

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

/** A reason no identify or track can be delivered now; they are answered 503 so Segment retries. */
function configurationProblem(config: Config): string | undefined {
  if (config.problems.length) return `Configuration error: ${config.problems.join('; ')}`
  if (!config.apiKey) return 'AUTOPILOT_API_KEY is not set (wrangler secret put AUTOPILOT_API_KEY); nothing was sent'
  return undefined
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
  return c.json({ status, message, ...(issues && { issues }) }, outcome.httpStatus as 200)
}

/**
 * 200 with a result per event when each was delivered, skipped or permanently
 * rejected; 503 (or 429 when every retryable failure was a rate limit) when any
 * can succeed later — Segment then re-sends the whole batch.
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
  if (!retryable.length) return c.json({ message: summary, results }, 200)
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
