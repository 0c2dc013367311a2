import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'
import { hashOf } from '../src/pipeline/identity'
import { fakeQueue, freshDb, identify, json, rows, setup, testDb, track } from './helpers'
import { ledgerRow, ledgerState, putLedger } from './ledger-helpers'
import { sweep } from '../src/queue/sweep'

const EMAIL = 'grace@example.com'
let n = 0
const id = () => `s-${++n}`

beforeEach(freshDb)
afterEach(() => {
  vi.useRealTimers()
})

describe('journey ledger: once per messageId', () => {
  it('enters the journey once when Segment re-sends a track while the first attempt still runs', async () => {
    const { post, autopilot } = setup({}, { latencyMs: 150 })
    autopilot.contacts.set(EMAIL, { Email: EMAIL, custom: {} })
    const event = track('Step Activated', EMAIL)
    const [first, second] = await Promise.all([post(event), post(event)])
    expect([first.status, second.status].sort()).toEqual([200, 503])
    const busy = first.status === 503 ? first : second
    expect((await json(busy)).message).toContain('another attempt is entering this journey now')
    const later = await post(event) // Segment's retry of the 503
    expect(later.status).toBe(200)
    expect((await json(later)).message).toContain('already delivered')
    expect(autopilot.enrolments).toHaveLength(1)
  })

  it('enters once when two copies of one track arrive in one queue batch', async () => {
    const { consume, autopilot } = setup({ EVENTS: fakeQueue().queue })
    const event = track('Step Activated', EMAIL)
    const result = await consume([event, event])
    expect(result.explicitAcks).toEqual(['msg-0', 'msg-1'])
    expect(autopilot.enrolments).toHaveLength(1)
  })

  it('enters once for a messageId that is not well-formed text (D1 stores a lone surrogate as U+FFFD)', async () => {
    const { post, autopilot } = setup()
    autopilot.contacts.set(EMAIL, { Email: EMAIL, custom: {} })
    const event = track('Step Activated', EMAIL, { messageId: 'm-\udfff' })
    expect((await post(event)).status).toBe(200)
    expect((await post(event)).status).toBe(200)
    expect(autopilot.enrolments).toHaveLength(1)
  })

  it('takes over a claim left by an attempt that crashed between its claim and its confirmation', async () => {
    const { post, autopilot, env } = setup()
    autopilot.contacts.set(EMAIL, { Email: EMAIL, custom: {} })
    const event = track('Step Activated', EMAIL)
    await putLedger([{ messageId: event.messageId, state: 'claimed', at: 1, leaseUntil: Date.now() - 1, note: 'crashed' }], env.DB!)
    expect((await post(event)).status).toBe(200)
    expect(autopilot.enrolments).toHaveLength(1)
    expect(await ledgerState(event.messageId)).toBe('done')
  })

  it('releases the claim when Autopilot answers an error, so the re-send enters at once', async () => {
    const { post, autopilot } = setup()
    autopilot.contacts.set(EMAIL, { Email: EMAIL, custom: {} })
    autopilot.inject({ status: 500, match: (call) => call.path.startsWith('/trigger') })
    const event = track('Step Activated', EMAIL)
    expect((await post(event)).status).toBe(503)
    expect(await ledgerRow(event.messageId)).toBeUndefined()
    expect((await post(event)).status).toBe(200)
    expect(autopilot.enrolments).toHaveLength(1)
  })

  it('keeps the claim when the trigger got no answer (it may have entered): re-sends wait for the lease', async () => {
    const { post, autopilot } = setup({ AUTOPILOT_TIMEOUT_MS: '50' })
    autopilot.contacts.set(EMAIL, { Email: EMAIL, custom: {} })
    autopilot.inject({ hang: true })
    const event = track('Step Activated', EMAIL)
    expect((await post(event)).status).toBe(503)
    const again = await post(event)
    expect(again.status).toBe(503)
    expect((await json(again)).message).toContain('another attempt is entering this journey now')
    expect(autopilot.enrolments).toHaveLength(0)
    vi.useFakeTimers({ toFake: ['Date'] })
    vi.setSystemTime(Date.now() + 11 * 60_000) // the lease (10 minutes) has run out
    expect((await post(event)).status).toBe(200)
    expect(autopilot.enrolments).toHaveLength(1)
  })
})

