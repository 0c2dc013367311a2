// @ts-check
// The Ortto stand-in's Accounts (Segment `group`), from ../shared/reference/ortto-api.md
// "Accounts": accounts/merge, accounts/get, accounts/get-by-ids, the custom account fields
// (get, create; 25 at most), and linking people (accounts/contacts/add, /remove), on the
// current paths and the old `organizations` ones. Where the reference marks a fact
// unsettled, an option picks the form, so tests can run the Worker against each:
// - `accountAnswer`: what accounts/merge answers per account — 'organizations' (default:
//   `{organizations: [{organization_id, status}]}`, as production code reads it), 'accounts'
//   (`{accounts: [{account_id, status}]}`) or 'none' (`{}`: the ids only through accounts/get).
// - `linkKey`: the body key contacts/add reads the account's id from — 'organization_id'
//   (default), 'account_id' or 'accounts_id'. Like Ortto, it answers 200 `{}` to a body whose
//   key it does not read, and links nobody then.
// - `linkStrict: true`: contacts/add refuses (400) a body with keys other than inclusion_ids
//   and the one it reads, as an API strict about unknown keys would.
// - `accountsOn: false`: Accounts are not switched on in the instance: every accounts call
//   is refused (400, saying so).
// A person's linked accounts are read back through person/get's `idt::o` (./ortto-reads.js).
// Shapes it chose: errors as the rest of the stand-in; accounts/get answers
// `{accounts: [{id, fields}]}` (`organizations` on the old path) with the asked fields that
// have a value; custom-field/get a flat `{fields: [{id, name, display_type}]}`.
import { FIELD_TYPES, isPlainObject, keysIn, slug, unsupportedKeys, valueProblem } from './ortto-fields.js'

/** @typedef {import('./ortto-handlers.js').Result} Result */
/** @typedef {{ id: string, fields: Record<string, unknown>, tags: string[], archived: boolean }} Account */

/** Ortto's built-in account fields (live schema). */
export const ACCOUNT_FIELDS = Object.freeze({
  'str:o:name': 'Name',
  'str:o:website': 'Website',
  'str:o:industry': 'Industry',
  'str:o:address': 'Address',
  'str:o:postal': 'Postal code',
  'str:o:source': 'Source',
  'str:o:owner': 'Owner',
  'int:o:employees': 'Employees',
  'geo:o:city': 'City',
  'geo:o:region': 'Region',
  'geo:o:country': 'Country',
})
const MAX_CUSTOM = 25
const MAX_LINKED = 3000
const MERGE_KEYS = ['merge_by', 'merge_strategy', 'find_strategy', 'async']
const CUSTOM_ID = /^(str|txt|int|dec|bol|tme|sst):oc:[a-z0-9](?:[a-z0-9-]{0,98}[a-z0-9])?$/
export const LINK_KEYS = ['organization_id', 'account_id', 'accounts_id']

/** @param {number} status @param {string} error @returns {Result} */
const refuse = (status, error) => ({ status, error })
/** @param {unknown} body @returns {Result} */
const ok = (body) => ({ status: 200, body })

/**
 * @param {{ accountsOn?: boolean, accountFields?: Record<string, string>, accountAnswer?: 'organizations' | 'accounts' | 'none', linkKey?: string, linkStrict?: boolean, maxAccountFields?: number }} options
 * @param {Map<string, { id: string }>} people the stand-in's people (links name them by id)
 */
