import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { CreationLog } from '../src/store/creations'
import { Sql } from '../src/store/sql'
import { db } from './helpers'

// The record of creations as a scheduler of holds (src/store/creations.ts), on a fake clock,
// under random sequences of runs that make, are refused, fail unanswered, stop short or
// crash between their hold and its end: never more than the day's cap, never a name made or
// refused asked again, and never a name blocked past the end of the hold left on it.
const HOLD_MS = 5_000
const MAX = 2
const NAMES = ['a', 'b', 'c', 'd'] as const
type Ending = 'made' | 'refused' | 'unanswered' | 'stopped' | 'crashed'
type Step = { kind: 'attempt'; name: (typeof NAMES)[number]; ending: Ending } | { kind: 'wait'; ms: number }

const step: fc.Arbitrary<Step> = fc.oneof(
  fc.record({ kind: fc.constant('attempt' as const), name: fc.constantFrom(...NAMES), ending: fc.constantFrom<Ending>('made', 'refused', 'unanswered', 'stopped', 'crashed') }),
  fc.record({ kind: fc.constant('wait' as const), ms: fc.integer({ min: 0, max: 2 * HOLD_MS }) }),
)

describe('the record of creations (holds on a fake clock)', () => {
  it('never more than the cap, nothing asked twice, no name blocked past its hold, under random endings', async () => {
    const sql = new Sql(db(), 2_000)
    await fc.assert(
      fc.asyncProperty(fc.array(step, { maxLength: 25 }), async (steps) => {
        await db().exec('DELETE FROM created')
        let now = Date.parse('2026-12-07T10:00:00Z')
        const settled = new Map<string, 'made' | 'refused'>()
        const heldUntil = new Map<string, number>()
        for (const s of steps) {
          if (s.kind === 'wait') {
            now += s.ms
            continue
          }
          const log = new CreationLog(sql, now + HOLD_MS, () => now)
          const standing = (await log.look([{ kind: 'field', name: s.name }])).get(`field:${s.name}`)
          if (settled.get(s.name) === 'made') expect(standing).toMatchObject({ state: 'created' })
          if (settled.get(s.name) === 'refused') expect(standing).toMatchObject({ state: 'refused' })
          if (standing?.state === 'created' || standing?.state === 'refused') continue
          // A hold whose run's answer is past never blocks the name.
          if ((heldUntil.get(s.name) ?? 0) <= now) expect(standing?.state).not.toBe('taken')
          if (standing?.state === 'taken') continue
          const held = await log.reserve('field', s.name, MAX, standing?.state === 'expired')
          if (held.state !== 'new') {
            expect(held.state).toBe('full')
            continue
          }
          heldUntil.set(s.name, now + HOLD_MS)
          if (s.ending === 'made') await log.created('field', s.name, `str:cm:${s.name}`)
          if (s.ending === 'refused') await log.refused('field', s.name, 'refused')
          if (s.ending === 'unanswered') await log.release('field', s.name, true)
          if (s.ending === 'stopped') await log.release('field', s.name)
          if (s.ending === 'made' || s.ending === 'refused') settled.set(s.name, s.ending)
          if (s.ending === 'unanswered' || s.ending === 'stopped') heldUntil.delete(s.name)
          expect(await log.usedToday()).toBeLessThanOrEqual(MAX)
        }
      }),
      { numRuns: 25 },
    )
  })
})
