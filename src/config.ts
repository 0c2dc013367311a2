// Settings: parsed once per isolate (per env object), never per event. The neutral ones
// here; each destination reads its own (destinations/<name>/settings.ts), picked by
// DESTINATION in destinations/index.ts.
import type { AnyDestination } from './destinations/destination'
import { destinationFor } from './destinations'
import { DEFAULT_MAX_PAUSE_SECONDS } from './destinations/transport'
import { PositiveInt, secretPut, settingsReader, Share, WholeNumber } from './settings'

/** Everything the Worker can be given. Names are a contract: README lists each. */
export interface Env {
  /** Which destination: 'autopilot' (the default) or 'ortto'. */
  DESTINATION?: string
  AUTOPILOT_API_KEY?: string
  AUTOPILOT_TRIGGERS?: string | Record<string, unknown>
  AUTOPILOT_FIELD_TYPES?: string | Record<string, unknown>
  AUTOPILOT_BASE_URL?: string
  AUTOPILOT_TIMEOUT_MS?: string | number
  /** Autopilot calls per second (Autopilot allows 5 per key). */
  AUTOPILOT_MAX_RPS?: string | number
  /** Direct mode: Autopilot calls one request may make (the Free plan allows 50 subrequests). */
  AUTOPILOT_MAX_CALLS?: string | number
  /** How often the account's custom field definitions are read again; 0 turns reading them off. */
  AUTOPILOT_FIELDS_REFRESH_SECONDS?: string | number
  ORTTO_API_KEY?: string
  ORTTO_REGION?: string
  ORTTO_BASE_URL?: string
  ORTTO_ACTIVITIES?: string | Record<string, unknown>
  ORTTO_MAX_RPS?: string | number
  ORTTO_MAX_CALLS?: string | number
  ORTTO_TIMEOUT_MS?: string | number
  ORTTO_FIELDS_REFRESH_SECONDS?: string | number
  /** What the Worker may create in the Ortto account: fields, activities, fields,activities or none (unset). */
  ORTTO_CREATE?: string
  /** New Ortto fields and activities a day, at most (default 20). */
  ORTTO_CREATE_MAX?: string | number
  /** str::ei,str::email (default: by userId, else email) or str::email. */
  ORTTO_MERGE_BY?: string
  /** The country calling code for phones written without one. */
  ORTTO_PHONE_COUNTRY?: string | number
  /** context.ip goes to Ortto as the person's location (default true). */
  ORTTO_SEND_IP?: string | boolean
  SEGMENT_SHARED_SECRET?: string
  SEGMENT_WEBHOOK_TOKEN?: string
  ALLOW_UNSIGNED?: string
  MAX_BODY_BYTES?: string | number
  /** Queued mode: first retry delay; doubles per attempt. */
  QUEUE_RETRY_BASE_SECONDS?: string | number
  /** Direct mode: no call is started that could end later than this after the request arrived. */
  DIRECT_DEADLINE_MS?: string | number
  /** How long a D1 query may take before the Worker goes on without it. */
  STORE_TIMEOUT_MS?: string | number
  /** The longest pause a destination's rate limit answer (Retry-After, try-in-seconds) may impose. */
  RATE_LIMIT_MAX_PAUSE_SECONDS?: string | number
  /** Bearer token for the admin endpoints (dead letters, the setup check, the operator page). */
  ADMIN_TOKEN?: string
  /** An incoming-webhook URL (Slack, Discord, Microsoft Teams): the sweep posts alerts there as {"text": …}. */
  ALERT_WEBHOOK_URL?: string
  /** Alert when more than this share of the last hour's destination calls failed (default 0.2). */
  ALERT_FAILURE_RATE?: string | number
  /** At most one alert of a kind this often (default 60). */
  ALERT_EVERY_MINUTES?: string | number
  /** How often an isolate sends its delivery history counters to D1 (default 20 s; 0: with every write). */
  HISTORY_FLUSH_SECONDS?: string | number
  /** Days the journey ledger remembers a messageId (default 1: Segment re-sends for 4 h, the queue retries for about 12 h). */
  LEDGER_DAYS?: string | number
  /** The Cloudflare plan, for the database's size cap and the sweep's query budget: 'paid' (the default, 10 GB) or 'free' (500 MB). */
  WORKERS_PLAN?: string
  /** Queued mode: producer for the events queue (its presence turns queued mode on). */
  EVENTS?: Queue<unknown>
  /** The D1 database: identities, parked events, the journey ledger, dead letters. */
  DB?: D1Database
  /** Optional: one Analytics Engine data point per request, queue batch and sweep. */
  ANALYTICS?: AnalyticsEngineDataset
}

export interface Config {
  sharedSecret?: string
  webhookToken?: string
  allowUnsigned: boolean
  maxBodyBytes: number
  retryBaseSeconds: number
  deadlineMs: number
  storeTimeoutMs: number
  maxPauseSeconds: number
  adminToken?: string
  /** How often an isolate sends its delivery history counters (HISTORY_FLUSH_SECONDS; 0: with every write). */
  historyFlushMs: number
  /** Alerts from the sweep (ALERT_*): off without a webhook URL (or with one that is no http(s) URL: `invalid`). */
  alerts: { webhookUrl?: string; invalid?: boolean; failureRate: number; everyMs: number }
  /** How long the journey ledger keeps a messageId (LEDGER_DAYS). */
  ledgerMs: number
  /** WORKERS_PLAN: what D1 allows (a database's size, queries an invocation makes). */
  plan: Plan
  /** The wrangler environment this Worker is deployed as ('' or 'queued'), for the commands its hints name. */
  deployEnv: '' | 'queued'
  destination: AnyDestination
  /** Configuration mistakes (the destination's included): while any exist, events are answered 503 so Segment retries. */
  problems: string[]
}

