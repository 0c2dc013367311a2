import type { Loose } from './helpers'
import { describe, expect, it } from 'vitest'
import { createOrtto } from '../sandbox/ortto.js'
import { body, order, ortto, person } from './ortto-helpers'

// The Ortto stand-in's API, strictly: what it accepts, refuses and records. Its transport
// (auth, content type, routes, rate limit, the ban, faults, log): ortto-sandbox-transport.test.ts.
describe('Ortto stand-in: person/merge', () => {
  it('creates, then merges, answering one entry per person in order', async () => {
    const o = ortto()
    const first = await body(await o.merge([person({ 'str::ei': 'u1', 'str::email': 'ann@example.com' }), person({ 'str::email': 'bob@example.com' })]))
    expect(first.people.map((p: Loose) => p.status)).toEqual(['created', 'created'])
    const second = await body(await o.merge([person({ 'str::email': 'bob@example.com' }), person({ 'str::ei': 'u1', 'str::first': 'Ann' })]))
    expect(second.people).toEqual([
      { person_id: first.people[1].person_id, status: 'merged' },
      { person_id: first.people[0].person_id, status: 'merged' },
    ])
    expect(o.state.people.size).toBe(2)
    expect(o.state.person('str::ei', 'u1')?.fields).toMatchObject({ 'str::first': 'Ann', 'str::email': 'ann@example.com', 'bol::p': true })
  })

  it('the same person twice in one call: created, then merged', async () => {
    const o = ortto()
    const answer = await body(await o.merge([person({ 'str::email': 'a@example.com' }), person({ 'str::email': 'A@Example.com', 'str::last': 'L' })]))
    expect(answer.people.map((p: Loose) => p.status)).toEqual(['created', 'merged'])
  })

  it.each([[0], [101]])('%i people -> 400', async (n) => {
    const response = await ortto().merge(Array.from({ length: n }, (_, i) => person({ 'str::email': `p${i}@example.com` })))
    expect(response.status).toBe(400)
    expect(await body(response)).toMatchObject({ code: 400, error: expect.stringContaining('1 to 100') })
  })

  it('100 people in one call are fine', async () => {
    const response = await ortto().merge(Array.from({ length: 100 }, (_, i) => person({ 'str::email': `p${i}@example.com` })))
    expect((await body(response)).people).toHaveLength(100)
  })

  it.each([
    ['missing', undefined],
    ['empty', []],
    ['four keys', ['str::ei', 'str::email', 'str::first', 'str::last']],
    ['an unknown field', ['str::nope']],
    ['a field the account lacks', ['str:cm:nope']],
    ['person_id with another key', ['str::person_id', 'str::email']],
  ])('merge_by %s -> 400', async (_, mergeBy) => {
    const response = await ortto().merge([person({ 'str::email': 'a@example.com' })], { merge_by: mergeBy })
    expect(response.status).toBe(400)
  })

  it('merge_by may name a custom field', async () => {
    const response = await ortto().merge([person({ 'str::email': 'a@example.com', 'str:cm:plan': 'pro' })], { merge_by: ['str:cm:plan'] })
    expect((await body(response)).people[0].status).toBe('created')
  })

  it('unknown top-level keys -> 400; unknown person keys make that person invalid', async () => {
    expect((await ortto().merge([person({ 'str::email': 'a@example.com' })], { location: {} })).status).toBe(400)
    // (location on a person is modelled now: see the location tests below)
    const answer = await body(await ortto().merge([person({ 'str::email': 'a@example.com' }, { address: { city: 'Sydney' } })]))
    expect(answer).toMatchObject({ details: [{ status: 'invalid', error: expect.stringContaining('address') }] })
  })

  it.each(['203.0.113.7', '0.0.0.0', '2001:db8::1', '::1', '::ffff:203.0.113.7', '2001:0db8:0000:0000:0000:ff00:0042:8329'])('location {source_ip: %s} is kept on the person', async (ip) => {
    const o = ortto()
    const answer = await body(await o.merge([person({ 'str::email': 'a@example.com' }, { location: { source_ip: ip } })]))
    expect(answer.people[0].status).toBe('created')
    expect(o.state.person('str::email', 'a@example.com')?.location).toEqual({ source_ip: ip })
  })

  it.each([
    ['a bad IPv4', { source_ip: '256.1.2.3' }],
    ['a short IPv4', { source_ip: '1.2.3' }],
    ['leading zeros', { source_ip: '01.2.3.4' }],
    ['a bad IPv6', { source_ip: '2001:db8::g1' }],
    ['two ::', { source_ip: '1::2::3' }],
    ['a zone', { source_ip: 'fe80::1%eth0' }],
    ['a port', { source_ip: '203.0.113.7:80' }],
    ['brackets', { source_ip: '[::1]' }],
    ['a host name', { source_ip: 'example.com' }],
    ['a number', { source_ip: 7 }],
    ['another key', { source_ip: '203.0.113.7', city: 'Sydney' }],
    ['no source_ip', {}],
    ['a text', '203.0.113.7'],
  ])('location with %s makes that person invalid', async (_, location) => {
    const o = ortto()
    const answer = await body(await o.merge([person({ 'str::email': 'a@example.com' }, { location }), person({ 'str::email': 'b@example.com' })]))
    expect(answer.people).toEqual([
      { status: 'invalid', error: expect.stringContaining('location') },
      { person_id: expect.any(String), status: 'created' },
    ])
    expect(o.state.people.size).toBe(1)
  })

  it("a later location replaces the person's; merge_strategy 1 keeps one already there", async () => {
    const o = ortto()
    const at = (ip: string) => person({ 'str::email': 'a@example.com' }, { location: { source_ip: ip } })
    await o.merge([at('203.0.113.7')])
    await o.merge([at('198.51.100.1')])
    await o.merge([at('192.0.2.1')], { merge_strategy: 1 })
    expect(o.state.person('str::email', 'a@example.com')?.location).toEqual({ source_ip: '198.51.100.1' })
  })

  // [field id, an accepted value, a refused value]
  it.each([
    ['str::email', 'x@example.com', 'x@localhost'],
    ['str::first', 'a'.repeat(255), 'a'.repeat(256)],
    ['txt:cm:bio', 'b'.repeat(4000), 'b'.repeat(4001)],
    ['int:cm:age', 42, 42.5],
    ['dec:cm:lifetime-value', 12_500, 12.5],
    ['cur:cm:spent', 1000, '1000'],
    ['bol:cm:vip', true, 'true'],
    ['bol::p', false, 0],
    ['dtz::b', { year: 1980, month: 3, day: 4, timezone: 'Australia/Sydney' }, '1980-03-04'],
    ['dtz:cm:renewal', { year: 2024, month: 2, day: 29 }, { year: 2023, month: 2, day: 29 }],
    ['tme:cm:signed-up', '2025-01-02T03:04:05Z', '2025-01-02'],
    ['phn::phone', { phone: '61401234567', parse_with_country_code: true }, '61401234567'],
    ['phn::phone', { c: '61', n: '401234567' }, { c: '61', n: '40-123' }],
    ['phn::phone', { n: '9112340345' }, { n: '911 234 0345' }],
    ['phn::phone', { c: '61', n: '412345678' }, { c: '+61', n: '412345678' }],
    ['phn::phone', { phone: '+61412345678', parse_with_country_code: true }, { phone: '+61 412 345 678', parse_with_country_code: true }],
    ['geo::city', { name: 'Melbourne' }, 'Melbourne'],
    ['geo::country', { name: 'Australia' }, { name: 'Australia', code: 'AU' }],
    ['sst:cm:interests', ['tea', 'golf'], 'tea'],
    ['str:cm:plan', 'pro', 7],
    ['str:cm:unknown', undefined, 'x'],
  ])('%s: %j accepted, %j refused', async (id, good, bad) => {
    const o = ortto()
    const base = id === 'str::email' ? {} : { 'str::email': 'v@example.com' }
    if (good !== undefined) expect((await body(await o.merge([person({ ...base, [id]: good })]))).people[0].status).toBe('created')
    const refused = await body(await o.merge([person({ 'str::ei': 'other', ...base, [id]: bad })]))
    expect(refused.details[0]).toMatchObject({ status: 'invalid', error: expect.stringContaining(id) })
  })

  it('a person needs str::email or str::ei, and a value for a merge_by field', async () => {
    const o = ortto()
    expect((await body(await o.merge([person({ 'str::first': 'Ann' })]))).details[0].error).toContain('str::email or str::ei')
    const answer = await body(await o.merge([person({ 'str::email': 'a@example.com' })], { merge_by: ['str::ei'] }))
    expect(answer.details[0].error).toContain('none of the merge_by fields')
  })

  it('tags are set and unset; one tag in both lists makes the person invalid', async () => {
    const o = ortto()
    await o.merge([person({ 'str::email': 'a@example.com' }, { tags: ['vip', 'trial'] })])
    await o.merge([person({ 'str::email': 'a@example.com' }, { tags: ['paid'], unset_tags: ['trial', 'never-set'] })])
    expect(o.state.person('str::email', 'a@example.com')?.tags).toEqual(['vip', 'paid'])
    const answer = await body(await o.merge([person({ 'str::email': 'a@example.com' }, { tags: ['x'], unset_tags: ['x'] })]))
    expect(answer.details[0].error).toContain('both in tags and unset_tags')
  })

  it("invalidMode 'item' (default): 200, the invalid entry says why, the valid ones are applied", async () => {
    const o = ortto()
    const response = await o.merge([person({ 'str::email': 'ok@example.com' }), person({ 'str::email': 'bad@nodot' })])
    expect(response.status).toBe(200)
    expect((await body(response)).people).toEqual([
      { person_id: expect.any(String), status: 'created' },
      { status: 'invalid', error: expect.stringContaining('not a valid email') },
    ])
    expect(o.state.people.size).toBe(1)
  })

  it("invalidMode 'call': 400 with details per person, nothing applied", async () => {
    const o = ortto({ invalidMode: 'call' })
    const response = await o.merge([person({ 'str::email': 'ok@example.com' }), person({ 'str::email': 'bad@nodot' })])
    expect(response.status).toBe(400)
    expect((await body(response)).details).toEqual([{ status: 'valid' }, { status: 'invalid', error: expect.stringContaining('email') }])
    expect(o.state.people.size).toBe(0)
  })

  it.each(['item', 'call'] as const)('all invalid -> 400 with details (%s)', async (invalidMode) => {
    const response = await ortto({ invalidMode }).merge([person({ 'str::email': 'x@nodot' })])
    expect(response.status).toBe(400)
    expect(await body(response)).toMatchObject({ code: 400, error: expect.stringContaining('No valid contacts'), details: [{ status: 'invalid' }] })
  })

  it('merge_strategy: 2 overwrites and null clears; 1 only fills empty fields; 3 leaves existing people alone', async () => {
    const o = ortto()
    const fieldsOf = () => o.state.person('str::email', 'a@example.com')?.fields
    await o.merge([person({ 'str::email': 'a@example.com', 'str::first': 'Ann', 'str:cm:plan': 'free' })])
    await o.merge([person({ 'str::email': 'a@example.com', 'str::first': 'Anne', 'str:cm:plan': null })])
    expect(fieldsOf()).toMatchObject({ 'str::first': 'Anne' })
    expect(fieldsOf()).not.toHaveProperty('str:cm:plan')
    await o.merge([person({ 'str::email': 'a@example.com', 'str::first': 'X', 'str::last': 'Lee' })], { merge_strategy: 1 })
    expect(fieldsOf()).toMatchObject({ 'str::first': 'Anne', 'str::last': 'Lee' })
    await o.merge([person({ 'str::email': 'a@example.com', 'str::last': 'Y' })], { merge_strategy: 3 })
    expect(fieldsOf()).toMatchObject({ 'str::last': 'Lee' })
  })

  it('find_strategy 0 matches the first merge_by key that finds someone; 2 needs every given key', async () => {
    const o = ortto()
    const a = (await body(await o.merge([person({ 'str::email': 'a@example.com' })]))).people[0].person_id
    const any = await body(await o.merge([person({ 'str::ei': 'u9', 'str::email': 'a@example.com' })]))
    expect(any.people[0]).toEqual({ person_id: a, status: 'merged' })
    const all = await body(await o.merge([person({ 'str::ei': 'u8', 'str::email': 'a@example.com' })], { find_strategy: 2 }))
    expect(all.people[0].status).toBe('created')
  })

  it('suppressed emails are skipped only when suppression_list_field_id asks', async () => {
    const o = ortto({ suppressed: ['gone@example.com'] })
    const asked = await body(await o.merge([person({ 'str::email': 'gone@example.com' })], { suppression_list_field_id: 'str::email' }))
    expect(asked.details).toEqual([{ status: 'suppressed', error: 'Email is suppressed' }])
    expect((await body(await o.merge([person({ 'str::email': 'gone@example.com' })]))).people[0].status).toBe('created')
  })
})

