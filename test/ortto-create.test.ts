import { beforeEach, describe, expect, it } from 'vitest'
import { freshDb, json, rows, setupOrtto, type Loose } from './helpers'

// Ortto with no setup (ORTTO_CREATE): every trait gets a field, every track an activity of its
// name, each made once, at most ORTTO_CREATE_MAX a day; a failure never loses the event.
const id = () => `m-${crypto.randomUUID()}`
const CREATE = { ORTTO_CREATE: 'fields,activities', ORTTO_ACTIVITIES: '{}' }
const creates = (calls: (path: string) => { status: number; body: Loose }[]) => [...calls('/person/custom-field/create'), ...calls('/definitions/activity/create')]

beforeEach(freshDb)

describe('Ortto: created when missing', () => {
  it('gives each new trait a field of its type, then sends it; a value that fits no type is left out and named', async () => {
    const { post, ortto, calls } = setupOrtto(CREATE)
    const traits = { email: 'new@example.com', tier: 'gold', logins: 3, ratio: 0.25, beta: true, renewed: '2026-01-02T03:04:05Z', colours: ['red', 'blue'], shape: { a: 1 } }
    const body = await json(await post({ type: 'identify', messageId: id(), userId: 'u-new', traits }))
    expect(body.status).toBe('delivered')
    const made = Object.fromEntries(calls('/person/custom-field/create').map((c) => [c.body.name, c.body.type]))
    expect(made).toEqual({ tier: 'text', logins: 'integer', ratio: 'decimal', beta: 'bool', renewed: 'time', colours: 'multi_select' })
    const person = [...ortto.people.values()].find((p) => p.fields['str::ei'] === 'u-new')!
    expect(person.fields).toMatchObject({
      'str:cm:tier': 'gold',
      'int:cm:logins': 3,
      'dec:cm:ratio': 250,
      'bol:cm:beta': true,
      'tme:cm:renewed': '2026-01-02T03:04:05.000Z',
      'sst:cm:colours': ['red', 'blue'],
    })
    expect(body.issues).toEqual([{ path: 'traits.shape', message: expect.stringContaining('fits no Ortto field type') }])
    // The next event finds them made: no second creation.
    await post({ type: 'identify', messageId: id(), userId: 'u-new', traits: { tier: 'silver', logins: 4 } })
    expect(calls('/person/custom-field/create')).toHaveLength(6)
    expect(await rows('SELECT kind, name, id FROM created ORDER BY name')).toContainEqual({ kind: 'field', name: 'tier', id: 'str:cm:tier' })
  })

  it('creates the activity a track names, its attributes from the properties, then enters it; 100 events that need 5 fields and 2 activities take 7 creations and 2 calls', async () => {
    const { post, ortto, calls } = setupOrtto(CREATE)
    const events = Array.from({ length: 100 }, (_, i) =>
      i % 2
        ? { type: 'track', messageId: id(), userId: `u${i}`, event: i % 4 === 1 ? 'Trial Started' : 'Plan Chosen', properties: { plan: 'pro', seats: i } }
        : { type: 'identify', messageId: id(), userId: `u${i}`, traits: { email: `p${i}@example.com`, a: 'x', b: 1, c: true, d: 0.5, e: 'y' } },
    )
    const body = await json(await post(events))
    expect(body.counts).toEqual({ delivered: 100 })
    expect(creates(calls)).toHaveLength(7)
    expect(calls('/person/merge')).toHaveLength(1)
    expect(calls('/activities/create')).toHaveLength(1)
    const trial = calls('/definitions/activity/create').find((c) => c.body.name === 'Trial Started')!.body
    expect(trial.attributes).toEqual([
      { name: 'plan', display_type: 'text' },
      { name: 'seats', display_type: 'integer' },
    ])
    expect(ortto.activities.filter((a) => a.activity_id === 'act:cm:trial-started')).toHaveLength(25)
    expect(ortto.activities.find((a) => a.ei === 'u1')!.attributes).toEqual({ 'str:cm:plan': 'pro', 'int:cm:seats': 1 })
  })

  it('two isolates that need the same field end with one: the second finds it recorded today and reads the account, no second create', async () => {
    const one = setupOrtto(CREATE)
    const other = setupOrtto(CREATE) // a second isolate: its own parsed settings and account copy, the same Ortto
    // Both talk to the first one's Ortto (the fetch spy is one for the test).
    other.fetchSpy.mockImplementation(async (input: RequestInfo | URL, init?: RequestInit) => one.ortto.fetch(new Request(input, init)))
    // The second isolate has read the account before the first made the field…
    await other.post({ type: 'identify', messageId: id(), userId: 'u-0', traits: { email: 'zero@example.com' } })
    expect((await json(await one.post({ type: 'identify', messageId: id(), userId: 'u-a', traits: { email: 'a@example.com', shoe: 42 } }))).status).toBe('delivered')
    // …its copy lacks it, but today's record has it: it reads the account again and uses the one there.
    const b = await json(await other.post({ type: 'identify', messageId: id(), userId: 'u-b', traits: { email: 'b@example.com', shoe: 43 } }))
    expect(b).toMatchObject({ status: 'delivered' })
    expect(b.issues).toBeUndefined()
    expect(one.ortto.calls.filter((c) => c.path === '/v1/person/custom-field/create').map((c) => c.status)).toEqual([200])
    expect([...one.ortto.fields.values()].filter((f) => f.name === 'shoe')).toHaveLength(1)
    const shoes = [...one.ortto.people.values()]
      .map((p) => p.fields['int:cm:shoe'])
      .filter((n) => n !== undefined)
      .sort()
    expect(shoes).toEqual([42, 43])
  })

  it.each([400, 409] as const)('a field made in Ortto meanwhile (not by this Worker): the refused duplicate (%i, both seen) reads the account again and uses it', async (duplicateStatus) => {
    const { post, ortto, calls } = setupOrtto(CREATE, { duplicateStatus })
    await post({ type: 'identify', messageId: id(), userId: 'u-1', traits: { email: 'one@example.com' } }) // the account is read now
    await ortto.fetch(
      new Request('https://api.ap3api.com/v1/person/custom-field/create', {
        method: 'POST',
        headers: { 'x-api-key': 'ortto-test-key-3c8e', 'content-type': 'application/json' },
        body: JSON.stringify({ name: 'hat', type: 'text' }),
      }),
    )
    const body = await json(await post({ type: 'identify', messageId: id(), userId: 'u-2', traits: { email: 'two@example.com', hat: 'cap' } }))
    expect(body).toMatchObject({ status: 'delivered' })
    expect(calls('/person/custom-field/create').map((c) => c.status)).toEqual([200, duplicateStatus])
    expect([...ortto.people.values()].find((p) => p.fields['str::ei'] === 'u-2')!.fields['str:cm:hat']).toBe('cap')
    expect(await rows(`SELECT state, id FROM created WHERE name = 'hat'`)).toEqual([{ state: 'created', id: 'str:cm:hat' }])
  })

  it('a creation not attempted (the gate stopped it after a 429) retries the event; never a 500', async () => {
    const { post, ortto, calls } = setupOrtto({ ...CREATE, DIRECT_DEADLINE_MS: '1500' })
    ortto.inject({ status: 429, tryInSeconds: 5, match: (call) => call.path === '/v1/person/custom-field/create' })
    const response = await post({ type: 'identify', messageId: id(), userId: 'u-s', traits: { email: 's@example.com', left: 1, right: 2 } })
    expect([429, 503]).toContain(response.status)
    expect(calls('/person/merge')).toHaveLength(0)
  })

  it('makes at most 8 creation calls a request (within the Free plan: 50 D1 queries, 50 calls); the traits past them are left out and named, the rest delivered; the next event makes them', async () => {
    const { post, calls, logLines } = setupOrtto(CREATE)
    const traits = Object.fromEntries(Array.from({ length: 10 }, (_, i) => [`trait${i}`, i]))
    const event = { type: 'identify', messageId: id(), userId: 'u-many', traits: { email: 'many@example.com', ...traits } }
    const first = await json(await post(event))
    expect(first.status).toBe('delivered')
    expect(first.issues).toEqual([
      { path: 'traits.trait8', message: expect.stringContaining('already made 8 creation calls') },
      { path: 'traits.trait9', message: expect.stringContaining('already made 8 creation calls') },
    ])
    expect(calls('/person/custom-field/create')).toHaveLength(8)
    expect(Object.keys(calls('/person/merge')[0].body.people[0].fields).filter((f) => f.startsWith('int:cm:trait'))).toHaveLength(8)
    expect(logLines().at(-1)!.d1.queries).toBeLessThanOrEqual(50)
    expect((await json(await post({ ...event, messageId: id() }))).issues).toBeUndefined()
    expect(calls('/person/custom-field/create')).toHaveLength(10)
    expect(Object.keys(calls('/person/merge')[1].body.people[0].fields).filter((f) => f.startsWith('int:cm:trait'))).toHaveLength(10)
  })

  it('makes at most ORTTO_CREATE_MAX a day: past it, the trait is left out and named, and the list says so', async () => {
    const { post, calls } = setupOrtto({ ...CREATE, ORTTO_CREATE_MAX: '2' })
    const body = await json(await post({ type: 'identify', messageId: id(), userId: 'u-cap', traits: { one: 1, two: 2, three: 3 } }))
    expect(body.status).toBe('delivered')
    expect(calls('/person/custom-field/create')).toHaveLength(2)
    expect(body.issues).toEqual([{ path: 'traits.three', message: expect.stringContaining('ORTTO_CREATE_MAX') }])
    expect(await rows('SELECT name, note FROM created WHERE note IS NOT NULL')).toEqual([{ name: 'three', note: 'ORTTO_CREATE_MAX (2) reached: raise it, or create it in Ortto' }])
  })

  it('a creation that fails for now retries the event, nothing of it sent; one refused for good leaves the trait out, named', async () => {
    const { post, ortto, calls } = setupOrtto(CREATE)
    ortto.inject({ status: 503, match: (call) => call.path === '/v1/person/custom-field/create' })
    const event = { type: 'identify', messageId: id(), userId: 'u-f', traits: { email: 'f@example.com', colour: 'teal' } }
    expect((await post(event)).status).toBe(503)
    expect(calls('/person/merge')).toHaveLength(0)
    expect((await post(event)).status).toBe(200) // Segment's retry
    expect([...ortto.people.values()][0].fields['str:cm:colour']).toBe('teal')

    const capped = setupOrtto(CREATE, { maxCustomFields: 0 })
    const refused = await json(await capped.post({ type: 'identify', messageId: id(), userId: 'u-g', traits: { email: 'g@example.com', size: 'L' } }))
    expect(refused.status).toBe('delivered')
    expect(refused.issues).toEqual([{ path: 'traits.size', message: expect.stringContaining('limit') }])
  })

  it('without ORTTO_CREATE nothing is created: the trait is named, the unknown track only merges its person', async () => {
    const { post, calls } = setupOrtto({ ORTTO_ACTIVITIES: '{}' })
    const body = await json(await post({ type: 'identify', messageId: id(), traits: { email: 'n@example.com', colour: 'red' } }))
    expect(body.issues).toEqual([{ path: 'traits.colour', message: expect.stringContaining('ORTTO_CREATE=fields') }])
    const track = await json(await post({ type: 'track', messageId: id(), event: 'Nothing Here', context: { traits: { email: 'n@example.com', firstName: 'N' } } }))
    expect(track.message).toContain('ORTTO_CREATE=activities')
    expect(creates(calls)).toEqual([])
  })
})