describe('when the database fails or is slow', () => {
  it('sends nothing while the read fails, even events that carry their own email: everything is retried (503)', async () => {
    // (Without the read, a delete's tombstone and newer events' stamps are unknown: an older
    // identify delivered then would make a deleted person again, as `npm run simulate` found.)
    const store = testDb()
    store.down()
    const { post, autopilot } = setup({ DB: store.db })
    autopilot.contacts.set(EMAIL, { Email: EMAIL, custom: {} })
    const response = await post([
      identify({ email: 'own@example.com', plan: 'x' }, { messageId: id(), userId: 'u-own' }),
      identify({ plan: 'y' }, { messageId: id(), userId: 'u-needs-store' }),
      track('Step Activated', EMAIL, { messageId: id() }),
    ])
    expect(response.status).toBe(503)
    const body = await json(response)
    expect(body.counts).toEqual({ retry: 3 })
    expect(body.results.map((r: { index: number; message: string }) => [r.index, r.message])).toEqual([
      [0, expect.stringContaining('identity store is unavailable')],
      [1, expect.stringContaining('identity store is unavailable')],
      [2, expect.stringContaining('identity store is unavailable')],
    ])
    expect(autopilot.calls).toEqual([])
    expect(autopilot.enrolments).toHaveLength(0)
  })

  it('treats a database slower than STORE_TIMEOUT_MS like one that fails', async () => {
    const store = testDb()
    store.delay('FROM identities', 300)
    const { post, autopilot } = setup({ DB: store.db, STORE_TIMEOUT_MS: '50' })
    expect((await post(identify({ email: 'slow@example.com' }, { userId: 'u-slow' }))).status).toBe(503) // not sent: delivered on the re-send
    expect(autopilot.contacts.has('slow@example.com')).toBe(false)
    expect((await post(identify({ plan: 'x' }, { userId: 'u-slow-2' }))).status).toBe(202) // the delay was spent: the store answers (and parks) again
  })

  it('answers 503 for a userId-only event it could not park, and parks it on the re-send', async () => {
    const store = testDb()
    store.fail('INSERT OR IGNORE INTO parked', 2) // the in-place retry fails too
    const { post } = setup({ DB: store.db })
    const event = identify({ plan: 'x' }, { userId: 'u-park' })
    expect((await post(event)).status).toBe(503)
    expect((await post(event)).status).toBe(202)
    expect(await rows('SELECT message_id FROM parked')).toEqual([{ message_id: event.messageId }])
  })

  it('answers 503 when what an event taught could not be written, and records it on the re-send', async () => {
    const store = testDb()
    store.fail('INSERT INTO identities', 2) // the in-place retry fails too
    const { post, autopilot } = setup({ DB: store.db })
    const event = identify({ email: EMAIL }, { userId: 'u-write' })
    expect((await post(event)).status).toBe(503)
    expect(autopilot.contacts.has(EMAIL)).toBe(true) // delivered anyway
    expect((await post(event)).status).toBe(200)
    expect(await rows('SELECT email FROM identities WHERE user_hash = ?1', await hashOf('u-write'))).toEqual([{ email: EMAIL }])
  })

  it('delivers the teaching event when its parked events cannot be read, and answers 503 so the re-send replays them', async () => {
    const store = testDb()
    const { post } = setup({ DB: store.db })
    await post(identify({ plan: 'x' }, { userId: 'u-pr' }))
    store.fail('FROM parked p WHERE p.user_hash IN', 2) // the in-place retry fails too
    const teaching = identify({ email: 'pr@example.com' }, { userId: 'u-pr' })
    const response = await post(teaching)
    expect(response.status).toBe(503)
    expect((await json(response)).message).toContain('earlier parked events of this userId could not be read')
    expect(await rows('SELECT message_id FROM parked')).toHaveLength(1)
    expect((await post(teaching)).status).toBe(200)
    expect(await rows('SELECT message_id FROM parked')).toEqual([])
  })

  it('tries a failed query again only within the time the first left', async () => {
    const store = testDb()
    const { post } = setup({ DB: store.db, STORE_TIMEOUT_MS: '400' })
    store.delay('INSERT INTO identities', 350)
    store.fail('INSERT INTO identities')
    expect((await post(identify({ email: EMAIL }, { userId: 'u-late' }))).status).toBe(503)
    expect(await rows('SELECT email FROM identities WHERE user_hash = ?1', await hashOf('u-late'))).toEqual([])
  })

  it('absorbs one failed query by trying it once more in place', async () => {
    const store = testDb()
    const { post, logLines } = setup({ DB: store.db })
    store.fail('INSERT INTO identities')
    expect((await post(identify({ email: EMAIL }, { userId: 'u-once' }))).status).toBe(200)
    expect(await rows('SELECT email FROM identities WHERE user_hash = ?1', await hashOf('u-once'))).toEqual([{ email: EMAIL }])
    expect(logLines().at(-1)!.d1).toMatchObject({ retried: 1 })
  })

  it('never answers a bare 500 when the dead-letter endpoints cannot reach the database', async () => {
    const store = testDb()
    store.down()
    const { request } = setup({ DB: store.db, ADMIN_TOKEN: 'adm' })
    const response = await request(new Request('https://worker.test/dead-letters', { headers: { authorization: 'Bearer adm' } }))
    expect(response.status).toBe(503)
    expect((await json(response)).message).toContain('database is unavailable')
  })
})