describe('Ortto stand-in: activities/create', () => {
  it('queues each activity, creates or updates its person, and records it', async () => {
    const o = ortto()
    const answer = await body(await o.track([order({ 'str::ei': 'u1', 'str::email': 'ann@example.com' })]))
    const id = o.state.person('str::ei', 'u1')?.id
    expect(answer).toEqual({ activities: [{ activity_id: 'act:cm:order-completed', person_id: id, status: 'queued', person_status: 'queued' }] })
    expect(o.state.activities).toEqual([
      {
        activity_id: 'act:cm:order-completed',
        person_id: id,
        email: 'ann@example.com',
        ei: 'u1',
        attributes: { 'str:cm:product': 'Tea', 'int:cm:quantity': 2 },
        at: expect.any(Number),
      },
    ])
  })

  it.each([[0], [101]])('%i activities -> 400', async (n) => {
    expect((await ortto().track(Array.from({ length: n }, () => order({ 'str::email': 'a@example.com' })))).status).toBe(400)
  })

  it.each([
    ['an unknown activity', { ...order({ 'str::email': 'a@example.com' }), activity_id: 'act:cm:nope' }, 'does not exist'],
    ['an attribute it does not define', order({ 'str::email': 'a@example.com' }, { 'str:cm:colour': 'red' }), 'not defined'],
    ['a mistyped attribute', order({ 'str::email': 'a@example.com' }, { 'int:cm:quantity': '2' }), 'int:cm:quantity'],
    ['a null attribute', order({ 'str::email': 'a@example.com' }, { 'int:cm:quantity': null }), 'null'],
    [
      '16 attributes',
      { activity_id: 'act:cm:many', attributes: Object.fromEntries(Array.from({ length: 16 }, (_, i) => [`int:cm:n${i}`, i])), fields: { 'str::email': 'a@example.com' } },
      'at most 15',
    ],
    ['a bad person', order({ 'str::email': 'a@nodot' }), 'email'],
    ['no person', order({ 'str::first': 'Ann' }), 'str::email or str::ei'],
    ['an unknown person_id', { activity_id: 'act:cm:order-completed', attributes: {}, person_id: '00ffff' }, 'not found'],
    ['more than 16 kB', order({ 'str::email': 'a@example.com' }, { 'str:cm:product': 'é'.repeat(8100) }), '16 kB'],
  ])('%s -> that activity is invalid', async (_, activity, reason) => {
    const answer = await body(await ortto().track([activity]))
    expect(answer.details).toEqual([{ status: 'invalid', error: expect.stringContaining(reason) }])
  })

  it('location {source_ip} is kept on the activity record; a bad one makes that activity invalid', async () => {
    const o = ortto()
    const answer = await body(
      await o.track([
        { ...order({ 'str::email': 'a@example.com' }), location: { source_ip: '2001:db8::7' } },
        { ...order({ 'str::email': 'b@example.com' }), location: { source_ip: '300.0.113.7' } },
        { ...order({ 'str::email': 'c@example.com' }), location: { source_ip: '203.0.113.7', country: 'AU' } },
      ]),
    )
    expect(answer.activities.map((a: Loose) => a.status)).toEqual(['queued', 'invalid', 'invalid'])
    expect(answer.activities[1].error).toContain('location')
    expect(o.state.activities).toEqual([expect.objectContaining({ email: 'a@example.com', location: { source_ip: '2001:db8::7' } })])
    const id = o.state.person('str::email', 'a@example.com')?.id
    await o.track([{ activity_id: 'act:cm:order-completed', attributes: {}, person_id: id, location: { source_ip: '203.0.113.9' } }])
    expect(o.state.activities[1]).toMatchObject({ person_id: id, location: { source_ip: '203.0.113.9' } })
  })

  it('15 attributes are fine', async () => {
    const attributes = Object.fromEntries(Array.from({ length: 15 }, (_, i) => [`int:cm:n${i}`, i]))
    const answer = await body(await ortto().track([{ activity_id: 'act:cm:many', attributes, fields: { 'str::email': 'a@example.com' } }]))
    expect(answer.activities[0].status).toBe('queued')
  })

  it("invalid activities follow invalidMode: 'item' answers per activity, 'call' refuses the call", async () => {
    const batch = [order({ 'str::email': 'a@example.com' }), order({ 'str::email': 'b@nodot' })]
    const item = ortto()
    expect((await body(await item.track(batch))).activities.map((a: Loose) => a.status)).toEqual(['queued', 'invalid'])
    expect(item.state.activities).toHaveLength(1)
    const call = ortto({ invalidMode: 'call' })
    const response = await call.track(batch)
    expect([response.status, (await body(response)).details.map((d: Loose) => d.status)]).toEqual([400, ['valid', 'invalid']])
    expect([call.state.activities.length, call.state.people.size]).toEqual([0, 0])
  })

  it("merge_by per activity or for the call; person_id for someone known; activityAnswer 'live'", async () => {
    const o = ortto({ activityAnswer: 'live' })
    const bare = await body(await o.call('POST', '/v1/activities/create', { activities: [order({ 'str::email': 'a@example.com' })] }))
    expect(bare.details[0].error).toContain('merge_by is required')
    const own = await body(await o.call('POST', '/v1/activities/create', { activities: [{ ...order({ 'str::email': 'a@example.com' }), merge_by: ['str::email'] }] }))
    expect(own.activities).toEqual([{ status: 'queued', person_status: 'queued' }])
    const id = o.state.person('str::email', 'a@example.com')?.id
    const known = await body(await o.track([{ activity_id: 'act:cm:order-completed', attributes: {}, person_id: id }]))
    expect(known.activities).toEqual([{ person_id: id, status: 'queued', person_status: 'queued' }])
    expect(o.state.activities.map((a) => a.person_id)).toEqual([id, id])
  })

  it('a payload over 2 MB -> 413', async () => {
    const big = Array.from({ length: 100 }, () => order({ 'str::email': 'a@example.com' }, { 'str:cm:product': 'x'.repeat(21_000) }))
    expect((await ortto().track(big)).status).toBe(413)
  })
})

