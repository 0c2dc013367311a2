// The database's size against the plan's cap. Every D1 answer's meta carries the size after
// the query (size_after), so knowing it costs no query of its own: the operator page, the setup
// check (`npm run doctor`) and the sweep's alert read it from queries they make anyway. D1
// refuses writes once a database is full, and every event would then be answered 503: the
// alert goes at 80 %, while there is time to prune, shorten LEDGER_DAYS or move to Paid.
import type { Plan } from '../config'

/** The share of the cap at which the sweep alerts (and the setup check fails). */
export const SIZE_ALERT_SHARE = 0.8

export interface DatabaseSize {
  bytes: number
  capBytes: number
  /** bytes ÷ capBytes. */
  share: number
  plan: Plan['name']
}

export function databaseSize(bytes: number, plan: Plan): DatabaseSize {
  return { bytes, capBytes: plan.dbMaxBytes, share: bytes / plan.dbMaxBytes, plan: plan.name }
}

/** 1.23 GB, 456 MB, 12 kB (decimal units, as Cloudflare states D1's caps). */
export function formatBytes(bytes: number): string {
  const units = ['bytes', 'kB', 'MB', 'GB', 'TB']
  let value = bytes
  let unit = 0
  while (value >= 1000 && unit < units.length - 1) {
    value /= 1000
    unit++
  }
  return `${unit === 0 ? value : value.toPrecision(3)} ${units[unit]}`
}

/** "1.23 GB of the Paid plan's 10.0 GB (12 %)". */
export function describeSize(size: DatabaseSize): string {
  const percent = size.share < 0.01 && size.bytes > 0 ? '< 1' : String(Math.round(size.share * 100))
  return `${formatBytes(size.bytes)} of the ${size.plan === 'free' ? 'Free' : 'Paid'} plan's ${formatBytes(size.capBytes)} (${percent} %)`
}

/** What the sweep's alert says once the database holds 80 % of its cap; undefined below. */
export function sizeAlert(size: DatabaseSize | undefined): string | undefined {
  if (!size || size.share < SIZE_ALERT_SHARE) return undefined
  return `The D1 database holds ${describeSize(size)}: D1 refuses writes when it is full, and every event is then answered 503. Lower LEDGER_DAYS, or see docs/limits.md (past one database).`
}

/**
 * For the sweep's alerts (src/queue/alerts.ts): the alert's text when the database D1 last
 * reported (`sql.dbBytes`, from any query the sweep made) holds 80 % of the plan's cap.
 */
export function sizeAlertFor(plan: Plan, bytes: number | undefined): string | undefined {
  return bytes === undefined ? undefined : sizeAlert(databaseSize(bytes, plan))
}
