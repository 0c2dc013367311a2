// Turns mapped actions into as few Autopilot calls as possible and decides each
// event's outcome. Used through pipeline.ts by direct mode, the queue consumer and the sweep.
import { AutopilotClient, AutopilotError, BULK_LIMIT } from './autopilot'
import { mergeContacts, type Action, type Contact } from './transform'
import type { Issue } from './schema'

export type OutcomeStatus = 'delivered' | 'skipped' | 'rejected' | 'retry' | 'queued' | 'deferred'

export interface Outcome {
  status: OutcomeStatus
  message: string
  /** What this event alone would be answered with. */
  httpStatus: number
  /** Seconds, with 429. */
  retryAfter?: number
  issues?: Issue[]
}

export interface Job {
  messageId?: string
  action: Action
}

/** Remembers which tracks entered their journey, so a re-sent event does not enrol twice. */
export interface TrackLedger {
  has(messageId: string): Promise<boolean>
  add(messageId: string): Promise<void>
}

export const delivered = (message: string): Outcome => ({ status: 'delivered', message, httpStatus: 200 })
export const skipped = (message: string): Outcome => ({ status: 'skipped', message, httpStatus: 200 })
export const deferred = (): Outcome => ({
  status: 'deferred',
  message: "parked until this userId's email is known",
  httpStatus: 202,
})
export const queued = (): Outcome => ({ status: 'queued', message: 'queued for delivery', httpStatus: 202 })
export const rejected = (message: string, issues?: Issue[]): Outcome => ({
  status: 'rejected',
  message,
  httpStatus: 400,
  ...(issues && { issues }),
})
export const retry = (message: string, retryAfter?: number): Outcome =>
  retryAfter === undefined
    ? { status: 'retry', message, httpStatus: 503 }
    : { status: 'retry', message, httpStatus: 429, retryAfter }

function fromError(error: AutopilotError): Outcome {
  if (error.kind === 'rate_limited') return retry(error.message, error.retryAfter)
  if (error.retryable) return retry(error.message)
  return rejected(error.message)
}

/** Which failures stop all further calls for this delivery. */
export type HaltPolicy = (error: AutopilotError) => boolean
/** Direct mode: Segment re-sends the whole batch after any retryable failure, so stop at the first. */
export const haltOnAnyRetryable: HaltPolicy = (error) => error.retryable
/** Queued mode: each message retries on its own; stop only when every further call would fail too. */
export const haltOnAccountWide: HaltPolicy = (error) => error.kind === 'key_rejected' || error.kind === 'rate_limited'

/**
 * Delivers jobs: upserts (identifies, and tracks that only update a contact) merged
 * per email and sent in bulk, at most 100 a call; then journey triggers one by one.
 * A failure the halt policy names stops further calls; the jobs not tried get its outcome.
 */
export async function deliver(
  jobs: readonly Job[],
  client: AutopilotClient,
  ledger: TrackLedger,
  halts: HaltPolicy = haltOnAnyRetryable,
): Promise<Outcome[]> {
  const outcomes: (Outcome | undefined)[] = jobs.map(({ action }) =>
    action.kind === 'skip' ? skipped(action.message) : action.kind === 'reject' ? rejected(action.message) : undefined,
  )
  let halted: Outcome | undefined
  const stop = (error: unknown): Outcome => {
    if (!(error instanceof AutopilotError)) throw error
    const outcome = fromError(error)
    if (halts(error)) halted ??= outcome
    return outcome
  }

  // Upserts, merged per email so several events for one person make one contact.
  const groups = new Map<string, { contact: Contact; indices: number[] }>()
  jobs.forEach(({ action }, index) => {
    if (action.kind !== 'upsert') return
    const group = groups.get(action.contact.Email)
    if (group) {
      group.contact = mergeContacts(group.contact, action.contact)
      group.indices.push(index)
    } else {
      groups.set(action.contact.Email, { contact: action.contact, indices: [index] })
    }
  })
  const settle = (group: { indices: number[] }, outcome: Outcome) => {
    for (const index of group.indices) {
      const { action } = jobs[index]
      outcomes[index] = outcome.status === 'delivered' && action.kind === 'upsert' ? delivered(action.message) : outcome
    }
  }
  const send = async (chunk: { contact: Contact; indices: number[] }[]): Promise<void> => {
    if (halted) return chunk.forEach((group) => settle(group, halted!))
    try {
      if (chunk.length === 1) await client.upsertContact(chunk[0].contact)
      else await client.upsertContacts(chunk.map((group) => group.contact))
      chunk.forEach((group) => settle(group, delivered('contact upserted')))
    } catch (error) {
      const outcome = stop(error)
      if (outcome.status === 'rejected' && chunk.length > 1) {
        // Autopilot does not say which contact it refused: halve until the bad ones stand alone.
        const middle = Math.ceil(chunk.length / 2)
        await send(chunk.slice(0, middle))
        await send(chunk.slice(middle))
      } else {
        chunk.forEach((group) => settle(group, outcome))
      }
    }
  }
  const all = [...groups.values()]
  for (let start = 0; start < all.length; start += BULK_LIMIT) await send(all.slice(start, start + BULK_LIMIT))

  // Journey triggers, one call each (Autopilot has no bulk trigger); deletions last.
  for (const kind of ['trigger', 'delete'] as const) {
    for (const [index, { action, messageId }] of jobs.entries()) {
      if (action.kind !== kind) continue
      if (halted) {
        outcomes[index] = halted
        continue
      }
      try {
        outcomes[index] =
          action.kind === 'trigger'
            ? await enrol(client, ledger, action, messageId)
            : delivered((await client.deleteContact(action.email)) === 'deleted' ? 'contact deleted' : 'contact was not in Autopilot')
      } catch (error) {
        outcomes[index] = stop(error)
      }
    }
  }
  return outcomes.map((outcome) => outcome ?? retry('not attempted'))
}

async function enrol(
  client: AutopilotClient,
  ledger: TrackLedger,
  { triggerId, contact }: Extract<Action, { kind: 'trigger' }>,
  messageId: string | undefined,
): Promise<Outcome> {
  if (messageId && (await ledger.has(messageId))) {
    return delivered(`already entered journey trigger ${triggerId}; not repeated`)
  }
  try {
    await client.trigger(triggerId, contact.Email)
  } catch (error) {
    if (!(error instanceof AutopilotError) || error.kind !== 'not_found') throw error
    // Autopilot answers 404 for a contact it does not know yet: create it, then try once more.
    await client.upsertContact(contact)
    try {
      await client.trigger(triggerId, contact.Email)
    } catch (again) {
      if (!(again instanceof AutopilotError) || again.kind !== 'not_found') throw again
      // Retryable: the trigger id may be wrong (fix AUTOPILOT_TRIGGERS) or the new contact not visible yet.
      throw new AutopilotError(
        'unavailable',
        `Autopilot answered 404 for journey trigger ${triggerId} after the contact was created: check AUTOPILOT_TRIGGERS`,
        404,
      )
    }
  }
  if (messageId) await ledger.add(messageId)
  return delivered(`entered journey trigger ${triggerId}`)
}
