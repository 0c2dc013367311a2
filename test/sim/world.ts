// The world one simulated sequence runs in: a fresh database behind the fault layer, the
// destination's stand-in behind it, Segment (re-sending what was answered retry), Cloudflare
// Queues (at-least-once, whole-message retries, the dead-letter queue after max_retries, a
// message delivered again after its ack), the cron sweep and the redrive endpoint.
import { entered } from '../../src/pipeline/conclude'
import { resetPacers } from '../../src/pipeline/pacer'
import { forgetRefusals } from '../../src/destinations/ortto/client'
import { sweep } from '../../src/queue/sweep'
import { DEAD_LETTER_QUEUE, EVENTS_QUEUE } from '../../src/queue/queue'
import { db, rows, setup, setupOrtto, type Loose } from '../helpers'
import { history } from '../../src/store/history'
import { Faults, faultyDb, faultyDestination, settleStragglers } from './faults'

export type Destination = 'autopilot' | 'ortto'
export type Mode = 'direct' | 'queued'

/** Timeouts short enough that a hang, a slow statement or a crashed invocation costs tens of ms. */
const STORE_TIMEOUT_MS = 60
const CALL_TIMEOUT_MS = 60
/** Cloudflare Queues' max_retries for the events queue (wrangler.toml). */
const MAX_RETRIES = 20
/** No invocation takes this long (Segment waits 5 s): one that does is stuck. */
const STUCK_MS = 15_000
const ADMIN_TOKEN = 'sim-admin-token-5d1e'

interface QueuedMessage {
  id: string
  body: unknown
  attempts: number
}

/** What Segment saw for each messageId, in order, and what the Worker logged. */
export interface Observed {
  answers: Map<string, { status: string; message: string }[]>
  /** Journey entries made by invocations that then crashed, by event name. */
  enteredBeforeCrash: Map<string, number>
  /** messageIds of invocations whose write and its fallback both failed (the log names the 'confirm' problem). */
  unrecorded: Set<string>
  /**
   * Told the messageIds a consumer batch put back having recorded nothing — it crashed, or found
   * D1 unreadable: they come again later, after what came meanwhile (docs/state.md, Newest wins).
   */
  onCrashedConsume?: (messageIds: string[]) => void
}

/** Where each mapped event name enters: Autopilot trigger ids, Ortto activity ids (test/helpers.ts settings). */
export const ENTRY_IDS = {
  autopilot: { 'Step Activated': '0001', 'Order Completed': '0002' },
  ortto: { 'Step Activated': 'act:cm:step-activated', 'Order Completed': 'act:cm:order-completed' },
} as const

/** Every table emptied (cheaper than a new database per sequence; the schema stays). */
async function emptyTables() {
  history.forget()
  const tables = await rows<{ name: string }>("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' AND name NOT LIKE '_cf_%' AND name <> 'd1_migrations'")
  await db().batch(tables.map(({ name }) => db().prepare(`DELETE FROM "${name}"`)))
}

let debug = false
/** Prints every destination call, its fault and answer, and each answer to Segment (SIM_DEBUG=calls). */
export const setDebug = (on: boolean) => (debug = on)

