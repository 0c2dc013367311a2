// Cloudflare Queues delivers at least once: a message may come again after it was acknowledged.
// Its events would then be sent again — an older identify over a newer one delivered meanwhile
// (`npm run simulate` found it). Each envelope carries an id; once its message is acknowledged,
// the id is kept in the ledger (one row per message, up to 100 events, pruned with the ledger),
// and a message whose id is there is acknowledged without being consumed again.
import type { Store } from '../store/store'
import { emptyWrites } from '../store/store'

/** The ledger key of an envelope's id (apart from Segment's messageIds). */
const keyOf = (id: string) => `queue-message:${id}`

/** A new envelope's id. */
export const newEnvelopeId = (): string => crypto.randomUUID()

/** The envelope's id, if it has one (envelopes from earlier versions do not). */
export function envelopeIdOf(body: unknown): string | undefined {
  const id = (body as { id?: unknown } | null)?.id
  return typeof id === 'string' && id ? id : undefined
}

/** Of these envelope ids, those already consumed (a read failure answers none: they are consumed again, as before). */
export async function consumedBefore(store: Store, ids: string[], onProblem: (message: string) => void): Promise<Set<string>> {
  if (!ids.length) return new Set()
  try {
    const { messages } = await store.read({ users: [], emails: [], messages: ids.map(keyOf) })
    return new Set(ids.filter((id) => messages.get(keyOf(id))?.state === 'done'))
  } catch (error) {
    onProblem(error instanceof Error ? error.message : 'unknown error')
    return new Set()
  }
}

/** Keeps the ids of acknowledged envelopes (a failure only lets a duplicate through, as before). */
export async function recordConsumed(store: Store, ids: string[], onProblem: (message: string) => void): Promise<void> {
  if (!ids.length) return
  await store.write({ ...emptyWrites(), progress: ids.map((id) => ({ messageId: keyOf(id), state: 'done' as const })) }).catch((error: unknown) => {
    onProblem(error instanceof Error ? error.message : 'unknown error')
  })
}
