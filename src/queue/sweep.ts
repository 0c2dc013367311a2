// The cron sweep: parked events older than PARK_DAYS are logged (ids and types, no
// personal data) and removed; parked events whose userId's email is known now (a
// replay that failed, an email learned by another request meanwhile), and aliases whose
// other id's is (replayable() below), are replayed —
// through the queue in queued mode, delivered at once in direct mode; old ledger
// entries (LEDGER_DAYS, in bounded ranges of its keys: src/store/ledger.ts) and contact
// guards are pruned.
import { ALERT_STATE_KEY, runAlerts } from './alerts'
import { pruneHistory } from '../store/history'
import { pruneCheckpoints } from '../store/checkpoints'
import { configurationProblem, getConfig, type Env } from '../config'
import { hashIn, PARK_DAYS, withEmail } from '../pipeline/identity'
import { RequestLog } from '../log'
import { deliverEvents } from '../pipeline/pipeline'
import { enqueue } from './queue'
import { deliveryRun } from '../pipeline/run'
import { Sql } from '../store/sql'
import { emptyWrites, Store } from '../store/store'
import { LAST_SWEEP_KEY, StoreAdmin } from '../store/store-admin'
import { PRUNE_CURSOR_KEY, pruneLedger } from '../store/ledger'

const DAY_MS = 24 * 3600 * 1000
/** Parked events replayed per run (the rest next run, 30 minutes later). */
const REPLAYS_PER_RUN = 1000
/** Expired parked events logged and removed per run (the rest next run). */
const EXPIRED_PER_RUN = 5000
const KEEP_GUARDS_MS = 30 * DAY_MS
/** D1 queries the sweep keeps for all but the ledger's prune (a direct-mode replay makes up to 19, the rest about 15). */
const SWEEP_OWN_QUERIES = 30
/** At most this many prune queries a run (100 million rows at 250,000 a query; a few minutes of the cron's 15). */
const MAX_PRUNE_QUERIES = 400

