// Newest wins: a retried or late event never overwrites what a newer event already set.
// Nothing is stored per event on the happy path: a person gets a guard row only once one
// of its events failed and will be retried (or it was deleted); from then on every
// delivery for it records, per field, the Segment timestamp that set it. Field names come
// from the destination (People.names); the rule is the same for every destination.
import type { People } from '../destinations/destination'
import type { ContactGuard } from '../store/store'

/** The person without the fields a newer event already set. */
export function withoutNewer<P>(people: People<P>, person: P, guard: ContactGuard, at: number): { person: P; dropped: number } {
  return people.without(person, (name) => (guard.fields[name] ?? -Infinity) > at)
}

/** What a delivered event records in the guard: each field it set, at its timestamp. */
export function stamp<P>(people: People<P>, person: P, at: number): Record<string, number> {
  const fields: Record<string, number> = {}
  for (const name of people.names(person)) fields[name] = at
  return fields
}
