import type { CallRecord } from './autopilot'

const MAX_LISTED_IDS = 20

/**
 * One structured JSON line per request (or queue batch): ids, counts, Autopilot
 * calls with status and duration. Never emails, traits, properties, keys or signatures.
 */
export class RequestLog {
  readonly calls: CallRecord[] = []
  /** Event type -> outcome -> count. */
  readonly events: Record<string, Record<string, number>> = {}
  /** messageIds of events that were not delivered (not PII), a few at most. */
  readonly notDelivered: { messageId: string; outcome: string }[] = []
  readonly fields: Record<string, unknown> = {}
  private readonly started = Date.now()

  constructor(readonly requestId: string) {}

  readonly onCall = (record: CallRecord) => {
    this.calls.push(record)
  }

  count(type: string, outcome: string, messageId?: string) {
    const byOutcome = (this.events[type] ??= {})
    byOutcome[outcome] = (byOutcome[outcome] ?? 0) + 1
    if (messageId && outcome !== 'delivered' && outcome !== 'skipped' && this.notDelivered.length < MAX_LISTED_IDS) {
      this.notDelivered.push({ messageId, outcome })
    }
  }

  emit(fields: Record<string, unknown>) {
    const line = {
      requestId: this.requestId,
      ...this.fields,
      ...fields,
      ms: Date.now() - this.started,
      events: this.events,
      ...(this.notDelivered.length && { notDelivered: this.notDelivered }),
      autopilot: this.calls,
    }
    console.log(JSON.stringify(line))
  }
}
