// The mapping's entry point: a validated Segment event -> the chosen destination's
// operation (person upsert, journey entry, delete, skip, reject). Pure: a function of the
// event, the destination's settings and what it read from the account. Each destination's
// own mapping lives in destinations/<name>/mapping.ts.
import type { Destination, Operation } from './destinations/destination'
import type { SegmentEvent } from './schema'

/** `account`: what the destination read from the account (undefined: its `none`). `knownEmail`: resolved from the userId. */
export function toOperation<P, A>(destination: Destination<P, A>, event: SegmentEvent, account?: A, knownEmail?: string): Operation<P> {
  return destination.map(event, account ?? (destination.account?.none as A), knownEmail)
}
