import { createScheduledController } from 'cloudflare:test'
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'
import type { Env } from '../src/config'
import { hashOf, MAX_PARKED_PER_USER } from '../src/pipeline/identity'
import worker from '../src'
import { fakeQueue, freshDb, json, rows, setup } from './helpers'
import { ledgerState, putLedger } from './ledger-helpers'

const EMAIL = 'ada@example.com'
let n = 0
const id = () => `m-${++n}`
const identifyWith = (userId: string, traits: Record<string, unknown>, extra: Record<string, unknown> = {}) => ({ type: 'identify', messageId: id(), userId, traits, ...extra })
const trackFor = (userId: string, extra: Record<string, unknown> = {}) => ({ type: 'track', messageId: id(), userId, event: 'Step Activated', ...extra })

const parked = () => rows<{ id: number; message_id: string }>('SELECT id, message_id FROM parked ORDER BY id')
const identity = async (userId: string) => (await rows<{ email: string | null; deleted_at: number | null }>('SELECT email, deleted_at FROM identities WHERE user_hash = ?1', await hashOf(userId)))[0]
async function sweep(env: Env) {
  await worker.scheduled(createScheduledController(), env)
}

beforeEach(freshDb)
afterEach(() => {
  vi.useRealTimers()
})

describe('the identity map', () => {
  it('is learned from an identify with userId and email, and used by a later identify with only the userId', async () => {
    const { post, autopilot } = setup()
    expect((await post(identifyWith('u-1', { email: EMAIL }))).status).toBe(200)
    const response = await post(identifyWith('u-1', { plan: 'pro' }))
    expect(response.status).toBe(200)
    expect(autopilot.calls[1].body).toEqual({ contact: { Email: EMAIL, custom: { 'string--plan': 'pro' } } })
  })

  it('keeps no raw userId at rest: rows are keyed by its SHA-256', async () => {
    const { post } = setup()
    await post(identifyWith('u-raw-1', { email: EMAIL }))
    const all = JSON.stringify(await rows('SELECT * FROM identities'))
    expect(all).not.toContain('u-raw-1')
    expect(await identity('u-raw-1')).toMatchObject({ email: EMAIL })
  })

  it('is used by a track with only the userId', async () => {
    const { post, autopilot } = setup()
    await post(trackFor('u-2', { properties: { email: EMAIL } }))
    const response = await post(trackFor('u-2'))
    expect(response.status).toBe(200)
    expect(autopilot.enrolments.map((e) => e.email)).toEqual([EMAIL, EMAIL])
  })

  it('is learned from a track, too', async () => {
    const { post, autopilot } = setup()
    await post(trackFor('u-3', { context: { traits: { email: EMAIL } } }))
    await post(identifyWith('u-3', { plan: 'x' }))
    expect(autopilot.contacts.get(EMAIL)?.custom).toEqual({ 'string--plan': 'x' })
  })

  it('follows an email change by newEmail, and a new email for the same userId', async () => {
    const { post, autopilot } = setup()
    await post(identifyWith('u-4', { email: 'old@example.com' }))
    await post(identifyWith('u-4', { email: 'old@example.com', newEmail: 'new@example.com' }))
    expect([...autopilot.contacts.keys()]).toEqual(['new@example.com']) // renamed with _NewEmail
    await post(identifyWith('u-4', { plan: 'a' }))
    expect(autopilot.contacts.get('new@example.com')?.custom).toEqual({ 'string--plan': 'a' })
    await post(identifyWith('u-4', { email: 'third@example.com' }))
    await post(identifyWith('u-4', { plan: 'b' }))
    expect(autopilot.contacts.get('third@example.com')?.custom).toEqual({ 'string--plan': 'b' })
  })

  it('newest email wins: an older event re-sent later does not take the userId back to its email', async () => {
    const { post } = setup()
    const older = identifyWith('u-5', { email: 'older@example.com' }, { timestamp: '2026-11-01T10:00:00Z' })
    await post(identifyWith('u-5', { email: 'newer@example.com' }, { timestamp: '2026-11-02T10:00:00Z' }))
    await post(older)
    expect(await identity('u-5')).toMatchObject({ email: 'newer@example.com' })
  })

  it('costs no write for a known user whose email did not change', async () => {
    const { post } = setup()
    await post(identifyWith('u-6', { email: EMAIL }))
    const before = await rows('SELECT * FROM identities')
    const response = await post(identifyWith('u-6', { email: EMAIL, plan: 'x' }))
    expect(response.status).toBe(200)
    expect(await rows('SELECT * FROM identities')).toEqual(before)
  })
})

