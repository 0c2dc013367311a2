import { beforeEach, describe, expect, it } from 'vitest'
import { Sql } from '../src/store/sql'
import { emptyWrites, Store } from '../src/store/store'
import { StoreAdmin } from '../src/store/store-admin'
import { db, freshDb, rows, testDb } from './helpers'
import { ledgerKey } from '../src/store/ledger'

// The store's queries on their own, against the local D1 with the migrations applied.
const store = () => new Store(new Sql(db(), 2000))
const admin = () => new StoreAdmin(new Sql(db(), 2000))
const event = (messageId: string) => ({ type: 'track' as const, event: 'E', messageId, userId: 'u' })

beforeEach(freshDb)

describe('Store', () => {
  it('reads nothing (no query) when nothing is asked', async () => {
    const sql = new Sql(db(), 2000)
    await new Store(sql).read({ users: [], emails: [], messages: [] })
    expect(sql.stats.queries).toBe(0)
  })

  it('records identities newest-first and reads them back by position, with parked counts, in one query', async () => {
    const s = store()
    await s.write({ ...emptyWrites(), identities: [{ userHash: 'u1', email: 'new@example.com', emailHash: 'e1', at: 200 }] })
    await s.write({ ...emptyWrites(), identities: [{ userHash: 'u1', email: 'old@example.com', emailHash: 'e0', at: 100 }] }) // older: ignored
    await s.hold({ park: [{ userHash: 'u2', messageId: 'p1', type: 'track', event: event('p1') }], claims: [], leaseUntil: 0, by: 't' })
    const sql = new Sql(db(), 2000)
    const snapshot = await new Store(sql).read({ users: ['u1', 'u2'], emails: [], messages: [] })
    expect(sql.stats.queries).toBe(1)
    expect(snapshot.identities.get('u1')).toEqual({ email: 'new@example.com', taughtAt: 200, deletedAt: null })
    expect(snapshot.parkedCounts.get('u2')).toBe(1)
  })

  it('claims a messageId once; a live claim is not taken, an expired one is', async () => {
    const s = store()
    const now = Date.now()
    expect(await s.hold({ park: [], claims: ['m1'], leaseUntil: now + 60_000, by: 'a' })).toEqual(new Set(['m1']))
    expect(await s.hold({ park: [], claims: ['m1'], leaseUntil: now + 60_000, by: 'b' })).toEqual(new Set())
    // The same claimant repeating its hold (its first answer was lost) gets its claim back.
    expect(await s.hold({ park: [], claims: ['m1'], leaseUntil: now + 60_000, by: 'a' })).toEqual(new Set(['m1']))
    await db().prepare('UPDATE ledger SET lease_until = 1 WHERE key = unhex(?1)').bind(ledgerKey('m1')).run()
    expect(await s.hold({ park: [], claims: ['m1'], leaseUntil: now + 60_000, by: 'c' })).toEqual(new Set(['m1']))
  })

  it('parks a re-sent event once, confirms and releases claims, unparks', async () => {
    const s = store()
    const park = { userHash: 'u', messageId: 'pp', type: 'track', event: event('pp') }
    await s.hold({ park: [park, park], claims: ['c1', 'c2'], leaseUntil: Date.now() + 1000, by: 't' })
    const [{ id }] = await rows<{ id: number }>('SELECT id FROM parked')
    await s.write({ ...emptyWrites(), confirm: ['c1'], release: ['c2'], unpark: [id] })
    expect(await rows('SELECT lower(hex(key)) AS key, state FROM ledger')).toEqual([{ key: ledgerKey('c1'), state: 1 }])
    expect(await rows('SELECT id FROM parked')).toEqual([])
  })

  it('a delete leaves a tombstone that an older identity cannot overwrite, and drops the parked events older than it', async () => {
    const s = store()
    const at = Date.parse('2026-11-01T10:00:00Z')
    const parkedAt = (messageId: string, timestamp: string) => ({ userHash: 'u', messageId, type: 'track', event: { ...event(messageId), timestamp } })
    await s.hold({ park: [parkedAt('x', '2026-11-01T09:00:00Z'), parkedAt('y', '2026-11-01T11:00:00Z')], claims: [], leaseUntil: 0, by: 't' })
    await s.write({ ...emptyWrites(), forget: [{ userHash: 'u', emailHash: 'e', at }] })
    await s.write({ ...emptyWrites(), identities: [{ userHash: 'u', email: 'back@example.com', emailHash: 'e', at: at - 100 }] })
    expect(await rows('SELECT email, deleted_at FROM identities')).toEqual([{ email: null, deleted_at: at }])
    expect(await rows('SELECT message_id FROM parked')).toEqual([{ message_id: 'y' }]) // sent after the delete: it waits
    const snapshot = await s.read({ users: [], emails: ['e'], messages: [] })
    expect(snapshot.contacts.get('e')).toEqual({ fields: {}, deletedAt: at })
  })

  it('merges guard fields and writes a batch atomically (one failure writes nothing)', async () => {
    const s = store()
    await s.write({ ...emptyWrites(), guards: [{ emailHash: 'g', fields: { a: 1 } }] })
    await s.write({ ...emptyWrites(), guards: [{ emailHash: 'g', fields: { b: 2 } }] })
    expect((await s.read({ users: [], emails: ['g'], messages: [] })).contacts.get('g')!.fields).toEqual({ a: 1, b: 2 })
    const failing = testDb()
    failing.fail('INSERT INTO dead_letters', 2)
    const writes = { ...emptyWrites(), identities: [{ userHash: 'atomic', email: 'a@example.com', emailHash: 'h', at: 1 }], deadLetters: [{ reason: 'r', attempts: 1, firstSeen: 1, event: {} }] }
    await expect(new Store(new Sql(failing.db, 2000)).write(writes)).rejects.toThrow('the database failed')
    expect(await rows("SELECT user_hash FROM identities WHERE user_hash = 'atomic'")).toEqual([])
  })
})

