import fc from 'fast-check'
import { expect, it } from 'vitest'
import { Pacer, PROBE_EXPIRES_MS, UNHINTED_PAUSE_MS } from '../src/pipeline/pacer'
import { FakeClock } from './fake-clock'

// The pacer on its own, against random call outcomes and concurrency, on a fake clock. What a
// call can end in, as the gate reports it: an answer (200, 4xx, 5xx, a timeout, a reset: all
// "answered"), a 429 with or without a wait (Autopilot's Retry-After, Ortto's try-in-seconds,
// already capped), a call that never went out ("abandoned"), or none at all (its isolate stopped).
type Outcome = { kind: 'answered' } | { kind: '429'; wait?: number } | { kind: 'abandoned' } | { kind: 'lost' }

const outcome: fc.Arbitrary<Outcome> = fc.oneof(
  { weight: 6, arbitrary: fc.constant({ kind: 'answered' as const }) },
  { weight: 4, arbitrary: fc.record({ kind: fc.constant('429' as const), wait: fc.constantFrom(undefined, 0, 1, 5, 60) }) },
  { weight: 1, arbitrary: fc.constant({ kind: 'abandoned' as const }) },
  { weight: 1, arbitrary: fc.constant({ kind: 'lost' as const }) },
)
const caller = fc.record({
  arrivesAfter: fc.integer({ min: 0, max: 3000 }),
  /** How long it may wait (ms after it arrives); undefined: no deadline (queued mode). */
  patience: fc.option(fc.integer({ min: 0, max: 8000 }), { nil: undefined }),
  /** How long the call takes: up to a timeout. */
  takes: fc.integer({ min: 0, max: 4000 }),
  outcome,
})

it('holds its promises under any mix of outcomes and concurrency', { timeout: 120_000 }, async () => {
  await fc.assert(
    fc.asyncProperty(fc.constantFrom(1, 2, 5, 10), fc.array(caller, { minLength: 1, maxLength: 40 }), async (rate, callers) => {
      const clock = new FakeClock()
      const pacer = new Pacer(rate, clock)
      const t0 = clock.now()
      const starts: number[] = []
      const pauses: { from: number; until: number }[] = []
      let waiting = 0
      let settled = 0
      // The model of the probe, from what the pacer was told.
      let probeNeeded = false
      let probe: { ticket: number; since: number } | undefined
      const problems: string[] = []

      for (const { arrivesAfter, patience, takes, outcome } of callers) {
        const arrives = t0 + arrivesAfter
        const latest = patience === undefined ? Infinity : arrives + patience
        clock.at(arrives, () => {
          waiting++
          void pacer.wait(latest).then((ticket) => {
            waiting--
            settled++
            const now = clock.now()
            if (ticket === false) {
              // The deadline ends only waits that could not start in time.
              const next = pacer.nextStart(now)
              if (now <= latest && (next <= latest || next === Infinity)) problems.push(`refused at ${now - t0} though it could start by ${latest - t0}`)
              return
            }
            if (now > latest) problems.push(`started after its deadline`)
            const inPause = pauses.find((p) => now >= p.from && now < p.until)
            if (inPause) problems.push(`started at ${now - t0} inside a pause ${inPause.from - t0}–${inPause.until - t0}`)
            if (probe && now - probe.since < PROBE_EXPIRES_MS) problems.push(`started at ${now - t0} while the probe was out`)
            if (probe && now - probe.since >= PROBE_EXPIRES_MS) {
              probe = undefined // lost: the next goes as the probe
              probeNeeded = true
            }
            if (probeNeeded) {
              probe = { ticket, since: now }
              probeNeeded = false
            }
            starts.push(now)
            if (outcome.kind === 'lost') return
            clock.at(now + takes, () => {
              const at = clock.now()
              if (outcome.kind === 'answered') pacer.answered(ticket)
              if (outcome.kind === 'abandoned') pacer.abandoned(ticket)
              if (outcome.kind === '429') {
                pacer.rateLimited(ticket, outcome.wait)
                pauses.push({ from: at, until: at + (outcome.wait === undefined ? UNHINTED_PAUSE_MS : outcome.wait * 1000) })
                if (outcome.wait !== undefined) probeNeeded = true
              }
              if (probe?.ticket === ticket) {
                probe = undefined
                if (outcome.kind === 'abandoned') probeNeeded = true
              }
            })
          })
        })
      }
      // No waiter idle while a start is allowed: after every moment, if someone waits, the next start is still ahead.
      await clock.run(20_000, () => {
        const now = clock.now()
        const next = pacer.nextStart(now)
        if (waiting > 0 && next <= now) problems.push(`${waiting} waiting at ${now - t0} while a start was allowed`)
        // Held only by a probe still out, never by one whose call has ended.
        if (waiting > 0 && next === Infinity && !probe) problems.push(`${waiting} waiting at ${now - t0} behind a probe that has ended`)
      })

      expect(problems).toEqual([])
      expect(settled).toBe(callers.length) // every waiter settles
      // Never more than `rate` starts in any window (a second plus the margin).
      // Spaced, not in bursts.
      for (let i = 1; i < starts.length; i++) expect(starts[i] - starts[i - 1]).toBeGreaterThanOrEqual(1000 / rate)
      for (let i = rate; i < starts.length; i++) expect(starts[i] - starts[i - rate]).toBeGreaterThanOrEqual(pacer.windowMs)
    }),
    { numRuns: 150 },
  )
})