describe('parking', () => {
  it('parks an event whose userId has no known email: 202 deferred, nothing sent', async () => {
    const { post, autopilot } = setup()
    const response = await post(identifyWith('u-10', { plan: 'pro' }))
    expect(response.status).toBe(202)
    expect(await json(response)).toMatchObject({ status: 'deferred' })
    expect(autopilot.calls).toHaveLength(0)
    expect(await parked()).toHaveLength(1)
  })

  it('a delete drops the parked events older than it, and keeps those sent after it (issue 36, found by the simulation)', async () => {
    const { post, autopilot } = setup()
    await post(trackFor('u-del-p', { timestamp: '2026-11-01T09:00:00Z' })) // older than the delete: dropped with it
    await post(trackFor('u-del-p', { timestamp: '2026-11-01T11:00:00Z' })) // newer: waits for an email
    expect(await parked()).toHaveLength(2)
    expect((await post({ type: 'delete', messageId: id(), userId: 'u-del-p', timestamp: '2026-11-01T10:00:00Z' })).status).toBe(200)
    expect(await parked()).toHaveLength(1)
    expect((await post(identifyWith('u-del-p', { email: 'back@example.com' }, { timestamp: '2026-11-01T12:00:00Z' }))).status).toBe(200)
    expect(autopilot.enrolments.map((e) => e.email)).toEqual(['back@example.com'])
    expect(await parked()).toHaveLength(0)
  })

  it('parks a re-sent event once', async () => {
    const { post } = setup()
    const event = identifyWith('u-10b', { plan: 'pro' })
    await post(event)
    await post(event)
    expect(await parked()).toHaveLength(1)
  })

  it('replays parked events in their original order when the email arrives, then removes them', async () => {
    const { post, autopilot } = setup()
    await post(identifyWith('u-11', { plan: 'free', title: 'Intern' }))
    await post(trackFor('u-11'))
    await post(identifyWith('u-11', { plan: 'pro' }))
    expect(autopilot.calls).toHaveLength(0)
    const response = await post(identifyWith('u-11', { email: EMAIL, firstName: 'Ada' }))
    expect(response.status).toBe(200)
    // The identifies merge into one contact, later values winning; the track enters its journey after it.
    expect(autopilot.calls.map((call) => call.path)).toEqual(['/contact', '/trigger/0001/contact/ada%40example.com'])
    expect(autopilot.calls[0].body.contact).toEqual({ Email: EMAIL, FirstName: 'Ada', Title: 'Intern', custom: { 'string--plan': 'pro' } })
    expect(autopilot.enrolments).toHaveLength(1)
    expect(await parked()).toEqual([])
  })

  it("logs a replayed track as a track, apart from the request's own events", async () => {
    const { post, logLines } = setup()
    const parkedTrack = trackFor('u-11b')
    await post(parkedTrack)
    await post(identifyWith('u-11b', { email: EMAIL }))
    expect(logLines().at(-1)).toMatchObject({ events: { identify: { delivered: 1 } }, replayed: { track: { delivered: 1 } } })
  })

  it('resolves within one batch: a userId-only event before the identify that carries the email', async () => {
    const { post, autopilot } = setup()
    const response = await post([trackFor('u-12'), identifyWith('u-12', { email: EMAIL })])
    expect(response.status).toBe(200)
    expect(await json(response)).toMatchObject({ counts: { delivered: 2 } })
    expect(autopilot.enrolments.map((e) => e.email)).toEqual([EMAIL])
    expect(await parked()).toEqual([])
  })

  it('records the mapping even when the replay fails; the teaching event is answered 503 and its re-send replays', async () => {
    const { post, autopilot } = setup()
    expect((await post(trackFor('u-13'))).status).toBe(202)
    autopilot.inject({ status: 503, match: (call) => call.path.startsWith('/trigger') })
    const teach = identifyWith('u-13', { email: EMAIL })
    const first = await post(teach)
    expect(first.status).toBe(503)
    expect((await json(first)).message).toContain('earlier parked events of this userId were not')
    expect(await identity('u-13')).toMatchObject({ email: EMAIL }) // recorded anyway
    expect(await parked()).toHaveLength(1)
    expect((await post(teach)).status).toBe(200) // Segment re-sends it
    expect(autopilot.enrolments).toHaveLength(1)
    expect(await parked()).toEqual([])
  })

  it('the sweep replays a parked event whose replay failed even if no event ever brings the email again', async () => {
    const { post, autopilot, env } = setup()
    await post(trackFor('u-13b'))
    autopilot.inject({ status: 503, match: (call) => call.path.startsWith('/trigger') })
    expect((await post(identifyWith('u-13b', { email: EMAIL }))).status).toBe(503)
    await sweep(env) // Segment gave up; the sweep is the backstop
    expect(autopilot.enrolments).toHaveLength(1)
    expect(await parked()).toEqual([])
  })

  it('a replayed event Autopilot refuses becomes a dead letter with the reason, not a parked event forever', async () => {
    const { post } = setup()
    await post(identifyWith('u-13c', { plan: 'x' }))
    const response = await post(identifyWith('u-13c', { email: 'someone@localhost' }))
    expect(response.status).toBe(400)
    expect(await parked()).toEqual([])
    expect(await rows('SELECT reason, type FROM dead_letters')).toEqual([{ reason: expect.stringContaining('Invalid contact_id_or_email'), type: 'identify' }])
  })

  it(`refuses more than ${MAX_PARKED_PER_USER} parked events for one userId with a 400 that says why`, async () => {
    const { post } = setup()
    const response = await post(Array.from({ length: MAX_PARKED_PER_USER + 1 }, () => trackFor('u-14')))
    const body = await json(response)
    expect(body.counts).toEqual({ deferred: MAX_PARKED_PER_USER, rejected: 1 })
    expect(body.results).toEqual([expect.objectContaining({ index: MAX_PARKED_PER_USER, status: 'rejected', message: expect.stringContaining('waiting for this userId') })])
  })
})

