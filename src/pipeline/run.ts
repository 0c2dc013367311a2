// One factory for a delivery run, used by all four entry points (a Segment request in
// direct mode, a queue batch, the sweep, a dead-letter redrive): the destination's pace,
// the gate's budget and deadline for that kind of run, how long its journey claims last,
// and what it tells the log.
import type { Config } from '../config'
import type { CallOptions, CallRecord } from '../destinations/transport'
import { Gate } from './gate'
import type { Item } from './identity'
import type { RequestLog } from '../log'
import type { Outcome } from './outcome'
import { pacerFor } from './pacer'
import type { Store } from '../store/store'
import { CreationLog } from '../store/creations'
import type { Checkpoints, Creations } from '../destinations/destination'
import { CheckpointLog } from '../store/checkpoints'

export type RunKind = 'request' | 'queue' | 'sweep' | 'redrive'

export interface DeliveryRun {
  store: Store
  config: Config
  /** The gate and the log hook every destination call goes through. */
  calls: CallOptions
  /** Who claims journey entries (a request or batch id), and for how long (ms). */
  claimant: string
  leaseMs: number
  /** When anything is left to retry, record what finished so the re-send (Segment's, or Queues' redelivery) skips it. */
  recordProgress: boolean
  /** Queued mode: ledger keys recorded as done with the run's one write, given its outcomes (the messages it finished); those written go in `recorded`. */
  finished?: { keys: (outcomes: Outcome[]) => string[]; recorded: Set<string> }
  /** Direct mode: a retry in the answer makes Segment re-send the whole request, deliveries too (their progress skips them). */
  resendsWhole?: boolean
  /** Direct mode: when the answer is due (epoch ms); the final write gets only the time left. */
  answerBy?: number
  /** Queued mode: the reason to dead-letter an item with this outcome, if it should be. */
  deadLetter?: (item: Item, outcome: Outcome) => string | undefined
  /** Told how each replayed parked event ended, for the log. */
  onReplay?: (type: string, status: string, messageId?: string) => void
  /** Told what went wrong without stopping the run (a store failure, an unreadable field list), for the log. */
  onProblem?: (stage: string, message: string) => void
  /** What the destination creates in its account, and the day's cap on it (shared through D1). */
  creations: Creations
  /** What a destination must finish on the re-send (D1). */
  checkpoints: Checkpoints
  /** Every destination call this run made, for the delivery history. */
  callRecords: CallRecord[]
  /** Work that may outlive the answer (the history's timer): the invocation's waitUntil. */
  waitUntil?: (promise: Promise<unknown>) => void
}

/** A claim outlives any attempt still running: Segment waits 5 s, a consumer 5 min, the sweep 1 min. */
const LEASE_MARGIN_MS = 10 * 60_000
/** After the last call may end (DIRECT_DEADLINE_MS), what the final D1 write may take. */
const FINAL_WRITE_MS = 700
/** A queue consumer stops starting calls after this; what is left goes back on the queue. */
export const CONSUMER_BUDGET_MS = 5 * 60_000
/** Paid plan caps subrequests at 1,000 per invocation (older accounts) or more. */
const CONSUMER_MAX_CALLS = 1000
const SWEEP_BUDGET_MS = 60_000

export function deliveryRun(
  kind: RunKind,
  { config, store, log, started = Date.now(), waitUntil }: { config: Config; store: Store; log: RequestLog; started?: number; waitUntil?: (promise: Promise<unknown>) => void },
): DeliveryRun {
  const { destination } = config
  const direct = kind !== 'queue'
  const budgetMs = kind === 'queue' ? CONSUMER_BUDGET_MS : kind === 'sweep' ? SWEEP_BUDGET_MS : config.deadlineMs
  const gate = new Gate({
    pacer: pacerFor(destination.maxRps, destination.id),
    maxCalls: direct ? destination.maxCalls : CONSUMER_MAX_CALLS,
    deadline: started + budgetMs,
    unavailableLimit: direct ? 2 : 5,
    // Direct mode: Segment re-sends later. Queued mode: a 429 means "slower", not "failed".
    stopOnRateLimit: direct,
  })
  const callRecords: CallRecord[] = []
  const onCall = (record: CallRecord) => {
    callRecords.push(record)
    log.onCall(record)
  }
  return {
    store,
    config,
    callRecords,
    calls: { onCall, gate, maxPauseSeconds: config.maxPauseSeconds, ...(!direct && { retries: { rateLimited: 5, unavailable: 2 } }) },
    claimant: log.requestId,
    leaseMs: budgetMs + LEASE_MARGIN_MS,
    recordProgress: kind === 'request' || kind === 'queue',
    ...(kind === 'request' && { answerBy: started + config.deadlineMs + FINAL_WRITE_MS, resendsWhole: true }),
    onProblem: log.problem,
    // A hold on a definition being created ends when this run's answer is due: none outlives it.
    creations: new CreationLog(store.sql, started + budgetMs + FINAL_WRITE_MS),
    checkpoints: new CheckpointLog(store.sql),
    ...(kind !== 'sweep' && { onReplay: log.countReplay }),
    ...(waitUntil && { waitUntil }),
  }
}
