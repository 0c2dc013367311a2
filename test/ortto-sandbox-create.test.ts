import type { Loose } from './helpers'
import { describe, expect, it } from 'vitest'
import { createOrtto } from '../sandbox/ortto.js'
import { ACTIVITIES, FIELDS, body, clock, ortto, person } from './ortto-helpers'

// The Ortto stand-in's calls that create definitions (person/custom-field/create,
// definitions/activity/create), and how fast it finds people among many.
const field = (o: ReturnType<typeof ortto>, request: unknown) => o.call('POST', '/v1/person/custom-field/create', request)
const activity = (o: ReturnType<typeof ortto>, request: unknown) => o.call('POST', '/v1/definitions/activity/create', request)
const refusal = (status: number, text: string) => ({ request_id: expect.any(String), code: status, error: expect.stringContaining(text) })
const customCount = Object.keys(FIELDS).length
/** Field types and the prefix of their ids, as fields and activity attributes share them. */
const TYPE_PREFIXES = [
  ['text', 'str'],
  ['large_text', 'txt'],
  ['integer', 'int'],
  ['decimal', 'dec'],
  ['currency', 'cur'],
  ['bool', 'bol'],
  ['date', 'dtz'],
  ['time', 'tme'],
  ['phone', 'phn'],
  ['multi_select', 'sst'],
]
const activityCount = Object.keys(ACTIVITIES).length