describe('the sweep (cron)', () => {
  it('logs and drops parked events older than 7 days, without personal data', async () => {
    const { post, env, logs } = setup()
    vi.useFakeTimers({ toFake: ['Date'] })
    const event = identifyWith('u-20', { plan: 'secret-plan', phone: '+1-555-0199' })
    await post(event)
    vi.setSystemTime(Date.now() + 8 * 24 * 3600 * 1000)
    await sweep(env)
    expect(await parked()).toEqual([])
    const line = logs.find((l) => l.includes('parked-event-expired'))
    expect(JSON.parse(line!)).toEqual({ event: 'parked-event-expired', messageId: event.messageId, type: 'identify', parkedDays: 8 })
    expect(logs.join('\n')).not.toMatch(/u-20|secret-plan|555-0199/)
  })

  it('keeps parked events younger than 7 days', async () => {
    const { post, env } = setup()
    await post(identifyWith('u-21', { plan: 'x' }))
    vi.useFakeTimers({ toFake: ['Date'] })
    vi.setSystemTime(Date.now() + 6 * 24 * 3600 * 1000)
    await sweep(env)
    expect(await parked()).toHaveLength(1)
  })

  it('replays parked events whose email became known meanwhile (learned by another request)', async () => {
    const { post, env, autopilot } = setup()
    await post(trackFor('u-22'))
    await env
      .DB!.prepare('INSERT INTO identities (user_hash, email, email_hash, taught_at) VALUES (?1, ?2, ?3, 1)')
      .bind(await hashOf('u-22'), EMAIL, await hashOf(EMAIL))
      .run()
    await sweep(env)
    expect(autopilot.enrolments.map((e) => e.email)).toEqual([EMAIL])
    expect(await parked()).toEqual([])
  })

  it('sees every resolvable parked event, well past 1,000, in one query per run', async () => {
    const { env, autopilot } = setup({ AUTOPILOT_MAX_CALLS: '100' })
    const events = Array.from({ length: 1200 }, (_, i) => ({ type: 'identify', messageId: `bulk-${i}`, userId: `bulk-user-${i}`, traits: { n: i } }))
    // 1,200 users parked and then learned elsewhere: the sweep must find them all.
    await env
      .DB!.prepare(`INSERT INTO parked (user_hash, message_id, type, parked_at, event) SELECT value->>'h', value->>'m', 'identify', ?2, value->>'e' FROM json_each(?1)`)
      .bind(JSON.stringify(await Promise.all(events.map(async (e) => ({ h: await hashOf(e.userId), m: e.messageId, e: JSON.stringify(e) })))), Date.now())
      .run()
    await env
      .DB!.prepare(`INSERT INTO identities (user_hash, email, email_hash, taught_at) SELECT value->>'h', value->>'e', value->>'e', 1 FROM json_each(?1)`)
      .bind(JSON.stringify(await Promise.all(events.map(async (e, i) => ({ h: await hashOf(e.userId), e: `bulk${i}@example.com` })))))
      .run()
    await sweep(env)
    await sweep(env)
    expect(autopilot.contacts.size).toBe(1200)
    expect(await parked()).toEqual([])
    expect(autopilot.calls.filter((call) => call.path === '/contacts')).toHaveLength(12)
  })

  it('prunes ledger rows older than LEDGER_DAYS (1) and guards untouched for 30, keeping tombstones', async () => {
    const { env } = setup()
    const old = Date.now() - 31 * 24 * 3600 * 1000
    await putLedger([
      { messageId: 'old-done', state: 'done', at: Date.now() - 25 * 3600 * 1000 },
      { messageId: 'new-done', state: 'done', at: Date.now() - 23 * 3600 * 1000 },
    ])
    await env.DB!.batch([
      env.DB!.prepare("INSERT INTO contacts (email_hash, updated_at) VALUES ('old-guard', ?1), ('new-guard', ?2)").bind(old, Date.now()),
      env.DB!.prepare("INSERT INTO contacts (email_hash, deleted_at, updated_at) VALUES ('tombstone', 1, ?1)").bind(old),
    ])
    await sweep(env)
    expect([await ledgerState('old-done'), await ledgerState('new-done')]).toEqual([undefined, 'done'])
    expect((await rows<{ email_hash: string }>('SELECT email_hash FROM contacts ORDER BY email_hash')).map((r) => r.email_hash)).toEqual(['new-guard', 'tombstone'])
  })

  it('replays through the queue in queued mode', async () => {
    const events = fakeQueue()
    const { post, consume, env } = setup({ EVENTS: events.queue })
    const parkedTrack = trackFor('u-23')
    expect((await post(parkedTrack)).status).toBe(202)
    await consume(events.sent.map((m) => m.body)) // the consumer parks it
    expect(await parked()).toHaveLength(1)
    await env
      .DB!.prepare('INSERT INTO identities (user_hash, email, email_hash, taught_at) VALUES (?1, ?2, ?3, 1)')
      .bind(await hashOf('u-23'), EMAIL, await hashOf(EMAIL))
      .run()
    await sweep(env)
    expect(events.sent.at(-1)?.body).toMatchObject({ items: [{ event: { messageId: parkedTrack.messageId, context: { traits: { email: EMAIL } } } }] })
    expect(await parked()).toEqual([])
  })
})

