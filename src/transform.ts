// The mapping's entry point: a validated Segment event -> the chosen destination's
// operation (person upsert, journey entry, delete, skip, reject). Pure: a function of the
// event, the destination's settings and what it read from the account. Each destination's
// own mapping lives in destinations/<name>/mapping.ts.
import type { Destination, Operation } from './destinations/destination'
import type { IdentifyEvent, SegmentEvent, TrackEvent } from './segment/schema'

/** `account`: what the destination read from the account (undefined: its `none`). `knownEmail`: resolved from the userId. */
export function toOperation<P, A>(destination: Destination<P, A>, event: SegmentEvent, account?: A, knownEmail?: string): Operation<P> {
  return destination.map(event, account ?? (destination.account?.none as A), knownEmail)
}

/** A destination's mapper from its identify and track mappings: every other type is acknowledged and skipped. */
export function byEventType<P, S>(
  label: string,
  identify: (event: IdentifyEvent, settings: S, knownEmail?: string) => Operation<P>,
  track: (event: TrackEvent, settings: S, knownEmail?: string) => Operation<P>,
): (event: SegmentEvent, settings: S, knownEmail?: string) => Operation<P> {
  return (event, settings, knownEmail) => {
    if (event.type === 'identify') return identify(event, settings, knownEmail)
    if (event.type === 'track') return track(event, settings, knownEmail)
    return { kind: 'skip', message: `${event.type} events are acknowledged and not sent to ${label}` }
  }
}
