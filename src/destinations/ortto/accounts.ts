// Segment `group` -> Ortto: the account merged (100 a call, by its key field), its person
// merged as an identify would (keys only), and the person linked to the account (one call per
// account, its people together). Ortto answers 200 to a link body whose key it does not read,
// and which key it reads is not settled (organization_id, account_id, accounts_id): so a link
// names the account under all three, and the first link of an isolate is read back (the
// person's accounts, `idt::o`); should that not take, each key alone is tried and read back.
// The form that took is used from then on. When none takes, the groups are
// retried and the operator told (the log line, /admin, the setup check), never `delivered`.
import * as v from 'valibot'
import { delivered, fromError, rejected, retry, type Outcome } from '../../pipeline/outcome'
import type { Issue } from '../../segment/schema'
import type { Check, Job, Result, SendContext } from '../destination'
import { CallError } from '../transport'
import type { OrttoClient } from './client'
import { failed, mergeAccounts, mergePeople } from './accounts-merge'
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
