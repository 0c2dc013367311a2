// Validated events -> outcomes: identity resolution (when IDENTITIES is bound),
// mapping, delivery, and the identity bookkeeping that depends on the result.
// Used by direct mode (per request), the queue consumer (per batch) and the sweep.
import type { AutopilotClient } from './autopilot'
import type { Config } from './config'
import { deferred, deliver, rejected, skipped, type HaltPolicy, type Job, type Outcome, type TrackLedger } from './deliver'
import { MAX_PARKED_PER_USER, resolveIdentities, withEmail, type IdentityMap, type Parked, type Resolution } from './identity'
import type { SegmentEvent } from './schema'
import { toAction } from './transform'

export interface Delivery {
  config: Config
  client: AutopilotClient
  ledger: TrackLedger
  identities?: IdentityMap
  halts?: HaltPolicy
}

type Origin = { index: number; forget?: string } | { parkedKey: string; userId?: string | null }

/** One outcome per event; undefined where the input was undefined (invalid, decided by the caller). */
export async function deliverEvents(events: readonly (SegmentEvent | undefined)[], delivery: Delivery): Promise<(Outcome | undefined)[]> {
  const { config, client, ledger, identities, halts } = delivery
  const resolution: Resolution = identities
    ? await resolveIdentities(events, identities)
    : { resolved: events.map((event) => event && { kind: 'deliver', event }), replays: [], pending: new Map() }

  const outcomes: (Outcome | undefined)[] = new Array(events.length)
  const jobs: Job[] = []
  const origins: Origin[] = []
  const add = (job: Job, origin: Origin) => {
    jobs.push(job)
    origins.push(origin)
  }
  const replaysBefore = Map.groupBy(resolution.replays, (replay) => replay.before)
  for (const [index, resolved] of resolution.resolved.entries()) {
    for (const { parked, email } of replaysBefore.get(index) ?? []) {
      add(replayJob(parked, email, config), { parkedKey: parked.key, userId: parked.event.userId })
    }
    switch (resolved?.kind) {
      case undefined:
        break
      case 'deliver':
        add({ messageId: resolved.event.messageId, action: toAction(resolved.event, config) }, { index })
        break
      case 'delete':
        add({ action: { kind: 'delete', email: resolved.email } }, { index, forget: resolved.userId })
        break
      case 'deferred':
        outcomes[index] = deferred()
        break
      case 'parking-full':
        outcomes[index] = rejected(
          `${MAX_PARKED_PER_USER} events are already waiting for this userId's email; send an identify with the email (traits.email) first`,
        )
        break
      case 'noted':
        outcomes[index] = skipped(resolved.message)
        break
    }
  }

  const results = jobs.length ? await deliver(jobs, client, ledger, halts) : []
  const settledParked: string[] = []
  const unsettledUsers = new Set<string | null | undefined>()
  for (const [i, outcome] of results.entries()) {
    const origin = origins[i]
    if ('parkedKey' in origin) {
      // Delivered or refused for good: no longer waiting. Retryable: stays parked for the next try.
      if (outcome.status !== 'retry') settledParked.push(origin.parkedKey)
      else unsettledUsers.add(origin.userId)
      continue
    }
    outcomes[origin.index] = outcome
    if (origin.forget && outcome.status === 'delivered') await identities!.forget(origin.forget)
  }
  if (settledParked.length) await identities!.unpark(settledParked)
  for (const [userId, email] of resolution.pending) {
    if (!unsettledUsers.has(userId)) identities!.remember(userId, email)
  }
  await identities?.flush()
  return outcomes
}

/** Delivers parked events whose email is now known; returns the keys settled (not to be retried). */
export async function deliverParked(items: { email: string; parked: Parked }[], delivery: Delivery): Promise<string[]> {
  const jobs = items.map(({ parked, email }) => replayJob(parked, email, delivery.config))
  const results = await deliver(jobs, delivery.client, delivery.ledger, delivery.halts)
  return items.flatMap(({ parked }, i) => (results[i].status === 'retry' ? [] : [parked.key]))
}

function replayJob(parked: Parked, email: string, config: Config): Job {
  return { messageId: parked.event.messageId, action: toAction(withEmail(parked.event, email), config) }
}
