import { describe, expect, it } from 'vitest'
import fc from 'fast-check'
import * as v from 'valibot'
import { checkEvent, Email, SegmentEvent } from '../src/segment/schema'
import { eventEmail } from '../src/segment/traits'

const identify = { type: 'identify', messageId: 'm-1', userId: 'u-1', traits: { email: 'a@example.com', plan: 'pro' }, context: { ip: '203.0.113.7', traits: { name: 'Ada' } } }

describe('checkEvent: events as SDKs send them', () => {
  it('uses an identify or track that needs no normalising as it is, not a copy', () => {
    const track = { type: 'track', event: 'Order Completed', userId: 'u-1', properties: { total: 3 } }
    for (const event of [identify, track]) {
      const checked = checkEvent(event)
      expect(checked.ok && checked.event).toBe(event)
    }
  })

  it('still normalises ids that need it, and still names what is wrong', () => {
    const checked = checkEvent({ ...identify, userId: 42, anonymousId: ' a-1 ', messageId: 'm\uD800' })
    expect(checked).toMatchObject({ ok: true, event: { userId: '42', anonymousId: 'a-1', messageId: 'm\uFFFD' } })
    expect(checkEvent({ ...identify, traits: [] })).toMatchObject({ ok: false, issues: [{ path: 'traits', message: 'must be an object' }] })
    expect(checkEvent({ type: 'track', event: '  ' })).toMatchObject({ ok: false, issues: [{ path: 'event', message: 'must be a non-empty event name' }] })
  })

  it('agrees with the full schema on every identify and track', () => {
    const id = fc.oneof(fc.constant(undefined), fc.constant(null), fc.string({ maxLength: 6 }), fc.constantFrom(' x', 'y ', 7, 'z'.repeat(513)))
    const traits = fc.oneof(fc.constant(undefined), fc.constant(null), fc.dictionary(fc.string({ maxLength: 4 }), fc.jsonValue({ maxDepth: 2 })), fc.constant([]))
    const event = fc
      .record(
        {
          type: fc.constantFrom('identify', 'track'),
          messageId: fc.oneof(fc.constant(undefined), fc.string({ maxLength: 4, unit: 'binary' }), fc.constant(3), fc.constant('m'.repeat(257))),
          userId: id,
          anonymousId: id,
          event: fc.oneof(fc.constant(undefined), fc.constantFrom('', ' ', 'Viewed', ' Viewed', 'e'.repeat(257), 5)),
          traits,
          properties: traits,
          context: fc.oneof(fc.constant(undefined), fc.constant('ctx'), fc.record({ traits, ip: fc.string() }, { requiredKeys: [] })),
        },
        { requiredKeys: ['type'] },
      )
      .map((record) => structuredClone(record)) // plain objects, as JSON.parse makes them
    fc.assert(
      fc.property(event, (input) => {
        const checked = checkEvent(input)
        const full = v.safeParse(SegmentEvent, input)
        expect(checked.ok).toBe(full.success)
        if (checked.ok && full.success) expect(checked.event).toStrictEqual(full.output)
      }),
      { numRuns: 2000 },
    )
  })
})

describe('emailOf: the plain-ASCII shortcut', () => {
  it('finds what the Email schema finds', () => {
    const text = fc.oneof(fc.string({ maxLength: 12, unit: 'binary' }), fc.stringMatching(/^[ -~]{0,6}@[ -~]{0,6}$/), fc.constant(`${'a'.repeat(250)}@b.co`))
    fc.assert(
      fc.property(text, (email) => {
        const full = v.safeParse(Email, email)
        expect(eventEmail({ type: 'identify', traits: { email } })).toBe(full.success ? full.output : undefined)
      }),
      { numRuns: 3000 },
    )
  })
})