describe('Ortto stand-in: person/custom-field/create', () => {
  it.each([...TYPE_PREFIXES, ['single_select', 'str']])('type %s -> id %s:cm:<slug>, answered flat as recorded live', async (type, prefix) => {
    const o = ortto()
    const request = { name: '  Favourite  Colour (2nd)! ', type, ...(type === 'single_select' && { values: ['red', 'blue'] }) }
    const response = await field(o, request)
    const id = `${prefix}:cm:favourite-colour-2nd`
    expect(response.status).toBe(200)
    expect(await body(response)).toEqual({
      name: 'Favourite  Colour (2nd)!',
      field_id: id,
      display_type: type,
    })
    expect(() => createOrtto({ customFields: { [id]: 'x' } })).not.toThrow() // the id passes the options' own pattern
  })

  it('the new field is listed by custom-field/get and instance-schema/get, and merges take it (checked by its type)', async () => {
    const o = ortto()
    const { field_id: id } = await body(await field(o, { name: 'Logins', type: 'integer' }))
    expect(id).toBe('int:cm:logins')
    const listed = (await body(await o.call('POST', '/v1/person/custom-field/get'))).fields
    expect(listed.at(-1)).toEqual({ field: { id, name: 'Logins', display_type: 'integer', liquid_name: 'people.custom.logins' }, tracked_value: false })
    const schema = await body(await o.call('POST', '/v1/instance-schema/get', { namespaces: ['cm'] }))
    expect(schema.namespaces.cm.fields[id]).toEqual({ id, name: 'Logins', display_type: 'integer', liquid_name: 'people.custom.logins' })
    expect((await body(await o.merge([person({ 'str::email': 'a@example.com', [id]: 3 })]))).people[0].status).toBe('created')
    expect(o.state.person('str::email', 'a@example.com')?.fields[id]).toBe(3)
    expect((await body(await o.merge([person({ 'str::email': 'a@example.com', [id]: '3' })]))).details[0].error).toContain(id)
    expect((await body(await o.merge([person({ 'str::email': 'b@example.com' })], { merge_by: [id, 'str::email'] }))).people[0].status).toBe('created')
  })

  it('a slug another custom field holds (any type) gets -2, -3…', async () => {
    const o = ortto()
    expect((await body(await field(o, { name: 'Age?', type: 'text' }))).field_id).toBe('str:cm:age-2') // int:cm:age is "Age"
    expect((await body(await field(o, { name: 'AGE!!', type: 'integer' }))).field_id).toBe('int:cm:age-3')
    expect((await body(await field(o, { name: '*', type: 'text' }))).field_id).toBe('str:cm:field')
    // At most 100 characters after the prefix, the suffix included (the ids' pattern)
    const x = (n: number) => 'x'.repeat(n)
    const long = await body(await field(o, { name: `${x(49)} ${x(50)}`, type: 'text' }))
    const again = await body(await field(o, { name: `${x(49)}_${x(50)}`, type: 'text' }))
    const dotted = await body(await field(o, { name: 'İ'.repeat(100), type: 'text' })) // lower-cased, longer than its name
    expect([long.field_id, again.field_id, dotted.field_id]).toEqual([`str:cm:${x(49)}-${x(50)}`, `str:cm:${x(49)}-${x(48)}-2`, `str:cm:${'i-'.repeat(49)}i`])
    for (const answer of [long, again, dotted]) expect(() => createOrtto({ customFields: { [answer.field_id]: 'x' } })).not.toThrow()
  })

  it.each([
    ['an unknown type', { name: 'Plan B', type: 'string' }, 'type must be one of'],
    ['no type', { name: 'Plan B' }, 'type must be one of'],
    ['no name', { type: 'text' }, 'name is required'],
    ['a blank name', { name: '   ', type: 'text' }, 'name is required'],
    ['a name that is not a text', { name: 7, type: 'text' }, 'name is required'],
    ['a name over 100 characters', { name: 'n'.repeat(101), type: 'text' }, 'longer than 100'],
    ['single_select without values', { name: 'Tier', type: 'single_select' }, 'needs values'],
    ['single_select with a blank value', { name: 'Tier', type: 'single_select', values: ['gold', ' '] }, 'needs values'],
    ['values on a text field', { name: 'Tier', type: 'text', values: ['gold'] }, 'values go only'],
    ['another key', { name: 'Tier', type: 'text', description: 'x' }, 'unsupported keys: description'],
    ['a list', [{ name: 'Tier', type: 'text' }], 'the body must be'],
  ])('%s -> 400', async (_, request, text) => {
    const o = ortto()
    const response = await field(o, request)
    expect([response.status, await body(response)]).toEqual([400, refusal(400, text)])
    expect(o.state.fields.size).toBe(14 + customCount)
  })

  it('a name of 100 characters is fine', async () => {
    expect((await field(ortto(), { name: 'n'.repeat(100), type: 'text' })).status).toBe(200)
  })

  it.each([
    [undefined, 400],
    [400, 400],
    [409, 409],
  ] as const)('a name that exists (any case, spaces around, built-ins too) -> duplicateStatus %s: %i', async (duplicateStatus, status) => {
    const o = ortto({ duplicateStatus })
    for (const name of ['plan', ' PLAN ', 'Email', 'external id']) {
      const response = await field(o, { name, type: 'text' })
      expect([response.status, await body(response)]).toEqual([status, refusal(status, 'already exists')])
    }
    expect((await field(o, { name: 'Tier', type: 'text' })).status).toBe(200)
    expect((await field(o, { name: 'tier ', type: 'integer' })).status).toBe(status)
    expect(o.state.fields.size).toBe(14 + customCount + 1)
  })

  it('duplicateStatus other than 400 or 409 is refused when the stand-in is made', () => {
    expect(() => createOrtto({ duplicateStatus: 422 as 400 })).toThrow(/duplicateStatus/)
  })

  it.each([
    [undefined, 100],
    [12, 12],
  ])('more custom fields than maxCustomFields (%s) -> 403 "limit"', async (maxCustomFields, cap) => {
    const o = ortto({ maxCustomFields })
    for (let i = customCount; i < cap; i++) expect((await field(o, { name: `Field ${i}`, type: 'text' })).status).toBe(200)
    const response = await field(o, { name: 'One more', type: 'text' })
    expect([response.status, await body(response)]).toEqual([403, refusal(403, 'limit')])
    expect((await body(await o.call('POST', '/v1/person/custom-field/get'))).fields).toHaveLength(cap)
  })
})

