import { createScheduledController, reset } from 'cloudflare:test'
import type { Env } from '../src/config'
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'
import { MAX_PARKED_PER_USER } from '../src/identity'
import worker from '../src/index'
import { fakeQueue, identitiesKv, json, kv, setup } from './helpers'

const EMAIL = 'ada@example.com'
let n = 0
const id = () => `m-${++n}`
const identifyWith = (userId: string, traits: Record<string, unknown>) => ({ type: 'identify', messageId: id(), userId, traits })
const trackFor = (userId: string, extra: Record<string, unknown> = {}) => ({ type: 'track', messageId: id(), userId, event: 'Step Activated', ...extra })

function withIdentities(env: Record<string, unknown> = {}) {
  return setup({ IDENTITIES: identitiesKv(), ...env })
}
const parkedKeys = async () => (await identitiesKv().list({ prefix: 'park:' })).keys
async function sweep(env: Env) {
  await worker.scheduled(createScheduledController(), env)
}

beforeEach(async () => {
  await reset()
})
afterEach(() => {
  vi.useRealTimers()
})

describe('the identity map', () => {
  it('is learned from an identify with userId and email, and used by a later identify with only the userId', async () => {
    const { post, autopilot } = withIdentities()
    expect((await post(identifyWith('u-1', { email: EMAIL }))).status).toBe(200)
    const response = await post(identifyWith('u-1', { plan: 'pro' }))
    expect(response.status).toBe(200)
    expect(autopilot.calls[1].body).toEqual({ contact: { Email: EMAIL, custom: { 'string--plan': 'pro' } } })
  })

  it('is used by a track with only the userId', async () => {
    const { post, autopilot } = withIdentities()
    await post(trackFor('u-2', { properties: { email: EMAIL } }))
    const response = await post(trackFor('u-2'))
    expect(response.status).toBe(200)
    expect(autopilot.enrolments.map((e) => e.email)).toEqual([EMAIL, EMAIL])
  })

  it('is learned from a track, too', async () => {
    const { post, autopilot } = withIdentities()
    await post(trackFor('u-3', { context: { traits: { email: EMAIL } } }))
    await post(identifyWith('u-3', { plan: 'x' }))
    expect(autopilot.contacts.get(EMAIL)?.custom).toEqual({ 'string--plan': 'x' })
  })

  it('follows an email change by newEmail, and a new email for the same userId', async () => {
    const { post, autopilot } = withIdentities()
    await post(identifyWith('u-4', { email: 'old@example.com' }))
    await post(identifyWith('u-4', { email: 'old@example.com', newEmail: 'new@example.com' }))
    expect([...autopilot.contacts.keys()]).toEqual(['new@example.com']) // renamed with _NewEmail
    await post(identifyWith('u-4', { plan: 'a' }))
    expect(autopilot.contacts.get('new@example.com')?.custom).toEqual({ 'string--plan': 'a' })
    await post(identifyWith('u-4', { email: 'third@example.com' }))
    await post(identifyWith('u-4', { plan: 'b' }))
    expect(autopilot.contacts.get('third@example.com')?.custom).toEqual({ 'string--plan': 'b' })
  })
})

