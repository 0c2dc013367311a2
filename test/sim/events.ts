// What the simulation sends: random sequences of Segment events over a few users, with the
// steps around them (re-sends, queue drains and re-deliveries, redrives, sweeps). A scenario
// is plain data, so fast-check can shrink a failure to a minimal sequence.
import fc from 'fast-check'

export const USERS = 3
/** Mapped event names (a journey / an activity each) and one that is not mapped. */
export const MAPPED = ['Step Activated', 'Order Completed'] as const
export const UNMAPPED = 'Viewed Page'
const NAMES = ['Ann', 'Bea', 'Cy', 'Dee'] as const

/**
 * One event: `user` is the person's index; a track `byAlias` is sent by the person's
 * anonymous id (an alias's previousId), the others by its userId.
 * To add `group` (issue 36, being built): add its spec to `Spec` and `EVENT_KINDS`, its body to
 * `segmentEvent`, and what it must leave behind to `check` in test/sim/model.ts.
 */
export type Spec =
  | { kind: 'identify'; user: number; t: number; first: string; last: string }
  | { kind: 'track'; user: number; t: number; name: string; byAlias: boolean; withEmail: boolean }
  | { kind: 'alias'; user: number; t: number }
  | { kind: 'delete'; user: number; t: number }

const user = fc.nat({ max: USERS - 1 })
const t = fc.nat({ max: 40 })
/** The kinds of event, weighted; the extension point for new ones (group). */
export const EVENT_KINDS: fc.WeightedArbitrary<Spec>[] = [
  { weight: 4, arbitrary: fc.record({ kind: fc.constant('identify' as const), user, t, first: fc.constantFrom(...NAMES), last: fc.constantFrom(...NAMES) }) },
  {
    weight: 5,
    arbitrary: fc.record({ kind: fc.constant('track' as const), user, t, name: fc.constantFrom(...MAPPED, UNMAPPED), byAlias: fc.boolean(), withEmail: fc.boolean() }),
  },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('alias' as const), user, t }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('delete' as const), user, t }) },
]

export type Step = { step: 'send'; events: Spec[] } | { step: 'resend'; which: number } | { step: 'drain' } | { step: 'redeliver'; which: number } | { step: 'redrive' } | { step: 'sweep' }

export interface Scenario {
  /** Each user's email, as an index into the emails: two users may share one. */
  emailOf: number[]
  steps: Step[]
  /** Share of I/O steps (D1 statements, calls, queue sends) that fail while faults are on. */
  rate: number
  seed: number
}

export const scenario: fc.Arbitrary<Scenario> = fc.record({
  emailOf: fc.array(fc.nat({ max: USERS - 1 }), { minLength: USERS, maxLength: USERS }),
  steps: fc.array(
    fc.oneof(
      { weight: 8, arbitrary: fc.record({ step: fc.constant('send' as const), events: fc.array(fc.oneof(...EVENT_KINDS), { minLength: 1, maxLength: 4 }) }) },
      { weight: 2, arbitrary: fc.record({ step: fc.constant('resend' as const), which: fc.nat() }) },
      { weight: 2, arbitrary: fc.constant({ step: 'drain' as const }) },
      { weight: 1, arbitrary: fc.record({ step: fc.constant('redeliver' as const), which: fc.nat() }) },
      { weight: 1, arbitrary: fc.constant({ step: 'redrive' as const }) },
      { weight: 1, arbitrary: fc.constant({ step: 'sweep' as const }) },
    ),
    { minLength: 1, maxLength: 8 },
  ),
  rate: fc.constantFrom(0, 0.1, 0.2, 0.35),
  seed: fc.nat(),
})

export const userId = (user: number) => `sim-user-${user}`
export const anonymousId = (user: number) => `sim-anon-${user}`
export const emailAt = (index: number) => `person${index}@sim.example.com`

/** Segment timestamps: minutes apart by `t`, and never equal (the event's sequence number breaks ties). */
const BASE = Date.parse('2026-11-01T00:00:00Z')
export const timeOf = (spec: Spec, seq: number) => BASE + spec.t * 60_000 + seq

/** The Segment event a spec stands for; `seq` makes its messageId. */
export function segmentEvent(spec: Spec, seq: number, emailOf: number[]): Record<string, unknown> {
  const base = { messageId: `sim-${seq}`, timestamp: new Date(timeOf(spec, seq)).toISOString() }
  const email = emailAt(emailOf[spec.user])
  switch (spec.kind) {
    case 'identify':
      return { ...base, type: 'identify', userId: userId(spec.user), traits: { email, firstName: spec.first, lastName: spec.last } }
    case 'track':
      return {
        ...base,
        type: 'track',
        userId: spec.byAlias ? anonymousId(spec.user) : userId(spec.user),
        event: spec.name,
        properties: {},
        ...(spec.withEmail && { context: { traits: { email } } }),
      }
    case 'alias':
      return { ...base, type: 'alias', previousId: anonymousId(spec.user), userId: userId(spec.user) }
    case 'delete':
      return { ...base, type: 'delete', userId: userId(spec.user) }
  }
}
