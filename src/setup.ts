// The setup check behind GET /health?check=<destination> and `npm run doctor`: the
// Worker's own settings, the database, then the destination's part (key, journeys,
// fields) — each said in words a Segment admin can act on.
import { migrateCommand, secretPut, type Config } from './config'
import type { Check } from './destinations/destination'
import type { CallOptions } from './destinations/transport'
import type { StoreAdmin } from './store/store-admin'

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
    add('settings', false, `Neither SEGMENT_SHARED_SECRET nor SEGMENT_WEBHOOK_TOKEN is set: every event Segment sends is refused (503) until one is (${secretPut(config.deployEnv, 'SEGMENT_WEBHOOK_TOKEN')})`)
  }
  if (config.allowUnsigned) add('settings', false, `ALLOW_UNSIGNED is "true": anyone who finds the URL can write to your ${config.destination.label} account (for npm start only)`, true)

  if (!store) add('database', false, 'DB (the D1 database) is not bound: see the [[d1_databases]] block in wrangler.toml')
  else {
    try {
      const missing = await store.missingTables()
      add('database', !missing.length, missing.length ? `The D1 database is not migrated (missing: ${missing.join(', ')}): run ${migrateCommand(config)}` : 'The D1 database is migrated')
    } catch (error) {
      add('database', false, `The D1 database did not answer: ${error instanceof Error ? error.message : 'unknown error'}`)
    }
  }
  const { checks: destinationChecks, details } = await config.destination.check(options)
  checks.push(...destinationChecks)
  return { status: checks.every((c) => c.ok || c.note) ? 'ok' : 'problems', checks, ...details }
}
