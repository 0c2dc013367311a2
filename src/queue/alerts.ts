// Alerts, from the cron sweep, to ALERT_WEBHOOK_URL (an incoming webhook of Slack, Discord's
// /slack endpoint, or Microsoft Teams: all take `{"text": …}`, which is what is sent). Five
// kinds: new dead letters since the last alert; more than ALERT_FAILURE_RATE of the last
// hour's destination calls failed; the setup check fails (key refused, a mapped journey or
// activity gone); parked events that expire within a day; the database past 80 % of the plan's
// cap. One post per kind per
// ALERT_EVERY_MINUTES, remembered in D1. Counts, kinds and reasons only: no email, userId or
// secret. A webhook that fails or hangs never breaks the sweep (the alerts go next time).
import type { Config } from '../config'
import { checkSetup } from '../setup'
import { readHistory, reasonKey, HOUR_MS } from '../store/history'
import type { Sql } from '../store/sql'
import type { StoreAdmin } from '../store/store-admin'
import { PARK_DAYS } from '../pipeline/identity'
import { sizeAlertFor } from '../store/size'

export const ALERT_STATE_KEY = 'alerts:state'
const DAY_MS = 24 * HOUR_MS
const WEBHOOK_TIMEOUT_MS = 5000
/** Fewer calls than this in the hour say nothing about a failure rate. */
const MIN_CALLS = 10

export type AlertKind = 'dead-letters' | 'failure-rate' | 'setup' | 'parked-expiring' | 'database-size'

export interface AlertState {
  /** When each kind was last posted. */
  sent: Partial<Record<AlertKind, number>>
  /** The newest dead letter an alert has covered. */
  deadLetterMax: number
  last?: { kind: AlertKind; at: number; text: string }
  /** The last post that failed, and why (status or timeout). */
  failed?: { at: number; reason: string }
}

export const noAlerts = (): AlertState => ({ sent: {}, deadLetterMax: 0 })

export async function readAlertState(sql: Sql): Promise<AlertState> {
  const row = await sql.first<{ value: string }>(sql.prepare('SELECT value FROM account_cache WHERE key = ?1').bind(ALERT_STATE_KEY))
  try {
    return row ? { ...noAlerts(), ...(JSON.parse(row.value) as AlertState) } : noAlerts()
  } catch {
    return noAlerts()
  }
}

/** What is wrong now, by kind, in words fit for a chat channel. */
async function findings(config: Config, sql: Sql, storeAdmin: StoreAdmin, state: AlertState, now: number): Promise<{ kind: AlertKind; text: string; deadLetterMax?: number }[]> {
  const found: { kind: AlertKind; text: string; deadLetterMax?: number }[] = []
  const { label } = config.destination
  const letters = await sql.first<{ n: number; top: number | null; reason: string | null }>(
    sql
      .prepare(
        `SELECT count(*) AS n, max(id) AS top,
           (SELECT reason FROM dead_letters WHERE id > ?1 GROUP BY reason ORDER BY count(*) DESC LIMIT 1) AS reason
         FROM dead_letters WHERE id > ?1`,
      )
      .bind(state.deadLetterMax),
  )
  if (letters && letters.n > 0) {
    found.push({
      kind: 'dead-letters',
      text: `${letters.n} new dead letters (most: “${reasonKey(letters.reason ?? '')}”). Open /admin to re-drive them.`,
      deadLetterMax: letters.top ?? state.deadLetterMax,
    })
  }
  const hours = await readHistory(sql, 2, now)
  const recent = hours.filter((row) => row.kind === 'call' && row.hour >= Math.floor((now - HOUR_MS) / HOUR_MS))
  const calls = recent.reduce((n, row) => n + row.n, 0)
  const failed = recent.filter((row) => row.key !== 'ok').reduce((n, row) => n + row.n, 0)
  if (calls >= MIN_CALLS && failed / calls > config.alerts.failureRate) {
    found.push({
      kind: 'failure-rate',
      text: `${Math.round((failed / calls) * 100)} % of the last hour's ${calls} ${label} calls failed (alert above ${Math.round(config.alerts.failureRate * 100)} %).`,
    })
  }
  const report = await checkSetup(config, {}, storeAdmin)
  const broken = report.checks.filter((check) => !check.ok && !check.note && ['api key', 'triggers', 'activities', 'database'].includes(check.check))
  if (broken.length)
    found.push({
      kind: 'setup',
      text: `The setup check fails: ${broken
        .map((check) => check.message)
        .join(' · ')
        .slice(0, 600)}`,
    })
  const expiring = await sql.first<{ n: number }>(sql.prepare('SELECT count(*) AS n FROM parked WHERE parked_at < ?1').bind(now - (PARK_DAYS - 1) * DAY_MS))
  if (expiring && expiring.n > 0) found.push({ kind: 'parked-expiring', text: `${expiring.n} parked events expire within a day: their userIds never got an email. Send identifies with traits.email.` })
  // The database's size against the plan's cap (80 %): D1 reports it with every answer, so no query of its own.
  const size = sizeAlertFor(config.plan, sql.dbBytes)
  if (size) found.push({ kind: 'database-size', text: size })
  return found
}

/** Posts what is wrong (each kind at most once per ALERT_EVERY_MINUTES); returns the state to keep, or undefined when alerts are off. */
export async function runAlerts(config: Config, sql: Sql, storeAdmin: StoreAdmin, now = Date.now()): Promise<{ state: AlertState; posted: AlertKind[] } | undefined> {
  const { webhookUrl, everyMs } = config.alerts
  if (!webhookUrl) return undefined
  const state = await readAlertState(sql)
  const posted: AlertKind[] = []
  for (const finding of await findings(config, sql, storeAdmin, state, now)) {
    if (now - (state.sent[finding.kind] ?? -Infinity) < everyMs) continue
    const text = `Segment → ${config.destination.label} (${config.deployEnv || 'direct'} mode): ${finding.text}`
    const failure = await post(webhookUrl, text)
    if (failure) {
      state.failed = { at: now, reason: failure.reason }
      // No answer at all: the rest wait for the next sweep (a hang costs one timeout, not one per kind).
      if (failure.unanswered) break
      continue
    }
    state.sent[finding.kind] = now
    if (state.failed && state.failed.at < now) state.failed = undefined
    state.last = { kind: finding.kind, at: now, text }
    if (finding.deadLetterMax !== undefined) state.deadLetterMax = finding.deadLetterMax
    posted.push(finding.kind)
  }
  return { state, posted }
}

/** One post; why it failed (and whether the webhook answered at all), or undefined. */
async function post(url: string, text: string): Promise<{ reason: string; unanswered: boolean } | undefined> {
  try {
    const response = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ text }), signal: AbortSignal.timeout(WEBHOOK_TIMEOUT_MS) })
    await response.body?.cancel().catch(() => undefined)
    return response.ok ? undefined : { reason: `the webhook answered ${response.status}`, unanswered: false }
  } catch (error) {
    const timedOut = error instanceof Error && error.name === 'TimeoutError'
    return { reason: timedOut ? `the webhook did not answer within ${WEBHOOK_TIMEOUT_MS / 1000} s` : 'the webhook could not be reached', unanswered: true }
  }
}
