// What a batch needs and the Ortto account lacks (ORTTO_CREATE): a custom field for each trait
// with none, an activity definition for each track whose name has none. Each is made once:
// a name this isolate made or found is used as it is; a duplicate refused by Ortto (another
// isolate made it a moment ago) is answered by reading the account again and using what is
// there. At most ORTTO_CREATE_MAX a day (a slot held in D1, shared by every isolate); past
// it, the trait or activity is left out and named. A transient failure retries the events
// that need it; a permanent one (a plan's cap, a refused name) leaves the trait or activity
// out, named. Nothing is ever sent under an id that does not exist.
import type { Issue } from '../../segment/schema'
import { normal } from '../../segment/traits'
import type { Creations, Job, Operation, Reservation } from '../destination'
import { CallError } from '../transport'
import { Stopped } from '../../pipeline/gate'
import { toAccount, type StoredAccount } from './account'
import { accountFieldMaker } from './accounts-read'
import type { OrttoClient } from './client'
import { fieldNamed, noAccount, typeFor, unknownAccount, valueFor, type FieldIndex, type OrttoAccount, type OrttoField } from './fields'
import { isGroup } from './group'
import { TO_CREATE } from './mapping'
import type { OrttoPerson } from './person'
import type { OrttoSettings } from './settings'

export interface CreateOptions {
  settings: OrttoSettings
  creations?: Creations
  /** The account as the mapping saw it: what is created is added to it, for this isolate's next events. */
  account?: OrttoAccount
  /** Reads the account again (after a duplicate was refused). */
  reread: () => Promise<StoredAccount>
}

/** How one definition ended: its id, left out (and why), or to retry. */
type Made = { id: string; attributes?: FieldIndex } | { left: string } | { retry: string }

const DUPLICATE = /already exist|duplicate|taken|in use/i
/**
 * Definitions one run creates, at most: each costs a call and two or three D1 queries, and a
 * request stays within the Free plan's 50 of each. The rest are retried (the re-send makes them).
 */
export const MAX_CREATIONS_PER_RUN = 8