describe('Ortto stand-in: definitions/activity/create', () => {
  const signup = {
    name: 'Signed Up',
    icon_id: 'happy-illustration-icon',
    track_conversion_value: false,
    touch: true,
    filterable: true,
    visible_in_feeds: true,
    display_style: { type: 'activity', title: 'Signed up' },
    attributes: [
      { name: 'Plan', display_type: 'text' },
      { name: 'Seats', display_type: 'integer' },
      { name: 'Contact email', display_type: 'email' },
    ],
  }

  it("answers as recorded live: the activity id nested (custom_activity.activity_field_id), its attributes' field ids; keeps the settings", async () => {
    const o = ortto({ now: () => Date.parse('2025-11-06T00:06:31.725Z') })
    const response = await activity(o, signup)
    expect(response.status).toBe(200)
    const at = '2025-11-06T00:06:31.725Z'
    const liquid = (part: string) => `activity.custom.signed-up.${part}`
    expect(await body(response)).toEqual({
      custom_activity: {
        name: 'Signed Up',
        activity_field_id: 'act:cm:signed-up',
        state: 'awaiting_implementation',
        display_mode: { type: 'activity' },
        attributes: [
          { name: 'Plan', field_id: 'str:cm:plan', display_type: 'text', liquid_name: liquid('plan') },
          { name: 'Seats', field_id: 'int:cm:seats', display_type: 'integer', liquid_name: liquid('seats') },
          { name: 'Contact email', field_id: 'str:cm:contact-email', display_type: 'email', liquid_name: liquid('contact-email') },
        ],
        icon_id: 'happy-illustration-icon',
        track_conversion_value: false,
        touch: true,
        filterable: true,
        visible_in_feeds: true,
        created_by: 'Public API',
        created_at: at,
        edited_at: at,
      },
    })
    expect(o.state.definitions.get('act:cm:signed-up')?.settings).toEqual({
      icon_id: 'happy-illustration-icon',
      track_conversion_value: false,
      touch: true,
      filterable: true,
      visible_in_feeds: true,
      display_style: { type: 'activity', title: 'Signed up' },
    })
    const ids = { 'act:cm:signed-up': { name: 'Signed Up', attributes: { 'str:cm:plan': 'Plan', 'int:cm:seats': 'Seats', 'str:cm:contact-email': 'Contact email' } } }
    expect(() => createOrtto({ activities: ids })).not.toThrow() // the ids pass the options' own patterns
  })

  it.each([...TYPE_PREFIXES, ['email', 'str']])('an attribute of display_type %s gets a %s:cm: id', async (type, prefix) => {
    const answer = await body(await activity(ortto(), { name: 'Thing', icon_id: 'i', attributes: [{ name: 'The Value', display_type: type }] }))
    expect(answer.custom_activity.attributes).toEqual([{ name: 'The Value', display_type: type, field_id: `${prefix}:cm:the-value`, liquid_name: 'activity.custom.thing.the-value' }])
  })

  it("instance-schema/get lists it as it lists the options' activities, and activities/create takes it", async () => {
    const o = ortto()
    const simple = {
      name: 'Signed Up',
      icon_id: 'i',
      attributes: [
        { name: 'Plan', display_type: 'text' },
        { name: 'Seats', display_type: 'integer' },
      ],
    }
    expect((await activity(o, simple)).status).toBe(200)
    const given = ortto({ activities: { 'act:cm:signed-up': { name: 'Signed Up', attributes: { 'str:cm:plan': 'Plan', 'int:cm:seats': 'Seats' } } } })
    const listed = async (instance: ReturnType<typeof ortto>) => (await body(await instance.call('POST', '/v1/instance-schema/get', { namespaces: [] }))).namespaces.cm.fields['act:cm:signed-up']
    expect(await listed(o)).toEqual(await listed(given))
    expect(await listed(o)).toEqual({
      id: 'act:cm:signed-up',
      name: 'Signed Up',
      display_type: 'activity',
      attributes: [
        { id: 'str:cm:plan', name: 'Plan', display_type: 'text', liquid_name: 'activity.signed-up.plan' },
        { id: 'int:cm:seats', name: 'Seats', display_type: 'integer', liquid_name: 'activity.signed-up.seats' },
      ],
    })
    const track = (attributes: unknown) => o.track([{ activity_id: 'act:cm:signed-up', attributes, fields: { 'str::ei': 'u1' } }])
    expect((await body(await track({ 'str:cm:plan': 'pro', 'int:cm:seats': 3 }))).activities[0].status).toBe('queued')
    expect((await body(await track({ 'int:cm:seats': '3' }))).details[0].error).toContain('int:cm:seats')
    expect(o.state.activities).toEqual([expect.objectContaining({ activity_id: 'act:cm:signed-up', ei: 'u1', attributes: { 'str:cm:plan': 'pro', 'int:cm:seats': 3 } })])
  })

  it('ids: an activity slug taken gets -2; two attribute names with one slug differ by a suffix', async () => {
    const o = ortto()
    const answer = await body(
      await activity(o, {
        name: 'Order completed!',
        icon_id: 'i',
        attributes: [
          { name: 'Total', display_type: 'integer' },
          { name: 'total?', display_type: 'decimal' },
        ],
      }),
    )
    expect(answer.custom_activity).toMatchObject({
      activity_field_id: 'act:cm:order-completed-2',
      name: 'Order completed!',
      attributes: [
        { name: 'Total', display_type: 'integer', field_id: 'int:cm:total' },
        { name: 'total?', display_type: 'decimal', field_id: 'dec:cm:total-2' },
      ],
    })
  })

  it.each([
    ['no name', { icon_id: 'i' }, 'name is required'],
    ['a blank name', { name: ' ', icon_id: 'i' }, 'name is required'],
    ['a name over 100 characters', { name: 'a'.repeat(101), icon_id: 'i' }, 'longer than 100'],
    ['no icon_id', { name: 'Thing' }, 'icon_id is required'],
    ['a blank icon_id', { name: 'Thing', icon_id: '' }, 'icon_id is required'],
    ['another key', { name: 'Thing', icon_id: 'i', description: 'x' }, 'unsupported keys: description'],
    ['touch not a boolean', { name: 'Thing', icon_id: 'i', touch: 'yes' }, 'touch must be a boolean'],
    ['display_style not an object', { name: 'Thing', icon_id: 'i', display_style: 'x' }, 'display_style'],
    ['attributes not a list', { name: 'Thing', icon_id: 'i', attributes: { total: 'integer' } }, 'attributes must be a list'],
    ['an attribute of an unknown type', { name: 'Thing', icon_id: 'i', attributes: [{ name: 'Total', display_type: 'number' }] }, 'display_type must be one of'],
    ['a single_select attribute', { name: 'Thing', icon_id: 'i', attributes: [{ name: 'Tier', display_type: 'single_select' }] }, 'display_type must be one of'],
    ['an attribute with another key', { name: 'Thing', icon_id: 'i', attributes: [{ name: 'Total', display_type: 'integer', field_id: 'int:cm:total' }] }, 'an attribute must be'],
    ['an attribute without a name', { name: 'Thing', icon_id: 'i', attributes: [{ display_type: 'integer' }] }, 'name is required'],
    [
      'two attributes of one name',
      {
        name: 'Thing',
        icon_id: 'i',
        attributes: [
          { name: 'Total', display_type: 'integer' },
          { name: ' total', display_type: 'text' },
        ],
      },
      'must differ',
    ],
    ['16 attributes', { name: 'Thing', icon_id: 'i', attributes: Array.from({ length: 16 }, (_, i) => ({ name: `A${i}`, display_type: 'text' })) }, 'at most 15'],
  ])('%s -> 400', async (_, request, text) => {
    const o = ortto()
    const response = await activity(o, request)
    expect([response.status, await body(response)]).toEqual([400, refusal(400, text)])
    expect(o.state.definitions.size).toBe(activityCount)
  })

  it('15 attributes are fine', async () => {
    const attributes = Array.from({ length: 15 }, (_, i) => ({ name: `A${i}`, display_type: 'text' }))
    expect((await body(await activity(ortto(), { name: 'Thing', icon_id: 'i', attributes }))).custom_activity.attributes).toHaveLength(15)
  })

  it.each([
    [undefined, 400],
    [409, 409],
  ] as const)('a name that exists (any case, trimmed, act:: too) -> duplicateStatus %s: %i', async (duplicateStatus, status) => {
    const o = ortto({ duplicateStatus })
    for (const name of ['order completed', ' STEP ACTIVATED ', 'Tag added']) {
      const response = await activity(o, { name, icon_id: 'i' })
      expect([response.status, await body(response)]).toEqual([status, refusal(status, 'already exists')])
    }
    expect((await activity(o, { name: 'Signed Up', icon_id: 'i' })).status).toBe(200)
    expect((await activity(o, { name: 'signed up', icon_id: 'i' })).status).toBe(status)
    expect(o.state.definitions.size).toBe(activityCount + 1)
  })

  it.each([
    [undefined, 50],
    [5, 5],
  ])('more custom activities than maxActivities (%s) -> 403 "limit"', async (maxActivities, cap) => {
    const o = ortto({ maxActivities })
    for (let i = activityCount; i < cap; i++) expect((await activity(o, { name: `Activity ${i}`, icon_id: 'i' })).status).toBe(200)
    const response = await activity(o, { name: 'One more', icon_id: 'i' })
    expect([response.status, await body(response)]).toEqual([403, refusal(403, 'limit')])
    expect(o.state.definitions.size).toBe(cap)
  })
})

