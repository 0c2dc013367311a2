// @ts-check
// The Ortto stand-in's calls that add to the account: person/custom-field/create and
// definitions/activity/create (answers' shapes: ./ortto.js). What they add lands in the same
// maps the other routes read, so a created field is listed by custom-field/get and
// instance-schema/get and taken by merges, a created activity by activities/create.
import { ATTRIBUTE_TYPES, FIELD_TYPES, SYSTEM_ACTIVITIES, defineActivities, defineFields, isPlainObject, keysIn, slug, unsupportedKeys } from './ortto-fields.js'

/**
 * @typedef {import('./ortto-fields.js').FieldDefinition} FieldDefinition
 * @typedef {import('./ortto-fields.js').ActivityDefinition} ActivityDefinition
 * @typedef {import('./ortto-handlers.js').Result} Result
 */

const FIELD_KEYS = ['name', 'type', 'values']
const ACTIVITY_KEYS = ['name', 'icon_id', 'attributes', 'track_conversion_value', 'touch', 'filterable', 'visible_in_feeds', 'display_style']
const FLAGS = ['track_conversion_value', 'touch', 'filterable', 'visible_in_feeds']
const MAX_NAME = 100

/** @param {number} status @param {string} error @returns {Result} */
const refuse = (status, error) => ({ status, error })
/** @param {unknown} value */
const isText = (value) => typeof value === 'string' && value.isWellFormed()
/** Names compare in any case, without surrounding spaces. @param {string} name */
const comparable = (name) => name.trim().toLowerCase()

/** What is wrong with a name to create (one of a field, an activity or an attribute), or undefined. @param {unknown} name @param {string} what */
function nameProblem(name, what) {
  if (!isText(name) || !(/** @type {string} */ (name).trim())) return `${what} name is required (a non-blank text)`
  const length = [.../** @type {string} */ (name).trim()].length
  return length > MAX_NAME ? `${what} name is longer than ${MAX_NAME} characters (${length})` : undefined
}

/** A new id's last part from a name: its slug, `-2`, `-3`… while taken; at most 100 characters
 * (the id patterns' limit), and a word for a name without one letter or digit a-z 0-9.
 * @param {string} name @param {(part: string) => boolean} taken @param {string} fallback */
function freeSlug(name, taken, fallback) {
  const base = slug(name) || fallback
  for (let n = 1; ; n++) {
    const suffix = n === 1 ? '' : `-${n}`
    const part = `${base.slice(0, MAX_NAME - suffix.length).replace(/-+$/, '')}${suffix}`
    if (!taken(part)) return part
  }
}

/**
 * @param {import('./ortto.js').OrttoOptions} options
 * @param {Map<string, FieldDefinition>} fields the account's person fields (built-ins too), changed in place
 * @param {Map<string, ActivityDefinition>} definitions the account's custom activities, changed in place
 */