describe('parking', () => {
  it('parks an event whose userId has no known email: 202 deferred, nothing sent', async () => {
    const { post, autopilot } = withIdentities()
    const response = await post(identifyWith('u-10', { plan: 'pro' }))
    expect(response.status).toBe(202)
    expect(await json(response)).toMatchObject({ status: 'deferred' })
    expect(autopilot.calls).toHaveLength(0)
    expect(await parkedKeys()).toHaveLength(1)
  })

  it('replays parked events in their original order when the email arrives, then removes them', async () => {
    const { post, autopilot } = withIdentities()
    await post(identifyWith('u-11', { plan: 'free', title: 'Intern' }))
    await post(trackFor('u-11'))
    await post(identifyWith('u-11', { plan: 'pro' }))
    expect(autopilot.calls).toHaveLength(0)
    const response = await post(identifyWith('u-11', { email: EMAIL, firstName: 'Ada' }))
    expect(response.status).toBe(200)
    // The identifies merge into one contact, later values winning; the track enters its journey.
    expect(autopilot.calls.map((call) => call.path)).toEqual(['/contact', '/trigger/0001/contact/ada%40example.com'])
    expect(autopilot.calls[0].body.contact).toEqual({ Email: EMAIL, FirstName: 'Ada', Title: 'Intern', custom: { 'string--plan': 'pro' } })
    expect(autopilot.enrolments).toHaveLength(1)
    expect(await parkedKeys()).toEqual([])
  })

  it('resolves within one batch: a userId-only event before the identify that carries the email', async () => {
    const { post, autopilot } = withIdentities()
    const response = await post([trackFor('u-12'), identifyWith('u-12', { email: EMAIL })])
    expect(response.status).toBe(200)
    expect((await json(response)).results.map((r: { status: string }) => r.status)).toEqual(['delivered', 'delivered'])
    expect(autopilot.enrolments.map((e) => e.email)).toEqual([EMAIL])
    expect(await parkedKeys()).toEqual([])
  })

  it('keeps parked events when their replay fails, and replays them on the retry', async () => {
    const { post, autopilot } = withIdentities()
    expect((await post(trackFor('u-13'))).status).toBe(202)
    expect(await parkedKeys()).toHaveLength(1)
    autopilot.inject({ status: 503 })
    const teach = identifyWith('u-13', { email: EMAIL })
    expect((await post(teach)).status).toBe(503)
    expect(await parkedKeys()).toHaveLength(1)
    expect((await post(teach)).status).toBe(200) // Segment re-sends it; the sweep would too
    expect(autopilot.enrolments).toHaveLength(1)
    expect(await parkedKeys()).toEqual([])
  })

  it(`refuses more than ${MAX_PARKED_PER_USER} parked events for one userId with a 400 that says why`, async () => {
    const { post } = withIdentities()
    const response = await post(Array.from({ length: MAX_PARKED_PER_USER + 1 }, () => trackFor('u-14')))
    const { results } = await json(response)
    expect(results.filter((r: { status: string }) => r.status === 'deferred')).toHaveLength(MAX_PARKED_PER_USER)
    expect(results.at(-1)).toMatchObject({ status: 'rejected', message: expect.stringContaining('waiting for this userId') })
  })
})

describe('the sweep (cron)', () => {
  it('logs and drops parked events older than 7 days, without personal data', async () => {
    const { post, env, logs } = withIdentities()
    vi.useFakeTimers({ toFake: ['Date'] })
    const parked = identifyWith('u-20', { plan: 'secret-plan', phone: '+1-555-0199' })
    await post(parked)
    vi.setSystemTime(Date.now() + 8 * 24 * 3600 * 1000)
    await sweep(env)
    expect(await parkedKeys()).toEqual([])
    const line = logs.find((l) => l.includes('parked-event-expired'))
    expect(JSON.parse(line!)).toEqual({ event: 'parked-event-expired', messageId: parked.messageId, type: 'identify', parkedDays: 8 })
    expect(logs.join('\n')).not.toMatch(/u-20|secret-plan|555-0199/)
  })

  it('keeps parked events younger than 7 days', async () => {
    const { post, env } = withIdentities()
    await post(identifyWith('u-21', { plan: 'x' }))
    vi.useFakeTimers({ toFake: ['Date'] })
    vi.setSystemTime(Date.now() + 6 * 24 * 3600 * 1000)
    await sweep(env)
    expect(await parkedKeys()).toHaveLength(1)
  })

  it('replays parked events whose email became known elsewhere (KV caught up later)', async () => {
    const { post, env, autopilot } = withIdentities()
    await post(trackFor('u-22'))
    // Another location learned the email; this one parked before it could see it.
    const hash = (await parkedKeys())[0].name.split(':')[1]
    await identitiesKv().put(`user:${hash}`, EMAIL)
    await sweep(env)
    expect(autopilot.enrolments.map((e) => e.email)).toEqual([EMAIL])
    expect(await parkedKeys()).toEqual([])
  })

  it('replays through the queue in queued mode', async () => {
    const events = fakeQueue()
    const { post, env } = withIdentities({ EVENTS: events.queue, DEAD_LETTERS: fakeQueue().queue, DELIVERIES: kv() })
    const { consume } = withIdentities({ EVENTS: events.queue, DEAD_LETTERS: fakeQueue().queue, DELIVERIES: kv(), AUTOPILOT_MAX_RPS: '1000' })
    const parkedTrack = trackFor('u-23')
    expect((await post(parkedTrack)).status).toBe(202)
    await consume([parkedTrack]) // the consumer parks it
    const hash = (await parkedKeys())[0].name.split(':')[1]
    await identitiesKv().put(`user:${hash}`, EMAIL)
    await sweep(env)
    expect(events.sent.at(-1)?.body).toMatchObject({ messageId: parkedTrack.messageId, context: { traits: { email: EMAIL } } })
    expect(await parkedKeys()).toEqual([])
  })
})

