// @ts-check
// What the Autopilot stand-in accepts as a contact (standard fields, custom keys and their
// types), as ../shared/reference/autopilot-api.md describes it: the judge of every contact the
// Worker sends. The account itself is ./autopilot.js.

export const STANDARD_FIELDS = new Set([
  'Email',
  'FirstName',
  'LastName',
  'Salutation',
  'Company',
  'NumberOfEmployees',
  'Title',
  'Industry',
  'Phone',
  'MobilePhone',
  'Fax',
  'Website',
  'MailingStreet',
  'MailingCity',
  'MailingState',
  'MailingPostalCode',
  'MailingCountry',
  'owner_name',
  'LeadSource',
  'Status',
  'LinkedIn',
  'Twitter',
])
const BOOLEAN_FIELDS = new Set(['unsubscribed', 'notify'])
const SPECIAL_STRING_FIELDS = new Set(['_NewEmail', '_autopilot_list', '_autopilot_session_id'])
export const CUSTOM_KEY = /^(string|integer|float|boolean|date)--(.+)$/s
const ISO_DATE = /^\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}:?\d{2})?)?$/
// Stricter than the Worker's own check on purpose: a domain needs a dot. This is
// how the tests produce a contact that Autopilot refuses inside a bulk call.
const AUTOPILOT_EMAIL = /^[^\s@\p{Cc}]+@[^\s@\p{Cc}.]+(?:\.[^\s@\p{Cc}.]+)+$/u

/** @param {unknown} value */
const isPlainObject = (value) => typeof value === 'object' && value !== null && !Array.isArray(value) && (Object.getPrototypeOf(value) === Object.prototype || Object.getPrototypeOf(value) === null)

/** A custom field key is well-formed when its name is non-empty and has no whitespace or control characters.
 * @param {string} key */
export function isWellFormedCustomKey(key) {
  const match = CUSTOM_KEY.exec(key)
  if (!match) return false
  const name = match[2]
  return name.length > 0 && name.length <= 200 && !/[\s\p{Cc}]/u.test(name) && name.isWellFormed() && !['__proto__', 'constructor', 'prototype'].includes(name)
}

/**
 * Checks a contact the way Autopilot does. Returns the reason it is refused, or undefined.
 * @param {unknown} contact
 * @param {Map<string, string>} [fieldTypes] the account's existing custom field types (name -> type)
 * @returns {string | undefined}
 */
export function contactProblem(contact, fieldTypes = new Map()) {
  if (!isPlainObject(contact)) return 'contact must be an object'
  const c = /** @type {Record<string, unknown>} */ (contact)
  if (typeof c.Email !== 'string' || !AUTOPILOT_EMAIL.test(c.Email) || !c.Email.isWellFormed()) {
    return 'Invalid contact_id_or_email value provided.'
  }
  for (const [key, value] of Object.entries(c)) {
    if (key === 'custom') continue
    if (STANDARD_FIELDS.has(key) || SPECIAL_STRING_FIELDS.has(key)) {
      if (typeof value !== 'string') return `Field ${key} must be a string.`
      if (!value.isWellFormed()) return `Field ${key} is not valid text.`
    } else if (BOOLEAN_FIELDS.has(key)) {
      if (typeof value !== 'boolean') return `Field ${key} must be a boolean.`
    } else {
      return `Unknown contact field ${JSON.stringify(key)}.`
    }
  }
  if (c._NewEmail !== undefined && !AUTOPILOT_EMAIL.test(/** @type {string} */ (c._NewEmail))) {
    return 'Invalid _NewEmail value provided.'
  }
  if (c.custom === undefined) return undefined
  if (!isPlainObject(c.custom)) return 'custom must be an object of typed fields.'
  for (const [key, value] of Object.entries(/** @type {object} */ (c.custom))) {
    if (!isWellFormedCustomKey(key)) return `Custom field ${JSON.stringify(key)} must be named <type>--<Name>.`
    const [, type, name] = /** @type {RegExpExecArray} */ (CUSTOM_KEY.exec(key))
    if (!fits(type, value)) return `Custom field ${key} does not hold a ${type}.`
    const known = fieldTypes.get(name)
    if (known && known !== type) return `Custom field ${name} already exists with type ${known}.`
  }
  return undefined
}

/** @param {string} type @param {unknown} value */
function fits(type, value) {
  switch (type) {
    case 'string':
      return typeof value === 'string' && value.isWellFormed()
    case 'integer':
      return typeof value === 'number' && Number.isSafeInteger(value)
    case 'float':
      return typeof value === 'number' && Number.isFinite(value)
    case 'boolean':
      return typeof value === 'boolean'
    case 'date':
      return typeof value === 'string' && ISO_DATE.test(value) && !Number.isNaN(Date.parse(value))
    default:
      return false
  }
}
