import type { CallRecord } from './destinations/transport'

const MAX_LISTED_IDS = 20
/** Outcomes counted in an Analytics Engine data point, in the order of its doubles. */
const OUTCOMES = ['delivered', 'skipped', 'rejected', 'retry', 'queued', 'deferred'] as const

/**
 * One structured JSON line per request (or queue batch, or sweep): ids, counts,
 * the destination's calls with status and duration — and, when ANALYTICS is bound, one
 * Analytics Engine data point. Never emails, traits, properties, keys or signatures.
 */
export class RequestLog {
  readonly calls: CallRecord[] = []
  /** Event type -> outcome -> count. */
  readonly events: Record<string, Record<string, number>> = {}
  /** Parked events replayed here (before the event that brought their email), by their own type. */
  readonly replayed: Record<string, Record<string, number>> = {}
  /** messageIds of events rejected or to be retried (not PII), a few at most. */
  readonly notDelivered: { messageId: string; outcome: string }[] = []
  readonly fields: Record<string, unknown> = {}
  private readonly started = Date.now()

  constructor(
    readonly requestId: string,
    private readonly analytics?: AnalyticsEngineDataset,
    /** The destination's id: the key its calls are listed under. */
    private readonly destination = 'autopilot',
  ) {}

  readonly onCall = (record: CallRecord) => {
    this.calls.push(record)
  }

  /** Something that went wrong without failing the request (the store, the field list): no personal data. */
  readonly problem = (stage: string, message: string) => {
    ;((this.fields.problems ??= {}) as Record<string, string>)[stage] = message.slice(0, 300)
  }

  /** A parked event replayed: counted under its own type, apart from the events of the request. */
  readonly countReplay = (type: string, outcome: string, messageId?: string) => this.count(type, outcome, messageId, this.replayed)

  /** Traits left out of what was sent (each named in the answer's issues), counted. */
  leftOut = 0

  count(type: string, outcome: string, messageId?: string, into = this.events, issues = 0) {
    this.leftOut += issues
    const byOutcome = (into[type] ??= {})
    byOutcome[outcome] = (byOutcome[outcome] ?? 0) + 1
    if (messageId && (outcome === 'rejected' || outcome === 'retry') && this.notDelivered.length < MAX_LISTED_IDS) {
      this.notDelivered.push({ messageId, outcome })
    }
  }

  /** Writes the line. `kind` and `status` also label the data point. */
  emit(fields: Record<string, unknown> & { kind: 'request' | 'queue' | 'sweep'; status?: number | string }) {
    const ms = Date.now() - this.started
    const line = {
      requestId: this.requestId,
      ...this.fields,
      ...fields,
      ms,
      events: this.events,
      ...(this.leftOut && { leftOut: this.leftOut }),
      ...(Object.keys(this.replayed).length && { replayed: this.replayed }),
      ...(this.notDelivered.length && { notDelivered: this.notDelivered }),
      [this.destination]: this.calls,
    }
    console.log(JSON.stringify(line))
    this.analytics?.writeDataPoint({
      indexes: [fields.kind],
      blobs: [fields.kind, String(fields.status ?? ''), String(fields.path ?? fields.queue ?? ''), String(this.fields.auth ?? '')],
      doubles: [
        ...OUTCOMES.map((outcome) => Object.values(this.events).reduce((n, byOutcome) => n + (byOutcome[outcome] ?? 0), 0)),
        this.events.identify ? Object.values(this.events.identify).reduce((a, b) => a + b, 0) : 0,
        this.events.track ? Object.values(this.events.track).reduce((a, b) => a + b, 0) : 0,
        this.calls.length,
        this.calls.filter((call) => typeof call.status !== 'number' || call.status >= 400).length,
        ms,
      ],
    })
  }
}