describe('Ortto: the rest of the first hour', () => {
  it('goes to the account activity of the event name, exactly or without case and spacing', async () => {
    const { post, ortto } = setupOrtto({ ORTTO_ACTIVITIES: '{}' })
    await post({ type: 'track', messageId: id(), userId: 'u-o', event: 'order_completed', properties: { product: 'Tea' } })
    expect(ortto.activities.map((a) => [a.activity_id, a.attributes])).toEqual([['act:cm:order-completed', { 'str:cm:product': 'Tea' }]])
  })

  it('skips an event Ortto itself sent into Segment', async () => {
    const { post, calls } = setupOrtto(CREATE)
    const body = await json(await post({ type: 'track', messageId: id(), userId: 'u-l', event: 'Email Opened', context: { app: { namespace: 'ortto.com' } } }))
    expect(body).toMatchObject({ status: 'skipped' })
    expect(body.message).toContain('ortto.com')
    expect(creates(calls)).toEqual([])
    expect(calls('/activities/create')).toEqual([])
  })

  it('sends context.ip as the location of merges and activities, unless ORTTO_SEND_IP=false', async () => {
    const { post, calls, ortto } = setupOrtto()
    await post({ type: 'track', messageId: id(), userId: 'u-ip', event: 'Order Completed', context: { ip: '203.0.113.7', traits: { email: 'ip@example.com', firstName: 'I' } } })
    expect(calls('/person/merge')[0].body.people[0].location).toEqual({ source_ip: '203.0.113.7' })
    expect(calls('/activities/create')[0].body.activities[0].location).toEqual({ source_ip: '203.0.113.7' })
    expect([...ortto.people.values()][0].location).toEqual({ source_ip: '203.0.113.7' })
    const off = setupOrtto({ ORTTO_SEND_IP: 'false' })
    await off.post({ type: 'identify', messageId: id(), traits: { email: 'ip2@example.com', firstName: 'J' }, context: { ip: '203.0.113.8' } })
    expect(off.calls('/person/merge')[0].body.people[0].location).toBeUndefined()
  })

  it('sends a phone without its country code as the national number, with ORTTO_PHONE_COUNTRY; only no phone at all is left out', async () => {
    const { post, calls } = setupOrtto({ ORTTO_PHONE_COUNTRY: '+1' })
    const body = await json(
      await post([
        { type: 'identify', messageId: id(), userId: 'u-ph1', traits: { email: 'ph1@example.com', phone: '9112340345' } },
        { type: 'identify', messageId: id(), userId: 'u-ph2', traits: { email: 'ph2@example.com', phone: '+61 412 345 678' } },
        { type: 'identify', messageId: id(), userId: 'u-ph3', traits: { email: 'ph3@example.com', phone: 'call me' } },
      ]),
    )
    const phones = calls('/person/merge')[0].body.people.map((p: { fields: Record<string, unknown> }) => p.fields['phn::phone'])
    expect(phones).toEqual([{ n: '9112340345', c: '1' }, { phone: '61412345678', parse_with_country_code: true }, undefined])
    expect(body.results).toEqual([expect.objectContaining({ index: 2, issues: [{ path: 'traits.phone', message: expect.stringContaining('not a phone number') }] })])
  })

  it('a delete by userId that Ortto fails for now is retried, not forgotten: the re-send deletes the person', async () => {
    const { post, ortto } = setupOrtto()
    await post({ type: 'identify', messageId: id(), userId: 'u-del', traits: { firstName: 'Del' } })
    ortto.inject({ status: 503, match: (call) => call.path === '/v1/person/get' })
    const remove = { type: 'delete', messageId: id(), userId: 'u-del' }
    expect((await post(remove)).status).toBe(503)
    expect([...ortto.people.values()].filter((p) => p.fields['str::ei'] === 'u-del')).toHaveLength(1)
    expect((await post(remove)).status).toBe(200)
    expect([...ortto.people.values()].filter((p) => p.fields['str::ei'] === 'u-del')).toHaveLength(0)
  })

  it('a delete by userId stays deleted for a late event that carries only the email', async () => {
    const { post, ortto } = setupOrtto()
    const at = (hour: number) => `2026-11-01T${String(hour).padStart(2, '0')}:00:00Z`
    await post({ type: 'identify', messageId: id(), userId: 'u-gone', traits: { email: 'gone@example.com' }, timestamp: at(10) })
    expect((await post({ type: 'delete', messageId: id(), userId: 'u-gone', timestamp: at(12) })).status).toBe(200)
    expect([...ortto.people.values()].filter((p) => p.fields['str::email'] === 'gone@example.com')).toHaveLength(0)
    // Sent before the delete, arriving after it, with no userId.
    const late = await json(await post({ type: 'identify', messageId: id(), traits: { email: 'gone@example.com', firstName: 'Late' }, timestamp: at(11) }))
    expect(late.message).toContain('deleted')
    expect([...ortto.people.values()].filter((p) => p.fields['str::email'] === 'gone@example.com')).toHaveLength(0)
  })

  it('in one batch, an email-only event newer than a delete by userId goes after the delete, and stays', async () => {
    const { post, ortto } = setupOrtto()
    const at = (hour: number) => `2026-11-01T${String(hour).padStart(2, '0')}:00:00Z`
    await post({ type: 'identify', messageId: id(), userId: 'u-back', traits: { email: 'back@example.com' }, timestamp: at(10) })
    const body = await json(
      await post([
        { type: 'identify', messageId: id(), traits: { email: 'back@example.com', firstName: 'Back' }, timestamp: at(13) },
        { type: 'delete', messageId: id(), userId: 'u-back', timestamp: at(12) },
      ]),
    )
    expect(body.counts).toEqual({ delivered: 2 })
    expect([...ortto.people.values()].filter((p) => p.fields['str::email'] === 'back@example.com').map((p) => p.fields['str::first'])).toEqual(['Back'])
  })

  it('nothing waits for an email under the default: a userId-only identify goes at once', async () => {
    const { post, ortto } = setupOrtto()
    const body = await json(await post({ type: 'identify', messageId: id(), userId: 'u-solo', traits: { firstName: 'Solo' } }))
    expect(body.status).toBe('delivered')
    expect(await rows('SELECT count(*) AS n FROM parked')).toEqual([{ n: 0 }])
    expect([...ortto.people.values()].map((p) => p.fields)).toEqual([expect.objectContaining({ 'str::ei': 'u-solo', 'str::first': 'Solo' })])
  })
})
