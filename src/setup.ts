// The setup check behind GET /health?check=<destination> and `npm run doctor`: the
// Worker's own settings, the database, then the destination's part (key, journeys,
// fields) — each said in words a Segment admin can act on.
import { migrateCommand, secretPut, type Config } from './config'
import type { Check } from './destinations/destination'
import type { CallOptions } from './destinations/transport'
import type { StoreAdmin } from './store/store-admin'
import { databaseSize, describeSize, sizeAlert } from './store/size'

export interface SetupReport {
  status: 'ok' | 'problems'
  checks: Check[]
  [detail: string]: unknown
}

export async function checkSetup(config: Config, options: CallOptions, store: StoreAdmin | undefined): Promise<SetupReport> {
  const checks: Check[] = []
  const add = (check: string, ok: boolean, message: string, note?: boolean) => checks.push({ check, ok, message, ...(note && { note }) })
  for (const problem of config.problems) add('settings', false, problem)
  if (!config.allowUnsigned && !config.sharedSecret && !config.webhookToken) {
    add(
      'settings',
      false,
      `Neither SEGMENT_SHARED_SECRET nor SEGMENT_WEBHOOK_TOKEN is set: every event Segment sends is refused (503) until one is (${secretPut(config.deployEnv, 'SEGMENT_WEBHOOK_TOKEN')})`,
    )
  }
  if (config.alerts.invalid) add('settings', false, 'ALERT_WEBHOOK_URL is not an http(s) URL (its value is not shown: it is a secret): alerts are off until it is fixed', true)
  if (config.allowUnsigned) add('settings', false, `ALLOW_UNSIGNED is "true": anyone who finds the URL can write to your ${config.destination.label} account (for npm start only)`, true)

  if (!store) add('database', false, 'DB (the D1 database) is not bound: see the [[d1_databases]] block in wrangler.toml')
  else {
    try {
      const missing = await store.missingTables()
      const size = store.dbBytes === undefined ? undefined : databaseSize(store.dbBytes, config.plan)
      const holds = size ? `; it holds ${describeSize(size)}` : ''
      add('database', !missing.length, missing.length ? `The D1 database is not migrated (missing: ${missing.join(', ')}): run ${migrateCommand(config)}` : `The D1 database is migrated${holds}`)
      const full = sizeAlert(size)
      if (full) add('database size', false, full)
    } catch (error) {
      add('database', false, `The D1 database did not answer: ${error instanceof Error ? error.message : 'unknown error'}`)
    }
  }
  const { checks: destinationChecks, details } = await config.destination.check(options)
  checks.push(...destinationChecks)
  const created = await createdLately(config, store, add)
  return { status: checks.every((c) => c.ok || c.note) ? 'ok' : 'problems', checks, ...details, ...(created && { created }) }
}

/** What the Worker created in the account lately (ORTTO_CREATE), what it left out and why, and today's use of the cap. */
async function createdLately(config: Config, store: StoreAdmin | undefined, add: (check: string, ok: boolean, message: string) => void) {
  const { creates } = config.destination
  if (!creates || !store) return undefined
  try {
    const log = store.creations()
    const [rows, used] = await Promise.all([log.recent(), log.usedToday()])
    const made = rows.filter((r) => r.id)
    const left = rows.filter((r) => r.note)
    const list = (items: typeof rows, show: (r: (typeof rows)[number]) => string) => items.slice(0, 10).map(show).join(', ') + (items.length > 10 ? `, and ${items.length - 10} more` : '')
    add(
      'created',
      true,
      `Today ${used} of ${creates.max} new definitions used (ORTTO_CREATE_MAX). Created in the last 7 days: ${made.length ? list(made, (r) => `${r.kind} "${r.name}" (${r.id}, ${new Date(r.at).toISOString().slice(0, 16)}Z)`) : 'nothing'}`,
    )
    if (left.length) add('created', false, `Left out or refused in the last 7 days (each with what to do): ${list(left, (r) => `${r.kind} "${r.name}" (${r.note})`)}`)
    return { usedToday: used, max: creates.max, rows }
  } catch (error) {
    add('created', false, `What this Worker created could not be read: ${error instanceof Error ? error.message : 'unknown error'}`)
    return undefined
  }
}
