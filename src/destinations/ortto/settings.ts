// Ortto's settings (ORTTO_*), each problem naming its setting.
import * as v from 'valibot'
import { secretPut } from '../../config'
import { BaseUrl, PositiveInt, settingsReader, StringMap, WholeNumber, type Vars } from '../../settings'

export const HOSTS: Record<string, string> = {
  '': 'https://api.ap3api.com/v1',
  eu: 'https://api.eu.ap3api.com/v1',
  au: 'https://api.au.ap3api.com/v1',
}
/** Ortto's Professional plan: 10 requests/s (Business and Enterprise: 30). */
export const DEFAULT_MAX_RPS = 10

export interface OrttoSettings {
  apiKey?: string
  baseUrl: string
  /** Segment event name -> custom activity id (act:cm:…). */
  activities: ReadonlyMap<string, string>
  maxRps: number
  maxCalls: number
  timeoutMs: number
  refreshMs: number
  problems: string[]
  unready?: string
}

const Activities = StringMap(v.pipe(v.string(), v.trim(), v.regex(/^act:[a-z]*:\S+$/, 'must be an activity id such as act:cm:order-completed')))
const Region = v.pipe(v.string(), v.trim(), v.toLowerCase(), v.picklist(['', 'eu', 'au'], 'must be eu or au (or unset for the default host)'))

export function orttoSettings(env: Vars, deployEnv: string): OrttoSettings {
  const problems: string[] = []
  const { read, secret } = settingsReader(env, problems)
  const apiKey = secret('ORTTO_API_KEY')
  const region = read('ORTTO_REGION', Region, '', 'must be eu or au')
  return {
    apiKey,
    baseUrl: read('ORTTO_BASE_URL', BaseUrl, HOSTS[region], 'must be a URL').replace(/\/+$/, ''),
    activities: new Map(Object.entries(read('ORTTO_ACTIVITIES', Activities, {}, 'must be a JSON object of event name to activity id'))),
    maxRps: read('ORTTO_MAX_RPS', PositiveInt, DEFAULT_MAX_RPS, 'must be a whole number of requests per second'),
    maxCalls: read('ORTTO_MAX_CALLS', PositiveInt, 50, 'must be a whole number of calls'),
    timeoutMs: read('ORTTO_TIMEOUT_MS', PositiveInt, 4000, 'must be a whole number of milliseconds'),
    refreshMs: read('ORTTO_FIELDS_REFRESH_SECONDS', WholeNumber, 3600, 'must be a whole number of seconds (0: off)') * 1000,
    problems,
    ...(!apiKey && { unready: `ORTTO_API_KEY is not set (${secretPut(deployEnv, 'ORTTO_API_KEY')}); nothing was sent` }),
  }
}
