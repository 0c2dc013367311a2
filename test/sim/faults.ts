// The simulation's faults: one seeded source decides, at every D1 statement, destination call
// and queue send, whether it fails and how. A crash ("the isolate stops between two calls")
// freezes every later I/O of the invocation it hits: D1 statements never run, calls never
// reach the destination, queue sends fail; the invocation's timers then run out and it ends
// with no effect, as a stopped isolate would.
import { mulberry32 } from '../../sandbox/network.js'

/** How a D1 statement (or atomic batch) goes: as asked, failed before or after it commits, slower than the timeout, or a crash. */
export type StoreFault = 'ok' | 'fail-before' | 'fail-after' | 'slow' | 'crash'
/** How a destination call goes: as the stand-in answers, or one of these. */
export type CallFault = 'ok' | 'odd-2xx' | '400' | '404' | '429-wait' | '429' | '5xx' | 'hang' | 'reset' | 'crash'

const STORE_FAULTS: StoreFault[] = ['fail-before', 'fail-after', 'fail-after', 'slow', 'crash']
// 429 with a wait costs a real second (the pacer's pause): rarer than the others.
const CALL_FAULTS: CallFault[] = ['odd-2xx', '400', '404', '429', '5xx', '5xx', 'hang', 'reset', 'crash', '429-wait']

export class Faults {
  private random: () => number
  /** Faults stop (the final phase): everything answers. */
  on = true
  /** The current invocation was crashed: its later I/O is frozen. */
  frozen = false
  readonly seen: Record<string, number> = {}
  /** The last I/O steps and their faults, for a report. */
  readonly trace: string[] = []

  constructor(
    seed: number,
    /** Share of I/O steps that fail, 0..1. */
    readonly rate: number,
  ) {
    this.random = mulberry32(seed)
  }

  private pick<T extends string>(list: T[], what: string): T | 'ok' {
    const fault = !this.on || this.random() >= this.rate ? 'ok' : list[Math.floor(this.random() * list.length)]
    if (fault !== 'ok') this.seen[fault] = (this.seen[fault] ?? 0) + 1
    this.trace.push(`${what}: ${fault}`)
    if (this.trace.length > 30) this.trace.shift()
    return fault
  }

  store(what: string): StoreFault {
    return this.pick(STORE_FAULTS, what)
  }

  call(what: string): CallFault {
    return this.pick(CALL_FAULTS, what)
  }

  queueSend(): boolean {
    return this.pick(['refused'], 'queue send') === 'ok'
  }
}

const never = <T>() => new Promise<T>(() => {})
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

/**
 * Statements still running after the store stopped waiting for them (slow, past its timeout): one
 * may land after its sequence ended, so the next sequence waits for them before it empties the
 * database — else a straggler from the last sequence (a parked row, a claim) shows up in the next.
 */
const inFlight = new Set<Promise<unknown>>()
export async function settleStragglers(): Promise<void> {
  while (inFlight.size) await Promise.allSettled([...inFlight])
}
const tracked = <T>(promise: Promise<T>): Promise<T> => {
  inFlight.add(promise)
  void promise.then(
    () => inFlight.delete(promise),
    () => inFlight.delete(promise),
  )
  return promise
}

/** A D1 binding whose statements fail as `faults` decides (each statement of a batch() once, as the whole). */
export function faultyDb(inner: D1Database, faults: Faults, slowMs: number): D1Database {
  function apply<T>(what: string, run: () => Promise<T>): Promise<T> {
    if (faults.frozen) return never()
    const fault = faults.store(what)
    if (fault === 'crash') {
      faults.frozen = true
      return never() // never run: nothing to wait for
    }
    return tracked(applyFault(fault, run))
  }
  async function applyFault<T>(fault: StoreFault, run: () => Promise<T>): Promise<T> {
    if (fault === 'fail-before') throw new Error('D1_ERROR: injected failure before commit')
    if (fault === 'slow') {
      await sleep(slowMs)
      return run()
    }
    const result = await run()
    if (fault === 'fail-after') throw new Error('D1_ERROR: injected failure after commit (the answer was lost)')
    return result
  }
  type Wrapped = { sql: string; inner: D1PreparedStatement }
  const label = (sql: string) => sql.replace(/\s+/g, ' ').trim().slice(0, 40)
  const wrap = (sql: string, statement: D1PreparedStatement): Wrapped & Record<string, unknown> => ({
    sql,
    inner: statement,
    bind: (...values: unknown[]) => wrap(sql, statement.bind(...values)),
    all: () => apply(label(sql), () => statement.all()),
    run: () => apply(label(sql), () => statement.run()),
    first: (column?: string) => apply(label(sql), () => statement.first(column as string)),
    raw: () => apply(label(sql), () => statement.raw()),
  })
  return {
    prepare: (sql: string) => wrap(sql, inner.prepare(sql)),
    batch: (list: Wrapped[]) => apply(`batch [${list.map((s) => label(s.sql)).join(' | ')}]`, () => inner.batch(list.map((s) => s.inner))),
    exec: (query: string) => inner.exec(query),
  } as unknown as D1Database
}

/** Hangs until the caller gives up (its AbortSignal), as a silent server does. */
function hang(request: Request): Promise<Response> {
  return new Promise((_, reject) => request.signal.addEventListener('abort', () => reject(request.signal.reason)))
}

/** The destination's stand-in behind `faults`: each call answered by the stand-in, or by the fault drawn for it. */
export function faultyDestination(
  standIn: { fetch: (request: Request) => Promise<Response>; inject: (...faults: { status: number; retryAfter?: string; tryInSeconds?: number }[]) => void },
  faults: Faults,
) {
  return async (request: Request): Promise<Response> => {
    if (faults.frozen) return hang(request)
    const fault = faults.call(`${request.method} ${new URL(request.url).pathname}`)
    switch (fault) {
      case 'crash':
        faults.frozen = true
        return hang(request)
      case 'hang':
        return hang(request)
      case 'reset':
        throw new TypeError('Network connection lost.')
      case 'odd-2xx': {
        // The call went through, and the answer is a 2xx of a shape the API does not document.
        const answer = await standIn.fetch(request)
        return answer.ok ? Response.json({ unexpected: true }, { status: answer.status === 204 ? 200 : answer.status }) : answer
      }
      case 'ok':
        return standIn.fetch(request)
      default: {
        // The stand-in answers in its own error shape (a 429 with its own wait field or header).
        const status = fault === '5xx' ? 503 : Number(fault.slice(0, 3))
        standIn.inject({ status, ...(fault === '429-wait' ? { retryAfter: '1', tryInSeconds: 1 } : { tryInSeconds: 0 }) })
        return standIn.fetch(request)
      }
    }
  }
}