export const DEFAULT_MAX_BODY_BYTES = 5 * 1024 * 1024
export const DEFAULT_RETRY_BASE_SECONDS = 10
export const DEFAULT_DEADLINE_MS = 4000
export const DEFAULT_STORE_TIMEOUT_MS = 2000

export interface Plan {
  name: 'paid' | 'free'
  /** A D1 database's most bytes on this plan. */
  dbMaxBytes: number
  /** D1 queries one invocation may make. */
  queriesPerInvocation: number
}
export const PLANS: Record<Plan['name'], Plan> = {
  paid: { name: 'paid', dbMaxBytes: 10 * 1000 ** 3, queriesPerInvocation: 1000 },
  free: { name: 'free', dbMaxBytes: 500 * 1000 ** 2, queriesPerInvocation: 50 },
}
export const DEFAULT_LEDGER_DAYS = 1

const configs = new WeakMap<object, Config>()

/** Parsed once per isolate (per env object), never per event. */
export function getConfig(env: Env): Config {
  let config = configs.get(env)
  if (!config) configs.set(env, (config = parseConfig(env)))
  return config
}

function parseConfig(env: Env): Config {
  const problems: string[] = []
  if (!env.DB) problems.push('DB (the D1 database) is not bound: see the [[d1_databases]] block in wrangler.toml')
  const deployEnv = env.EVENTS ? 'queued' : ''
  const { read, secret } = settingsReader(env as Record<string, unknown>, problems)
  const destination = destinationFor(env as Record<string, unknown>, deployEnv)
  problems.push(...destination.problems)
  return {
    sharedSecret: secret('SEGMENT_SHARED_SECRET'),
    webhookToken: secret('SEGMENT_WEBHOOK_TOKEN'),
    allowUnsigned: env.ALLOW_UNSIGNED === 'true',
    maxBodyBytes: read('MAX_BODY_BYTES', PositiveInt, DEFAULT_MAX_BODY_BYTES, 'must be a whole number of bytes'),
    retryBaseSeconds: read('QUEUE_RETRY_BASE_SECONDS', PositiveInt, DEFAULT_RETRY_BASE_SECONDS, 'must be a whole number of seconds'),
    deadlineMs: read('DIRECT_DEADLINE_MS', PositiveInt, DEFAULT_DEADLINE_MS, 'must be a whole number of milliseconds'),
    storeTimeoutMs: read('STORE_TIMEOUT_MS', PositiveInt, DEFAULT_STORE_TIMEOUT_MS, 'must be a whole number of milliseconds'),
    maxPauseSeconds: read('RATE_LIMIT_MAX_PAUSE_SECONDS', PositiveInt, DEFAULT_MAX_PAUSE_SECONDS, 'must be a whole number of seconds'),
    adminToken: secret('ADMIN_TOKEN'),
    historyFlushMs: read('HISTORY_FLUSH_SECONDS', WholeNumber, 20, 'must be a whole number of seconds') * 1000,
    alerts: {
      ...webhookOf(secret('ALERT_WEBHOOK_URL')),
      failureRate: read('ALERT_FAILURE_RATE', Share, 0.2, 'must be a share between 0 and 1 (0.2 is 20 %)'),
      everyMs: read('ALERT_EVERY_MINUTES', PositiveInt, 60, 'must be a whole number of minutes') * 60_000,
    },
    ledgerMs: read('LEDGER_DAYS', PositiveInt, DEFAULT_LEDGER_DAYS, 'must be a whole number of days') * 24 * 3600 * 1000,
    plan: PLANS[planOf(env.WORKERS_PLAN, problems)],
    deployEnv,
    destination,
    problems,
  }
}

function planOf(value: string | undefined, problems: string[]): Plan['name'] {
  const name = (value ?? '').trim().toLowerCase() || 'paid'
  if (name === 'paid' || name === 'free') return name
  problems.push(`WORKERS_PLAN must be "paid" or "free": it is "${value!.slice(0, 20)}"`)
  return 'paid'
}

/** The alert webhook: a secret URL, never echoed in a message; one that does not parse turns alerts off (the setup check says so), not delivery. */
function webhookOf(value: string | undefined): { webhookUrl?: string; invalid?: boolean } {
  if (!value) return {}
  try {
    const url = new URL(value.trim())
    return /^https?:$/.test(url.protocol) ? { webhookUrl: url.href } : { invalid: true }
  } catch {
    return { invalid: true }
  }
}

/** A reason no identify or track can be delivered now; they are answered 503 so Segment retries. */
export function configurationProblem(config: Config): string | undefined {
  if (config.problems.length) return `Configuration error: ${config.problems.join('; ')}`
  return config.destination.unready
}

export { secretPut }

/** The command that applies migrations/ to this deployment's database. */
export const migrateCommand = (config: Config) =>
  `npx wrangler d1 migrations apply ${config.deployEnv ? `segment-autopilot-${config.deployEnv} --env ${config.deployEnv}` : 'segment-autopilot'} --remote`
