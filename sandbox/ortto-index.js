// @ts-check
// The Ortto stand-in's people by field value, so a merge or an activity finds its person in
// O(1) per merge_by key instead of reading every stored person (0.6 s a call at 20,000
// people). str::email (lower-cased) and str::ei are always indexed; any other field is
// indexed the first time it is looked up (one scan) and kept current from then on.
// ./ortto-handlers.js tells it about every change: a new person, a field set or cleared, a
// delete. Archived people stay in: a merge still finds them.

/** @typedef {import('./ortto-handlers.js').Person} Person */

/** The key a value is found by: an email compares case-insensitively, anything else as JSON
 * (the same test the stand-in always used). @param {string} id @param {unknown} value */
const keyOf = (id, value) => JSON.stringify(id === 'str::email' && typeof value === 'string' ? value.toLowerCase() : value)

/** @param {Map<string, Person>} people the stored people, oldest first */
export function peopleIndex(people) {
  /** @type {Map<string, Map<string, Person[]>>} field id -> value key -> the people holding it, oldest first */
  const indexes = new Map()
  const reset = () => {
    indexes.clear()
    indexes.set('str::email', new Map())
    indexes.set('str::ei', new Map())
  }
  reset()

  /** @param {Map<string, Person[]>} index @param {string} id @param {Person} person */
  function add(index, id, person) {
    if (person.fields[id] == null) return
    const key = keyOf(id, person.fields[id])
    const list = index.get(key)
    if (!list) {
      index.set(key, [person])
      return
    }
    // Oldest first, as a scan of `people` would meet them (ids grow with creation, fixed width).
    let at = list.length
    while (at > 0 && list[at - 1].id > person.id) at--
    list.splice(at, 0, person)
  }

  /** @param {Map<string, Person[]>} index @param {string} id @param {Person} person */
  function drop(index, id, person) {
    if (person.fields[id] == null) return
    const key = keyOf(id, person.fields[id])
    const list = index.get(key) ?? []
    const at = list.indexOf(person)
    if (at >= 0) list.splice(at, 1)
    if (!list.length) index.delete(key)
  }

  /** @param {typeof add} change @param {Person} person @param {string} [id] one field, or every indexed one */
  function each(change, person, id) {
    if (id === undefined) for (const [field, index] of indexes) change(index, field, person)
    else {
      const index = indexes.get(id)
      if (index) change(index, id, person)
    }
  }

  return {
    /** The people whose field holds this value (str::email in any case), oldest first. @param {string} id @param {unknown} value @returns {Person[]} */
    holders(id, value) {
      let index = indexes.get(id)
      if (!index) {
        const built = /** @type {Map<string, Person[]>} */ (new Map())
        for (const person of people.values()) add(built, id, person)
        indexes.set(id, (index = built))
      }
      return value == null ? [] : (index.get(keyOf(id, value)) ?? [])
    },
    /** Call after a person is stored or a field of theirs set. @param {Person} person @param {string} [id] */
    enter: (person, id) => each(add, person, id),
    /** Call before a field of a person changes or is cleared, or the person is deleted. @param {Person} person @param {string} [id] */
    leave: (person, id) => each(drop, person, id),
    clear: reset,
  }
}
