import { describe, expect, it } from 'vitest'
import { json, rows, setupOrtto, testDb } from './helpers'
import { ledgerState } from './ledger-helpers'

// Ortto's edges: what a second review found, each held by a test.
const id = () => `m-${crypto.randomUUID()}`

describe('Ortto edges', () => {
  it('while the account cannot be read, an event with custom traits or activity properties is retried, not sent without them', async () => {
    const { post, ortto } = setupOrtto()
    ortto.inject({ status: 500, match: (call) => call.path === '/v1/person/custom-field/get' })
    const identify = await post({ type: 'identify', messageId: id(), traits: { email: 'u@example.com', plan: 'pro' } })
    expect(identify.status).toBe(503)
    expect((await json(identify)).message).toContain('could not be read')
    const track = await post({ type: 'track', messageId: id(), event: 'Order Completed', properties: { email: 'u@example.com', product: 'Tea' } })
    expect(track.status).toBe(503)
    expect(ortto.calls.filter((c) => c.path === '/v1/person/merge' || c.path === '/v1/activities/create')).toHaveLength(0)
    // Built-in fields alone need no account.
    expect((await post({ type: 'identify', messageId: id(), traits: { email: 'b@example.com', firstName: 'B' } })).status).toBe(200)
  })

  it('never gets the IP banned by a big batch whose every call is refused (calls in flight count)', async () => {
    const { post, ortto } = setupOrtto({ ORTTO_ACTIVITIES: JSON.stringify({ 'Order Completed': 'act:cm:missing' }) })
    const batch = Array.from({ length: 2500 }, (_, i) => ({ type: 'track', messageId: `ban-${i}`, event: 'Order Completed', properties: { email: `ban${i}@example.com` } }))
    await post(batch)
    expect(ortto.bans).toBe(0)
    expect(ortto.calls.filter((c) => c.status >= 400).length).toBeLessThan(15)
  })

  it('newest wins between an identify and an older track in one batch: the activity carries only the keys', async () => {
    const { post, ortto, calls } = setupOrtto()
    await post([
      { type: 'identify', messageId: id(), userId: 'u-n', traits: { email: 'n@example.com', firstName: 'New' }, timestamp: '2026-01-02T00:00:00Z' },
      { type: 'track', messageId: id(), userId: 'u-n', event: 'Order Completed', properties: {}, context: { traits: { email: 'n@example.com', firstName: 'Old' } }, timestamp: '2026-01-01T00:00:00Z' },
    ])
    const person = [...ortto.people.values()].find((p) => p.fields['str::email'] === 'n@example.com')!
    expect(person.fields['str::first']).toBe('New')
    expect(calls('/activities/create')[0].body.activities[0].fields).toEqual({ 'str::email': 'n@example.com', 'str::ei': 'u-n' })
  })

  it('a merged person Ortto refuses: each event goes again alone, so one bad event does not take the others with it', async () => {
    const { post, ortto } = setupOrtto()
    ortto.inject({ status: 400, body: { error: 'invalid', details: [{ status: 'invalid', error: 'bad value' }] }, match: (call) => call.path === '/v1/person/merge' })
    const body = await json(
      await post([
        { type: 'identify', messageId: id(), traits: { email: 'two@example.com', plan: 'a' } },
        { type: 'identify', messageId: id(), traits: { email: 'two@example.com', firstName: 'Two' } },
      ]),
    )
    expect(body.counts).toEqual({ delivered: 2 })
    expect(ortto.calls.filter((c) => c.path === '/v1/person/merge').map((c) => c.body.people.length)).toEqual([1, 2])
  })

  it('sends a list field as a list, a moment only with its zone (in UTC), a phone without its country code as the national number', async () => {
    const { post, calls } = setupOrtto()
    const body = await json(await post({ type: 'identify', messageId: id(), traits: { email: 'f@example.com', interests: 'tea', 'signed up': '2025-01-02T03:04:05+0100', phone: '(415) 555-1234' } }))
    expect(body.status).toBe('delivered')
    expect(calls('/person/merge')[0].body.people[0].fields).toMatchObject({ 'sst:cm:interests': ['tea'], 'tme:cm:signed-up': '2025-01-02T02:04:05.000Z', 'phn::phone': { n: '4155551234' } })
    expect(body.issues).toBeUndefined()
    const dateOnly = await json(await post({ type: 'identify', messageId: id(), traits: { email: 'f@example.com', 'signed up': '2025-01-02' } }))
    expect(dateOnly.issues).toEqual([{ path: 'traits.signed up', message: expect.stringContaining('zone') }])
  })

  it('finishes a delete whose person/delete failed once after the archive', async () => {
    const { post, ortto } = setupOrtto()
    await post({ type: 'identify', messageId: id(), userId: 'u-x', traits: { email: 'x@example.com' } })
    ortto.inject({ status: 500, match: (call) => call.path === '/v1/person/delete' })
    const response = await post({ type: 'delete', messageId: id(), userId: 'u-x' })
    expect(await json(response)).toMatchObject({ status: 'delivered', message: 'person archived and deleted' })
    expect([...ortto.people.values()].some((p) => p.fields['str::email'] === 'x@example.com')).toBe(false)
  })

  it('finishes on the re-send a delete that archived the person but failed twice: found by the id kept, deleted', async () => {
    const { post, ortto } = setupOrtto()
    await post({ type: 'identify', messageId: id(), userId: 'u-arch', traits: { email: 'arch@example.com' } })
    const person = [...ortto.people.values()].find((p) => p.fields['str::email'] === 'arch@example.com')!
    const deleteCall = { match: (call: { path: string }) => call.path === '/v1/person/delete' }
    ortto.inject({ status: 500, ...deleteCall }, { status: 503, ...deleteCall })
    const remove = { type: 'delete', messageId: id(), userId: 'u-arch' }
    expect((await post(remove)).status).toBe(503) // archived, not deleted: Segment re-sends
    expect(person.archived).toBe(true)
    const again = await post(remove)
    expect(await json(again)).toMatchObject({ status: 'delivered', message: 'archived person deleted' })
    expect(ortto.deleted.has(person.id)).toBe(true)
    expect(await rows('SELECT * FROM checkpoints')).toEqual([]) // finished: nothing kept
    // A database that cannot keep the ids: nothing is archived, the delete is retried.
    await post({ type: 'identify', messageId: id(), userId: 'u-db', traits: { email: 'db@example.com' } })
    const store = testDb()
    const { post: postDown, ortto: o2 } = setupOrtto({ DB: store.db })
    await postDown({ type: 'identify', messageId: id(), userId: 'u-db2', traits: { email: 'db2@example.com' } })
    store.fail('INSERT INTO checkpoints', 5)
    expect((await postDown({ type: 'delete', messageId: id(), userId: 'u-db2' })).status).toBe(503)
    expect(o2.calls.filter((c) => c.path === '/v1/person/archive')).toHaveLength(0)
  })

  it('maps unsubscribed to the email permission, and (people found by email) a new email to a merge by external id', async () => {
    const { post, ortto, calls } = setupOrtto({ ORTTO_MERGE_BY: 'str::email' })
    await post({ type: 'identify', messageId: id(), userId: 'u-r', traits: { email: 'old@example.com', unsubscribed: true } })
    expect(calls('/person/merge')[0].body.people[0].fields['bol::p']).toBe(false)
    await post({ type: 'identify', messageId: id(), userId: 'u-r', traits: { email: 'old@example.com', newEmail: 'new@example.com' } })
    const rename = calls('/person/merge')[1].body
    expect(rename.merge_by).toEqual(['str::ei'])
    expect(rename.people[0].fields).toMatchObject({ 'str::email': 'new@example.com', 'str::ei': 'u-r' })
    const people = [...ortto.people.values()].filter((p) => p.fields['str::ei'] === 'u-r')
    expect(people.map((p) => p.fields['str::email'])).toEqual(['new@example.com'])
  })

  it('when the final write fails, the journey entries made are still confirmed (a later re-send does not enter them again)', async () => {
    const store = testDb()
    const { post } = setupOrtto({ DB: store.db })
    store.fail('INSERT INTO identities', 2)
    const entry = { type: 'track', messageId: id(), userId: 'u-w', event: 'Order Completed', properties: { email: 'w@example.com' } }
    expect((await post(entry)).status).toBe(503)
    expect(await ledgerState(entry.messageId)).toBe('done')
  })
})
