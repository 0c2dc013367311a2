import { applyD1Migrations, createExecutionContext, createMessageBatch, env as testEnv, getQueueResult, waitOnExecutionContext } from 'cloudflare:test'
import { expect, vi } from 'vitest'
import { createAutopilot, type AutopilotOptions } from '../sandbox/autopilot.js'
import { createOrtto, type OrttoOptions } from '../sandbox/ortto.js'
import { segmentSignature } from '../scripts/sign.js'
import { ACTIVITIES as ORTTO_ACTIVITIES, FIELDS as ORTTO_FIELDS } from './ortto-helpers'
import type { Env } from '../src/config'
import worker from '../src'
import { resetPacers } from '../src/pipeline/pacer'
import { history } from '../src/store/history'
import { forgetRefusals } from '../src/destinations/ortto/client'

export const API_KEY = 'ap-test-key-5f2c9d1e'
export const SECRET = 'segment-shared-secret-7a1b'
export const TOKEN = 'webhook-token-91c3e0f4d2'
export const BASE_URL = 'https://autopilot.test/v1'

export const encoder = new TextEncoder()

/** Segment's X-Signature (scripts/sign.js, shared with npm run send, cost and bench). */
export const sign = (text: string, secret = SECRET): Promise<string> => segmentSignature(text, secret)

export interface PostOptions {
  /** 'body' (default) signs the raw body; 'none' sends no signature; a string is sent as is. */
  signature?: 'body' | 'none' | string
  headers?: Record<string, string>
  method?: string
  path?: string
}

/**
 * A Worker wired to a fresh in-memory Autopilot: every outbound fetch of the
 * Worker (same isolate) is answered by the stand-in.
 */
export function setup(env: Partial<Env> = {}, autopilotOptions: AutopilotOptions = {}) {
  resetPacers()
  const autopilot = createAutopilot({ apiKey: API_KEY, ...autopilotOptions })
  const fetchSpy = vi.spyOn(globalThis, 'fetch').mockImplementation(async (input: RequestInfo | URL, init?: RequestInit) => autopilot.fetch(new Request(input, init)))
  const logs: string[] = []
  const logSpy = vi.spyOn(console, 'log').mockImplementation((...args: unknown[]) => {
    logs.push(args.map(String).join(' '))
  })
  const fullEnv: Env = {
    AUTOPILOT_API_KEY: API_KEY,
    SEGMENT_SHARED_SECRET: SECRET,
    AUTOPILOT_BASE_URL: BASE_URL,
    AUTOPILOT_TRIGGERS: JSON.stringify({ 'Step Activated': '0001', 'Order Completed': '0002' }),
    // Tests that are not about pacing do not wait for Autopilot's 5 r/s.
    AUTOPILOT_MAX_RPS: '1000',
    // Tests that are not about the account's custom fields do not read them (test/account.test.ts does).
    AUTOPILOT_FIELDS_REFRESH_SECONDS: '0',
    // The delivery history with every write, so a test sees its counts at once (test/history.test.ts tests the minute).
    HISTORY_FLUSH_SECONDS: '0',
    DB: testEnv.DB,
    ...env,
  }

  async function request(input: Request): Promise<Response> {
    const ctx = createExecutionContext()
    const response = await worker.fetch(input, fullEnv, ctx)
    await waitOnExecutionContext(ctx)
    return response
  }

  async function post(body: unknown, options: PostOptions = {}): Promise<Response> {
    const text = typeof body === 'string' ? body : JSON.stringify(body)
    const headers: Record<string, string> = { 'content-type': 'application/json', ...options.headers }
    const signature = options.signature ?? 'body'
    if (signature === 'body') headers['x-signature'] = await sign(text)
    else if (signature !== 'none') headers['x-signature'] = signature
    return request(new Request(`https://worker.test${options.path ?? '/'}`, { method: options.method ?? 'POST', headers, body: text }))
  }

  async function get(path: string): Promise<Response> {
    return request(new Request(`https://worker.test${path}`))
  }

  /** Runs the queue consumer on messages (bodies, or {body, attempts, id}); `onAck` runs as each message is acknowledged. */
  async function consume(messages: (unknown | QueuedMessage)[], queueName = 'autopilot-events', { onAck }: { onAck?: () => void } = {}) {
    const batch = createMessageBatch(
      queueName,
      messages.map((message, i) => {
        const m = isQueuedMessage(message) ? message : { body: message }
        return { id: m.id ?? `msg-${i}`, timestamp: new Date(), attempts: m.attempts ?? 1, body: m.body }
      }),
    )
    // getQueueResult lists retried ids only: watch retry() for the delays.
    const delays: Record<string, number | undefined> = {}
    for (const message of batch.messages) {
      const original = message.retry.bind(message)
      vi.spyOn(message, 'retry').mockImplementation((options?: QueueRetryOptions) => {
        delays[message.id] = options?.delaySeconds
        original(options)
      })
      if (onAck) {
        const ack = message.ack.bind(message)
        vi.spyOn(message, 'ack').mockImplementation(() => {
          onAck()
          ack()
        })
      }
    }
    const ctx = createExecutionContext()
    await worker.queue(batch, fullEnv)
    const result = await getQueueResult(batch, ctx)
    return { ...result, retryMessages: result.retryMessages.map(({ msgId }: { msgId: string }) => ({ msgId, delaySeconds: delays[msgId] })) }
  }

  /** The JSON log lines the Worker wrote. */
  const logLines = () => logs.filter((line) => line.startsWith('{')).map((line) => JSON.parse(line) as Record<string, Loose>)

  return { autopilot, env: fullEnv, request, post, get, consume, fetchSpy, logSpy, logs, logLines }
}