describe('StoreAdmin', () => {
  it('finds parked events whose email is known, expires old ones, lists and deletes dead letters', async () => {
    const s = store()
    await s.hold({
      park: [
        { userHash: 'known', messageId: 'k', type: 'track', event: event('k') },
        { userHash: 'unknown', messageId: 'n', type: 'track', event: event('n') },
      ],
      claims: [],
      leaseUntil: 0,
      by: 't',
    })
    await s.write({
      ...emptyWrites(),
      identities: [{ userHash: 'known', email: 'k@example.com', emailHash: 'kh', at: 1 }],
      deadLetters: [{ reason: 'bad <b>', attempts: 3, firstSeen: 1, messageId: 'd', type: 'identify', event: { type: 'identify' } }],
    })
    const a = admin()
    expect((await a.resolvableParked(10)).map((row) => [row.messageId, row.email])).toEqual([['k', 'k@example.com']])
    const expired = await a.expiredParked(Date.now() + 1000, 10)
    expect(expired).toHaveLength(2)
    await a.removeParked(expired.map((row) => row.id))
    expect(await a.expiredParked(Date.now() + 1000, 10)).toEqual([])
    const [letter] = await a.listDeadLetters(10)
    expect(letter).toMatchObject({ reason: 'bad <b>', attempts: 3, messageId: 'd', type: 'identify' })
    expect(await a.deleteDeadLetters([letter.id])).toBe(1)
    expect(await a.missingTables()).toEqual([])
  })

  it('finds an alias stranded under an id with no email only when its row under the other id is gone', async () => {
    const alias = (messageId: string, userId: string, previousId?: string) => ({ type: 'alias' as const, messageId, userId, ...(previousId && { previousId }) })
    await store().hold({
      park: [
        // Its pair's other row was replayed: stranded (under either id).
        { userHash: 'deleted', messageId: 'gone', type: 'alias', event: alias('gone', 'u', 'p') },
        { userHash: 'deleted', messageId: 'gone-other#previousId', type: 'alias', event: alias('gone-other', 'u', 'p') },
        // Both rows still wait: neither id has an email yet.
        { userHash: 'u', messageId: 'both', type: 'alias', event: alias('both', 'u', 'p') },
        { userHash: 'p', messageId: 'both#previousId', type: 'alias', event: alias('both', 'u', 'p') },
        // An alias of one id (or of one id twice) has no other id to learn an email from.
        { userHash: 'one', messageId: 'one', type: 'alias', event: alias('one', 'one') },
        { userHash: 'same', messageId: 'same', type: 'alias', event: alias('same', 'same', 'same') },
        { userHash: 'deleted', messageId: 'track', type: 'track', event: event('track') },
      ],
      claims: [],
      leaseUntil: 0,
      by: 't',
    })
    await store().write({ ...emptyWrites(), forget: [{ userHash: 'deleted', at: 1 }] })
    expect((await admin().strandedAliases(10)).map((row) => row.messageId)).toEqual(['gone', 'gone-other#previousId'])
    expect((await admin().strandedAliases(1)).map((row) => row.messageId)).toEqual(['gone'])
  })
})
