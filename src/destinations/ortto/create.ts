// What a batch needs and the Ortto account lacks (ORTTO_CREATE): a custom field for each trait
// with none, an activity definition for each track whose name has none. Each name is asked of
// Ortto at most once a day, whatever the isolate (the record in D1, creations.ts): one made is
// used (its id read back from the account when the answer lacks it), one refused for good is
// left out with the reason and not asked again that day, one another run is making is read
// from the account or retried. At most ORTTO_CREATE_MAX a day. A request makes at most
// MAX_CREATIONS_PER_RUN calls; a trait past that, or one that cannot be made, is left out and
// named, the rest delivered. A track whose activity cannot be made is not reported delivered.
// Nothing is ever sent under an id that does not exist.
import type { Issue } from '../../segment/schema'
import { normal } from '../../segment/traits'
import type { Creations, Job, LeftOut, Reservation, Standing } from '../destination'
import { CallError } from '../transport'
import { Stopped } from '../../pipeline/gate'
import { toAccount, type StoredAccount } from './account'
import { accountFieldCreate } from './accounts-read'
import { CreatedUnread, type OrttoClient } from './client'
import { fieldNamed, noAccount, typeFor, unknownAccount, type FieldIndex, type OrttoAccount, type OrttoField } from './fields'
import { isGroup } from './group'
import { TO_CREATE } from './mapping'
import { addTo, index, lackingOf, place, type Made, type Placed } from './place'
import type { OrttoPerson } from './person'
import type { OrttoSettings } from './settings'

export interface CreateOptions {
  settings: OrttoSettings
  creations?: Creations
  /** The account as the mapping saw it: what is created is added to it, for this isolate's next events. */
  account?: OrttoAccount
  /** Reads the account again (after a duplicate was refused). */
  reread: () => Promise<StoredAccount>
  /** Creation calls made so far by this request (shared by its groups and its other events: 8 in all). */
  spent?: { calls: number }
}

/** A person's custom field, an activity definition, or an account's custom field (Segment `group`). */
type Kind = 'field' | 'activity' | 'account field'
const DUPLICATE = /already exist|duplicate|taken|in use/i
/**
 * Creation calls one run makes, at most: each costs a call and two D1 queries, and a request
 * stays within the Free plan's 50 of each. A trait past it is left out and named (the next
 * event that carries it makes it); a track whose activity is past it is retried (the re-send
 * makes it: each run makes progress, since only calls made count).
 */
export const MAX_CREATIONS_PER_RUN = 8

/** What this isolate has told the record was left out today (day|kind|name): each is written once, not per request. */
const told = new Set<string>()