describe('alias', () => {
  it('carries a known email over from previousId to userId', async () => {
    const { post, autopilot } = setup()
    await post(identifyWith('anon-1', { email: EMAIL }))
    const response = await post({ type: 'alias', messageId: id(), previousId: 'anon-1', userId: 'u-30' })
    expect(response.status).toBe(200)
    expect((await json(response)).message).toContain('alias recorded')
    await post(trackFor('u-30'))
    expect(autopilot.enrolments.map((e) => e.email)).toEqual([EMAIL])
  })

  it("replays the new id's parked events", async () => {
    const { post, autopilot } = setup()
    await post(trackFor('u-31'))
    await post(identifyWith('anon-2', { email: EMAIL }))
    await post({ type: 'alias', messageId: id(), previousId: 'anon-2', userId: 'u-31' })
    expect(autopilot.enrolments.map((e) => e.email)).toEqual([EMAIL])
    expect(await parked()).toEqual([])
  })

  it('keeps an alias when neither id has an email, parked under both ids until one is known (issue 36)', async () => {
    const { post } = setup()
    const response = await post({ type: 'alias', messageId: id(), previousId: 'x', userId: 'y' })
    expect(response.status).toBe(202)
    expect((await json(response)).message).toContain('parked')
    expect(await parked()).toHaveLength(2)
  })
})