export function creators(options, fields, definitions) {
  const now = options.now ?? (() => Date.now())
  const duplicateStatus = options.duplicateStatus ?? 400
  if (duplicateStatus !== 400 && duplicateStatus !== 409) throw new TypeError(`Ortto sandbox: duplicateStatus must be 400 or 409, not ${duplicateStatus}`)
  const maxFields = options.maxCustomFields ?? 100
  const maxActivities = options.maxActivities ?? 50

  /** @param {any} body @returns {Result} */
  function createField(body) {
    if (!isPlainObject(body)) return refuse(400, 'the body must be {"name": …, "type": …}')
    const extra = unsupportedKeys(body, FIELD_KEYS)
    if (extra) return refuse(400, extra)
    const problem = nameProblem(body.name, 'a field')
    if (problem) return refuse(400, problem)
    if (!Object.hasOwn(FIELD_TYPES, body.type)) return refuse(400, `type must be one of ${Object.keys(FIELD_TYPES).join(', ')}, not ${JSON.stringify(body.type)}`)
    const type = /** @type {keyof typeof FIELD_TYPES} */ (body.type)
    if (body.values !== undefined || type === 'single_select') {
      if (type !== 'single_select' && type !== 'multi_select') return refuse(400, 'values go only with single_select or multi_select')
      const values = body.values
      if (!Array.isArray(values) || !values.length || values.some((v) => !isText(v) || !v.trim() || [...v].length > 255) || new Set(values).size !== values.length) {
        return refuse(400, `${type} needs values: a list of different non-blank texts`)
      }
    }
    const name = body.name.trim()
    if ([...fields.values()].some((f) => comparable(f.name) === comparable(name))) return refuse(duplicateStatus, `a field named ${JSON.stringify(name)} already exists`)
    const custom = [...fields.keys()].filter((id) => id.includes(':cm:'))
    if (custom.length >= maxFields) return refuse(403, `custom field limit reached: the plan allows ${maxFields}`)
    // A slug is one liquid name (people.custom.<slug>), whatever the type: taken by any custom field.
    const slugs = new Set(custom.map((id) => id.slice(id.indexOf(':cm:') + 4)))
    const id = `${FIELD_TYPES[type]}:cm:${freeSlug(name, (part) => slugs.has(part), 'field')}`
    fields.set(id, { id, name, display_type: type })
    // As recorded from a live instance: flat.
    return { status: 200, body: { name, field_id: id, display_type: type } }
  }

  /** @param {any} body @returns {Result} */
  function createActivity(body) {
    if (!isPlainObject(body)) return refuse(400, 'the body must be {"name": …, "icon_id": …, "attributes"?: […]}')
    const extra = unsupportedKeys(body, ACTIVITY_KEYS)
    if (extra) return refuse(400, extra)
    const problem =
      nameProblem(body.name, 'an activity') ??
      (!isText(body.icon_id) || !body.icon_id.trim() ? 'icon_id is required (a non-blank text)' : undefined) ??
      FLAGS.filter((flag) => body[flag] !== undefined && typeof body[flag] !== 'boolean').map((flag) => `${flag} must be a boolean`)[0] ??
      (body.display_style !== undefined && !isPlainObject(body.display_style) ? 'display_style must be an object' : undefined) ??
      attributesProblem(body.attributes)
    if (problem) return refuse(400, problem)
    const name = body.name.trim()
    const names = [...Object.values(SYSTEM_ACTIVITIES), ...definitions.values()].map((a) => comparable(a.name))
    if (names.includes(comparable(name))) return refuse(duplicateStatus, `an activity named ${JSON.stringify(name)} already exists`)
    if (definitions.size >= maxActivities) return refuse(403, `custom activity limit reached: the plan allows ${maxActivities}`)
    const id = `act:cm:${freeSlug(name, (part) => definitions.has(`act:cm:${part}`), 'activity')}`
    /** @type {Map<string, FieldDefinition>} */
    const attributes = new Map()
    const slugs = new Set()
    for (const attribute of /** @type {{ name: string, display_type: keyof typeof ATTRIBUTE_TYPES }[]} */ (body.attributes ?? [])) {
      // Attribute ids are the activity's own: two names with one slug differ by a suffix.
      const part = freeSlug(attribute.name.trim(), (p) => slugs.has(p), 'attribute')
      slugs.add(part)
      const field = { id: `${ATTRIBUTE_TYPES[attribute.display_type]}:cm:${part}`, name: attribute.name.trim(), display_type: attribute.display_type }
      attributes.set(field.id, field)
    }
    const settings = Object.fromEntries(Object.entries(body).filter(([key]) => key !== 'name' && key !== 'attributes'))
    definitions.set(id, { id, name, attributes, settings })
    return { status: 200, body: { custom_activity: recorded(id, name, [...attributes.values()], body, new Date(now()).toISOString()) } }
  }

  return {
    createField,
    createActivity,
    /** Forgets what calls created: back to the options' fields and activities. */
    reset() {
      fields.clear()
      for (const [id, field] of defineFields(options.customFields ?? {})) fields.set(id, field)
      definitions.clear()
      for (const [id, activity] of defineActivities(options.activities ?? {})) definitions.set(id, activity)
    },
  }
}

/**
 * A created activity as Ortto answers it (recorded live, Nov 2025): the id nested under
 * custom_activity.activity_field_id, each attribute's under field_id.
 * @param {string} id @param {string} name @param {FieldDefinition[]} attributes @param {any} body @param {string} at
 */
function recorded(id, name, attributes, body, at) {
  const part = id.slice('act:cm:'.length)
  return {
    name,
    activity_field_id: id,
    state: 'awaiting_implementation',
    display_mode: { type: 'activity' },
    attributes: attributes.map((a) => ({ name: a.name, field_id: a.id, display_type: a.display_type, liquid_name: `activity.custom.${part}.${a.id.slice(a.id.indexOf(':cm:') + 4)}` })),
    icon_id: body.icon_id,
    track_conversion_value: body.track_conversion_value ?? false,
    touch: body.touch ?? true,
    filterable: body.filterable ?? true,
    visible_in_feeds: body.visible_in_feeds ?? true,
    created_by: 'Public API',
    created_at: at,
    edited_at: at,
  }
}

/** What is wrong with a definition's attributes (at most 15 {name, display_type}, names differ), or undefined. @param {unknown} attributes */
function attributesProblem(attributes) {
  if (attributes === undefined) return undefined
  if (!Array.isArray(attributes)) return 'attributes must be a list of {name, display_type}'
  if (attributes.length > 15) return `an activity takes at most 15 attributes, not ${attributes.length}`
  for (const attribute of attributes) {
    if (!isPlainObject(attribute) || !keysIn(attribute, ['name', 'display_type'])) return 'an attribute must be {name, display_type}'
    const problem = nameProblem(attribute.name, 'an attribute')
    if (problem) return problem
    if (!Object.hasOwn(ATTRIBUTE_TYPES, attribute.display_type)) {
      return `attribute display_type must be one of ${Object.keys(ATTRIBUTE_TYPES).join(', ')}, not ${JSON.stringify(attribute.display_type)}`
    }
  }
  const names = attributes.map((a) => comparable(a.name))
  return new Set(names).size === names.length ? undefined : 'attribute names must differ'
}
