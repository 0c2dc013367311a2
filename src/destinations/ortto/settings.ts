// Ortto's settings (ORTTO_*), each problem naming its setting.
import * as v from 'valibot'
import { BaseUrl, PositiveInt, settingsReader, StringMap, WholeNumber, type Vars, secretPut } from '../../settings'

export const HOSTS: Record<string, string> = {
  '': 'https://api.ap3api.com/v1',
  eu: 'https://api.eu.ap3api.com/v1',
  au: 'https://api.au.ap3api.com/v1',
}
/** Ortto's Professional plan: 10 requests/s (Business and Enterprise: 30). */
export const DEFAULT_MAX_RPS = 10

/** What the Worker may create in the account when it is missing (ORTTO_CREATE). */
export interface Creates {
  fields: boolean
  activities: boolean
  /** New definitions a day, fields and activities together (ORTTO_CREATE_MAX). */
  max: number
}

/** How accounts are found: by the custom field "Segment Group ID" (the groupId), or by a built-in field the accounts already have. */
export type AccountKey = 'segment-group-id' | 'str:o:name' | 'str:o:website'

export interface OrttoSettings {
  apiKey?: string
  baseUrl: string
  /** Segment event name -> custom activity id (act:cm:…); events not listed go to the activity of their name. */
  activities: ReadonlyMap<string, string>
  create: Creates
  /** How Ortto finds a person: by external id (userId), else email; or by email only. */
  mergeBy: readonly ['str::ei', 'str::email'] | readonly ['str::email']
  /** The country calling code for phones written without one (ORTTO_PHONE_COUNTRY). */
  phoneCountry?: string
  /** context.ip goes to Ortto as the person's location (ORTTO_SEND_IP). */
  sendIp: boolean
  /** Segment `group` calls become Ortto accounts (ORTTO_ACCOUNTS, default on). */
  accounts: boolean
  /** The account field accounts are found by: the custom field "Segment Group ID" (default), str:o:name or str:o:website (ORTTO_ACCOUNT_MERGE_BY). */
  accountMergeBy: AccountKey
  maxRps: number
  maxCalls: number
  timeoutMs: number
  refreshMs: number
  problems: string[]
  unready?: string
}

const Activities = StringMap(v.pipe(v.string(), v.trim(), v.regex(/^act:[a-z]*:\S+$/, 'must be an activity id such as act:cm:order-completed')))
const Create = v.pipe(
  v.string(),
  v.trim(),
  v.toLowerCase(),
  v.transform((text) => (text === 'none' ? [] : text.split(',').map((part) => part.trim()))),
  v.array(v.picklist(['fields', 'activities'], 'must be fields, activities, fields,activities or none')),
)
const MergeBy = v.pipe(v.string(), v.trim(), v.toLowerCase(), v.picklist(['str::ei,str::email', 'str::email'], 'must be str::ei,str::email or str::email'))
const CountryCode = v.pipe(
  v.union([v.number(), v.string()]),
  v.transform(String),
  v.trim(),
  v.transform((code) => code.replace(/^\+/, '')),
  v.regex(/^\d{1,4}$/, 'must be a country calling code such as 1, 44 or 61'),
)
const Flag = v.pipe(
  v.union([v.boolean(), v.string()]),
  v.transform((x) => String(x).trim().toLowerCase()),
  v.picklist(['true', 'false'], 'must be true or false'),
  v.transform((x) => x === 'true'),
)
const AccountMergeBy = v.pipe(
  v.string(),
  v.trim(),
  v.toLowerCase(),
  v.picklist(['segment-group-id', 'str:o:name', 'str:o:website'], 'must be str:o:name or str:o:website (or unset for the custom field "Segment Group ID")'),
)
const Region = v.pipe(v.string(), v.trim(), v.toLowerCase(), v.picklist(['', 'eu', 'au'], 'must be eu or au (or unset for the default host)'))

export function orttoSettings(env: Vars, deployEnv: string): OrttoSettings {
  const problems: string[] = []
  const { read, secret } = settingsReader(env, problems)
  const apiKey = secret('ORTTO_API_KEY')
  const region = read('ORTTO_REGION', Region, '', 'must be eu or au')
  const create = creates(read('ORTTO_CREATE', Create, [], 'must be fields, activities, fields,activities or none'))
  const refreshMs = read('ORTTO_FIELDS_REFRESH_SECONDS', WholeNumber, 3600, 'must be a whole number of seconds (0: off)') * 1000
  // Creating needs the account read: without it every batch would create again (and be refused as a duplicate).
  if ((create.fields || create.activities) && !refreshMs) problems.push('ORTTO_CREATE needs ORTTO_FIELDS_REFRESH_SECONDS above 0 (the account is read to know what exists)')
  return {
    apiKey,
    baseUrl: read('ORTTO_BASE_URL', BaseUrl, HOSTS[region], 'must be a URL').replace(/\/+$/, ''),
    activities: new Map(Object.entries(read('ORTTO_ACTIVITIES', Activities, {}, 'must be a JSON object of event name to activity id'))),
    create: {
      ...create,
      max: read('ORTTO_CREATE_MAX', WholeNumber, 20, 'must be a whole number of definitions a day'),
    },
    mergeBy: read('ORTTO_MERGE_BY', MergeBy, 'str::ei,str::email', 'must be str::ei,str::email or str::email') === 'str::email' ? (['str::email'] as const) : (['str::ei', 'str::email'] as const),
    phoneCountry: read('ORTTO_PHONE_COUNTRY', CountryCode, '', 'must be a country calling code') || undefined,
    sendIp: read('ORTTO_SEND_IP', Flag, true, 'must be true or false'),
    accounts: read('ORTTO_ACCOUNTS', Flag, true, 'must be true or false'),
    accountMergeBy: read('ORTTO_ACCOUNT_MERGE_BY', AccountMergeBy, 'segment-group-id', 'must be str:o:name or str:o:website (or unset for the custom field "Segment Group ID")'),
    maxRps: read('ORTTO_MAX_RPS', PositiveInt, DEFAULT_MAX_RPS, 'must be a whole number of requests per second'),
    maxCalls: read('ORTTO_MAX_CALLS', PositiveInt, 50, 'must be a whole number of calls'),
    timeoutMs: read('ORTTO_TIMEOUT_MS', PositiveInt, 4000, 'must be a whole number of milliseconds'),
    refreshMs,
    problems,
    ...(!apiKey && { unready: `ORTTO_API_KEY is not set (${secretPut(deployEnv, 'ORTTO_API_KEY')}); nothing was sent` }),
  }
}

const creates = (list: readonly string[]) => ({ fields: list.includes('fields'), activities: list.includes('activities') })