describe('Ortto stand-in: definitions', () => {
  it('person/custom-field/get lists the custom fields (no body, or {})', async () => {
    const o = ortto({ customFields: { 'int:cm:age': 'Age', 'dec:cm:lifetime-value': 'Lifetime Value' } })
    const answer = await body(await o.call('POST', '/v1/person/custom-field/get', undefined, { 'content-type': '' }))
    expect(answer).toEqual({
      fields: [
        { field: { id: 'int:cm:age', name: 'Age', display_type: 'integer', liquid_name: 'people.custom.age' }, tracked_value: false },
        { field: { id: 'dec:cm:lifetime-value', name: 'Lifetime Value', display_type: 'decimal', liquid_name: 'people.custom.lifetime-value' }, tracked_value: false },
      ],
    })
    expect((await o.call('POST', '/v1/person/custom-field/get', {})).status).toBe(200)
    expect((await o.call('POST', '/v1/person/custom-field/get', { limit: 5 })).status).toBe(400)
  })

  it('instance-schema/get lists built-ins and act:: activities ("") and the custom fields and activities (cm)', async () => {
    const o = ortto()
    const { namespaces } = await body(await o.call('POST', '/v1/instance-schema/get', { namespaces: [] }))
    expect(Object.keys(namespaces)).toEqual(['', 'cm'])
    expect(namespaces[''].fields['str::email']).toMatchObject({ id: 'str::email', name: 'Email', display_type: 'text' })
    expect(namespaces[''].fields['act::ta']).toMatchObject({ display_type: 'activity', read_only: true, attributes: [{ id: 'sst::t', name: 'Tags' }, { id: 'str::ts' }] })
    expect(namespaces.cm.fields['int:cm:age']).toMatchObject({ id: 'int:cm:age', name: 'Age', display_type: 'integer' })
    expect(namespaces.cm.fields['act:cm:order-completed']).toEqual({
      id: 'act:cm:order-completed',
      name: 'Order Completed',
      display_type: 'activity',
      attributes: [
        { id: 'str:cm:product', name: 'Product', display_type: 'text', liquid_name: 'activity.order-completed.product' },
        { id: 'int:cm:quantity', name: 'Quantity', display_type: 'integer', liquid_name: 'activity.order-completed.quantity' },
      ],
    })
    const cm = await body(await o.call('POST', '/v1/instance-schema/get', { namespaces: ['cm'] }))
    expect(Object.keys(cm.namespaces)).toEqual(['cm'])
    expect((await o.call('POST', '/v1/instance-schema/get', {})).status).toBe(400)
  })

  it('createOrtto refuses a malformed custom field or activity id', () => {
    expect(() => createOrtto({ customFields: { age: 'Age' } })).toThrow(/custom field age/)
    expect(() => createOrtto({ customFields: { 'xyz:cm:age': 'Age' } })).toThrow(/custom field/)
    expect(() => createOrtto({ activities: { 'order-completed': { name: 'Order Completed' } } })).toThrow(/activity/)
  })
})