describe('Ortto stand-in: the create calls go through the transport', () => {
  it('counted in calls, rate-limited, faults and failureRate injected, reset forgets what they made', async () => {
    const t = clock()
    const o = ortto({ rateLimit: 1, now: t.now })
    o.state.inject({ status: 503, match: (c) => c.path === '/v1/definitions/activity/create' })
    expect((await activity(o, { name: 'Thing', icon_id: 'i' })).status).toBe(503)
    t.advance(1000)
    expect((await field(o, { name: 'Tier', type: 'text' })).status).toBe(200)
    expect((await activity(o, { name: 'Thing', icon_id: 'i' })).status).toBe(429)
    t.advance(1000)
    expect((await activity(o, { name: 'Thing', icon_id: 'i' })).status).toBe(200)
    expect(o.state.calls.map((c) => [c.path, c.status])).toEqual([
      ['/v1/definitions/activity/create', 503],
      ['/v1/person/custom-field/create', 200],
      ['/v1/definitions/activity/create', 429],
      ['/v1/definitions/activity/create', 200],
    ])
    o.state.reset()
    expect([o.state.fields.has('str:cm:tier'), o.state.definitions.has('act:cm:thing')]).toEqual([false, false])
    expect([o.state.fields.size, o.state.definitions.size]).toEqual([14 + customCount, activityCount])
    const flaky = ortto({ failureRate: 1 })
    expect([429, 500, 503]).toContain((await field(flaky, { name: 'Tier', type: 'text' })).status)
    expect(flaky.state.fields.has('str:cm:tier')).toBe(false)
  })

  it('refusals (duplicates, caps) count toward the ban; banned, they answer 403 "banned"', async () => {
    const t = clock()
    const o = ortto({ now: t.now, maxActivities: activityCount })
    for (let i = 0; i < 7; i++) {
      await field(o, { name: 'Plan', type: 'text' })
      t.advance(500)
    }
    for (let i = 0; i < 7; i++) {
      await activity(o, { name: `New ${i}`, icon_id: 'i' })
      t.advance(500)
    }
    expect(o.state.banned()).toBe(false)
    expect((await field(o, { name: 'x'.repeat(101), type: 'text' })).status).toBe(400) // the 15th
    expect(o.state.banned()).toBe(true)
    const banned = await field(o, { name: 'Tier', type: 'text' })
    expect([banned.status, (await body(banned)).error]).toEqual([403, expect.stringMatching(/^banned/)])
    expect(o.state.fields.has('str:cm:tier')).toBe(false)
  })

  it('the log names what is created and the new id', async () => {
    const lines: string[] = []
    const o = ortto({ log: (line) => lines.push(line) })
    await field(o, { name: 'Tier', type: 'text' })
    await activity(o, { name: 'Signed Up', icon_id: 'i', attributes: [{ name: 'Seats', display_type: 'integer' }] })
    await field(o, { name: 'Plan', type: 'text' })
    expect(lines).toEqual([
      'POST /v1/person/custom-field/create -> 200 = str:cm:tier  "Tier" (text)',
      'POST /v1/definitions/activity/create -> 200 = act:cm:signed-up  "Signed Up" with 1 attributes: Seats (integer)',
      'POST /v1/person/custom-field/create -> 400 "a field named "Plan" already exists"  "Plan" (text)',
    ])
  })
})