/** Creates what the jobs need; returns the jobs with values placed under real ids (or left out), what must be retried, and what was not made. */
export async function createMissing(jobs: readonly Job<OrttoPerson>[], client: OrttoClient, options: CreateOptions): Promise<Placed> {
  // Keyed by name as Ortto compares names (and the account is matched): "Plan" and "plan" are one.
  const fields = new Map<string, { name: string; type: string }>()
  const accountFields = new Map<string, { name: string; type: string }>()
  const activities = new Map<string, { name: string; attributes: Map<string, { name: string; type: string }> }>()
  const lacking: LeftOut[] = []
  for (const { op } of jobs) {
    if (op.kind !== 'upsert' && op.kind !== 'enter') continue
    for (const want of op.person.wanted ?? []) if (!fields.has(normal(want.name))) fields.set(normal(want.name), { name: want.name, type: want.type.type })
    if (isGroup(op.person))
      for (const want of op.person.account.wanted ?? []) if (!accountFields.has(normal(want.name))) accountFields.set(normal(want.name), { name: want.name, type: want.type.type })
    if (op.kind === 'enter' && op.journey.startsWith(TO_CREATE)) {
      const name = op.journey.slice(TO_CREATE.length)
      const entry = activities.get(normal(name)) ?? { name, attributes: new Map<string, { name: string; type: string }>() }
      // One attribute per name as Ortto compares them: two that differ only in case would be refused.
      for (const [attribute, value] of Object.entries(op.attributes ?? {}))
        if (!entry.attributes.has(normal(attribute)) && entry.attributes.size < 15) entry.attributes.set(normal(attribute), { name: attribute, type: typeFor(value)!.type })
      activities.set(normal(name), entry)
    }
    if (op.kind === 'enter') lacking.push(...lackingOf(op.issues))
  }
  const { creations } = options
  const unmade = new Map<number, { message: string; issues: Issue[] }>()
  if (!fields.size && !activities.size && !accountFields.size) {
    await tell(lacking)
    return { jobs: [...jobs], retry: new Map(), unmade }
  }

  let reread: OrttoAccount | undefined
  /** The account read again (once a request; `fresh` after something was made whose id its answer lacked). */
  const lookAgain = async (fresh = false) => (!reread || fresh ? (reread = toAccount(await options.reread())) : reread)
  const made = new Map<string, Made>()
  const max = options.settings.create.max
  const spent = options.spent ?? { calls: 0 }
  let full = false
  const leftOut: LeftOut[] = []
  let standing = new Map<string, Standing>()
  const wanted = [
    ...[...activities.values()].map(({ name }) => ({ kind: 'activity' as Kind, name })),
    ...[...fields.values()].map(({ name }) => ({ kind: 'field' as Kind, name })),
    ...[...accountFields.values()].map(({ name }) => ({ kind: 'account field' as Kind, name })),
  ].filter(({ kind, name }) => !existing(kind, name, options.account))
  try {
    standing = wanted.length && creations ? await creations.look(wanted) : standing
  } catch {
    const retry = 'the record of what this Worker created is unavailable, so nothing was created; will retry'
    for (const { kind, name } of wanted) made.set(`${kind}:${normal(name)}`, { retry })
  }
  // Activities first: a track is nothing without its activity; a trait left out leaves the rest of its event.
  for (const [key, { name, attributes }] of activities) {
    made.set(
      `activity:${key}`,
      made.get(`activity:${key}`) ??
        (await make('activity', name, () =>
          client.createActivity(
            name,
            [...attributes.values()].map(({ name: attribute, type }) => ({ name: attribute, display_type: type })),
          ),
        )),
    )
  }
  for (const [key, { name, type }] of fields) made.set(`field:${key}`, made.get(`field:${key}`) ?? (await make('field', name, () => client.createField(name, type))))
  for (const [key, { name, type }] of accountFields)
    made.set(`account field:${key}`, made.get(`account field:${key}`) ?? (await make('account field', name, () => accountFieldCreate(client, name, type))))
  const placed = place(jobs, made, unmade, lacking)
  await tell([...leftOut, ...lacking])
  return placed

  /** Told to the operator (doctor, /admin) once a day per isolate; a failure to tell costs nothing else. */
  async function tell(items: LeftOut[]) {
    const day = new Date().toISOString().slice(0, 10)
    const fresh = items.filter((item) => !told.has(`${day}|${item.kind}|${item.name}`)).slice(0, 50)
    if (!fresh.length || !creations) return
    const ok = await creations.leftOut(fresh).then(
      () => true,
      () => false,
    )
    if (!ok) return
    if (told.size > 1000) told.clear()
    for (const item of fresh) told.add(`${day}|${item.kind}|${item.name}`)
  }

  /** The definition of this name the account has (the isolate's copy, or a read), with an activity's attributes. */
  function existing(kind: Kind, name: string, account: OrttoAccount | undefined): (OrttoField & { attributes?: FieldIndex }) | undefined {
    if (!account) return undefined
    if (kind === 'field') return fieldNamed(account.fields, name)?.field
    if (kind === 'account field') return account.accounts && fieldNamed(account.accounts.fields, name)?.field
    const found = fieldNamed(account.activityNames, name)?.field
    return found && { ...found, attributes: account.activities.get(found.id) }
  }

  async function make(kind: Kind, name: string, create: () => Promise<string | { id: string; attributes: OrttoField[] }>): Promise<Made> {
    // Made meanwhile by this isolate (an earlier batch), or seen in this request's read.
    const known = existing(kind, name, options.account) ?? existing(kind, name, reread)
    if (known) return { id: known.id, attributes: known.attributes }
    const stands = standing.get(`${kind}:${name}`)
    const what = `the ${kind} "${name}"`
    /** The definition as the account has it now (read again), learnt by this isolate; undefined when it has none. */
    const readBack = async (fresh = false): Promise<Made | undefined> => {
      try {
        const found = existing(kind, name, await lookAgain(fresh))
        if (!found) return undefined
        remember(kind, found, found.attributes)
        await creations?.created(kind, name, found.id).catch(() => undefined)
        return { id: found.id, attributes: found.attributes }
      } catch (again) {
        return { retry: `the account could not be read again to find ${what} (${again instanceof Error ? again.message : 'unknown error'}); will retry` }
      }
    }
    const past = (): Made => {
      // Calls, not names, count: a track's activity is made by the re-send; a trait is left out of this event only.
      const reason = `this request already made ${MAX_CREATIONS_PER_RUN} creation calls, so ${what} was not created now`
      return kind === 'activity' ? { retry: `${reason}; will retry` } : { left: `${reason}; the next event that carries it creates it` }
    }
    const capped = (): Made => {
      const reason = `today's ${max} new Ortto fields and activities (ORTTO_CREATE_MAX) are used up, so ${what} was not created: raise ORTTO_CREATE_MAX, or create it in Ortto`
      leftOut.push({ kind, name, reason: `ORTTO_CREATE_MAX (${max}) reached: raise it, or create it in Ortto` })
      return { left: reason }
    }

    let held: Reservation
    if (stands?.state === 'created')
      return (stands.id && remembered(kind, { id: stands.id, name })) || (await readBack()) || { retry: `${what} was created today but the account does not list it yet; will retry` }
    if (stands?.state === 'refused') return { left: `${what} was not created: Ortto refused it today, not asked again today (${stands.reason})` }
    if (stands?.state === 'taken') held = stands
    else if (full && stands?.state !== 'expired') return capped()
    else if (spent.calls >= MAX_CREATIONS_PER_RUN) return past()
    else if (!creations) held = { state: 'new' }
    else {
      try {
        held = await creations.reserve(kind, name, max, stands?.state === 'expired')
      } catch {
        // The hold may have been written (a slow commit): given back, or it ends with this run. One taken
        // over stays, ended: the run before may have made it, so the next one looks first.
        await creations.release(kind, name, stands?.state === 'expired').catch(() => undefined)
        return { retry: `the record of what this Worker created is unavailable, so ${what} was not created; will retry` }
      }
    }
    switch (held.state) {
      case 'created':
        return (held.id && remembered(kind, { id: held.id, name })) || (await readBack()) || { retry: `${what} was created today but the account does not list it yet; will retry` }
      case 'refused':
        return { left: `${what} was not created: Ortto refused it today, not asked again today (${held.reason})` }
      case 'taken':
        // Another run is making it: what the account has now is the truth, not a second create. Its hold ends by its answer.
        return (await readBack()) ?? { retry: `${what} is being created by another request; will retry` }
      case 'full':
        full = true
        return capped()
      case 'new':
        // An earlier run may have made it without hearing so: look before making it again.
        if (held.unsure) {
          const found = await readBack()
          if (found) return found
        }
    }
    if (spent.calls >= MAX_CREATIONS_PER_RUN) {
      await creations?.release(kind, name).catch(() => undefined)
      return past()
    }
    spent.calls++
    try {
      const answer = await create()
      const id = typeof answer === 'string' ? answer : answer.id
      const attributes = typeof answer === 'string' ? undefined : index(answer.attributes)
      remember(kind, { id, name }, attributes)
      await creations?.created(kind, name, id).catch(() => undefined)
      return { id, attributes }
    } catch (error) {
      return failed(kind, name, error, readBack)
    }
  }

  /** A creation call that did not answer an id: made but unread, refused (for good or as a duplicate), or to retry. */
  async function failed(kind: Kind, name: string, error: unknown, readBack: (fresh?: boolean) => Promise<Made | undefined>): Promise<Made> {
    const what = `the ${kind} "${name}"`
    if (error instanceof CreatedUnread) {
      // It exists: never made again; its id is read back now.
      await creations?.created(kind, name).catch(() => undefined)
      return (await readBack(true)) ?? { retry: `${error.message}, and the account does not list it yet; will retry (it is not created again)` }
    }
    // Not attempted (the gate's budget or deadline, a pause, the ban guard): nothing reached Ortto.
    if (error instanceof Stopped) {
      await creations?.release(kind, name).catch(() => undefined)
      return { retry: `${what} was not created now (${error.message}); will retry` }
    }
    if (!(error instanceof CallError)) {
      await creations?.release(kind, name, true).catch(() => undefined)
      throw error
    }
    if (error.kind === 'rejected' && (error.status === 409 || DUPLICATE.test(error.message))) {
      // Made meanwhile (another isolate, or in Ortto): use the one that exists.
      const found = await readBack(true)
      if (found) return found
      const reason = `${error.message}, and the account has none of that name`
      await creations?.refused(kind, name, reason).catch(() => undefined)
      return { left: `${what} was not created: create it in Ortto (${reason}); not asked again today` }
    }
    if (error.kind === 'rejected') {
      // Refused for good: remembered, so no later request makes Ortto refuse it again (its ban counts refusals).
      // A 403 is the plan's cap on definitions of this kind: no other name of the kind is asked today either.
      const every = error.status === 403
      const todo = every
        ? kind === 'account field'
          ? 'Ortto holds at most 25 custom account fields: delete unused ones'
          : `raise the Ortto plan's limit on custom ${kind === 'field' ? 'fields' : 'activities'}, or delete unused ones`
        : `create it in Ortto under a name it takes`
      await creations?.refused(kind, name, `${error.message}: ${todo}`, every).catch(() => undefined)
      return { left: `${what} was not created: ${todo} (${error.message}); not asked again today` }
    }
    // A rate limit made nothing; a call unanswered or failed may have: the next run looks first.
    await creations?.release(kind, name, error.kind !== 'rate_limited').catch(() => undefined)
    return { retry: `${what} could not be created now (${error.message}); will retry` }
  }

  /** Known made today (the record's id): learnt by this isolate. */
  function remembered(kind: Kind, field: OrttoField): Made | undefined {
    // An activity's attributes come only with a read: without them its properties could not be placed.
    if (kind === 'activity') return undefined
    remember(kind, field)
    return { id: field.id }
  }

  /** This isolate's copy of the account learns it: the next events place the value at once. */
  function remember(kind: Kind, field: OrttoField, attributes?: FieldIndex) {
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
