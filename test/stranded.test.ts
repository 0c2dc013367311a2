import { describe, expect, it } from 'vitest'
import { sweep } from '../src/queue/sweep'
import { fakeQueue, freshDb, identify, rows, setup, testDb, track } from './helpers'

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
