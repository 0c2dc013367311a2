// Operations -> as few Ortto calls as possible: people merged per email and sent 100 a
// call, then activities 100 a call (each after its person's merge), then deletes (find,
// archive, delete). One bad person or activity never blocks the others: Ortto's answer
// per item says which, and a call refused whole is answered per item from its details,
// or split in halves — never re-sent as it was (Ortto bans an IP after 15 refused calls).
import { delivered, fromError, rejected, retry, skipped, type Outcome } from '../../pipeline/outcome'
import type { Checkpoints, Job, Operation, Result } from '../destination'
import { BULK_LIMIT, RefusedItems, type ItemAnswer, type OrttoClient } from './client'
import { createMissing, type CreateOptions } from './create'
import { mergePeople, type OrttoPerson } from './person'

type Enter = Extract<Operation<OrttoPerson>, { kind: 'enter' }>
type Delete = Extract<Operation<OrttoPerson>, { kind: 'delete' }>

/** Sends `items` in calls of at most 100; each item's answer. A call refused whole is never re-sent as it was. */
async function inBulk<T>(items: T[], send: (chunk: T[]) => Promise<ItemAnswer[]>): Promise<(ItemAnswer | Outcome)[]> {
  const answers: (ItemAnswer | Outcome)[] = new Array(items.length)
  const run = async (indices: number[]): Promise<void> => {
    try {
      const got = await send(indices.map((i) => items[i]))
      indices.forEach((i, k) => (answers[i] = got[k]))
    } catch (error) {
      if (error instanceof RefusedItems && error.items.length === indices.length) {
        // Refused whole, with a reason per item: the good ones go again once, without the bad.
        const again: number[] = []
        indices.forEach((i, k) => (error.items[k].ok ? again.push(i) : (answers[i] = error.items[k])))
        if (again.length && again.length < indices.length) return run(again)
        if (again.length) for (const i of again) answers[i] = { ok: false, reason: error.message }
        return
      }
      const outcome = fromError(error)
      if (outcome.status === 'rejected' && indices.length > 1) {
        const middle = Math.ceil(indices.length / 2)
        await run(indices.slice(0, middle))
        await run(indices.slice(middle))
        return
      }
      for (const i of indices) answers[i] = outcome
    }
  }
  const chunks: Promise<void>[] = []
  for (let start = 0; start < items.length; start += BULK_LIMIT) chunks.push(run([...items.keys()].slice(start, start + BULK_LIMIT)))
  await Promise.all(chunks)
  return answers
}

const isAnswer = (value: ItemAnswer | Outcome): value is ItemAnswer => 'ok' in value
const outcomeOf = (answer: ItemAnswer | Outcome, message: string): Outcome => (isAnswer(answer) ? (answer.ok ? delivered(message) : rejected(answer.reason)) : answer)

