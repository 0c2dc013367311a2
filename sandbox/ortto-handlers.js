// @ts-check
// The Ortto stand-in's account (people, activities, definitions) and its routes; the
// transport around them (auth, limits, faults, the ban, the log) is ./ortto.js, which also
// documents the answers' shapes. People are found through ./ortto-index.js; the calls that
// create fields and activity definitions are ./ortto-create.js, the calls that only read
// (person/get, the custom fields, the instance schema) ./ortto-reads.js.
import { accountsOf } from './ortto-accounts.js'
import { creators } from './ortto-create.js'
import { attributesProblem, defineActivities, defineFields, fieldsProblem, isPlainObject, keysIn, locationProblem, mergeByProblem, personProblem, unsupportedKeys } from './ortto-fields.js'
import { peopleIndex } from './ortto-index.js'
import { reads } from './ortto-reads.js'

/**
 * @typedef {{ source_ip: string }} Location
 * @typedef {{ id: string, fields: Record<string, unknown>, tags: string[], archived: boolean, createdAt: number, location?: Location }} Person
 * @typedef {{ activity_id: string, person_id: string, email?: string, ei?: string, attributes: Record<string, unknown>, at: number, created?: string, key?: string, location?: Location }} ActivityRecord
 * @typedef {{ status: number, body?: unknown, error?: string, details?: unknown[] }} Result
 * @typedef {{ status: string, error: string } | undefined} Verdict
 * @typedef {{ invalidMode: 'item' | 'call', activityAnswer: 'full' | 'live' }} Settings
 */

const MERGE_KEYS = ['people', 'merge_by', 'merge_strategy', 'find_strategy', 'async', 'skip_non_existing', 'suppression_list_field_id']
const ACTIVITIES_KEYS = ['activities', 'merge_by', 'merge_strategy', 'find_strategy', 'async']
const ACTIVITY_KEYS = ['activity_id', 'attributes', 'fields', 'merge_by', 'person_id', 'created', 'key', 'location']
const ISO_TIME = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(?::\d{2}(?:\.\d{1,9})?)?(?:Z|[+-]\d{2}:\d{2})$/

/** @param {number} status @param {string} error @param {unknown[]} [details] @returns {Result} */
const refuse = (status, error, details) => ({ status, error, ...(details && { details }) })
/** @param {unknown} body @returns {Result} */
const ok = (body) => ({ status: 200, body })

/**
 * @param {import('./ortto.js').OrttoOptions} options @param {() => number} now @param {() => Settings} settings
 */
