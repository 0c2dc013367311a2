// Which tracks already entered their journey. Autopilot triggers are not idempotent
// (a repeat can enrol twice), while Segment and Queues both deliver at least once.
import type { TrackLedger } from './deliver'

/** Per-isolate memory (bounded; the oldest are forgotten first). */
export class MemoryLedger implements TrackLedger {
  private readonly seen = new Set<string>()
  constructor(private readonly capacity = 10_000) {}

  async has(messageId: string): Promise<boolean> {
    return this.seen.has(messageId)
  }

  async add(messageId: string): Promise<void> {
    this.seen.add(messageId)
    if (this.seen.size > this.capacity) this.seen.delete(this.seen.values().next().value!)
  }
}

/** Seven days: longer than Segment's 4 h of retries and the queue's retry schedule. */
export const DELIVERED_TTL_SECONDS = 7 * 24 * 3600

/**
 * Survives the isolate: a KV record per delivered track, in front of the memory
 * ledger. KV is eventually consistent across locations (best effort between
 * isolates in different places); the queue consumer runs in one place at a time.
 */
export class KvLedger implements TrackLedger {
  constructor(
    private readonly kv: KVNamespace,
    private readonly memory: MemoryLedger,
  ) {}

  async has(messageId: string): Promise<boolean> {
    return (await this.memory.has(messageId)) || (await this.kv.get(`sent:${messageId}`)) !== null
  }

  async add(messageId: string): Promise<void> {
    await this.memory.add(messageId)
    await this.kv.put(`sent:${messageId}`, '1', { expirationTtl: DELIVERED_TTL_SECONDS })
  }
}

const memory = new MemoryLedger()
/** The ledger for this isolate: KV-backed when DELIVERIES is bound. */
export function ledgerFor(kv: KVNamespace | undefined): TrackLedger {
  return kv ? new KvLedger(kv, memory) : memory
}