export const identify = (traits: Record<string, unknown>, extra: Record<string, unknown> = {}) => ({
  type: 'identify',
  messageId: `m-${crypto.randomUUID()}`,
  userId: 'u-1',
  traits,
  ...extra,
})

export const track = (event: string, email: string | undefined, extra: Record<string, unknown> = {}) => ({
  type: 'track',
  messageId: `m-${crypto.randomUUID()}`,
  userId: 'u-1',
  event,
  properties: {},
  ...(email && { context: { traits: { email } } }),
  ...extra,
})

/** JSON as the tests read it: untyped, as JSON.parse gives it. */
export type Loose = ReturnType<typeof JSON.parse>

export async function json(response: Response): Promise<Loose> {
  expect(response.headers.get('content-type')).toMatch(/application\/json/)
  return response.json()
}

export interface QueuedMessage {
  body: unknown
  attempts?: number
  id?: string
}
const isQueuedMessage = (m: unknown): m is QueuedMessage => typeof m === 'object' && m !== null && 'body' in m && Object.keys(m).every((k) => ['body', 'attempts', 'id'].includes(k))

/** A queue producer that records what it is sent, or refuses. */
export function fakeQueue({ refuse = false } = {}) {
  const sent: { body: unknown; delaySeconds?: number }[] = []
  const batches: number[] = []
  const queue = {
    async send(body: unknown, options?: QueueSendOptions) {
      if (refuse) throw new Error('Queue is unavailable')
      sent.push({ body, delaySeconds: options?.delaySeconds })
    },
    async sendBatch(messages: Iterable<MessageSendRequest<unknown>>) {
      if (refuse) throw new Error('Queue is unavailable')
      const list = [...messages]
      batches.push(list.length)
      for (const m of list) sent.push({ body: m.body, delaySeconds: m.delaySeconds })
    },
  }
  return { queue: queue as unknown as Queue<unknown>, sent, batches }
}

/** The local D1 database (Miniflare), migrated. */
export const db = () => testEnv.DB!

/**
 * An empty, migrated database (storage is shared by the tests of one file). Every table is
 * dropped and the migrations applied again: cloudflare:test's reset() (which deletes the
 * Durable Objects behind D1) could leave the tables in place when files ran in parallel on a
 * busy machine, and the migrations then failed with "table identities already exists".
 */
export async function freshDb() {
  await emptyDb()
  await applyD1Migrations(testEnv.DB!, testEnv.TEST_MIGRATIONS)
}

/** A database with no table at all (a test that migrates step by step starts here). */
export async function emptyDb() {
  history.forget()
  const DB = testEnv.DB!
  const { results } = await DB.prepare("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' AND name NOT LIKE '\\_cf\\_%' ESCAPE '\\'").all<{
    name: string
  }>()
  if (results.length) await DB.batch(results.map(({ name }) => DB.prepare(`DROP TABLE "${name}"`)))
}