export function handlers(options, now, settings) {
  const fields = defineFields(options.customFields ?? {})
  const definitions = defineActivities(options.activities ?? {})
  const suppressed = new Set((options.suppressed ?? []).map((email) => email.toLowerCase()))
  /** @type {Map<string, Person>} person id -> person (archived ones too, until deleted) */
  const people = new Map()
  /** @type {Map<string, Person>} deleted people, by id */
  const deleted = new Map()
  /** @type {ActivityRecord[]} */
  const activities = []
  const index = peopleIndex(people)
  const create = creators(options, fields, definitions)
  const orgs = accountsOf(options, people)
  let ids = 0

  /** @param {string} id @param {unknown} a @param {unknown} b */
  const same = (id, a, b) => a != null && (id === 'str::email' && typeof a === 'string' && typeof b === 'string' ? a.toLowerCase() === b.toLowerCase() : JSON.stringify(a) === JSON.stringify(b))

  /** The person a merge applies to (find_strategy 0 any key in order, 1 next key only for people without the previous, 2 all given keys),
   * oldest first among several; looked up in the index, not by reading everyone.
   * @param {Record<string, unknown>} f @param {string[]} mergeBy @param {number} find */
  function find(f, mergeBy, find) {
    if (mergeBy[0] === 'str::person_id') return people.get(/** @type {string} */ (f['str::person_id']))
    const given = mergeBy.filter((key) => f[key] != null)
    if (find === 2) {
      // No key given cannot pass the checks; a scan would have answered the oldest person.
      if (!given.length) return people.values().next().value
      return index.holders(given[0], f[given[0]]).find((p) => given.every((key) => same(key, p.fields[key], f[key])))
    }
    for (const [i, key] of mergeBy.entries()) {
      if (f[key] == null) continue
      const hit = index.holders(key, f[key]).find((p) => find !== 1 || mergeBy.slice(0, i).every((prev) => p.fields[prev] == null))
      if (hit) return hit
    }
    return undefined
  }

  /** Creates or updates one (valid) person. merge_strategy 1 append only, 2 overwrite (null clears), 3 leave existing people alone.
   * @param {{ fields: Record<string, unknown>, tags?: string[], unset_tags?: string[], location?: Location }} input @param {string[]} mergeBy */
  function upsert(input, mergeBy, strategy = 2, findStrategy = 0) {
    let person = find(input.fields, mergeBy, findStrategy)
    const created = !person
    if (!person) {
      person = { id: `00${(++ids).toString(16).padStart(22, '0')}`, fields: { 'bol::p': true, 'bol::sp': false }, tags: [], archived: false, createdAt: now() }
      people.set(person.id, person)
      index.enter(person)
    }
    if (created || strategy !== 3) {
      for (const [id, value] of Object.entries(input.fields)) {
        if (id === 'str::person_id' || (!created && strategy === 1 && person.fields[id] != null)) continue
        index.leave(person, id)
        if (value === null) delete person.fields[id]
        else person.fields[id] = value
        index.enter(person, id)
      }
      // Like a field: strategy 1 only fills it when the person has none.
      if (input.location && (created || strategy !== 1 || !person.location)) person.location = { source_ip: input.location.source_ip }
      const unset = new Set(input.unset_tags ?? [])
      person.tags = [...new Set([...person.tags.filter((t) => !unset.has(t)), ...(input.tags ?? [])])]
    }
    return { person_id: person.id, status: created ? 'created' : 'merged' }
  }

  /** @param {Record<string, any>} body @param {string[]} keys @param {string} list */
  function callProblem(body, keys, list) {
    const extra = unsupportedKeys(body, keys)
    if (extra) return extra
    if (!Array.isArray(body[list]) || body[list].length < 1 || body[list].length > 100) return `${list} must hold 1 to 100 items`
    if (body.merge_by !== undefined) {
      const problem = mergeByProblem(body.merge_by, fields)
      if (problem) return problem
    }
    if (![undefined, 1, 2, 3].includes(body.merge_strategy)) return 'merge_strategy must be 1, 2 or 3'
    if (![undefined, 0, 1, 2].includes(body.find_strategy)) return 'find_strategy must be 0, 1 or 2'
    if (body.async !== undefined && typeof body.async !== 'boolean') return 'async must be a boolean'
    if (body.skip_non_existing !== undefined && body.skip_non_existing !== false) return 'skip_non_existing: true is not modelled by the sandbox'
    if (body.suppression_list_field_id !== undefined && !fields.has(body.suppression_list_field_id)) return 'suppression_list_field_id is not a field'
    return undefined
  }

  /** Answers a batch whose items were checked first: see invalidMode in ./ortto.js.
   * @param {Verdict[]} verdicts @param {string} noun @param {string} key @param {(index: number) => unknown} apply @returns {Result} */
  function settle(verdicts, noun, key, apply) {
    const bad = verdicts.filter((v) => v !== undefined)
    if (bad.length === verdicts.length) return refuse(400, `No valid ${noun} provided (${bad[0]?.error})`, verdicts)
    if (bad.length && settings().invalidMode === 'call') {
      return refuse(
        400,
        `${bad.length} of ${verdicts.length} ${noun} are not valid (${bad[0]?.error})`,
        verdicts.map((v) => v ?? { status: 'valid' }),
      )
    }
    return ok({ [key]: verdicts.map((verdict, i) => verdict ?? apply(i)) })
  }

  /** @param {any} body @returns {Result} */
  function merge(body) {
    if (!isPlainObject(body)) return refuse(400, 'the body must be a JSON object')
    const problem = callProblem(body, MERGE_KEYS, 'people') ?? (body.merge_by === undefined ? 'merge_by is required' : undefined)
    if (problem) return refuse(400, problem)
    const verdicts = body.people.map((/** @type {any} */ person) => {
      const error =
        personProblem(person, body.merge_by, fields) ??
        (body.merge_by[0] === 'str::person_id' && !people.has(person.fields['str::person_id']) ? `person ${person.fields['str::person_id']} not found` : undefined)
      if (error) return { status: 'invalid', error }
      const email = body.suppression_list_field_id && person.fields[body.suppression_list_field_id]
      return typeof email === 'string' && suppressed.has(email.toLowerCase()) ? { status: 'suppressed', error: 'Email is suppressed' } : undefined
    })
    return settle(verdicts, 'contacts', 'people', (i) => upsert(body.people[i], body.merge_by, body.merge_strategy, body.find_strategy))
  }

  /** @param {any} item @param {any} body @returns {Verdict} */
  function activityVerdict(item, body) {
    /** @param {string} error */
    const invalid = (error) => ({ status: 'invalid', error })
    if (!isPlainObject(item)) return invalid('an activity must be an object')
    const extra = unsupportedKeys(item, ACTIVITY_KEYS, 'activity')
    if (extra) return invalid(extra)
    if (new TextEncoder().encode(JSON.stringify(item)).length > 16_000) return invalid('an activity is larger than 16 kB')
    const definition = definitions.get(item.activity_id)
    if (!definition) return invalid(`activity ${JSON.stringify(item.activity_id)} does not exist`)
    const problem = attributesProblem(item.attributes, definition)
    if (problem) return invalid(problem)
    if (item.created !== undefined && (typeof item.created !== 'string' || !ISO_TIME.test(item.created))) return invalid('created must be an ISO 8601 date-time')
    if (item.key !== undefined && (typeof item.key !== 'string' || !item.key)) return invalid('key must be a text')
    if (item.location !== undefined) {
      const problem = locationProblem(item.location)
      if (problem) return invalid(problem)
    }
    if (item.person_id !== undefined) {
      if (item.fields !== undefined || item.merge_by !== undefined) return invalid('person_id stands alone: no fields or merge_by with it')
      return people.has(item.person_id) ? undefined : invalid(`person ${JSON.stringify(item.person_id)} not found`)
    }
    const mergeBy = item.merge_by ?? body.merge_by
    if (mergeBy === undefined) return invalid('merge_by is required (for the call or the activity)')
    const error =
      mergeByProblem(mergeBy, fields) ?? fieldsProblem(item.fields, mergeBy, fields) ?? (mergeBy[0] === 'str::person_id' && !people.has(item.fields['str::person_id']) ? 'person not found' : undefined)
    return error ? invalid(error) : undefined
  }

  /** @param {any} body @returns {Result} */
  function createActivities(body) {
    if (!isPlainObject(body)) return refuse(400, 'the body must be a JSON object')
    const problem = callProblem(body, ACTIVITIES_KEYS, 'activities')
    if (problem) return refuse(400, problem)
    const verdicts = body.activities.map((/** @type {any} */ item) => activityVerdict(item, body))
    return settle(verdicts, 'activities', 'activities', (i) => {
      const item = body.activities[i]
      const personId = item.person_id ?? upsert({ fields: item.fields }, item.merge_by ?? body.merge_by, body.merge_strategy, body.find_strategy).person_id
      const person = /** @type {Person} */ (people.get(personId))
      activities.push({
        activity_id: item.activity_id,
        person_id: personId,
        attributes: item.attributes,
        at: now(),
        ...(typeof person.fields['str::email'] === 'string' && { email: person.fields['str::email'] }),
        ...(typeof person.fields['str::ei'] === 'string' && { ei: person.fields['str::ei'] }),
        ...(item.created && { created: item.created }),
        ...(item.key && { key: item.key }),
        ...(item.location && { location: { source_ip: item.location.source_ip } }),
      })
      return settings().activityAnswer === 'live'
        ? { ...(item.person_id && { person_id: personId }), status: 'queued', person_status: 'queued' }
        : { activity_id: item.activity_id, person_id: personId, status: 'queued', person_status: 'queued' }
    })
  }

  /** @param {any} body @returns {string[] | string} */
  const inclusionIds = (body) =>
    isPlainObject(body) &&
    keysIn(body, ['inclusion_ids']) &&
    Array.isArray(body.inclusion_ids) &&
    body.inclusion_ids.length > 0 &&
    body.inclusion_ids.every((/** @type {unknown} */ id) => typeof id === 'string')
      ? body.inclusion_ids
      : 'the body must be {"inclusion_ids": [person ids]}'

  /** @param {any} body @returns {Result} */
  function archive(body) {
    const list = inclusionIds(body)
    if (typeof list === 'string') return refuse(400, list)
    const hit = [...new Set(list)].map((id) => people.get(id)).filter((p) => p && !p.archived)
    for (const p of hit) /** @type {Person} */ (p).archived = true
    return ok({ scheduled_contacts: 0, archived_contacts: hit.length })
  }

  /** @param {any} body @returns {Result} */
  function remove(body) {
    const list = inclusionIds(body)
    if (typeof list === 'string') return refuse(400, list)
    const live = list.filter((id) => people.get(id)?.archived === false)
    if (live.length) {
      const error = 'contacts must be archived before they can be deleted'
      return refuse(
        400,
        error,
        live.map((id) => ({ person_id: id, status: 'not-archived', error })),
      )
    }
    const hit = [...new Set(list)].filter((id) => people.has(id))
    for (const id of hit) {
      const person = /** @type {Person} */ (people.get(id))
      index.leave(person)
      deleted.set(id, person)
      people.delete(id)
    }
    return ok({ scheduled_contacts: 0, deleted_contacts: hit.length })
  }

  const { getPeople, customFields, schema } = reads(people, fields, definitions, same, orgs.linked)

  return {
    people,
    deleted,
    activities,
    fields,
    definitions,
    /** Accounts (Segment `group`): ./ortto-accounts.js. */
    orgs,
    /** @type {Record<string, (body: any) => Result>} method and path -> handler */
    routes: {
      'POST /v1/person/merge': merge,
      'POST /v1/activities/create': createActivities,
      'POST /v1/person/custom-field/get': customFields,
      'POST /v1/person/custom-field/create': create.createField,
      'POST /v1/definitions/activity/create': create.createActivity,
      'POST /v1/instance-schema/get': schema,
      'POST /v1/person/get': getPeople,
      'PUT /v1/person/archive': archive,
      'DELETE /v1/person/delete': remove,
      ...orgs.routes,
    },
    /** The live (not deleted) person whose field holds this value (str::email case-insensitively); the oldest if several. @param {string} fieldId @param {unknown} value */
    person: (fieldId, value) => index.holders(fieldId, value)[0],
    /** Forgets the people and activities, and the fields and activities created by calls: back to the options' account. */
    clear() {
      people.clear()
      deleted.clear()
      activities.length = 0
      ids = 0
      index.clear()
      create.reset()
      orgs.reset()
    },
  }
}