/** Creates what the jobs need; returns the jobs with values placed under real ids (or left out), and what must be retried. */
export async function createMissing(jobs: readonly Job<OrttoPerson>[], client: OrttoClient, options: CreateOptions): Promise<{ jobs: Job<OrttoPerson>[]; retry: Map<number, string> }> {
  const fields = new Map<string, string>() // name -> type
  const accountFields = new Map<string, string>() // custom account fields (Segment `group`): name -> type
  const activities = new Map<string, Map<string, string>>() // name -> attribute name -> type
  for (const { op } of jobs) {
    if (op.kind !== 'upsert' && op.kind !== 'enter') continue
    for (const want of op.person.wanted ?? []) if (!fields.has(want.name)) fields.set(want.name, want.type.type)
    if (isGroup(op.person)) for (const want of op.person.account.wanted ?? []) if (!accountFields.has(want.name)) accountFields.set(want.name, want.type.type)
    if (op.kind === 'enter' && op.journey.startsWith(TO_CREATE)) {
      const attributes = activities.get(op.journey.slice(TO_CREATE.length)) ?? new Map<string, string>()
      for (const [name, value] of Object.entries(op.attributes ?? {})) if (!attributes.has(name) && attributes.size < 15) attributes.set(name, typeFor(value)!.type)
      activities.set(op.journey.slice(TO_CREATE.length), attributes)
    }
  }
  if (!fields.size && !activities.size && !accountFields.size) return { jobs: [...jobs], retry: new Map() }

  let reread: OrttoAccount | undefined
  const lookAgain = async () => (reread ??= toAccount(await options.reread()))
  const made = new Map<string, Made>()
  let budget = MAX_CREATIONS_PER_RUN
  const later = (kind: string, name: string): Made => ({ retry: `this request already created ${MAX_CREATIONS_PER_RUN} definitions; the ${kind} "${name}" is created on the retry` })
  for (const [name, type] of fields)
    made.set(
      `field:${name}`,
      await make(
        'field',
        name,
        () => client.createField(name, type),
        async (account) => fieldNamed(account.fields, name)?.field,
      ),
    )
  for (const [name, type] of accountFields) made.set(`account field:${name}`, await make('account field', name, ...accountFieldMaker(client, name, type)))
  for (const [name, attributes] of activities) {
    made.set(
      `activity:${name}`,
      await make(
        'activity',
        name,
        async () =>
          client.createActivity(
            name,
            [...attributes].map(([attribute, display_type]) => ({ name: attribute, display_type })),
          ),
        async (account) => {
          const found = fieldNamed(account.activityNames, name)?.field
          return found && { ...found, attributes: account.activities.get(found.id) }
        },
      ),
    )
  }
  return place(jobs, made)

  async function make(
    kind: 'field' | 'activity' | 'account field',
    name: string,
    create: () => Promise<string | { id: string; attributes: OrttoField[] }>,
    existing: (account: OrttoAccount) => Promise<(OrttoField & { attributes?: FieldIndex }) | undefined>,
  ): Promise<Made> {
    // Made meanwhile by this isolate (an earlier batch), or seen in a fresh read.
    const known = (options.account && (await existing(options.account))) || (reread && (await existing(reread)))
    if (known) return { id: known.id, attributes: known.attributes }
    if (budget-- <= 0) return later(kind, name)
    /** The definition as the account has it now (read again), learnt by this isolate; undefined when it has none. */
    const readBack = async (): Promise<Made | undefined> => {
      try {
        const found = await existing(await lookAgain())
        if (!found) return undefined
        remember(kind, found, found.attributes)
        return { id: found.id, attributes: found.attributes }
      } catch (again) {
        return { retry: `the account could not be read again to find the ${kind} "${name}" (${again instanceof Error ? again.message : 'unknown error'}); will retry` }
      }
    }
    const { creations } = options
    const max = options.settings.create.max
    let held: Reservation
    try {
      held = creations ? await creations.reserve(kind, name, max) : 'new'
    } catch {
      return { retry: `the record of what this Worker created is unavailable, so the ${kind} "${name}" was not created; will retry` }
    }
    if (held === 'taken') {
      // Another isolate made it (or is making it) today: what the account has now is the truth, not a second create.
      return (await readBack()) ?? { retry: `the ${kind} "${name}" is being created by another request; will retry` }
    }
    if (held === 'full') {
      const reason = `today's ${max} new Ortto fields and activities (ORTTO_CREATE_MAX) are used up, so the ${kind} "${name}" was not created`
      await creations?.leftOut(kind, name, `ORTTO_CREATE_MAX (${max}) reached`).catch(() => undefined)
      return { left: reason }
    }
    try {
      const answer = await create()
      const id = typeof answer === 'string' ? answer : answer.id
      await creations?.settle(kind, name, id).catch(() => undefined)
      const attributes = typeof answer === 'string' ? undefined : index(answer.attributes)
      remember(kind, { id, name }, attributes)
      return { id, attributes }
    } catch (error) {
      await creations?.settle(kind, name).catch(() => undefined)
      // Not attempted (the gate's budget or deadline, a pause, the ban guard): made on the retry.
      if (error instanceof Stopped) return { retry: `the ${kind} "${name}" was not created now (${error.message}); will retry` }
      if (!(error instanceof CallError)) throw error
      if (error.kind === 'rejected' && (error.status === 409 || DUPLICATE.test(error.message))) {
        // Another isolate made it a moment ago: use the one that exists.
        return (await readBack()) ?? { left: `Ortto refused to create the ${kind} "${name}" (${error.message}) and the account has none of that name` }
      }
      if (error.retryable) return { retry: `the ${kind} "${name}" could not be created now (${error.message}); will retry` }
      return { left: `Ortto refused to create the ${kind} "${name}": ${error.message}` }
    }
  }

  /** This isolate's copy of the account learns it: the next events place the value at once. */
  function remember(kind: 'field' | 'activity' | 'account field', field: OrttoField, attributes?: FieldIndex) {
    const account = options.account
    // The shared empty accounts (reading off, or never read) are no copy of this account.
    if (!account || account === noAccount || account === unknownAccount) return
    if (kind === 'field') addTo(account.fields, field)
    else if (kind === 'account field') {
      if (account.accounts) addTo(account.accounts.fields, field)
    } else {
      addTo(account.activityNames, field)
      ;(account.activities as Map<string, FieldIndex>).set(field.id, attributes ?? index([]))
    }
  }
}

