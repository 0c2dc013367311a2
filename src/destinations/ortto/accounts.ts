// Segment `group` -> Ortto: the account merged (100 a call, by its key field), its person
// merged as an identify would (keys only), and the person linked to the account (one call per
// account, its people together). Ortto answers 200 to a link body whose key it does not read,
// and which key it reads is not settled (organization_id, account_id, accounts_id): so a link
// names the account under all three, and the first link of an isolate is read back (the
// person's accounts, `idt::o`); should that not take, each key alone is tried and read back.
// The form that took is used from then on. When none takes, the groups are
// retried and the operator told (the log line, /admin, the setup check), never `delivered`.
import { delivered, fromError, rejected, retry, type Outcome } from '../../pipeline/outcome'
import * as v from 'valibot'
import type { Issue } from '../../segment/schema'
import type { Check, Job, Result, SendContext } from '../destination'
import { CallError } from '../transport'
import { BULK_LIMIT, RefusedItems, type ItemAnswer, type OrttoClient } from './client'
import { createMissing, type CreateOptions } from './create'
import { isGroup, KEY_FIELD, type GroupPerson } from './group'
import type { OrttoPerson } from './person'

/** The body keys contacts/add may read the account's id from (production code's first). */
export const LINK_KEYS = ['organization_id', 'account_id', 'accounts_id'] as const
/**
 * How a link names its account, tried in this order until one is seen to take: all three keys
 * at once (Ortto ignores the keys it does not read: one call whichever it reads), then each
 * alone (should an API refuse keys it does not read).
 */
const LINK_FORMS = ['all', ...LINK_KEYS] as const
type LinkForm = (typeof LINK_FORMS)[number]
/** Ortto takes at most this many people in one link call. */
const MAX_LINKED = 3000

/** What this isolate learnt about links: the key Ortto reads (verified by a read-back), or that none took. */
let verified: LinkForm | undefined
let linkCheck: { ok: boolean; at: number; message: string } | undefined
/** Forgets what was learnt (tests start each case as a fresh isolate). */
export const forgetLinks = () => void ((verified = undefined), (linkCheck = undefined))

const NOT_TAKEN =
  'Ortto answered 200 to linking the person to the account, but reading the person back (idt::o) does not list the account, whichever key was sent (organization_id, account_id, accounts_id): check that Accounts are switched on in Ortto (Settings → General → Accounts) and that ORTTO_API_KEY may change accounts; the account itself was merged; will retry'

/** For /admin and the setup check: whether links were seen to take in this isolate. */
export function linkNotices(): Check[] {
  if (!linkCheck) return []
  return [
    {
      check: 'accounts',
      ok: linkCheck.ok,
      message: linkCheck.ok
        ? `Linking people to accounts works (sent with ${verified === 'all' ? LINK_KEYS.join(', ') : verified}; read back ${new Date(linkCheck.at).toISOString()})`
        : linkCheck.message,
    },
  ]
}

/** Groups apart: the other jobs go through `send` first, then the groups (a group never holds the others back). */
export async function withGroups(
  jobs: readonly Job<OrttoPerson>[],
  send: (jobs: Job<OrttoPerson>[]) => Promise<Result[]>,
  client: OrttoClient,
  options: CreateOptions,
  context?: SendContext,
): Promise<Result[]> {
  const groups = [...jobs.keys()].filter((i) => jobs[i].op.kind === 'upsert' && isGroup((jobs[i].op as { person: OrttoPerson }).person))
  if (!groups.length) return send([...jobs])
  const results: Result[] = new Array(jobs.length)
  const others = [...jobs.keys()].filter((i) => !groups.includes(i))
  if (others.length) (await send(others.map((i) => jobs[i]))).forEach((result, k) => (results[others[k]] = result))
  ;(
    await sendGroups(
      groups.map((i) => jobs[i]),
      client,
      options,
      context,
    )
  ).forEach((result, k) => (results[groups[k]] = result))
  return results
}

type Got = { id: string } | Outcome
const failed = (got: Got | undefined): got is Outcome => !got || 'status' in got