describe('within the platform', () => {
  it('keeps at most six Autopilot calls in flight at once (the runtime opens six connections)', async () => {
    const { post, autopilot } = setup({}, { latencyMs: 100 })
    const emails = Array.from({ length: 20 }, (_, i) => `c${i}@example.com`)
    for (const email of emails) autopilot.contacts.set(email, { Email: email, custom: {} })
    expect((await post(emails.map((email) => track('Step Activated', email)))).status).toBe(200)
    const spans = autopilot.calls.map((call) => [call.at, call.done ?? call.at])
    const most = Math.max(...spans.map(([at]) => spans.filter(([start, end]) => start <= at && at < end).length))
    expect(most).toBeGreaterThan(1)
    expect(most).toBeLessThanOrEqual(6)
  })

  it('reads what a batch needs in one query: storage work per event is constant', async () => {
    const { post } = setup()
    const store = testDb()
    const withStore = setup({ DB: store.db })
    await post(Array.from({ length: 10 }, (_, i) => identify({ email: `k${i}@example.com` }, { userId: `k-${i}` })))
    for (const size of [1, 100, 1000]) {
      store.statements.length = 0
      await withStore.post(Array.from({ length: size }, (_, i) => identify({ email: `k${i % 10}@example.com`, plan: 'p' }, { userId: `k-${i % 10}` })))
      expect(store.statements.filter((sql) => sql.startsWith('SELECT'))).toHaveLength(1)
    }
  })
})

// One D1 statement fails (twice: the in-place retry fails too), one statement at a time, in
// both modes. Whatever fails, every event ends delivered exactly once or dead-lettered with
// a reason: a write that a later step depends on lands, or what needed it is retried.
const STATEMENTS = [
  ['the batch read', "SELECT 'u' AS k"],
  ['the parked rows read', 'FROM parked p WHERE p.user_hash IN'],
  ['parking', 'INSERT OR IGNORE INTO parked'],
  ['the journey claim', 'SELECT unhex(value), 0,'],
  ['learning identities', 'INSERT INTO identities'],
  ['unparking', 'DELETE FROM parked WHERE id IN'],
  ['confirming journey entries', 'SELECT unhex(value), 1,'],
] as const

const parkedUsers = ['s1', 's2', 's3']
const first = () => [
  ...parkedUsers.map((userId) => track('Step Activated', undefined, { userId })),
  identify({ email: 'o1@example.com' }, { userId: 'o1' }),
  identify({ email: 'o2@example.com' }, { userId: 'o2' }),
  track('Step Activated', 'o3@example.com', { userId: 'o3' }),
]
const teaching = () => parkedUsers.map((userId) => identify({ email: `${userId}@example.com` }, { userId }))

describe.each(['direct', 'queued'] as const)('%s mode: one failing D1 statement strands nothing', (mode) => {
  it.each(STATEMENTS)('when %s fails', async (_, statement) => {
    await freshDb()
    const store = testDb()
    const queue = fakeQueue()
    const { post, consume, autopilot, env } = setup({ DB: store.db, ...(mode === 'queued' && { EVENTS: queue.queue }) })
    store.fail(statement, 2)

    const drain = async () => {
      for (let round = 0; round < 30 && queue.sent.length; round++) {
        const messages = queue.sent.splice(0).map((m, i) => ({ body: m.body, id: `r${round}-${i}` }))
        const result = await consume(messages)
        for (const { msgId } of result.retryMessages) queue.sent.push({ body: messages.find((m) => m.id === msgId)!.body })
      }
    }
    // As Segment does: the same batch again while the answer says retry.
    const deliver = async (events: unknown[]) => {
      for (let attempt = 0; attempt < 8; attempt++) {
        const response = await post(events)
        if (response.status < 429) break
      }
      await drain()
    }
    await deliver(first())
    await deliver(teaching())
    await sweep(env) // the cron sweep, as it runs every 30 minutes
    await drain()

    const tracked = [...parkedUsers.map((u) => `${u}@example.com`), 'o3@example.com']
    const letters = await rows<{ reason: string }>('SELECT reason FROM dead_letters')
    expect(letters).toEqual([])
    expect(autopilot.enrolments.map((e) => e.email).sort()).toEqual(tracked.sort()) // each once
    expect(await rows('SELECT id FROM parked')).toEqual([])
    expect(await rows('SELECT user_hash FROM identities WHERE email IS NOT NULL')).toHaveLength(6)
  })
})