function index(fields: OrttoField[]): FieldIndex {
  const exact = new Map<string, OrttoField>()
  const loose = new Map<string, OrttoField>()
  const result = { exact, loose }
  for (const field of fields) addTo(result, field)
  return result
}

function addTo(target: FieldIndex, field: OrttoField) {
  const exact = target.exact as Map<string, OrttoField>
  const loose = target.loose as Map<string, OrttoField>
  if (!exact.has(field.name)) exact.set(field.name, field)
  const key = normal(field.name)
  if (!loose.has(key)) loose.set(key, field)
}

/** Values under the ids made (or found); left out and named where none could be; retried where it may pass. */
function place(jobs: readonly Job<OrttoPerson>[], made: Map<string, Made>): { jobs: Job<OrttoPerson>[]; retry: Map<number, string> } {
  const retry = new Map<number, string>()
  const placed = jobs.map((job, i): Job<OrttoPerson> => {
    const { op } = job
    if (op.kind !== 'upsert' && op.kind !== 'enter') return job
    const issues: Issue[] = [...(op.issues ?? [])]
    const fields = { ...op.person.fields }
    for (const want of op.person.wanted ?? []) {
      const result = made.get(`field:${want.name}`)!
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
    if (isGroup(person)) {
      const account = { ...person.account, fields: { ...person.account.fields } }
      for (const want of account.wanted ?? []) {
        const result = made.get(`account field:${want.name}`)!
        const value = 'id' in result ? valueFor(result.id, want.value) : undefined
        if ('retry' in result) retry.set(i, result.retry)
        else if ('left' in result) issues.push({ path: want.path, message: `${result.left}; not sent` })
        else if (value?.ok) {
          account.fields[result.id] = value.value
          if (want.key) account.key = result.id
        } else issues.push({ path: want.path, message: `${value?.problem ?? 'not taken'}; not sent` })
      }
      delete account.wanted
      person.account = account
    }
    const withIssues = issues.length ? { issues } : {}
    if (op.kind === 'upsert' || !op.journey.startsWith(TO_CREATE)) return { ...job, op: { ...op, person, ...withIssues } }
    const name = op.journey.slice(TO_CREATE.length)
    const activity = made.get(`activity:${name}`)!
    if ('retry' in activity) retry.set(i, activity.retry)
    if (!('id' in activity)) {
      // No activity: as without ORTTO_CREATE, the person is merged and the reason named.
      const reason = 'left' in activity ? activity.left : activity.retry
      const next: Operation<OrttoPerson> = { kind: 'upsert', person, message: `${reason}; person merged`, ...withIssues }
      return { ...job, op: next }
    }
    const attributes: Record<string, unknown> = {}
    for (const [name, value] of Object.entries(op.attributes ?? {})) {
      const attribute = activity.attributes && fieldNamed(activity.attributes, name)?.field
      const converted = attribute && valueFor(attribute.id, value)
      if (converted && converted.ok) attributes[attribute.id] = converted.value
      else issues.push({ path: `properties.${name}`, message: 'the activity has no attribute of this type for it; not sent' })
    }
    return { ...job, op: { ...op, journey: activity.id, person, attributes, ...(issues.length && { issues }) } }
  })
  return { jobs: placed, retry }
}