export async function world(destination: Destination, mode: Mode, faults: Faults) {
  await settleStragglers()
  await emptyTables()
  entered.clear()
  const pending: QueuedMessage[] = []
  const acked: QueuedMessage[] = []
  let ids = 0
  const queue = {
    async send(body: unknown) {
      await queue.sendBatch([{ body }])
    },
    async sendBatch(messages: Iterable<MessageSendRequest<unknown>>) {
      if (faults.frozen || !faults.queueSend()) throw new Error('Queue is unavailable')
      for (const m of messages) pending.push({ id: `q${++ids}`, body: m.body, attempts: 1 })
    },
  } as unknown as Queue<unknown>
  const env = {
    DB: faultyDb(db(), faults, STORE_TIMEOUT_MS + 30),
    STORE_TIMEOUT_MS: String(STORE_TIMEOUT_MS),
    AUTOPILOT_TIMEOUT_MS: String(CALL_TIMEOUT_MS),
    ORTTO_TIMEOUT_MS: String(CALL_TIMEOUT_MS),
    AUTOPILOT_MAX_RPS: '100000',
    ORTTO_MAX_RPS: '100000',
    ADMIN_TOKEN,
    ...(mode === 'queued' && { EVENTS: queue }),
  }
  const base = destination === 'ortto' ? setupOrtto(env, { ban: false }) : setup(env)
  const standIn = destination === 'ortto' ? (base as ReturnType<typeof setupOrtto>).ortto : base.autopilot
  const destinationFetch = faultyDestination(standIn as Parameters<typeof faultyDestination>[0], faults)
  base.fetchSpy.mockImplementation(async (input: RequestInfo | URL, init?: RequestInit) => {
    const request = new Request(input, init)
    const body = debug && request.method !== 'GET' ? await request.clone().text() : ''
    const response = await destinationFetch(request).catch((error: unknown) => {
      if (debug) console.warn(`  call ${request.method} ${new URL(request.url).pathname} ${body.slice(0, 300)} -> ${String(error)} [${faults.trace.at(-1)}]`)
      throw error
    })
    if (debug)
      console.warn(`  call ${request.method} ${new URL(request.url).pathname} ${body.slice(0, 300)} -> ${response.status} ${(await response.clone().text()).slice(0, 200)} [${faults.trace.at(-1)}]`)
    return response
  })
  const observed: Observed = { answers: new Map(), enteredBeforeCrash: new Map(), unrecorded: new Set() }
  /** Journey entries (Autopilot) or activities (Ortto) the stand-in holds, by mapped event name. */
  const entries = (): Map<string, number> => {
    const list: { id: string }[] =
      destination === 'ortto'
        ? (standIn as unknown as { activities: { activity_id: string }[] }).activities.map((a) => ({ id: a.activity_id }))
        : base.autopilot.enrolments.map((e) => ({ id: e.triggerId }))
    return new Map(Object.entries(ENTRY_IDS[destination]).map(([name, id]) => [name, list.filter((e) => e.id === id).length]))
  }

  /** One invocation (of these messageIds): a crash inside it freezes its I/O until it ends; then the isolate is new. */
  async function invocation<T>(run: () => Promise<T>, messageIds: string[] = []): Promise<T | 'crashed'> {
    // Segment and Queues waited as long as they were told: no pause carries over.
    resetPacers()
    forgetRefusals()
    const before = entries()
    const linesBefore = base.logLines().length
    let timer: ReturnType<typeof setTimeout> | undefined
    const stuck = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`an invocation still running after ${STUCK_MS} ms; last I/O: ${faults.trace.join(', ')}`)), STUCK_MS)
    })
    try {
      const result = await Promise.race([run(), stuck])
      if (debug) console.warn(`  faults among the last 30 I/O steps: ${faults.trace.filter((t) => !t.endsWith(': ok')).join(' / ')}`)
      return faults.frozen ? 'crashed' : result
    } catch (error) {
      if (faults.frozen) return 'crashed'
      throw error
    } finally {
      if (timer !== undefined) clearTimeout(timer)
      // Entered, then stopped before the ledger recorded it — a crash, or the write and its fallback
      // both failing (the log names the 'confirm' problem): a lease later lets it go again (the
      // documented residuals: docs/state.md, "a trigger whose answer was lost", two D1 failures).
      const unconfirmed = base
        .logLines()
        .slice(linesBefore)
        .some((line) => (line.problems as Record<string, unknown> | undefined)?.confirm !== undefined)
      if (unconfirmed) for (const id of messageIds) observed.unrecorded.add(id)
      if (faults.frozen || unconfirmed) {
        for (const [name, n] of entries()) {
          const extra = n - (before.get(name) ?? 0)
          if (extra > 0) observed.enteredBeforeCrash.set(name, (observed.enteredBeforeCrash.get(name) ?? 0) + extra)
        }
      }
      if (faults.frozen) {
        faults.frozen = false
        entered.clear() // the isolate's memory went with it
      }
    }
  }

  const note = (messageId: string | undefined, status: string, message: string) => {
    if (!messageId) return
    const list = observed.answers.get(messageId) ?? []
    list.push({ status, message })
    observed.answers.set(messageId, list)
  }

  /** Segment sends a batch (one event: the event alone); true when it is done with it (not retry). */
  async function send(events: Loose[]): Promise<boolean> {
    const answer = await invocation(
      async () => {
        const response = await base.post(events.length === 1 ? events[0] : { batch: events })
        return { status: response.status, body: (await response.json()) as Loose }
      },
      events.map((e) => e.messageId),
    )
    if (debug) console.warn(`segment sent ${events.map((e) => e.messageId).join(',')} -> ${answer === 'crashed' ? 'crashed' : `${answer.status} ${JSON.stringify(answer.body).slice(0, 1400)}`}`)
    if (answer === 'crashed') return false
    const { status, body } = answer
    if (status >= 500 && status !== 503) throw new Error(`a bare ${status}: ${JSON.stringify(body).slice(0, 300)}`)
    if (typeof body?.message !== 'string') throw new Error(`an answer with no message: ${status}`)
    if (events.length === 1) note(events[0].messageId, body.status ?? (status < 300 ? 'ok' : 'retry'), body.message)
    else {
      const listed = new Map<number, Loose>((body.results ?? []).map((r: Loose) => [r.index, r]))
      for (const [i, event] of events.entries()) {
        const r = listed.get(i)
        note(event.messageId, r ? r.status : status < 300 ? 'ok' : 'retry-batch', r?.message ?? body.message)
      }
    }
    return status < 400 || (status >= 400 && status < 429 && status !== 408)
  }

  /** Queues hands the consumer up to `max` messages; what is not acked goes back, and to the DLQ after max_retries. */
  async function consumeSome(max = 100): Promise<number> {
    const batch = pending.splice(0, max)
    if (!batch.length) return 0
    const messageIds: string[] = batch.flatMap((m) => ((m.body as Loose).items ?? []).map((i: Loose) => i.event?.messageId))
    const linesBefore = base.logLines().length
    const result = await invocation(() => base.consume(batch.map((m) => ({ id: m.id, body: m.body, attempts: m.attempts }))), messageIds)
    const retried = result === 'crashed' ? new Set(batch.map((m) => m.id)) : new Set(retriedIds(result))
    if (result === 'crashed') observed.onCrashedConsume?.(messageIds)
    else {
      // The batch read failed: what it put back recorded nothing, as if it had crashed.
      const unread = base
        .logLines()
        .slice(linesBefore)
        .filter((line) => line.kind === 'queue' && (line.problems as Record<string, unknown> | undefined)?.read !== undefined)
      const again = unread.flatMap((line) => ((line.notDelivered ?? []) as { messageId: string; outcome: string }[]).filter((n) => n.outcome === 'retry').map((n) => n.messageId))
      if (again.length) observed.onCrashedConsume?.(again)
    }
    if (debug)
      console.warn(
        `queue consumed ${batch.map((m) => `${m.id}[${(m.body as Loose).items?.map((i: Loose) => i.event?.messageId).join(',')}]`).join(' ')} -> ${result === 'crashed' ? 'crashed' : `retried ${[...retried].join(',') || 'none'}`}`,
      )
    const dead: QueuedMessage[] = []
    for (const message of batch) {
      if (!retried.has(message.id)) acked.push(message)
      else if (message.attempts > MAX_RETRIES) dead.push(message)
      else pending.push({ ...message, attempts: message.attempts + 1 })
    }
    if (dead.length) {
      const stored = await invocation(() =>
        base.consume(
          dead.map((m) => ({ id: m.id, body: m.body, attempts: m.attempts })),
          DEAD_LETTER_QUEUE,
        ),
      )
      // Not stored: the dead-letter queue retries them (here: they stay dead, tried again on the next drain).
      if (stored === 'crashed' || retriedIds(stored).length) deadQueue.push(...dead)
    }
    return batch.length
  }
  const deadQueue: QueuedMessage[] = []

  const retriedIds = (result: Awaited<ReturnType<typeof base.consume>>) => result.retryMessages.map((m: { msgId: string }) => m.msgId)

  /** Drains the queue (the dead-letter queue too): at most `rounds` consumer invocations. */
  async function drain(rounds = 60): Promise<void> {
    for (let i = 0; i < rounds && (pending.length || deadQueue.length); i++) {
      if (pending.length) await consumeSome()
      else {
        const dead = deadQueue.splice(0)
        const stored = await invocation(() =>
          base.consume(
            dead.map((m) => ({ id: m.id, body: m.body, attempts: m.attempts })),
            DEAD_LETTER_QUEUE,
          ),
        )
        if (stored === 'crashed' || retriedIds(stored).length) deadQueue.push(...dead)
      }
    }
  }

  /** Queues delivers a message again after its ack (at least once). */
  function redeliver(which: number) {
    if (!acked.length) return
    const message = acked[which % acked.length]
    pending.push({ ...message, id: `q${++ids}`, attempts: 1 })
  }

  async function redrive(): Promise<void> {
    await invocation(() => base.request(new Request('https://worker.test/dead-letters/redrive', { method: 'POST', headers: { authorization: `Bearer ${ADMIN_TOKEN}` } })))
  }

  async function runSweep(): Promise<void> {
    await invocation(() => sweep(base.env))
  }

  return { base, standIn, observed, entries, send, consumeSome, drain, redeliver, redrive, runSweep, pending, deadQueue, queueName: EVENTS_QUEUE }
}

export type World = Awaited<ReturnType<typeof world>>