describe('Segment delete', () => {
  it('deletes the contact in Autopilot, forgets the userId and drops its parked events', async () => {
    const { post, autopilot } = setup()
    await post(identifyWith('u-40', { email: EMAIL }))
    const response = await post({ type: 'delete', messageId: id(), userId: 'u-40' })
    expect(response.status).toBe(200)
    expect(await json(response)).toMatchObject({ status: 'delivered', message: 'contact deleted' })
    expect(autopilot.calls.at(-1)).toMatchObject({ method: 'DELETE', path: '/contact/ada%40example.com', status: 204 })
    expect(autopilot.contacts.has(EMAIL)).toBe(false)
    expect(await identity('u-40')).toMatchObject({ email: null, deleted_at: expect.any(Number) })
    // Later userId-only events for the forgotten id are unknown again.
    expect((await post(trackFor('u-40'))).status).toBe(202)
  })

  it('deletes in the same batch as the identify that first teaches the email (that identify, not newer, is not sent)', async () => {
    const { post, autopilot } = setup()
    const response = await post([identifyWith('u-44', { email: EMAIL }), { type: 'delete', messageId: id(), userId: 'u-44' }])
    expect(response.status).toBe(200)
    expect(autopilot.calls.map((call) => `${call.method} ${call.path}`)).toEqual(['DELETE /contact/ada%40example.com', 'GET /contact/ada%40example.com'])
    expect(autopilot.contacts.has(EMAIL)).toBe(false)
  })

  it('sends none of the upserts and journey triggers older than a delete of that person in the batch: only the delete', async () => {
    // (Sent and then deleted, they would change nothing; and where the delete is not sent — a newer
    // event made the person again — an older upsert would overwrite newer data.)
    const { post, autopilot } = setup({}, { latencyMs: 60 })
    const earlier = { timestamp: '2026-11-01T10:00:00Z' }
    const response = await post([identifyWith('u-46', { email: EMAIL }, earlier), trackFor('u-46', earlier), { type: 'delete', messageId: id(), userId: 'u-46', timestamp: '2026-11-01T11:00:00Z' }])
    expect(response.status).toBe(200)
    expect((await json(response)).counts).toEqual({ skipped: 2, delivered: 1 })
    expect(autopilot.calls.map((call) => `${call.method} ${call.path.split('/')[1]}`)).toEqual(['DELETE contact', 'GET contact'])
    expect(autopilot.contacts.has(EMAIL)).toBe(false)
  })

  it('stays deleted: an older identify still being retried does not re-create the person', async () => {
    const { post, autopilot } = setup()
    const older = identifyWith('u-45', { email: EMAIL, plan: 'old' }, { timestamp: '2026-11-01T10:00:00Z' })
    autopilot.inject({ status: 503 })
    expect((await post(older)).status).toBe(503) // Segment will retry this one
    await post(identifyWith('u-45', { email: EMAIL }, { timestamp: '2026-11-01T11:00:00Z' }))
    await post({ type: 'delete', messageId: id(), userId: 'u-45', timestamp: '2026-11-01T12:00:00Z' })
    expect(autopilot.contacts.has(EMAIL)).toBe(false)
    const retried = await post(older)
    expect(retried.status).toBe(200)
    expect((await json(retried)).message).toContain('deleted')
    expect(autopilot.contacts.has(EMAIL)).toBe(false)
    // Without the userId, by its email alone, it stays deleted too.
    await post({ ...older, userId: undefined, messageId: id() })
    expect(autopilot.contacts.has(EMAIL)).toBe(false)
  })

  it('answers 200 when Autopilot no longer has the contact (it is gone either way)', async () => {
    const { post, autopilot } = setup()
    await post(identifyWith('u-43', { email: EMAIL }))
    autopilot.contacts.clear()
    const response = await post({ type: 'delete', messageId: id(), userId: 'u-43' })
    expect(response.status).toBe(200)
    expect(await json(response)).toMatchObject({ status: 'delivered', message: 'contact was not in Autopilot' })
  })

  it('retries a delete answered 404 while Autopilot still has the contact (a read checks the 404)', async () => {
    const { post, autopilot } = setup()
    await post(identifyWith('u-48', { email: EMAIL }))
    autopilot.inject({ status: 404, match: (call: { method: string }) => call.method === 'DELETE' })
    const remove = { type: 'delete', messageId: id(), userId: 'u-48' }
    const response = await post(remove)
    expect(response.status).toBe(503)
    expect((await json(response)).message).toContain('yet still has the contact')
    expect(autopilot.contacts.has(EMAIL)).toBe(true)
    expect((await post(remove)).status).toBe(200)
    expect(autopilot.contacts.has(EMAIL)).toBe(false)
  })

  it('answers 200 with a note for an unknown userId, dropping its parked events', async () => {
    const { post, autopilot } = setup()
    await post(trackFor('u-41'))
    const response = await post({ type: 'delete', messageId: id(), userId: 'u-41' })
    expect(response.status).toBe(200)
    expect((await json(response)).message).toContain('its parked events older than the delete are dropped (1 parked)')
    expect(autopilot.calls).toHaveLength(0)
    expect(await parked()).toEqual([])
  })

  it('is retried (503) when Autopilot fails, keeping the mapping', async () => {
    const { post, autopilot } = setup()
    await post(identifyWith('u-42', { email: EMAIL }))
    autopilot.inject({ status: 500 })
    expect((await post({ type: 'delete', messageId: id(), userId: 'u-42' })).status).toBe(503)
    expect((await post(trackFor('u-42'))).status).toBe(200)
  })
})

