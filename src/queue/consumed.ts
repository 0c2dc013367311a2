// Cloudflare Queues delivers at least once: a message may come again after it was acknowledged.
// Its events would then be sent again — an older identify over a newer one delivered meanwhile
// (`npm run simulate` found it). Each envelope carries an id; once its message is finished, the
// id is kept in the ledger (one row per message, up to 100 events, pruned with the ledger), and a
// message whose id is there is acknowledged without being consumed again. A message whose events
// all finished is recorded in the pipeline's one write, before its ack (so a crash before the ack
// changes nothing); one that put events back on the queue, after its ack.
import type { Outcome } from '../pipeline/outcome'
import type { Store } from '../store/store'
import { emptyWrites } from '../store/store'

/** The ledger key of an envelope's id (apart from Segment's messageIds). */
const keyOf = (id: string) => `queue-message:${id}`

/** For the pipeline's write: the keys of the messages (their envelope ids) none of whose events is left to retry. */
export function finishedMessages(envelopes: (string | undefined)[], messageOf: (item: number) => number): { keys: (outcomes: Outcome[]) => string[]; recorded: Set<string> } {
  return {
    recorded: new Set(),
    keys(outcomes) {
      const open = new Set(outcomes.flatMap((outcome, i) => (outcome.status === 'retry' ? [messageOf(i)] : [])))
      return envelopes.flatMap((id, m) => (id && !open.has(m) ? [keyOf(id)] : []))
    },
  }
}

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

/** Keeps the ids of acknowledged envelopes not kept yet (`recorded`: the keys the pipeline wrote); a failure lets a duplicate through, whose finished events are skipped (their progress is kept). */
export async function recordConsumed(store: Store, ids: string[], recorded: Set<string>, onProblem: (message: string) => void): Promise<void> {
  const keys = ids.map(keyOf).filter((key) => !recorded.has(key))
  if (!keys.length) return
  await store.write({ ...emptyWrites(), progress: keys.map((key) => ({ messageId: key, state: 'done' as const })) }).catch((error: unknown) => {
    onProblem(error instanceof Error ? error.message : 'unknown error')
  })
}
