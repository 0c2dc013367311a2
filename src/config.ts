import * as v from 'valibot'

/** Everything the Worker can be given. Names are a contract: README lists each. */
export interface Env {
  AUTOPILOT_API_KEY?: string
  SEGMENT_SHARED_SECRET?: string
  SEGMENT_WEBHOOK_TOKEN?: string
  ALLOW_UNSIGNED?: string
  AUTOPILOT_TRIGGERS?: string | Record<string, unknown>
  AUTOPILOT_FIELD_TYPES?: string | Record<string, unknown>
  AUTOPILOT_BASE_URL?: string
  AUTOPILOT_TIMEOUT_MS?: string | number
  MAX_BODY_BYTES?: string | number
  /** Queued mode: Autopilot calls per second (Autopilot allows 5 per key). */
  AUTOPILOT_MAX_RPS?: string | number
  /** Queued mode: first retry delay; doubles per attempt. */
  QUEUE_RETRY_BASE_SECONDS?: string | number
  /** Direct mode: Autopilot calls one request may make (the Free plan allows 50 subrequests). */
  AUTOPILOT_MAX_CALLS?: string | number
  /** Direct mode: no Autopilot call is started that could end later than this after the request arrived. */
  DIRECT_DEADLINE_MS?: string | number
  /** How long a D1 query may take before the Worker goes on without it. */
  STORE_TIMEOUT_MS?: string | number
  /** How often the account's custom field definitions are read again; 0 turns reading them off. */
  AUTOPILOT_FIELDS_REFRESH_SECONDS?: string | number
  /** Bearer token for the admin endpoints (dead letters, the Autopilot check). */
  ADMIN_TOKEN?: string
  /** Queued mode: producer for the events queue (its presence turns queued mode on). */
  EVENTS?: Queue<unknown>
  /** The D1 database: identities, parked events, the journey ledger, dead letters. */
  DB?: D1Database
  /** Optional: one Analytics Engine data point per request, queue batch and sweep. */
  ANALYTICS?: AnalyticsEngineDataset
}

export const CUSTOM_TYPES = ['string', 'integer', 'float', 'boolean', 'date'] as const
export type CustomType = (typeof CUSTOM_TYPES)[number]

export interface Config {
  apiKey?: string
  sharedSecret?: string
  webhookToken?: string
  allowUnsigned: boolean
  /** Segment event name -> Autopilot API trigger id. */
  triggers: ReadonlyMap<string, string>
  /** Trait name -> pinned custom field type. */
  fieldTypes: ReadonlyMap<string, CustomType>
  baseUrl: string
  timeoutMs: number
  maxBodyBytes: number
  maxRps: number
  retryBaseSeconds: number
  maxCalls: number
  deadlineMs: number
  storeTimeoutMs: number
  /** 0: the account's custom fields are not read. */
  fieldsRefreshMs: number
  adminToken?: string
  /** The wrangler environment this Worker is deployed as ('' or 'queued'), for the commands its hints name. */
  deployEnv: '' | 'queued'
  /** Configuration mistakes: while any exist, events are answered 503 so Segment retries. */
  problems: string[]
}

export const DEFAULT_BASE_URL = 'https://api2.autopilothq.com/v1'
export const DEFAULT_TIMEOUT_MS = 4000
export const DEFAULT_MAX_BODY_BYTES = 5 * 1024 * 1024
export const DEFAULT_MAX_RPS = 5
export const DEFAULT_RETRY_BASE_SECONDS = 10
export const DEFAULT_MAX_CALLS = 50
export const DEFAULT_DEADLINE_MS = 4000
export const DEFAULT_STORE_TIMEOUT_MS = 2000
export const DEFAULT_FIELDS_REFRESH_SECONDS = 3600

/** A JSON object given as a string var, or as a TOML table in wrangler.toml. */
const StringMap = <T extends v.GenericSchema<string>>(value: T) =>
  v.pipe(
    v.union([v.pipe(v.string(), v.parseJson()), v.unknown()]),
    v.check((input) => typeof input === 'object' && input !== null && !Array.isArray(input), 'must be an object'),
    v.record(v.pipe(v.string(), v.nonEmpty()), value),
  )
const TriggersSchema = StringMap(v.pipe(v.string(), v.trim(), v.nonEmpty()))
const FieldTypesSchema = StringMap(v.picklist(CUSTOM_TYPES))
const PositiveInt = v.pipe(
  v.union([v.number(), v.pipe(v.string(), v.trim(), v.nonEmpty(), v.toNumber())]),
  v.integer(),
  v.minValue(1),
)
const WholeNumber = v.pipe(
  v.union([v.number(), v.pipe(v.string(), v.trim(), v.nonEmpty(), v.toNumber())]),
  v.integer(),
  v.minValue(0),
)
const BaseUrl = v.pipe(v.string(), v.trim(), v.url(), v.check((u) => /^https?:/.test(u), 'must be an http(s) URL'))

