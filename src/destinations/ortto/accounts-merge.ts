// The merges behind Segment `group` (./accounts.ts): people with their keys only, and
// accounts by their key field, 100 a call. An account's id is read from either answer Ortto
// gives (`organizations[].organization_id`, `accounts[].account_id`), else found by its key.
// A call refused whole goes again without the refused items (or in halves), never as it was.
import * as v from 'valibot'
import { fromError, rejected, retry, type Outcome } from '../../pipeline/outcome'
import { BULK_LIMIT, RefusedItems, type ItemAnswer, type OrttoClient } from './client'
import type { GroupPerson } from './group'

/** An Ortto id, or what became of the item. */
export type Got = { id: string } | Outcome
export const failed = (got: Got | undefined): got is Outcome => !got || 'status' in got

/** People merged 100 a call (keys only): each one's Ortto id, or what became of it. */
export async function mergePeople(client: OrttoClient, people: GroupPerson[], mergeBy: readonly string[]): Promise<Got[]> {
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
export async function mergeAccounts(client: OrttoClient, accounts: { key: string; fields: Record<string, unknown> }[]): Promise<Got[]> {
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