export async function sendToOrtto(given: readonly Job<OrttoPerson>[], client: OrttoClient, options: CreateOptions, checkpoints?: Checkpoints): Promise<Result[]> {
  const results: Result[] = new Array(given.length)
  const mergeBy = options.settings.mergeBy
  const byUserId = mergeBy[0] === 'str::ei'
  // Fields and activities the account lacks are made first (ORTTO_CREATE); an event whose
  // activity could not be made now is retried, nothing of it sent.
  const { jobs, retry: later, unmade } = await createMissing(given, client, options)
  for (const [i, reason] of later) results[i] = { outcome: retry(reason) }
  for (const phase of [0, 1] as const) {
    const indices = [...jobs.keys()].filter((i) => jobs[i].phase === phase && !later.has(i))
    if (indices.length) await run(indices)
  }
  for (const i of jobs.keys()) results[i] ??= { outcome: retry('not attempted') }
  return results

  async function run(indices: number[]) {
    // People merged per email (a rename: per external id), in time order: newest wins per field.
    const groups = new Map<string, { person: OrttoPerson; jobs: number[] }>()
    const byTime = [...indices].sort((a, b) => jobs[a].at - jobs[b].at || a - b)
    for (const i of byTime) {
      const { op } = jobs[i]
      if (op.kind === 'skip') results[i] = { outcome: skipped(op.message) }
      else if (op.kind === 'reject') results[i] = { outcome: rejected(op.message, op.issues) }
      else if (op.kind === 'upsert' || (op.kind === 'enter' && op.setFirst)) {
        const ei = op.person.fields['str::ei']
        const key = (byUserId || op.person.renameTo) && ei !== undefined ? `ei:${ei}` : `email:${op.person.email}`
        const group = groups.get(key)
        if (group) {
          group.person = mergePeople(group.person, op.person)
          group.jobs.push(i)
        } else groups.set(key, { person: op.person, jobs: [i] })
      }
    }
    const list = [...groups.values()]
    const outcomes = await mergeAll(
      client,
      list.map((group) => group.person),
      mergeBy,
    )
    const merged = new Map<number, Outcome>()
    list.forEach((group, k) => group.jobs.forEach((i) => merged.set(i, outcomes[k])))
    // A merged person Ortto refused: each event's own person goes again alone, once, so one bad
    // event does not take the others of that person with it.
    const alone = list.flatMap((group, k) => (outcomes[k].status === 'rejected' && group.jobs.length > 1 ? group.jobs : []))
    if (alone.length)
      (
        await mergeAll(
          client,
          alone.map((i) => (jobs[i].op as Enter).person),
          mergeBy,
        )
      ).forEach((outcome, k) => merged.set(alone[k], outcome))
    for (const i of indices) {
      const { op } = jobs[i]
      if (op.kind !== 'upsert') continue
      const outcome = merged.get(i)!
      // A track whose activity could not be made is not delivered, though its person was merged.
      const lost = unmade.get(i)
      results[i] = { outcome: outcome.status !== 'delivered' ? outcome : lost ? rejected(lost.message, lost.issues) : delivered(op.message, op.issues) }
    }

    // Activities, once their person's merge (if any) went through.
    const entries: number[] = []
    for (const i of indices) {
      const { op } = jobs[i]
      if (op.kind !== 'enter') continue
      const before = merged.get(i)
      if (before && before.status !== 'delivered') results[i] = { outcome: before }
      else entries.push(i)
    }
    const entered = await inBulk(entries, (chunk) =>
      client.createActivities(
        chunk.map((i) => {
          const { journey, attributes = {}, person } = jobs[i].op as Enter
          const ei = person.fields['str::ei']
          const fields = { ...(person.email && { 'str::email': person.email }), ...(ei !== undefined && { 'str::ei': ei }) }
          return { activity_id: journey, attributes, fields, ...(person.ip && { location: { source_ip: person.ip } }) }
        }),
        mergeBy,
      ),
    )
    entries.forEach((i, k) => {
      const answer = entered[k]
      const op = jobs[i].op as Enter
      if (isAnswer(answer)) results[i] = answer.ok ? { outcome: delivered(`entered activity ${op.journey}`, op.issues), entered: 'yes' } : { outcome: rejected(answer.reason) }
      else results[i] = { outcome: answer, ...(answer.unanswered && { entered: 'unknown' as const }) }
    })

    // Deletes last: every merge and activity of this phase has ended.
    const deletes = indices.filter((i) => jobs[i].op.kind === 'delete')
    if (deletes.length)
      (
        await deletePeople(
          deletes.map((i) => jobs[i].op as Delete),
          client,
          checkpoints,
        )
      ).forEach((outcome, k) => (results[deletes[k]] = { outcome }))
  }
}

/**
 * Deletes: each person found (person/get), archived, deleted (Ortto deletes only archived
 * people). Once archived, person/get no longer finds them: their ids are kept in D1 before the
 * archive, so a re-send after a failed delete deletes them by id, and `delivered` means Ortto
 * holds neither a live nor an archived person. Three statements a batch, none per person.
 */