const configs = new WeakMap<object, Config>()

/** Parsed once per isolate (per env object), never per event. */
export function getConfig(env: Env): Config {
  let config = configs.get(env)
  if (!config) {
    config = parseConfig(env)
    configs.set(env, config)
  }
  return config
}

function parseConfig(env: Env): Config {
  const problems: string[] = []
  if (!env.DB) problems.push('DB (the D1 database) is not bound: see the [[d1_databases]] block in wrangler.toml')
  const read = <S extends v.GenericSchema<unknown>>(name: keyof Env, schema: S, fallback: v.InferOutput<S>, hint: string) => {
    const raw = env[name]
    if (raw === undefined || raw === '') return fallback
    const result = v.safeParse(schema, raw)
    if (result.success) return result.output
    problems.push(`${name} ${hint}: ${result.issues[0].message}`)
    return fallback
  }
  const secret = (name: keyof Env) => {
    const value = env[name]
    return typeof value === 'string' && value.length > 0 ? value : undefined
  }
  return {
    apiKey: secret('AUTOPILOT_API_KEY'),
    sharedSecret: secret('SEGMENT_SHARED_SECRET'),
    webhookToken: secret('SEGMENT_WEBHOOK_TOKEN'),
    allowUnsigned: env.ALLOW_UNSIGNED === 'true',
    triggers: new Map(Object.entries(read('AUTOPILOT_TRIGGERS', TriggersSchema, {}, 'must be a JSON object of event name to trigger id'))),
    fieldTypes: new Map(Object.entries(read('AUTOPILOT_FIELD_TYPES', FieldTypesSchema, {}, `must be a JSON object of trait name to one of ${CUSTOM_TYPES.join(', ')}`))),
    baseUrl: read('AUTOPILOT_BASE_URL', BaseUrl, DEFAULT_BASE_URL, 'must be a URL').replace(/\/+$/, ''),
    timeoutMs: read('AUTOPILOT_TIMEOUT_MS', PositiveInt, DEFAULT_TIMEOUT_MS, 'must be a whole number of milliseconds'),
    maxBodyBytes: read('MAX_BODY_BYTES', PositiveInt, DEFAULT_MAX_BODY_BYTES, 'must be a whole number of bytes'),
    maxRps: read('AUTOPILOT_MAX_RPS', PositiveInt, DEFAULT_MAX_RPS, 'must be a whole number of requests per second'),
    retryBaseSeconds: read('QUEUE_RETRY_BASE_SECONDS', PositiveInt, DEFAULT_RETRY_BASE_SECONDS, 'must be a whole number of seconds'),
    maxCalls: read('AUTOPILOT_MAX_CALLS', PositiveInt, DEFAULT_MAX_CALLS, 'must be a whole number of calls'),
    deadlineMs: read('DIRECT_DEADLINE_MS', PositiveInt, DEFAULT_DEADLINE_MS, 'must be a whole number of milliseconds'),
    storeTimeoutMs: read('STORE_TIMEOUT_MS', PositiveInt, DEFAULT_STORE_TIMEOUT_MS, 'must be a whole number of milliseconds'),
    fieldsRefreshMs: read('AUTOPILOT_FIELDS_REFRESH_SECONDS', WholeNumber, DEFAULT_FIELDS_REFRESH_SECONDS, 'must be a whole number of seconds (0: off)') * 1000,
    adminToken: secret('ADMIN_TOKEN'),
    deployEnv: env.EVENTS ? 'queued' : '',
    problems,
  }
}

/** A reason no identify or track can be delivered now; they are answered 503 so Segment retries. */
export function configurationProblem(config: Config): string | undefined {
  if (config.problems.length) return `Configuration error: ${config.problems.join('; ')}`
  if (!config.apiKey) return `AUTOPILOT_API_KEY is not set (${secretPut(config, 'AUTOPILOT_API_KEY')}); nothing was sent`
  return undefined
}

/** The command that sets a secret of this deployment (naming its environment). */
export const secretPut = (config: Config, name: string) => `npx wrangler secret put ${name}${config.deployEnv ? ` --env ${config.deployEnv}` : ''}`

/** The command that applies migrations/ to this deployment's database. */
export const migrateCommand = (config: Config) =>
  `npx wrangler d1 migrations apply ${config.deployEnv ? `segment-autopilot-${config.deployEnv} --env ${config.deployEnv}` : 'segment-autopilot'} --remote`
