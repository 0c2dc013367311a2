// Autopilot's settings (AUTOPILOT_*), each problem naming its setting.
import * as v from 'valibot'
import { BaseUrl, PositiveInt, settingsReader, StringMap, WholeNumber, type Vars, secretPut } from '../../settings'
import { VALUE_TYPES, type ValueType } from '../../values'

export const DEFAULT_BASE_URL = 'https://api2.autopilothq.com/v1'
export const DEFAULT_TIMEOUT_MS = 4000
export const DEFAULT_MAX_RPS = 5
export const DEFAULT_MAX_CALLS = 50
export const DEFAULT_FIELDS_REFRESH_SECONDS = 3600

export interface AutopilotSettings {
  apiKey?: string
  /** Segment event name -> Autopilot API trigger id. */
  triggers: ReadonlyMap<string, string>
  /** Trait name -> pinned custom field type. */
  fieldTypes: ReadonlyMap<string, ValueType>
  baseUrl: string
  timeoutMs: number
  maxRps: number
  maxCalls: number
  /** 0: the account's custom fields are not read. */
  fieldsRefreshMs: number
  problems: string[]
  unready?: string
}

const TriggersSchema = StringMap(v.pipe(v.string(), v.trim(), v.nonEmpty()))
const FieldTypesSchema = StringMap(v.picklist(VALUE_TYPES))

export function autopilotSettings(env: Vars, deployEnv: string): AutopilotSettings {
  const problems: string[] = []
  const { read, secret } = settingsReader(env, problems)
  const apiKey = secret('AUTOPILOT_API_KEY')
  return {
    apiKey,
    triggers: new Map(Object.entries(read('AUTOPILOT_TRIGGERS', TriggersSchema, {}, 'must be a JSON object of event name to trigger id'))),
    fieldTypes: new Map(Object.entries(read('AUTOPILOT_FIELD_TYPES', FieldTypesSchema, {}, `must be a JSON object of trait name to one of ${VALUE_TYPES.join(', ')}`))),
    baseUrl: read('AUTOPILOT_BASE_URL', BaseUrl, DEFAULT_BASE_URL, 'must be a URL').replace(/\/+$/, ''),
    timeoutMs: read('AUTOPILOT_TIMEOUT_MS', PositiveInt, DEFAULT_TIMEOUT_MS, 'must be a whole number of milliseconds'),
    maxRps: read('AUTOPILOT_MAX_RPS', PositiveInt, DEFAULT_MAX_RPS, 'must be a whole number of requests per second'),
    maxCalls: read('AUTOPILOT_MAX_CALLS', PositiveInt, DEFAULT_MAX_CALLS, 'must be a whole number of calls'),
    fieldsRefreshMs: read('AUTOPILOT_FIELDS_REFRESH_SECONDS', WholeNumber, DEFAULT_FIELDS_REFRESH_SECONDS, 'must be a whole number of seconds (0: off)') * 1000,
    problems,
    ...(!apiKey && { unready: `AUTOPILOT_API_KEY is not set (${secretPut(deployEnv, 'AUTOPILOT_API_KEY')}); nothing was sent` }),
  }
}
