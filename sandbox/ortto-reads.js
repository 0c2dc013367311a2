// @ts-check
// The Ortto stand-in's calls that only read the account: person/get (with the filters the
// Worker uses), the custom fields, and the instance schema (fields and activities by
// namespace). The account itself is ./ortto-handlers.js.
import { SYSTEM_ACTIVITIES, describeActivity, describeField, isPlainObject, keysIn, systemAttribute } from './ortto-fields.js'

/**
 * @typedef {import('./ortto-handlers.js').Person} Person
 * @typedef {import('./ortto-handlers.js').Result} Result
 */

/** A person's linked accounts: a list of account ids, in person/get only. */
const ACCOUNTS = 'idt::o'

/** @param {number} status @param {string} error @returns {Result} */
const refuse = (status, error) => ({ status, error })
/** @param {unknown} body @returns {Result} */
const ok = (body) => ({ status: 200, body })

/**
 * @param {Map<string, Person>} people
 * @param {ReturnType<typeof import('./ortto-fields.js').defineFields>} fields
 * @param {ReturnType<typeof import('./ortto-fields.js').defineActivities>} definitions
 * @param {(id: string, a: unknown, b: unknown) => boolean} same whether two values of a field are one
 * @param {(personId: string) => string[]} [linked] a person's linked account ids (`idt::o`, read-only)
 */
export function reads(people, fields, definitions, same, linked = () => []) {
  /** A person/get filter as a test on a person; throws a message when it is not one the sandbox knows.
   * @param {unknown} filter @returns {(p: Person) => boolean} */
  function matcher(filter) {
    if (!isPlainObject(filter) || Object.keys(/** @type {object} */ (filter)).length !== 1) throw new Error('a filter is an object with one operator')
    const [[op, arg]] = Object.entries(/** @type {Record<string, any>} */ (filter))
    if (op === '$and' || op === '$or') {
      if (!Array.isArray(arg) || !arg.length) throw new Error(`${op} takes a non-empty list of filters`)
      const parts = arg.map(matcher)
      return op === '$and' ? (p) => parts.every((m) => m(p)) : (p) => parts.some((m) => m(p))
    }
    if (op === '$str::is' || op === '$has_any_value') {
      const id = arg?.field_id
      if (!isPlainObject(arg) || !fields.has(id) || !keysIn(arg, op === '$str::is' ? ['field_id', 'value'] : ['field_id']))
        throw new Error(`${op} takes {field_id${op === '$str::is' ? ', value' : ''}} with a known field`)
      if (op === '$has_any_value') return (p) => p.fields[id] != null
      if (!id.startsWith('str:') || typeof arg.value !== 'string') throw new Error('$str::is compares a str field with a text value')
      return (p) => same(id, p.fields[id], arg.value)
    }
    throw new Error(`filter operator ${op} is not modelled by the sandbox`)
  }

  /** @param {any} body @returns {Result} */
  function getPeople(body) {
    if (!isPlainObject(body)) return refuse(400, 'the body must be a JSON object')
    if (!keysIn(body, ['limit', 'offset', 'fields', 'filter'])) return refuse(400, `unsupported keys: ${Object.keys(body).join(', ')}`)
    const { limit = 50, offset = 0, fields: wanted, filter } = body
    if (!Number.isSafeInteger(limit) || limit < 1 || limit > 500) return refuse(400, 'limit must be 1 to 500')
    if (!Number.isSafeInteger(offset) || offset < 0) return refuse(400, 'offset must be 0 or more')
    if (!Array.isArray(wanted) || !wanted.length || wanted.some((id) => !fields.has(id) && id !== ACCOUNTS)) return refuse(400, 'fields must list known field ids')
    let test
    try {
      test = filter === undefined ? () => true : matcher(filter)
    } catch (e) {
      return refuse(400, /** @type {Error} */ (e).message)
    }
    const live = [...people.values()].filter((p) => !p.archived)
    const matches = live.filter(test)
    const page = matches.slice(offset, offset + limit)
    return ok({
      contacts: page.map((p) => ({
        id: p.id,
        fields: Object.fromEntries(wanted.map((id) => [id, id === ACCOUNTS ? linked(p.id) : p.fields[id]]).filter(([id, value]) => value != null && (id !== ACCOUNTS || value.length))),
      })),
      meta: { total_contacts: live.length, total_organizations: 0, total_matches: matches.length },
      offset,
      next_offset: offset + page.length,
      cursor_id: page.at(-1)?.id ?? '',
      has_more: offset + page.length < matches.length,
    })
  }

  /** @param {any} body @returns {Result} */
  function customFields(body) {
    if (body !== undefined && !(isPlainObject(body) && !Object.keys(body).length)) return refuse(400, 'person/custom-field/get takes no body (or {})')
    const custom = [...fields.values()].filter((f) => f.id.includes(':cm:'))
    return ok({ fields: custom.map((f) => ({ field: describeField(f), tracked_value: false })) })
  }

  /** @param {any} body @returns {Result} */
  function schema(body) {
    if (!isPlainObject(body) || !keysIn(body, ['namespaces']) || !Array.isArray(body.namespaces) || body.namespaces.some((/** @type {unknown} */ n) => typeof n !== 'string')) {
      return refuse(400, 'the body must be {"namespaces": [namespace ids]} ([] for all)')
    }
    /** @param {[string, object][]} entries */
    const keyed = (entries) => Object.fromEntries(entries)
    const all = {
      '': {
        id: '',
        fields: keyed([
          ...[...fields.values()].filter((f) => !f.id.includes(':cm:')).map((f) => /** @type {[string, object]} */ ([f.id, describeField(f)])),
          ...Object.entries(SYSTEM_ACTIVITIES).map(
            ([id, a]) =>
              /** @type {[string, object]} */ ([
                id,
                describeActivity(
                  id,
                  a.name,
                  Object.entries(a.attributes).map(([i, n]) => systemAttribute(i, n)),
                ),
              ]),
          ),
        ]),
      },
      cm: {
        id: 'cm',
        fields: keyed([
          ...[...fields.values()].filter((f) => f.id.includes(':cm:')).map((f) => /** @type {[string, object]} */ ([f.id, describeField(f)])),
          ...[...definitions.values()].map((a) => /** @type {[string, object]} */ ([a.id, describeActivity(a.id, a.name, [...a.attributes.values()])])),
        ]),
      },
    }
    const wanted = body.namespaces.length ? body.namespaces : Object.keys(all)
    return ok({ namespaces: Object.fromEntries(Object.entries(all).filter(([ns]) => wanted.includes(ns))) })
  }

  return { getPeople, customFields, schema }
}