export function accountsOf(options, people) {
  const answer = options.accountAnswer ?? 'organizations'
  const linkKey = options.linkKey ?? 'organization_id'
  if (!LINK_KEYS.includes(linkKey)) throw new TypeError(`Ortto sandbox: linkKey must be one of ${LINK_KEYS.join(', ')}`)
  const maxCustom = options.maxAccountFields ?? MAX_CUSTOM
  /** @type {Map<string, string>} field id -> name (built-ins and custom) */
  const fields = new Map()
  /** @type {Map<string, Account>} */
  const accounts = new Map()
  /** @type {Map<string, Set<string>>} person id -> account ids */
  const links = new Map()
  let ids = 0
  const on = () => options.accountsOn !== false

  function reset() {
    fields.clear()
    for (const [id, name] of Object.entries({ ...ACCOUNT_FIELDS, ...options.accountFields })) {
      if (!id.includes(':o:') && !CUSTOM_ID.test(id)) throw new TypeError(`Ortto sandbox: bad account field ${id}`)
      fields.set(id, name)
    }
    accounts.clear()
    links.clear()
    ids = 0
  }
  reset()

  /** The account whose key field holds this value. @param {string} key @param {unknown} value */
  const holder = (key, value) => [...accounts.values()].find((a) => a.fields[key] != null && a.fields[key] === value)

  /** @param {unknown} account @param {string[]} mergeBy @returns {string | undefined} */
  function accountProblem(account, mergeBy) {
    if (!isPlainObject(account)) return 'an account must be an object'
    const a = /** @type {Record<string, any>} */ (account)
    const extra = unsupportedKeys(a, ['fields', 'tags'], 'account')
    if (extra) return extra
    if (!isPlainObject(a.fields)) return 'fields must be an object'
    for (const [id, value] of Object.entries(a.fields)) {
      if (!fields.has(id)) return `failed to validate field ${id} in schema: ${id}: Object not found`
      const problem = valueProblem(id, value)
      if (problem) return problem
    }
    if (a.tags !== undefined && (!Array.isArray(a.tags) || a.tags.some((/** @type {unknown} */ t) => typeof t !== 'string'))) return 'tags must be a list of tag names'
    return a.fields[mergeBy[0]] == null ? `the merge_by field ${mergeBy[0]} has no value` : undefined
  }

  /** @param {string} list the body's list key ('accounts', or 'organizations' on the old path) @returns {(body: any) => Result} */
  const merge = (list) => (body) => {
    if (!on()) return refuse(400, OFF)
    if (!isPlainObject(body)) return refuse(400, 'the body must be a JSON object')
    const extra = unsupportedKeys(body, [list, ...MERGE_KEYS])
    if (extra) return refuse(400, extra)
    if (!Array.isArray(body[list]) || body[list].length < 1 || body[list].length > 100) return refuse(400, `${list} must hold 1 to 100 items`)
    const mergeBy = body.merge_by
    if (!Array.isArray(mergeBy) || mergeBy.length !== 1 || !fields.has(mergeBy[0]) || !String(mergeBy[0]).startsWith('str:')) return refuse(400, 'merge_by must name one text account field')
    if (![undefined, 1, 2, 3].includes(body.merge_strategy)) return refuse(400, 'merge_strategy must be 1, 2 or 3')
    if (![undefined, 0, 1, 2].includes(body.find_strategy)) return refuse(400, 'find_strategy must be 0, 1 or 2')
    if (body.async !== undefined && typeof body.async !== 'boolean') return refuse(400, 'async must be a boolean')
    const strategy = body.merge_strategy ?? 2
    const items = body[list].map((/** @type {any} */ input) => {
      const error = accountProblem(input, mergeBy)
      if (error) return { status: 'invalid', error }
      let account = holder(mergeBy[0], input.fields[mergeBy[0]])
      const created = !account
      if (!account) {
        account = { id: `10${(++ids).toString(16).padStart(22, '0')}`, fields: {}, tags: [], archived: false }
        accounts.set(account.id, account)
      }
      if (created || strategy !== 3)
        for (const [id, value] of Object.entries(input.fields)) {
          if (!created && strategy === 1 && account.fields[id] != null) continue
          if (value === null) delete account.fields[id]
          else account.fields[id] = value
        }
      account.tags = [...new Set([...account.tags, ...(input.tags ?? [])])]
      return { id: account.id, status: created ? 'created' : 'merged' }
    })
    if (items.every((/** @type {any} */ i) => i.status === 'invalid')) return { status: 400, error: `No valid accounts provided (${items[0].error})`, details: items }
    if (answer === 'none') return ok({})
    const [key, id] = answer === 'accounts' ? ['accounts', 'account_id'] : ['organizations', 'organization_id']
    return ok({ [key]: items.map((/** @type {any} */ i) => (i.status === 'invalid' ? i : { [id]: i.id, status: i.status })) })
  }

  /** @param {string} list @returns {(body: any) => Result} */
  const get = (list) => (body) => {
    if (!on()) return refuse(400, OFF)
    if (!isPlainObject(body) || !keysIn(body, ['limit', 'offset', 'fields', 'filter', 'q'])) return refuse(400, 'the body takes limit, offset, fields, filter or q')
    const { limit = 50, offset = 0, fields: wanted = ['str:o:name'], filter, q } = body
    if (!Number.isSafeInteger(limit) || limit < 1 || limit > 500 || !Number.isSafeInteger(offset) || offset < 0) return refuse(400, 'limit must be 1 to 500, offset 0 or more')
    if (!Array.isArray(wanted) || wanted.some((id) => !fields.has(id))) return refuse(400, 'fields must list known account field ids')
    let test = /** @param {Account} a */ (a) => !a.archived
    if (typeof q === 'string') test = (a) => !a.archived && Object.values(a.fields).some((v) => typeof v === 'string' && v.toLowerCase().includes(q.toLowerCase()))
    else if (filter !== undefined) {
      const match = matcher(filter)
      if (typeof match === 'string') return refuse(400, match)
      test = (a) => !a.archived && match(a)
    }
    const found = [...accounts.values()].filter(test).slice(offset, offset + limit)
    return ok({ [list]: found.map((a) => ({ id: a.id, fields: Object.fromEntries(wanted.filter((id) => a.fields[id] != null).map((id) => [id, a.fields[id]])) })) })
  }

  /** `$str::is` {field_id, value} and `$or`/`$and` of them. @param {any} filter @returns {((a: Account) => boolean) | string} */
  function matcher(filter) {
    if (!isPlainObject(filter) || Object.keys(filter).length !== 1) return 'a filter is an object with one operator'
    const [[op, arg]] = Object.entries(filter)
    if (op === '$or' || op === '$and') {
      if (!Array.isArray(arg) || !arg.length) return `${op} takes a non-empty list of filters`
      const parts = arg.map(matcher)
      const bad = parts.find((p) => typeof p === 'string')
      if (bad) return bad
      const tests = /** @type {((a: Account) => boolean)[]} */ (parts)
      return op === '$or' ? (a) => tests.some((t) => t(a)) : (a) => tests.every((t) => t(a))
    }
    if (op !== '$str::is' || !isPlainObject(arg) || !keysIn(arg, ['field_id', 'value']) || !fields.has(arg.field_id) || typeof arg.value !== 'string') {
      return 'the sandbox models $str::is {field_id, value} on a text account field, $and and $or'
    }
    return (a) => a.fields[arg.field_id] === arg.value
  }

  /** @param {any} body @returns {Result} */
  function getByIds(body) {
    if (!on()) return refuse(400, OFF)
    if (!isPlainObject(body) || !keysIn(body, ['account_ids', 'fields']) || !Array.isArray(body.account_ids)) return refuse(400, 'the body must be {"account_ids": […], "fields": […]}')
    /** @type {string[]} */
    const wanted = Array.isArray(body.fields) ? body.fields.filter((/** @type {string} */ id) => fields.has(id)) : ['str:o:name']
    const found = body.account_ids.map((/** @type {string} */ id) => accounts.get(id)).filter(Boolean)
    return ok({
      accounts: Object.fromEntries(found.map((/** @type {Account} */ a) => [a.id, { fields: Object.fromEntries(wanted.filter((id) => a.fields[id] != null).map((id) => [id, a.fields[id]])) }])),
    })
  }

  /** @param {any} body @returns {Result} */
  function customFields(body) {
    if (!on()) return refuse(400, OFF)
    if (body !== undefined && !(isPlainObject(body) && !Object.keys(body).length)) return refuse(400, 'accounts/custom-field/get takes no body (or {})')
    const custom = [...fields].filter(([id]) => id.includes(':oc:'))
    return ok({ fields: custom.map(([id, name]) => ({ id, name, display_type: displayOf(id) })) })
  }

  /** @param {any} body @returns {Result} */
  function createField(body) {
    if (!on()) return refuse(400, OFF)
    if (!isPlainObject(body)) return refuse(400, 'the body must be {"name": …, "type": …}')
    const extra = unsupportedKeys(body, ['name', 'type'])
    if (extra) return refuse(400, extra)
    if (typeof body.name !== 'string' || !body.name.trim() || body.name.trim().length > 100) return refuse(400, 'a field name is required (1 to 100 characters)')
    const prefix = /** @type {Record<string, string>} */ (FIELD_TYPES)[body.type]
    if (!prefix || !['str', 'txt', 'int', 'dec', 'bol', 'tme', 'sst'].includes(prefix) || body.type === 'single_select')
      return refuse(400, `type ${JSON.stringify(body.type)} is not one an account field takes`)
    const name = body.name.trim()
    if ([...fields.values()].some((n) => n.toLowerCase() === name.toLowerCase())) return refuse(400, `an account field named ${JSON.stringify(name)} already exists`)
    const custom = [...fields.keys()].filter((id) => id.includes(':oc:'))
    if (custom.length >= maxCustom) return refuse(403, `custom account field limit reached: ${maxCustom} per instance`)
    const taken = new Set(custom.map((id) => id.slice(id.indexOf(':oc:') + 4)))
    const base = slug(name) || 'field'
    let part = base
    for (let n = 2; taken.has(part); n++) part = `${base}-${n}`
    const id = `${prefix}:oc:${part}`
    fields.set(id, name)
    return ok({ name, field_id: id, display_type: body.type })
  }

  /** @param {boolean} add @returns {(body: any) => Result} */
  const contacts = (add) => (body) => {
    if (!on()) return refuse(400, OFF)
    if (!isPlainObject(body) || !Array.isArray(body.inclusion_ids) || !body.inclusion_ids.length || body.inclusion_ids.some((/** @type {unknown} */ id) => typeof id !== 'string')) {
      return refuse(400, 'inclusion_ids must list person ids')
    }
    if (body.inclusion_ids.length > MAX_LINKED) return refuse(400, `at most ${MAX_LINKED} people a call`)
    if (options.linkStrict) {
      const extra = unsupportedKeys(body, ['inclusion_ids', linkKey])
      if (extra) return refuse(400, extra)
    }
    // Like Ortto: keys it does not read are ignored, and the answer is 200 {} all the same.
    const account = typeof body[linkKey] === 'string' ? accounts.get(body[linkKey]) : undefined
    if (!account) return ok({})
    for (const personId of body.inclusion_ids) {
      if (!people.has(personId)) continue
      const linked = links.get(personId) ?? new Set()
      if (add) linked.add(account.id)
      else linked.delete(account.id)
      links.set(personId, linked)
    }
    return ok({})
  }

  return {
    accounts,
    accountFields: fields,
    links,
    /** A person's linked account ids (person/get's `idt::o`). @param {string} personId */
    linked: (personId) => [...(links.get(personId) ?? [])],
    reset,
    routes: {
      'POST /v1/accounts/merge': merge('accounts'),
      'POST /v1/organizations/merge': merge('organizations'),
      'POST /v1/accounts/get': get('accounts'),
      'POST /v1/organizations/get': get('organizations'),
      'POST /v1/accounts/get-by-ids': getByIds,
      'POST /v1/accounts/custom-field/get': customFields,
      'POST /v1/accounts/custom-field/create': createField,
      'PUT /v1/accounts/contacts/add': contacts(true),
      'PUT /v1/accounts/contacts/remove': contacts(false),
      'PUT /v1/organizations/contacts/add': contacts(true),
      'PUT /v1/organizations/contacts/remove': contacts(false),
    },
  }
}

const OFF = 'Accounts are not enabled for this instance'
/** @param {string} id */
const displayOf = (id) => ({ str: 'text', txt: 'large_text', int: 'integer', dec: 'decimal', bol: 'bool', tme: 'time', sst: 'multi_select' })[id.slice(0, 3)] ?? 'text'