async function sendGroups(given: Job<OrttoPerson>[], client: OrttoClient, options: CreateOptions, context?: SendContext): Promise<Result[]> {
  const results: Result[] = new Array(given.length)
  // The key field and custom account fields the account lacks are made first (ORTTO_CREATE).
  const { jobs, retry: later } = await createMissing(given, client, options)
  for (const [i, reason] of later) results[i] = { outcome: retry(reason) }
  const live: number[] = []
  const ops = new Map<number, { person: GroupPerson; message: string; issues?: Issue[] }>()
  for (const i of jobs.keys()) {
    if (results[i]) continue
    const { op } = jobs[i]
    if (op.kind !== 'upsert' || !isGroup(op.person)) results[i] = { outcome: retry('not attempted') }
    else if (!op.person.account.key) {
      const why = op.issues?.find((issue) => issue.path === 'groupId')?.message ?? 'it could not be created'
      results[i] = {
        outcome: rejected(
          `the Ortto account has no custom account field "${KEY_FIELD}" (the account's key): ${why}. Create it in Ortto, or set ORTTO_ACCOUNT_MERGE_BY to str:o:name or str:o:website`,
          op.issues,
        ),
      }
    } else {
      ops.set(i, { person: op.person, message: op.message, issues: op.issues })
      live.push(i)
    }
  }
  const personOf = (i: number) => ops.get(i)!.person
  const mergeBy = options.settings.mergeBy
  const personKey = (p: GroupPerson) => (mergeBy[0] === 'str::ei' && p.fields['str::ei'] !== undefined ? `ei:${String(p.fields['str::ei'])}` : `email:${p.email}`)
  const accountKey = (p: GroupPerson) => `${p.account.key}\u0000${String(p.account.fields[p.account.key!])}`

  // 1. The people, keys only (created when new, as an identify would): their Ortto ids.
  const people = new Map<string, GroupPerson>()
  for (const i of live) people.set(personKey(personOf(i)), personOf(i))
  const personIds = await mergePeople(client, [...people.values()], mergeBy)
  const personGot = new Map([...people.keys()].map((key, k) => [key, personIds[k]]))

  // 2. The accounts: one per key, what its groups set merged oldest first (newest wins).
  const accounts = new Map<string, { key: string; fields: Record<string, unknown>; jobs: number[] }>()
  for (const i of [...live].sort((a, b) => jobs[a].at - jobs[b].at || a - b)) {
    const { account } = personOf(i)
    const known = accounts.get(accountKey(personOf(i)))
    if (known) {
      Object.assign(known.fields, account.fields)
      known.jobs.push(i)
    } else accounts.set(accountKey(personOf(i)), { key: account.key!, fields: { ...account.fields }, jobs: [i] })
  }
  const list = [...accounts.values()]
  const accountIds = await mergeAccounts(client, list)

  // 3. The links: one call per account, its people together; the first of the isolate read back.
  const linked = new Map<number, Outcome | undefined>()
  const pending: Promise<void>[] = []
  for (const [k, account] of list.entries()) {
    const got = accountIds[k]
    if (failed(got)) continue
    const members = account.jobs.filter((i) => !failed(personGot.get(personKey(personOf(i)))))
    const ids = [...new Set(members.map((i) => (personGot.get(personKey(personOf(i))) as { id: string }).id))]
    if (!ids.length) continue
    const probe = personOf(members[0])
    const run = link(client, got.id, ids, probe, context).then((outcome) => void linked.set(k, outcome))
    if (verified) pending.push(run)
    else await run // until a key is seen to take, one account at a time
  }
  await Promise.all(pending)

  list.forEach((account, k) => {
    for (const i of account.jobs) {
      const { message, issues } = ops.get(i)!
      const person = personGot.get(personKey(personOf(i)))
      const got = accountIds[k]
      const outcome = failed(got) ? got : failed(person) ? person : linked.get(k)
      results[i] = { outcome: outcome ?? delivered(message, issues) }
    }
  })
  return results
}

/** People merged 100 a call (keys only): each one's Ortto id, or what became of it. */
async function mergePeople(client: OrttoClient, people: GroupPerson[], mergeBy: readonly string[]): Promise<Got[]> {
  const got: Got[] = new Array(people.length)
  await Promise.all(
    chunks(people.length).map(async (indices) => {
      const wire = indices.map((k) => ({ fields: { ...(people[k].email && { 'str::email': people[k].email }), ...people[k].fields } }))
      const answers = await client.merge(wire, mergeBy).catch((error: unknown) => itemsFailed(error, indices.length))
      await Promise.all(
        indices.map(async (k, n) => {
          const answer = answers[n]
          if (!('ok' in answer)) got[k] = answer
          else if (!answer.ok) got[k] = rejected(answer.reason)
          else if (answer.id) got[k] = { id: answer.id }
          else {
            // Ortto did not say which person: found by the same keys.
            const email = people[k].email
            const userId = people[k].fields['str::ei'] as string | undefined
            const ids = await client.find({ email, userId }).catch((error: unknown) => fromError(error))
            got[k] = Array.isArray(ids) ? (ids[0] ? { id: ids[0] } : retry('Ortto did not say which person it merged, and did not find them yet; will retry')) : ids
          }
        }),
      )
    }),
  )
  return got
}