describe('queued mode', () => {
  it('enqueues userId-only events; the consumer parks them, then replays them with the email', async () => {
    const events = fakeQueue()
    const { post, consume, autopilot } = setup({ EVENTS: events.queue })
    const early = trackFor('u-50')
    expect((await post(early)).status).toBe(202)
    const result = await consume([events.sent[0].body])
    expect(result.explicitAcks).toEqual(['msg-0'])
    expect(await parked()).toHaveLength(1)
    await consume([identifyWith('u-50', { email: EMAIL })])
    expect(autopilot.enrolments.map((e) => e.email)).toEqual([EMAIL])
    expect(await parked()).toEqual([])
  })

  it('enqueues alias and delete events for the consumer', async () => {
    const events = fakeQueue()
    const { post } = setup({ EVENTS: events.queue })
    expect((await post({ type: 'delete', messageId: id(), userId: 'u-51' })).status).toBe(202)
    expect(events.sent).toHaveLength(1)
  })

  it('retries the teaching event when its replay fails, and records the mapping anyway', async () => {
    const events = fakeQueue()
    const { consume, autopilot } = setup({ EVENTS: events.queue })
    await consume([trackFor('u-52')])
    autopilot.inject(
      { status: 503, match: (call) => call.path.startsWith('/trigger') },
      { status: 503, match: (call) => call.path.startsWith('/trigger') },
      { status: 503, match: (call) => call.path.startsWith('/trigger') },
    )
    const teach = identifyWith('u-52', { email: EMAIL })
    await consume([teach])
    expect(await identity('u-52')).toMatchObject({ email: EMAIL })
    expect(events.sent.map((m) => m.body)).toEqual([{ v: 2, id: expect.any(String), items: [{ event: teach, at: expect.any(Number), attempts: 1 }] }])
    await consume([events.sent[0].body])
    expect(autopilot.enrolments).toHaveLength(1)
    expect(await parked()).toEqual([])
  })

  it('stays deleted when an older identify is retried after the delete', async () => {
    const events = fakeQueue()
    const { consume, autopilot } = setup({ EVENTS: events.queue })
    const older = identifyWith('u-53', { email: EMAIL }, { timestamp: '2026-11-01T10:00:00Z' })
    autopilot.inject({ status: 500 }, { status: 500 }, { status: 500 })
    await consume([older]) // fails three times in place: back on the queue
    expect(events.sent).toHaveLength(1)
    await consume([identifyWith('u-53', { email: EMAIL }, { timestamp: '2026-11-01T11:00:00Z' })])
    await consume([{ type: 'delete', messageId: id(), userId: 'u-53', timestamp: '2026-11-01T12:00:00Z' }])
    expect(autopilot.contacts.has(EMAIL)).toBe(false)
    const result = await consume([events.sent[0].body]) // the retry lands after the delete
    expect(result.explicitAcks).toEqual(['msg-0'])
    expect(autopilot.contacts.has(EMAIL)).toBe(false)
  })
})