/** Rows of a table, for assertions. */
export async function rows<T = Record<string, unknown>>(sql: string, ...values: unknown[]): Promise<T[]> {
  return (
    await db()
      .prepare(sql)
      .bind(...values)
      .all<T>()
  ).results
}

/**
 * A test double in front of the D1 binding: counts statements (a batch() counts each, as
 * Cloudflare's per-invocation cap does) and, on demand, fails or delays those whose SQL
 * contains a given text.
 */
export function testDb(inner: D1Database = db()) {
  const faults: { match: string; times: number; delayMs?: number; fail: boolean; after?: boolean }[] = []
  const statements: string[] = []
  const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))
  async function apply(sqls: string[], after = false) {
    if (!after) statements.push(...sqls)
    for (const fault of faults) {
      if (Boolean(fault.after) !== after || fault.times <= 0 || !sqls.some((sql) => sql.includes(fault.match))) continue
      fault.times--
      if (fault.delayMs) await sleep(fault.delayMs)
      if (fault.fail) throw new Error(after ? 'D1_ERROR: Network connection lost.' : 'D1_ERROR: injected failure')
    }
  }
  /** Runs the query, then (a fault after it) throws though D1 applied it: the answer was lost. */
  const then = async <T>(sqls: string[], query: () => Promise<T>) => {
    await apply(sqls)
    const result = await query()
    await apply(sqls, true)
    return result
  }
  type Wrapped = { sql: string; inner: D1PreparedStatement }
  const wrap = (sql: string, statement: D1PreparedStatement): Wrapped & Record<string, unknown> => ({
    sql,
    inner: statement,
    bind: (...values: unknown[]) => wrap(sql, statement.bind(...values)),
    all: () => then([sql], () => statement.all()),
    run: () => then([sql], () => statement.run()),
    first: (column?: string) => then([sql], () => statement.first(column as string)),
    raw: () => then([sql], () => statement.raw()),
  })
  const wrapped = {
    prepare: (sql: string) => wrap(sql, inner.prepare(sql)),
    batch: (list: Wrapped[]) =>
      then(
        list.map((statement) => statement.sql),
        () => inner.batch(list.map((statement) => statement.inner)),
      ),
    exec: (query: string) => inner.exec(query),
  }
  return {
    db: wrapped as unknown as D1Database,
    /** Every statement run, in order. */
    statements,
    /** The next `times` statements containing `match` fail. */
    fail(match: string, times = 1) {
      faults.push({ match, times, fail: true })
    },
    /** The next `times` statements containing `match` are applied, but their answer is lost (an error instead). */
    lose(match: string, times = 1) {
      faults.push({ match, times, fail: true, after: true })
    },
    /** The next `times` statements containing `match` take `delayMs` longer. */
    delay(match: string, delayMs: number, times = 1) {
      faults.push({ match, times, delayMs, fail: false })
    },
    /** Every statement containing `match` fails until cleared. */
    down(match = '') {
      faults.push({ match, times: Infinity, fail: true })
    },
    up() {
      faults.length = 0
    },
  }
}

export const ORTTO_KEY = 'ortto-test-key-3c8e'
export const ORTTO_URL = 'https://api.ap3api.com/v1'

/** setup() with DESTINATION=ortto, every outbound call answered by a fresh Ortto stand-in with the test account. */
export function setupOrtto(env: Partial<Env> = {}, options: OrttoOptions = {}) {
  forgetRefusals()
  const ortto = createOrtto({ apiKey: ORTTO_KEY, customFields: ORTTO_FIELDS, activities: ORTTO_ACTIVITIES, ...options })
  const base = setup({
    DESTINATION: 'ortto',
    AUTOPILOT_API_KEY: undefined,
    ORTTO_API_KEY: ORTTO_KEY,
    ORTTO_BASE_URL: ORTTO_URL,
    ORTTO_ACTIVITIES: JSON.stringify({ 'Order Completed': 'act:cm:order-completed', 'Step Activated': 'act:cm:step-activated' }),
    ORTTO_MAX_RPS: '1000',
    ...env,
  })
  base.fetchSpy.mockImplementation(async (input: RequestInfo | URL, init?: RequestInit) => ortto.fetch(new Request(input, init)))
  const calls = (path: string) => ortto.calls.filter((call) => call.path === `/v1${path}`)
  return { ...base, ortto, calls }
}