const MergeAnswer = v.looseObject({
  accounts: v.optional(v.unknown()),
  organizations: v.optional(v.unknown()),
})
const AccountItem = v.looseObject({
  account_id: v.optional(v.string()),
  organization_id: v.optional(v.string()),
  id: v.optional(v.string()),
  status: v.optional(v.string()),
  error: v.optional(v.unknown()),
})
const Found = v.looseObject({ id: v.optional(v.string()), account_id: v.optional(v.string()), organization_id: v.optional(v.string()), fields: v.optional(v.record(v.string(), v.unknown())) })

/** Accounts merged 100 a call by their key: each one's id (read from either answer Ortto gives, else found by its key), or what became of it. */
async function mergeAccounts(client: OrttoClient, accounts: { key: string; fields: Record<string, unknown> }[]): Promise<Got[]> {
  const got: Got[] = new Array(accounts.length)
  const byKey = new Map<string, number[]>()
  for (const k of accounts.keys()) byKey.set(accounts[k].key, [...(byKey.get(accounts[k].key) ?? []), k])
  /** One merge call; refused whole, the good accounts go again without the bad (with reasons per item), or in halves (without). */
  const merge = async (key: string, indices: number[]): Promise<void> => {
    const body = { accounts: indices.map((k) => ({ fields: accounts[k].fields })), merge_by: [key], merge_strategy: 2, find_strategy: 0, async: false }
    let answer: unknown
    try {
      answer = await client.accountCall('accounts', 'POST', '/accounts/merge', body)
    } catch (error) {
      if (error instanceof RefusedItems && error.items.length === indices.length) {
        const again = indices.filter((_, n) => error.items[n].ok)
        indices.forEach((k, n) => {
          const item = error.items[n]
          if (!item.ok) got[k] = rejected(withHint(item.reason))
        })
        if (again.length && again.length < indices.length) return merge(key, again)
        for (const k of again) got[k] = rejected(withHint(error.message))
        return
      }
      const outcome = fromError(error)
      if (outcome.status === 'rejected' && indices.length > 1) {
        const middle = Math.ceil(indices.length / 2)
        await merge(key, indices.slice(0, middle))
        return merge(key, indices.slice(middle))
      }
      for (const k of indices) got[k] = withHintOn(outcome)
      return
    }
    const parsed = v.safeParse(MergeAnswer, answer)
    const listed = parsed.success ? (parsed.output.accounts ?? parsed.output.organizations) : undefined
    const items = Array.isArray(listed) && listed.length === indices.length ? listed : undefined
    const missing: number[] = []
    indices.forEach((k, n) => {
      const item = items ? v.safeParse(AccountItem, items[n]) : undefined
      const id = item?.success ? (item.output.account_id ?? item.output.organization_id ?? item.output.id) : undefined
      if (item?.success && (item.output.status === 'invalid' || item.output.error)) {
        const said = typeof item.output.error === 'string' ? item.output.error : JSON.stringify(item.output.error ?? item.output.status)
        got[k] = rejected(`Ortto refused the account (${item.output.status ?? 'invalid'}): ${said.slice(0, 300)}`)
      } else if (id) got[k] = { id }
      else missing.push(k)
    })
    if (missing.length) await findAccounts(client, key, missing, accounts, got)
  }
  const calls: Promise<void>[] = []
  for (const [key, all] of byKey)
    for (const slice of chunks(all.length))
      calls.push(
        merge(
          key,
          slice.map((n) => all[n]),
        ),
      )
  await Promise.all(calls)
  return got
}

/** Accounts whose merge answer named no id: found by their key (accounts/get), one call for them all. */
async function findAccounts(client: OrttoClient, key: string, missing: number[], accounts: { fields: Record<string, unknown> }[], got: Got[]) {
  const values = missing.map((k) => String(accounts[k].fields[key]))
  const either = values.map((value) => ({ '$str::is': { field_id: key, value } }))
  try {
    const answer = await client.accountCall('read', 'POST', '/accounts/get', { limit: 100, fields: [key], filter: either.length === 1 ? either[0] : { $or: either } })
    const listed = (answer && typeof answer === 'object' ? ((answer as Record<string, unknown>).accounts ?? (answer as Record<string, unknown>).organizations) : undefined) as unknown
    const ids = new Map<string, string>()
    for (const item of Array.isArray(listed) ? listed : []) {
      const found = v.safeParse(Found, item)
      const id = found.success ? (found.output.id ?? found.output.account_id ?? found.output.organization_id) : undefined
      const value = found.success ? found.output.fields?.[key] : undefined
      if (id && typeof value === 'string' && !ids.has(value)) ids.set(value, id)
    }
    missing.forEach((k, n) => {
      const id = ids.get(values[n])
      got[k] = id ? { id } : retry('Ortto merged the account but neither named it nor found it by its key yet; will retry')
    })
  } catch (error) {
    for (const k of missing) got[k] = fromError(error)
  }
}

