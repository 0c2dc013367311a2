import { createOrtto, type OrttoOptions } from '../sandbox/ortto.js'

export const KEY = 'ortto-test-key-3c8e'
export const FIELDS = {
  'int:cm:age': 'Age',
  'str:cm:plan': 'Plan',
  'bol:cm:vip': 'VIP',
  'dec:cm:lifetime-value': 'Lifetime Value',
  'cur:cm:spent': 'Spent',
  'txt:cm:bio': 'Bio',
  'tme:cm:signed-up': 'Signed up',
  'dtz:cm:renewal': 'Renewal',
  'sst:cm:interests': 'Interests',
}
const SIXTEEN = Object.fromEntries(Array.from({ length: 16 }, (_, i) => [`int:cm:n${i}`, `N${i}`]))
export const ACTIVITIES = {
  'act:cm:order-completed': { name: 'Order Completed', attributes: { 'str:cm:product': 'Product', 'int:cm:quantity': 'Quantity' } },
  'act:cm:many': { name: 'Many', attributes: SIXTEEN },
  'act:cm:step-activated': { name: 'Step Activated', attributes: {} },
}

type Json = Record<string, ReturnType<typeof JSON.parse>>

/** A fresh Ortto instance with the test account, and calls to it as the Worker would make them. */
export function ortto(options: OrttoOptions = {}) {
  const state = createOrtto({ apiKey: KEY, customFields: FIELDS, activities: ACTIVITIES, ...options })
  function call(method: string, path: string, body?: unknown, headers: Record<string, string> = {}, signal?: AbortSignal) {
    return state.fetch(
      new Request(`https://api.ap3api.com${path}`, {
        method,
        headers: { 'x-api-key': KEY, 'content-type': 'application/json', ...headers },
        body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body),
        signal,
      }),
    )
  }
  return {
    state,
    call,
    merge: (people: unknown[], extra: Json = {}) => call('POST', '/v1/person/merge', { people, merge_by: ['str::ei', 'str::email'], ...extra }),
    track: (activities: unknown[], extra: Json = {}) => call('POST', '/v1/activities/create', { activities, merge_by: ['str::ei', 'str::email'], ...extra }),
    find: (filter: unknown, fields = ['str::email', 'str::ei'], extra: Json = {}) => call('POST', '/v1/person/get', { limit: 100, fields, filter, ...extra }),
  }
}

export async function body(response: Response): Promise<Json> {
  return (await response.json()) as Json
}

/** A person as a merge carries one. */
export const person = (fields: Json, more: Json = {}) => ({ fields, ...more })
/** An Order Completed activity for someone. */
export const order = (fields: Json, attributes: Json = { 'str:cm:product': 'Tea', 'int:cm:quantity': 2 }) => ({ activity_id: 'act:cm:order-completed', attributes, fields })

/** A clock the test moves. */
export function clock(start = 1_000_000) {
  let t = start
  return {
    now: () => t,
    advance: (ms: number) => {
      t += ms
    },
  }
}