describe('Ortto stand-in: finding people among many', () => {
  it('20,000 people merged in 200 calls of 100, then found again (by email in another case, and by activities), well under a second each', { timeout: 60_000 }, async () => {
    const o = ortto()
    const batch = (from: number, make: (n: number) => unknown) => Array.from({ length: 100 }, (_, i) => make(from + i))
    let started = Date.now()
    const ids: string[] = []
    for (let call = 0; call < 200; call++) {
      const answer = await body(await o.merge(batch(call * 100, (n) => person({ 'str::ei': `u${n}`, 'str::email': `p${n}@example.com` }))))
      for (const p of answer.people) {
        expect(p.status).toBe('created')
        ids.push(p.person_id)
      }
    }
    const creating = Date.now() - started
    started = Date.now()
    for (let call = 0; call < 100; call++) {
      const answer = await body(await o.merge(batch(call * 100, (n) => person({ 'str::email': `P${n}@Example.com`, 'str::first': `F${n}` }))))
      expect(answer.people.map((p: Loose) => p.person_id)).toEqual(ids.slice(call * 100, call * 100 + 100))
    }
    for (let call = 100; call < 200; call++) {
      const answer = await body(await o.track(batch(call * 100, (n) => ({ activity_id: 'act:cm:step-activated', attributes: {}, fields: { 'str::ei': `u${n}` } }))))
      expect(answer.activities.map((a: Loose) => a.person_id)).toEqual(ids.slice(call * 100, call * 100 + 100))
    }
    const finding = Date.now() - started
    expect([o.state.people.size, o.state.activities.length]).toEqual([20_000, 10_000])
    expect(o.state.person('str::ei', 'u19999')?.fields['str::email']).toBe('p19999@example.com')
    expect(creating).toBeLessThan(5_000)
    expect(finding).toBeLessThan(5_000)
  })

  it('the index follows every change: a new email, a cleared one, archive (still found) and delete (not)', async () => {
    const o = ortto()
    const merge = async (fields: Record<string, unknown>, extra = {}) => (await body(await o.merge([person(fields)], extra))).people[0]
    const p1 = (await merge({ 'str::ei': 'u1', 'str::email': 'a@example.com' })).person_id
    expect(await merge({ 'str::ei': 'u1', 'str::email': 'b@example.com' })).toEqual({ person_id: p1, status: 'merged' })
    expect((await merge({ 'str::email': 'A@example.com' }, { merge_by: ['str::email'] })).status).toBe('created') // a@ left p1
    expect(await merge({ 'str::email': 'B@EXAMPLE.com' }, { merge_by: ['str::email'] })).toEqual({ person_id: p1, status: 'merged' })
    expect(await merge({ 'str::ei': 'u1', 'str::email': 'b@example.com' }, { find_strategy: 2 })).toEqual({ person_id: p1, status: 'merged' })
    await merge({ 'str::ei': 'u1', 'str::email': null })
    expect((await merge({ 'str::email': 'b@example.com' }, { merge_by: ['str::email'] })).status).toBe('created')
    await o.call('PUT', '/v1/person/archive', { inclusion_ids: [p1] })
    expect(await merge({ 'str::ei': 'u1' })).toEqual({ person_id: p1, status: 'merged' })
    await o.call('DELETE', '/v1/person/delete', { inclusion_ids: [p1] })
    expect((await merge({ 'str::ei': 'u1' })).person_id).not.toBe(p1)
    expect(o.state.person('str::ei', 'u1')?.id).not.toBe(p1)
  })

  it('among several people with one value the oldest is found, as a scan would; other merge_by fields too', async () => {
    const o = ortto()
    const merge = async (fields: Record<string, unknown>, extra = {}) => (await body(await o.merge([person(fields)], extra))).people[0].person_id
    const older = await merge({ 'str::ei': 'u1', 'str::email': 'a@example.com', 'str:cm:plan': 'pro' })
    const newer = await merge({ 'str::ei': 'u2', 'str::email': 'a@example.com', 'str:cm:plan': 'pro' }, { find_strategy: 2 })
    expect(newer).not.toBe(older)
    await merge({ 'str::ei': 'u1', 'str::email': 'c@example.com' })
    await merge({ 'str::ei': 'u1', 'str::email': 'a@example.com' }) // back: still the older of the two
    expect(await merge({ 'str::email': 'a@example.com' }, { merge_by: ['str::email'] })).toBe(older)
    expect(await merge({ 'str::email': 'a@example.com', 'str:cm:plan': 'pro' }, { merge_by: ['str:cm:plan'] })).toBe(older)
    await merge({ 'str::ei': 'u1', 'str:cm:plan': 'free' })
    expect(await merge({ 'str::email': 'a@example.com', 'str:cm:plan': 'pro' }, { merge_by: ['str:cm:plan'] })).toBe(newer)
    // find_strategy 1: the email finds only people without an ei
    const bare = await merge({ 'str::email': 'z@example.com' }, { merge_by: ['str::email'] })
    expect(await merge({ 'str::ei': 'u4', 'str::email': 'z@example.com' }, { find_strategy: 1 })).toBe(bare)
    expect([older, newer, bare]).not.toContain(await merge({ 'str::ei': 'u5', 'str::email': 'a@example.com' }, { find_strategy: 1 }))
  })
})