async function deletePeople(ops: readonly Delete[], client: OrttoClient, checkpoints?: Checkpoints): Promise<Outcome[]> {
  const keys = ops.map((op) => `ortto:archived:${op.key}`)
  const outcomes: Outcome[] = new Array(ops.length)
  let kept: Map<string, string>
  try {
    kept = checkpoints ? await checkpoints.read(keys) : new Map()
  } catch {
    return ops.map(() => retry('the database is unavailable, so a delete cannot be finished safely; will retry'))
  }
  const archivedBefore = ops.map((_, k) => idsIn(kept.get(keys[k])))
  const live = await Promise.all(ops.map((op) => client.find({ email: op.email, userId: op.userId }).catch((error: unknown) => fromError(error))))
  // Kept before anything is archived: if this write fails, nothing is.
  const toKeep = ops.flatMap((_, k) => (Array.isArray(live[k]) && live[k].length ? [[keys[k], JSON.stringify([...new Set([...archivedBefore[k], ...live[k]])])] as const] : []))
  const keptNow = await (checkpoints?.save(toKeep) ?? Promise.resolve()).then(
    () => true,
    () => false,
  )
  const done: string[] = []
  await Promise.all(
    ops.map(async (_, k) => {
      const found = live[k]
      if (!Array.isArray(found)) return void (outcomes[k] = found)
      if (found.length && !keptNow) return void (outcomes[k] = retry('the database is unavailable, so the person is not archived yet; will retry'))
      const ids = [...new Set([...archivedBefore[k], ...found])]
      if (!ids.length) return void (outcomes[k] = delivered('person was not in Ortto'))
      try {
        if (found.length) await client.archive(found)
        await client.delete(ids).catch(() => client.delete(ids))
        outcomes[k] = delivered(found.length ? 'person archived and deleted' : 'archived person deleted')
        if (archivedBefore[k].length || found.length) done.push(keys[k])
      } catch (error) {
        outcomes[k] = fromError(error)
      }
    }),
  )
  // A key left behind costs a delete of ids already gone on the next delete of that person; the sweep drops it after a week.
  await checkpoints?.clear(done).catch(() => undefined)
  return outcomes
}

function idsIn(text: string | undefined): string[] {
  try {
    const value: unknown = JSON.parse(text ?? '[]')
    return Array.isArray(value) ? value.filter((id): id is string => typeof id === 'string') : []
  } catch {
    return []
  }
}

/** People into merge calls, 100 a call: by `mergeBy`; found by email only, the renamed go apart, by their external id. */
async function mergeAll(client: OrttoClient, people: OrttoPerson[], mergeBy: readonly string[]): Promise<Outcome[]> {
  const outcomes: Outcome[] = new Array(people.length)
  const byUserId = mergeBy[0] === 'str::ei'
  for (const renames of [false, true]) {
    // Found by external id first, a rename is an ordinary merge; found by email, it needs its own call by external id.
    const indices = [...people.keys()].filter((k) => (!byUserId && Boolean(people[k].renameTo)) === renames)
    if (!indices.length) continue
    const answers = await inBulk(
      indices.map((k) => people[k]),
      (chunk) => client.merge(chunk.map(wirePerson), renames ? ['str::ei'] : mergeBy),
    )
    indices.forEach((k, n) => (outcomes[k] = outcomeOf(answers[n], 'person merged')))
  }
  return outcomes
}

function wirePerson(person: OrttoPerson) {
  const email = person.renameTo ?? person.email
  return {
    fields: { ...(email && { 'str::email': email }), ...person.fields },
    ...(person.ip && { location: { source_ip: person.ip } }),
    ...(person.tags && { tags: person.tags }),
    ...(person.unsetTags && { unset_tags: person.unsetTags }),
  }
}
