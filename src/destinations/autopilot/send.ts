// Turns operations into as few Autopilot calls as possible, started as fast as the gate
// allows (several in flight), and decides each one's outcome.
import { delivered, fromError, rejected, retry, skipped, type Outcome } from '../../pipeline/outcome'
import type { Job, Operation, Result } from '../destination'
import { CallError } from '../transport'
import { BULK_LIMIT, type AutopilotClient } from './client'
import { normalEmail } from '../../segment/traits'
import { mergeContacts, type Contact } from './mapping'

interface Group {
  contact: Contact
  done: Promise<Outcome>
  /** Set by `finish`, as `done` resolves with it. */
  outcome?: Outcome
  finish: (outcome: Outcome) => void
}

const key = normalEmail

/**
 * Upserts (identifies, tracks that set traits) merged per email — one contact per person,
 * case-insensitively — and sent in bulk, at most 100 a call; a journey trigger once its
 * person's upsert is done; a delete after everything else for that person.
 */
export async function sendToAutopilot(jobs: readonly Job<Contact>[], client: AutopilotClient): Promise<Result[]> {
  const results: Result[] = new Array(jobs.length)
  for (const phase of [0, 1] as const) {
    const indices = [...jobs.keys()].filter((i) => jobs[i].phase === phase)
    if (indices.length) await run(indices)
  }
  return results

  async function run(indices: number[]) {
    const groups = new Map<string, Group>()
    const byTime = [...indices].sort((a, b) => jobs[a].at - jobs[b].at || a - b)
    const triggers: number[] = []
    const deletes: number[] = []
    for (const i of byTime) {
      const { op: action } = jobs[i]
      if (action.kind === 'skip') results[i] = { outcome: skipped(action.message) }
      else if (action.kind === 'reject') results[i] = { outcome: rejected(action.message, action.issues) }
      else if (action.kind === 'delete') deletes.push(i)
      if (action.kind === 'upsert' || (action.kind === 'enter' && action.setFirst)) addToGroup(groups, action.person)
    }
    const sends: Promise<void>[] = []
    if (groups.size) {
      const all = [...groups.values()]
      for (let start = 0; start < all.length; start += BULK_LIMIT) sends.push(send(all.slice(start, start + BULK_LIMIT)))
    }
    for (const i of indices) if (jobs[i].op.kind === 'enter') triggers.push(i)
    await Promise.all(triggers.length ? [...sends, ...triggers.map((i) => trigger(groups, i))] : sends)
    // Every group is settled once the sends are done: an upsert takes its group's outcome.
    for (const i of indices) {
      const { op: action } = jobs[i]
      if (action.kind !== 'upsert') continue
      const outcome = groups.get(key(action.person.Email))!.outcome!
      results[i] = { outcome: outcome.status === 'delivered' ? delivered(action.message, action.issues) : outcome }
    }

    // Deletes last: every upsert and trigger of this phase has ended.
    if (deletes.length) await Promise.all(deletes.sort((a, b) => a - b).map(remove))
    for (const i of indices) results[i] ??= { outcome: retry('not attempted') }
  }

  /** A journey trigger waits for its person's upsert (if any) and runs as soon as it is done. */
  async function trigger(groups: Map<string, Group>, i: number): Promise<void> {
    const action = jobs[i].op as Extract<Operation<Contact>, { kind: 'enter' }>
    const upserted = await groups.get(key(action.person.Email))?.done
    results[i] = upserted && upserted.status !== 'delivered' ? { outcome: upserted } : await enrol(client, action)
  }

  async function remove(i: number): Promise<void> {
    const action = jobs[i].op as Extract<Operation<Contact>, { kind: 'delete' }>
    try {
      const gone = await client.deleteContact(action.key)
      results[i] = { outcome: delivered(gone === 'deleted' ? 'contact deleted' : 'contact was not in Autopilot') }
    } catch (error) {
      results[i] = { outcome: fromError(error) }
    }
  }

  /** One bulk call (or one contact); a chunk Autopilot refuses is halved until the bad contacts stand alone. */
  async function send(chunk: Group[]): Promise<void> {
    try {
      if (chunk.length === 1) await client.upsertContact(chunk[0].contact)
      else await client.upsertContacts(chunk.map((group) => group.contact))
      for (const group of chunk) group.finish(delivered('contact upserted'))
    } catch (error) {
      let outcome: Outcome
      try {
        outcome = fromError(error)
      } catch (unexpected) {
        for (const group of chunk) group.finish(retry('internal error'))
        throw unexpected
      }
      if (outcome.status === 'rejected' && chunk.length > 1) {
        const middle = Math.ceil(chunk.length / 2)
        await Promise.all([send(chunk.slice(0, middle)), send(chunk.slice(middle))])
      } else {
        for (const group of chunk) group.finish(outcome)
      }
    }
  }
}

function addToGroup(groups: Map<string, Group>, contact: Contact) {
  const existing = groups.get(key(contact.Email))
  if (existing) {
    existing.contact = mergeContacts(existing.contact, contact)
    return
  }
  let resolve!: (outcome: Outcome) => void
  const done = new Promise<Outcome>((r) => (resolve = r))
  const group: Group = {
    contact,
    done,
    finish: (outcome) => {
      group.outcome ??= outcome
      resolve(outcome)
    },
  }
  groups.set(key(contact.Email), group)
}

/** Enters the journey: trigger; if Autopilot does not know the contact yet (404), create it and trigger once more. */
async function enrol(client: AutopilotClient, action: Extract<Operation<Contact>, { kind: 'enter' }>): Promise<Result> {
  const { journey: triggerId, person: contact } = action
  let calling: 'trigger' | 'upsert' = 'trigger'
  try {
    try {
      await client.trigger(triggerId, contact.Email)
    } catch (error) {
      if (!(error instanceof CallError) || error.kind !== 'not_found') throw error
      calling = 'upsert'
      await client.upsertContact(contact)
      calling = 'trigger'
      try {
        await client.trigger(triggerId, contact.Email)
      } catch (again) {
        if (!(again instanceof CallError) || again.kind !== 'not_found') throw again
        // Retryable: the trigger id may be wrong (fix AUTOPILOT_TRIGGERS) or the new contact not visible yet.
        throw new CallError('unavailable', `Autopilot answered 404 for journey trigger ${triggerId} after the contact was created: check AUTOPILOT_TRIGGERS`, 404)
      }
    }
    return { outcome: delivered(`entered journey trigger ${triggerId}`, action.issues), entered: 'yes' }
  } catch (error) {
    const unanswered = error instanceof CallError && !error.answered && calling === 'trigger'
    return { outcome: fromError(error), ...(unanswered && { entered: 'unknown' as const }) }
  }
}
