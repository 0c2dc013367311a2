// Newest wins: a retried or late event never overwrites what a newer event already set.
// Nothing is stored per event on the happy path: a contact gets a guard row only once
// one of its events failed and will be retried (or it was deleted); from then on every
// delivery for it records, per field, the Segment timestamp that set it.
import type { ContactGuard } from './store'
import type { Contact } from './transform'

/** Field names as the guard keeps them: custom fields without their type (a type can change). */
function fieldsOf(contact: Contact): string[] {
  const names: string[] = []
  for (const name of Object.keys(contact)) {
    if (name === 'Email') continue
    if (name === 'custom') for (const key of Object.keys(contact.custom ?? {})) names.push(`custom:${customName(key)}`)
    else names.push(name)
  }
  return names
}

/** The contact without the fields a newer event already set. */
export function withoutNewer(contact: Contact, guard: ContactGuard, at: number): { contact: Contact; dropped: number } {
  const newer = (name: string) => (guard.fields[name] ?? -Infinity) > at
  let dropped = 0
  const kept: Record<string, unknown> = {}
  for (const [name, value] of Object.entries(contact)) {
    if (name === 'custom') {
      const custom = Object.fromEntries(Object.entries(contact.custom ?? {}).filter(([key]) => !newer(`custom:${customName(key)}`)))
      dropped += Object.keys(contact.custom ?? {}).length - Object.keys(custom).length
      if (Object.keys(custom).length) kept.custom = custom
    } else if (name !== 'Email' && newer(name)) {
      dropped++
    } else {
      kept[name] = value
    }
  }
  return { contact: kept as Contact, dropped }
}

/** What a delivered event records in the guard: each field it set, at its timestamp. */
export function stamp(contact: Contact, at: number): Record<string, number> {
  return Object.fromEntries(fieldsOf(contact).map((name) => [name, at]))
}

const customName = (key: string) => key.slice(key.indexOf('--') + 2)

/** True when the contact sets nothing but its Email. */
export const onlyEmail = (contact: Contact) => Object.keys(contact).length === 1