describe('alias', () => {
  it('carries a known email over from previousId to userId', async () => {
    const { post, autopilot } = withIdentities()
    await post(identifyWith('anon-1', { email: EMAIL }))
    const response = await post({ type: 'alias', messageId: id(), previousId: 'anon-1', userId: 'u-30' })
    expect(response.status).toBe(200)
    expect((await json(response)).message).toContain('alias recorded')
    await post(trackFor('u-30'))
    expect(autopilot.enrolments.map((e) => e.email)).toEqual([EMAIL])
  })

  it('replays the new id\'s parked events', async () => {
    const { post, autopilot } = withIdentities()
    await post(trackFor('u-31'))
    await post(identifyWith('anon-2', { email: EMAIL }))
    await post({ type: 'alias', messageId: id(), previousId: 'anon-2', userId: 'u-31' })
    expect(autopilot.enrolments.map((e) => e.email)).toEqual([EMAIL])
    expect(await parkedKeys()).toEqual([])
  })

  it('notes an alias when neither id has an email', async () => {
    const { post } = withIdentities()
    const response = await post({ type: 'alias', messageId: id(), previousId: 'x', userId: 'y' })
    expect(response.status).toBe(200)
    expect((await json(response)).message).toContain('no email is known')
  })
})

describe('Segment delete', () => {
  it('deletes the contact in Autopilot, forgets the userId and drops its parked events', async () => {
    const { post, autopilot } = withIdentities()
    await post(identifyWith('u-40', { email: EMAIL }))
    const response = await post({ type: 'delete', messageId: id(), userId: 'u-40' })
    expect(response.status).toBe(200)
    expect(await json(response)).toMatchObject({ status: 'delivered', message: 'contact deleted' })
    expect(autopilot.calls.at(-1)).toMatchObject({ method: 'DELETE', path: '/contact/ada%40example.com', status: 204 })
    expect(autopilot.contacts.has(EMAIL)).toBe(false)
    // Later userId-only events for the forgotten id are unknown again.
    expect((await post(trackFor('u-40'))).status).toBe(202)
  })

  it('answers 200 when Autopilot no longer has the contact (it is gone either way)', async () => {
    const { post, autopilot } = withIdentities()
    await post(identifyWith('u-43', { email: EMAIL }))
    autopilot.contacts.clear()
    const response = await post({ type: 'delete', messageId: id(), userId: 'u-43' })
    expect(response.status).toBe(200)
    expect(await json(response)).toMatchObject({ status: 'delivered', message: 'contact was not in Autopilot' })
  })

  it('answers 200 with a note for an unknown userId, dropping its parked events', async () => {
    const { post, autopilot } = withIdentities()
    await post(trackFor('u-41'))
    const response = await post({ type: 'delete', messageId: id(), userId: 'u-41' })
    expect(response.status).toBe(200)
    expect((await json(response)).message).toContain('1 parked events dropped')
    expect(autopilot.calls).toHaveLength(0)
    expect(await parkedKeys()).toEqual([])
  })

  it('is retried (503) when Autopilot fails, keeping the mapping', async () => {
    const { post, autopilot } = withIdentities()
    await post(identifyWith('u-42', { email: EMAIL }))
    autopilot.inject({ status: 500 })
    expect((await post({ type: 'delete', messageId: id(), userId: 'u-42' })).status).toBe(503)
    expect((await post(trackFor('u-42'))).status).toBe(200)
  })
})

describe('queued mode', () => {
  it('enqueues userId-only events; the consumer parks them, then replays them with the email', async () => {
    const events = fakeQueue()
    const { post, consume, autopilot } = withIdentities({ EVENTS: events.queue, DEAD_LETTERS: fakeQueue().queue, DELIVERIES: kv(), AUTOPILOT_MAX_RPS: '1000' })
    const early = trackFor('u-50')
    expect((await post(early)).status).toBe(202)
    const parked = await consume([early])
    expect(parked.explicitAcks).toEqual(['msg-0'])
    expect(await parkedKeys()).toHaveLength(1)
    const teach = identifyWith('u-50', { email: EMAIL })
    await consume([teach])
    expect(autopilot.enrolments.map((e) => e.email)).toEqual([EMAIL])
    expect(await parkedKeys()).toEqual([])
  })

  it('enqueues alias and delete events for the consumer', async () => {
    const events = fakeQueue()
    const { post } = withIdentities({ EVENTS: events.queue })
    expect((await post({ type: 'delete', messageId: id(), userId: 'u-51' })).status).toBe(202)
    expect(events.sent).toHaveLength(1)
  })
})

describe('without the IDENTITIES binding', () => {
  it('refuses userId-only events with 400 as before, and /health says identity resolution is off', async () => {
    const { post, get } = setup()
    const response = await post(identifyWith('u-60', { plan: 'x' }))
    expect(response.status).toBe(400)
    expect((await json(response)).message).toContain('Autopilot keys contacts by email')
    expect((await json(await get('/health'))).identityResolution).toMatch(/^off/)
  })

  it('says identity resolution is on when bound', async () => {
    const { get } = withIdentities()
    expect((await json(await get('/health'))).identityResolution).toBe('on')
  })
})