/** Links the people to the account; until this isolate has seen a key take, each key in turn, read back. */
async function link(client: OrttoClient, accountId: string, ids: string[], probe: GroupPerson, context?: SendContext): Promise<Outcome | undefined> {
  const put = (form: LinkForm, slice: string[]) => {
    const named = form === 'all' ? Object.fromEntries(LINK_KEYS.map((key) => [key, accountId])) : { [form]: accountId }
    return client.accountCall('link', 'PUT', '/accounts/contacts/add', { inclusion_ids: slice, ...named })
  }
  try {
    if (verified) {
      for (let at = 0; at < ids.length; at += MAX_LINKED) await put(verified, ids.slice(at, at + MAX_LINKED))
      return undefined
    }
    if (linkCheck && !linkCheck.ok && Date.now() - linkCheck.at < 60_000) return retry(NOT_TAKEN) // tried every key a moment ago
    let refusal: string | undefined
    let refused = 0
    for (const key of LINK_FORMS) {
      try {
        await put(key, ids.slice(0, MAX_LINKED))
      } catch (error) {
        // A key refused outright is not the one Ortto reads: the next is tried.
        if (error instanceof CallError && error.kind === 'rejected' && error.status === 400) {
          refusal = error.message
          refused++
          continue
        }
        throw error
      }
      if ((await accountsOf(client, probe)).includes(accountId)) {
        verified = key
        linkCheck = { ok: true, at: Date.now(), message: '' }
        for (let at = MAX_LINKED; at < ids.length; at += MAX_LINKED) await put(key, ids.slice(at, at + MAX_LINKED))
        return undefined
      }
    }
    // Refused in every form: Ortto's reason, for good. Answered 200 in some but never taken: retried.
    const everyWay = refused === LINK_FORMS.length
    linkCheck = {
      ok: false,
      at: Date.now(),
      message: everyWay ? `Ortto refused every way of linking a person to an account (${refusal}); check that Accounts are switched on in Ortto (Settings → General → Accounts)` : NOT_TAKEN,
    }
    context?.onProblem?.('accounts', linkCheck.message)
    return everyWay ? rejected(linkCheck.message) : retry(NOT_TAKEN)
  } catch (error) {
    return fromError(error)
  }
}

const Person = v.looseObject({ contacts: v.optional(v.nullable(v.array(v.looseObject({ fields: v.optional(v.record(v.string(), v.unknown())) }))), []) })

/** The ids of the accounts a person is linked to (person/get's `idt::o`), in whichever shape Ortto gives them. */
async function accountsOf(client: OrttoClient, person: GroupPerson): Promise<string[]> {
  const ei = person.fields['str::ei']
  const filter = typeof ei === 'string' ? { '$str::is': { field_id: 'str::ei', value: ei } } : { '$str::is': { field_id: 'str::email', value: person.email } }
  const answer = v.safeParse(Person, await client.accountCall('read', 'POST', '/person/get', { limit: 1, fields: ['idt::o'], filter }))
  const value = answer.success ? answer.output.contacts?.[0]?.fields?.['idt::o'] : undefined
  const list = Array.isArray(value) ? value : typeof value === 'string' ? value.split(',') : []
  return list.flatMap((item: unknown) => {
    if (typeof item === 'string') return [item.trim()]
    if (item && typeof item === 'object') {
      const id = (item as Record<string, unknown>).id ?? (item as Record<string, unknown>).account_id ?? (item as Record<string, unknown>).organization_id
      return typeof id === 'string' ? [id] : []
    }
    return []
  })
}

/** Indices 0..n-1 in slices of 100. */
function chunks(n: number): number[][] {
  const slices: number[][] = []
  for (let at = 0; at < n; at += BULK_LIMIT) slices.push(Array.from({ length: Math.min(BULK_LIMIT, n - at) }, (_, k) => at + k))
  return slices
}

/** A failed call as one answer per item (a refusal with details says which). */
function itemsFailed(error: unknown, count: number): (ItemAnswer | Outcome)[] {
  if (error instanceof RefusedItems && error.items.length === count)
    return error.items.map((item) => (item.ok ? retry(`not applied: Ortto refused the call for another item (${error.message}); will retry`) : item))
  const outcome = fromError(error)
  return Array.from({ length: count }, () => outcome)
}

const HINT = '; if Accounts are not switched on in this Ortto instance, switch them on (Ortto → Settings → General → Accounts)'
const withHint = (reason: string) => (/account|organi[sz]ation|enabled|switched/i.test(reason) ? `${reason}${HINT}` : reason)
const withHintOn = (outcome: Outcome): Outcome => (outcome.status === 'rejected' ? { ...outcome, message: `${outcome.message}${HINT}` } : outcome)