export async function sweep(env: Env): Promise<void> {
  if (!env.DB) return
  const config = getConfig(env)
  const sql = new Sql(env.DB, config.storeTimeoutMs)
  const store = new Store(sql)
  const storeAdmin = new StoreAdmin(sql)
  const log = new RequestLog(`sweep:${crypto.randomUUID()}`, env.ANALYTICS, config.destination.id)
  const result = { expired: 0, replayed: 0, waiting: 0, pruned: { messages: 0, guards: 0, queries: 0, complete: true } }
  let pruneCursor: number | undefined
  const now = Date.now()
  try {
    // Logged, then removed by id: a removal whose answer is lost is repeated safely, and one
    // that fails leaves them to be logged and removed next time (never removed unlogged).
    const expired = await storeAdmin.expiredParked(now - PARK_DAYS * DAY_MS, EXPIRED_PER_RUN)
    for (const { messageId, type, parkedAt } of expired) {
      console.log(JSON.stringify({ event: 'parked-event-expired', messageId, type, parkedDays: Math.floor((now - parkedAt) / DAY_MS) }))
    }
    await storeAdmin.removeParked(expired.map((row) => row.id))
    result.expired = expired.length
    const rows = configurationProblem(config) ? [] : await replayable(store, storeAdmin)
    if (rows.length && env.EVENTS) {
      await enqueue(
        env.EVENTS,
        rows.map((row) => ({ event: withEmail(row.event, row.email), at: row.parkedAt })),
      )
      await store.write({ ...emptyWrites(), unpark: rows.map((row) => row.id) })
      result.replayed = rows.length
    } else if (rows.length) {
      const outcomes = await deliverEvents(
        rows.map((row) => ({ event: row.event, at: row.parkedAt, parked: { id: row.id, email: row.email, taughtAt: row.taughtAt } })),
        deliveryRun('sweep', { config, store, log, started: now }),
      )
      outcomes.forEach((outcome, i) => log.countReplay(rows[i].event.type, outcome.status, rows[i].event.messageId ?? undefined))
      result.replayed = outcomes.filter((outcome) => outcome.status !== 'retry').length
      result.waiting = rows.length - result.replayed
    }
    // The ledger in ranges, within the invocation's queries; what is left, the next run goes on with.
    const ledger = await pruneLedger(sql, now - config.ledgerMs, await storeAdmin.pruneCursor(), Math.min(MAX_PRUNE_QUERIES, config.plan.queriesPerInvocation - SWEEP_OWN_QUERIES))
    pruneCursor = ledger.cursor
    result.pruned = { messages: ledger.deleted, guards: await storeAdmin.pruneGuards(now - KEEP_GUARDS_MS), queries: ledger.queries, complete: ledger.complete }
    if (config.destination.creates) await storeAdmin.creations().prune()
    await pruneHistory(sql, now)
    await pruneCheckpoints(sql, now)
  } catch (error) {
    log.fields.error = error instanceof Error ? `${error.name}: ${error.message.slice(0, 200)}` : 'unknown'
  } finally {
    // Alerts never break the sweep: a failure here is logged, and they go next time.
    const alerts = await runAlerts(config, sql, storeAdmin, now).catch((error: unknown) => {
      log.problem('alerts', error instanceof Error ? error.message : 'unknown error')
      return undefined
    })
    if (alerts?.posted.length) log.fields.alerts = alerts.posted
    // What the operator page (GET /admin) shows as the last sweep: one write per sweep, counts only.
    const summary = { at: now, ms: Date.now() - now, ...result, ...(log.fields.error !== undefined && { error: log.fields.error }) }
    const cache = [
      { key: LAST_SWEEP_KEY, value: JSON.stringify(summary) },
      ...(alerts ? [{ key: ALERT_STATE_KEY, value: JSON.stringify(alerts.state) }] : []),
      ...(pruneCursor !== undefined ? [{ key: PRUNE_CURSOR_KEY, value: String(pruneCursor) }] : []),
    ]
    await store.write({ ...emptyWrites(), cache }).catch((error: unknown) => {
      log.problem('last sweep', error instanceof Error ? error.message : 'unknown error')
    })
    log.fields.d1 = sql.stats
    log.emit({ kind: 'sweep', sweep: result })
  }
}

/**
 * Parked events whose email is known now: by their own id, or by the other id of an alias whose
 * own id has none — its tie refused by a delete's tombstone, and the run that was to replay it
 * failed. Replayed, such an alias carries that delete to the email (else it waited to expire and
 * the person stayed; found by a review).
 */
async function replayable(store: Store, storeAdmin: StoreAdmin) {
  const rows = await storeAdmin.resolvableParked(REPLAYS_PER_RUN)
  if (rows.length >= REPLAYS_PER_RUN) return rows
  const stranded = await storeAdmin.strandedAliases(REPLAYS_PER_RUN - rows.length)
  if (!stranded.length) return rows
  const hashes = new Map<string, string>()
  const others = stranded.map(({ event, userHash }) =>
    [event.userId, event.type === 'alias' ? event.previousId : undefined].map((id) => (id ? hashIn(hashes, id) : undefined)).find((hash) => hash !== undefined && hash !== userHash),
  )
  // The other ids' emails and the rows' message states, in one query.
  const known = await store.read({ users: others.filter((hash): hash is string => hash !== undefined), emails: [], messages: stranded.flatMap((row) => (row.messageId ? [row.messageId] : [])) })
  const found = stranded.flatMap((row, i) => {
    const hash = others[i]
    const other = hash === undefined ? undefined : known.identities.get(hash)
    if (!other?.email) return []
    const state = row.messageId ? known.messages.get(row.messageId) : undefined
    return [{ ...row, ...(state && { state }), email: other.email, emailHash: hashIn(hashes, other.email), taughtAt: other.taughtAt }]
  })
  return [...rows, ...found]
}
