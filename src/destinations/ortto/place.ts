// Values placed under the ids createMissing made or found (create.ts): a trait's value under its
// field, a track's properties under its activity's attributes; what could not be placed is left
// out and named, what may pass later retried, and a track whose activity was not made is never
// reported delivered.
import type { Issue } from '../../segment/schema'
import { normal } from '../../segment/traits'
import type { Job, LeftOut, Operation } from '../destination'
import { fieldNamed, valueFor, type FieldIndex, type OrttoField } from './fields'
import { isGroup, type AccountPart } from './group'
import { lacksAttribute, NO_ATTRIBUTE, TO_CREATE } from './mapping'
import type { OrttoPerson } from './person'

/** How one definition ended: its id, left out (and why), or to retry. */
export type Made = { id: string; attributes?: FieldIndex } | { left: string } | { retry: string }

/** What createMissing hands back: the jobs placed, those to retry, and tracks whose activity could not be made (not delivered). */
export interface Placed {
  jobs: Job<OrttoPerson>[]
  retry: Map<number, string>
  /** Tracks whose activity could not be made: the person is merged, the event answered rejected with this. */
  unmade: Map<number, { message: string; issues: Issue[] }>
}

/** Properties an activity has no attribute for, as the operator is told of them. */
export function lackingOf(issues: readonly Issue[] | undefined): LeftOut[] {
  const items: LeftOut[] = []
  for (const issue of issues ?? []) {
    const said = issue.message.startsWith(NO_ATTRIBUTE) && /"(.*)"/.exec(issue.message.slice(NO_ATTRIBUTE.length))
    if (said)
      items.push({ kind: 'attribute', name: `${said[1]} / ${issue.path.replace(/^properties\./, '')}`, reason: 'the activity has no attribute of this name and type: add it to the activity in Ortto' })
  }
  return items
}

export function index(fields: OrttoField[]): FieldIndex {
  const exact = new Map<string, OrttoField>()
  const loose = new Map<string, OrttoField>()
  const result = { exact, loose }
  for (const field of fields) addTo(result, field)
  return result
}

export function addTo(target: FieldIndex, field: OrttoField) {
  const exact = target.exact as Map<string, OrttoField>
  const loose = target.loose as Map<string, OrttoField>
  if (!exact.has(field.name)) exact.set(field.name, field)
  const key = normal(field.name)
  if (!loose.has(key)) loose.set(key, field)
}

/** Values under the ids made (or found); left out and named where none could be; retried where it may pass. */
export function place(jobs: readonly Job<OrttoPerson>[], made: Map<string, Made>, unmade: Placed['unmade'], lacking: LeftOut[]): Placed {
  const retry = new Map<number, string>()
  const placed = jobs.map((job, i): Job<OrttoPerson> => {
    const { op } = job
    if (op.kind !== 'upsert' && op.kind !== 'enter') return job
    const issues: Issue[] = [...(op.issues ?? [])]
    const fields = { ...op.person.fields }
    for (const want of op.person.wanted ?? []) {
      const result = made.get(`field:${normal(want.name)}`)!
      if ('retry' in result) retry.set(i, result.retry)
      else if ('left' in result) issues.push({ path: want.path, message: `${result.left}; not sent` })
      else {
        const value = valueFor(result.id, want.value)
        if (value.ok) fields[result.id] = value.value
        else issues.push({ path: want.path, message: `${value.problem}; not sent` })
      }
    }
    const person: OrttoPerson = { ...op.person, fields }
    delete person.wanted
    if (isGroup(person)) person.account = placeAccount(person.account, made, issues, (reason) => retry.set(i, reason))
    const withIssues = issues.length ? { issues } : {}
    if (op.kind === 'upsert' || !op.journey.startsWith(TO_CREATE)) return { ...job, op: { ...op, person, ...withIssues } }
    const name = op.journey.slice(TO_CREATE.length)
    const activity = made.get(`activity:${normal(name)}`)!
    if ('retry' in activity) retry.set(i, activity.retry)
    if ('left' in activity) {
      // Not delivered: the activity is what the track is. Its person is merged when it carries anything.
      const reason = activity.left
      const all = [{ path: 'event', message: reason }, ...issues]
      if (op.setFirst) unmade.set(i, { message: `${reason}; person merged`, issues: all })
      const next: Operation<OrttoPerson> = op.setFirst ? { kind: 'upsert', person, message: `${reason}; person merged`, issues: all } : { kind: 'reject', message: reason, issues: all }
      return { ...job, op: next }
    }
    if ('retry' in activity) return { ...job, op: { kind: 'upsert', person, message: activity.retry, ...withIssues } }
    const attributes: Record<string, unknown> = {}
    for (const [property, value] of Object.entries(op.attributes ?? {})) {
      const attribute = activity.attributes && fieldNamed(activity.attributes, property)?.field
      const converted = attribute && valueFor(attribute.id, value)
      if (converted && converted.ok) attributes[attribute.id] = converted.value
      else {
        const message = lacksAttribute(name)
        issues.push({ path: `properties.${property}`, message })
        lacking.push(...lackingOf([{ path: `properties.${property}`, message }]))
      }
    }
    return { ...job, op: { ...op, journey: activity.id, person, attributes, ...(issues.length && { issues }) } }
  })
  return { jobs: placed, retry, unmade }
}

/** A group's account traits under the custom account fields made (or found); the key field's id becomes the account's key. */
function placeAccount(given: AccountPart, made: Map<string, Made>, issues: Issue[], later: (reason: string) => void): AccountPart {
  const account = { ...given, fields: { ...given.fields } }
  for (const want of account.wanted ?? []) {
    const result = made.get(`account field:${normal(want.name)}`)!
    if ('retry' in result) later(result.retry)
    else if ('left' in result) issues.push({ path: want.path, message: `${result.left}; not sent` })
    else {
      const value = valueFor(result.id, want.value)
      if (value.ok) {
        account.fields[result.id] = value.value
        if (want.key) account.key = result.id
      } else issues.push({ path: want.path, message: `${value.problem}; not sent` })
    }
  }
  delete account.wanted
  return account
}
