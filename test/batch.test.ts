import { describe, expect, it } from 'vitest'
import batchExample from '../examples/batch.json'
import { json, setup, track } from './helpers'

const identifies = (n: number, from = 0) =>
  Array.from({ length: n }, (_, i) => ({
    type: 'identify',
    messageId: `id-${from + i}`,
    userId: `u-${from + i}`,
    traits: { email: `person${from + i}@example.com`, plan: 'pro' },
  }))

describe('batches', () => {
  it('delivers the Webhooks (Actions) example: bulk identify, trigger, skipped page', async () => {
    const { post, autopilot } = setup()
    const signed = await post(batchExample)
    expect(signed.status).toBe(200)
    // Delivered events are counted, not listed: the answer lists what needs a person's eye.
    expect(await json(signed)).toEqual({ message: '2 delivered, 1 skipped', counts: { delivered: 2, skipped: 1 }, results: [] })
    expect(autopilot.enrolments).toMatchObject([{ triggerId: '0002', email: 'one@example.com' }])
  })

  it('sends identifies through POST /contacts, one call per 100 contacts', async () => {
    const { post, autopilot } = setup()
    const response = await post(identifies(250))
    expect(response.status).toBe(200)
    expect(autopilot.calls.map((call) => [call.path, call.body.contacts.length])).toEqual([
      ['/contacts', 100],
      ['/contacts', 100],
      ['/contacts', 50],
    ])
    expect(autopilot.contacts.size).toBe(250)
  })

  it('merges identifies for the same email into one contact, later values winning', async () => {
    const { post, autopilot } = setup()
    const response = await post([
      { type: 'identify', messageId: 'a', traits: { email: 'same@example.com', plan: 'free', firstName: 'A' } },
      { type: 'identify', messageId: 'b', traits: { email: 'other@example.com' } },
      { type: 'identify', messageId: 'c', traits: { email: 'same@example.com', plan: 'pro' } },
    ])
    expect(response.status).toBe(200)
    expect(autopilot.calls).toHaveLength(1)
    expect(autopilot.calls[0].body.contacts).toEqual([{ Email: 'same@example.com', FirstName: 'A', custom: { 'string--plan': 'pro' } }, { Email: 'other@example.com' }])
  })

  it('isolates a poison contact in a rejected bulk call and delivers the rest', async () => {
    const { post, autopilot } = setup()
    const events = identifies(100)
    events[37] = { ...events[37], traits: { email: 'poison@localhost', plan: 'pro' } }
    const response = await post(events)
    expect(response.status).toBe(200)
    const { results } = await json(response)
    expect(results.filter((r: { status: string }) => r.status === 'rejected')).toEqual([
      { index: 37, messageId: 'id-37', status: 'rejected', message: expect.stringContaining('Invalid contact_id_or_email') },
    ])
    expect(autopilot.contacts.size).toBe(99)
    expect(autopilot.calls.filter((call) => call.status === 200).length).toBeLessThanOrEqual(8)
  })

  it('reports invalid events per event and still delivers the good ones', async () => {
    const { post, autopilot } = setup()
    const response = await post([identifies(1)[0], { type: 'identify', traits: { email: 7 } }, { type: 'nope' }])
    expect(response.status).toBe(200)
    const { results, counts } = await json(response)
    expect(counts).toEqual({ delivered: 1, rejected: 2 })
    expect(results.map((r: { index: number; status: string }) => [r.index, r.status])).toEqual([
      [1, 'rejected'],
      [2, 'rejected'],
    ])
    expect(results[0].issues).toEqual([{ path: 'traits.email', message: 'must be a string; not used' }])
    expect(autopilot.contacts.size).toBe(1)
  })

  it('answers 503 with per-event results when any event hit a retryable failure', async () => {
    const { post, autopilot } = setup()
    autopilot.inject({ status: 500, match: (call) => call.path === '/contacts' })
    const response = await post([...identifies(2), { type: 'page', messageId: 'p', userId: 'u' }])
    expect(response.status).toBe(503)
    const body = await json(response)
    expect(body.message).toContain('Segment will re-send')
    expect(body.counts).toEqual({ retry: 2, skipped: 1 })
    expect(body.results.map((r: { index: number; status: string }) => [r.index, r.status])).toEqual([
      [0, 'retry'],
      [1, 'retry'],
    ])
  })

  it('answers 429 when the only retryable failures were rate limits', async () => {
    const { post, autopilot } = setup()
    autopilot.inject({ status: 429, retryAfter: '3' })
    const response = await post(identifies(3))
    expect(response.status).toBe(429)
    expect(response.headers.get('retry-after')).toBe('3')
  })

  it('goes on after one 5xx, and the re-send repeats only what failed', async () => {
    const { post, autopilot } = setup()
    autopilot.inject({ status: 503, match: (call) => call.path === '/contacts' && call.body.contacts.length === 100 })
    const batch = [...identifies(150), track('Step Activated', 'person1@example.com')]
    const first = await post(batch)
    expect(first.status).toBe(503)
    // The first 100 failed; the other 50 landed; the track waits for its person's contact.
    expect(autopilot.calls.map((call) => [call.path, call.status])).toEqual([
      ['/contacts', 503],
      ['/contacts', 200],
    ])
    autopilot.calls.length = 0
    expect((await post(batch)).status).toBe(200)
    expect(autopilot.calls.map((call) => [call.path, call.body?.contacts?.length ?? 0])).toEqual([
      ['/contacts', 100],
      ['/trigger/0001/contact/person1%40example.com', 0],
    ])
  })

  it('stops calling Autopilot after two retryable failures in a row', async () => {
    const { post, autopilot } = setup()
    autopilot.inject({ status: 503 }, { status: 503 })
    const response = await post([...identifies(350), track('Step Activated', 'person1@example.com')])
    expect(response.status).toBe(503)
    expect(autopilot.calls.length).toBeLessThanOrEqual(4) // calls already in flight when the second failure came
    expect(autopilot.calls.filter((call) => call.status === 200).length).toBeLessThanOrEqual(2)
  })

  it('does not trigger a journey twice when Segment re-sends the batch', async () => {
    const { post, autopilot } = setup()
    for (const email of ['a@example.com', 'b@example.com']) autopilot.contacts.set(email, { Email: email, custom: {} })
    const batch = [track('Step Activated', 'a@example.com'), track('Step Activated', 'b@example.com')]
    autopilot.inject({ status: 500, match: (call) => call.path.endsWith('b%40example.com') })
    const first = await post(batch)
    expect(first.status).toBe(503)
    expect(await json(first)).toMatchObject({ counts: { delivered: 1, retry: 1 }, results: [{ index: 1, status: 'retry' }] })
    const again = await post(batch)
    expect(again.status).toBe(200)
    expect(autopilot.enrolments.map((e) => e.email)).toEqual(['a@example.com', 'b@example.com'])
  })

  it('answers an empty batch with 200', async () => {
    const { post, autopilot } = setup()
    const response = await post([])
    expect(response.status).toBe(200)
    expect(await json(response)).toEqual({ message: 'no events', counts: {}, results: [] })
    expect(autopilot.calls).toHaveLength(0)
  })
})