describe('Ortto stand-in: person/get, archive, delete', () => {
  it('finds people by str::email (any case) or str::ei, and answers only the asked fields with a value', async () => {
    const o = ortto()
    await o.merge([person({ 'str::ei': 'u1', 'str::email': 'ann@example.com', 'int:cm:age': 30 }), person({ 'str::email': 'bob@example.com' })])
    const byEmail = await body(await o.find({ '$str::is': { field_id: 'str::email', value: 'ANN@example.com' } }, ['str::email', 'int:cm:age', 'str::last']))
    expect(byEmail.contacts).toEqual([{ id: o.state.person('str::ei', 'u1')?.id, fields: { 'str::email': 'ann@example.com', 'int:cm:age': 30 } }])
    expect(byEmail.meta).toEqual({ total_contacts: 2, total_organizations: 0, total_matches: 1 })
    const byEi = await body(await o.find({ $or: [{ '$str::is': { field_id: 'str::ei', value: 'u1' } }, { '$str::is': { field_id: 'str::ei', value: 'u2' } }] }))
    expect(byEi.contacts.map((c: Loose) => c.fields['str::email'])).toEqual(['ann@example.com'])
    const both = await body(await o.find({ $and: [{ $has_any_value: { field_id: 'str::ei' } }, { '$str::is': { field_id: 'str::email', value: 'bob@example.com' } }] }))
    expect(both.contacts).toEqual([])
  })

  it.each([
    ['limit over 500', { limit: 501 }],
    ['an unknown field', { fields: ['str::nope'] }],
    ['an operator it does not model', { filter: { '$str::contains': { field_id: 'str::email', value: 'a' } } }],
    ['a filter on an unknown field', { filter: { '$str::is': { field_id: 'str::nope', value: 'a' } } }],
    ['an unsupported key', { sort_by_field_id: 'str::email' }],
  ])('person/get with %s -> 400', async (_, change) => {
    const response = await ortto().call('POST', '/v1/person/get', { limit: 10, fields: ['str::email'], ...change })
    expect(response.status).toBe(400)
  })

  it('deletes only archived people: archive, then delete', async () => {
    const o = ortto()
    const id = (await body(await o.merge([person({ 'str::email': 'a@example.com' })]))).people[0].person_id
    const early = await o.call('DELETE', '/v1/person/delete', { inclusion_ids: [id] })
    expect(early.status).toBe(400)
    expect((await body(early)).details).toEqual([{ person_id: id, status: 'not-archived', error: expect.any(String) }])
    expect(o.state.people.has(id)).toBe(true)
    expect(await body(await o.call('PUT', '/v1/person/archive', { inclusion_ids: [id, 'unknown'] }))).toEqual({ scheduled_contacts: 0, archived_contacts: 1 })
    expect((await body(await o.find({ '$str::is': { field_id: 'str::email', value: 'a@example.com' } }))).contacts).toEqual([])
    expect(await body(await o.call('DELETE', '/v1/person/delete', { inclusion_ids: [id] }))).toEqual({ scheduled_contacts: 0, deleted_contacts: 1 })
    expect([o.state.people.has(id), o.state.deleted.has(id)]).toEqual([false, true])
    expect((await o.call('PUT', '/v1/person/archive', { ids: [id] })).status).toBe(400)
  })
})
