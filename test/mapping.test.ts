import fc from 'fast-check'
import { beforeEach, describe, expect, it } from 'vitest'
import engageAudience from '../examples/identify-engage-audience.json'
import { contactProblem } from '../sandbox/autopilot.js'
import type { ValueType as CustomType } from '../src/values'
import { strictDate } from '../src/values'
import { checkEvent, type SegmentEvent } from '../src/segment/schema'
import { toAction, type Action } from '../src/destinations/autopilot/mapping'
import { freshDb, json, setup } from './helpers'

const settings = { triggers: new Map([['Audience Entered', '0003']]), fieldTypes: new Map<string, CustomType>() }
const parse = (input: unknown): SegmentEvent => {
  const checked = checkEvent(input)
  if (!checked.ok) throw new Error(checked.message)
  return checked.event
}
const map = (input: unknown, more: Partial<typeof settings> = {}) => toAction(parse(input), { ...settings, ...more }) as Extract<Action, { kind: 'upsert' | 'enter' }>

// Segment's spec example of an identify (segment.com/docs/connections/spec/identify).
const specIdentify = {
  anonymousId: '507f191e810c19729de860ea',
  channel: 'browser',
  context: { ip: '8.8.8.8', userAgent: 'Mozilla/5.0 (Macintosh; Intel Mac OS X 10_10_2)' },
  integrations: { All: false, Mixpanel: true, Salesforce: true },
  messageId: '022bb90c-bbac-11e4-8dfc-aa07a5b093db',
  receivedAt: '2015-02-23T22:28:55.387Z',
  sentAt: '2015-02-23T22:28:55.111Z',
  timestamp: '2015-02-23T22:28:55.111Z',
  traits: { name: 'Peter Gibbons', email: 'peter@example.com', plan: 'premium', logins: 5, address: { street: '6th St', city: 'San Francisco', state: 'CA', postalCode: '94103', country: 'USA' } },
  type: 'identify',
  userId: '97980cfea0067',
  version: '1.1',
}

describe('where traits are', () => {
  it('maps the Segment spec example', () => {
    expect(map(specIdentify).person).toEqual({
      Email: 'peter@example.com',
      FirstName: 'Peter',
      LastName: 'Gibbons',
      MailingStreet: '6th St',
      MailingCity: 'San Francisco',
      MailingState: 'CA',
      MailingPostalCode: '94103',
      MailingCountry: 'USA',
      custom: { 'string--plan': 'premium', 'float--logins': 5 },
    })
  })

  it('reads context.traits when an identify has no top-level traits (as some sources send it)', () => {
    const action = map({ type: 'identify', userId: 'u', context: { traits: { email: 'ct@example.com', firstName: 'Con', lastName: 'Text', plan: 'pro' } } })
    expect(action.person).toEqual({ Email: 'ct@example.com', FirstName: 'Con', LastName: 'Text', custom: { 'string--plan': 'pro' } })
  })

  it('merges traits over context.traits: traits win', () => {
    const action = map({ type: 'identify', traits: { email: 'a@example.com', plan: 'new' }, context: { traits: { plan: 'old', title: 'CTO', first_name: 'Ada' } } })
    expect(action.person).toEqual({ Email: 'a@example.com', FirstName: 'Ada', Title: 'CTO', custom: { 'string--plan': 'new' } })
  })
})

describe('standard names in any case or spelling', () => {
  it.each([
    [{ firstname: 'Ada', lastname: 'Lovelace' }],
    [{ first_name: 'Ada', last_name: 'Lovelace' }],
    [{ FirstName: 'Ada', LastName: 'Lovelace' }],
    [{ 'First Name': 'Ada', 'Last Name': 'Lovelace' }],
    [{ FIRST_NAME: 'Ada', LAST_NAME: 'Lovelace' }],
  ])('%j -> FirstName, LastName', (names) => {
    expect(map({ type: 'identify', traits: { email: 'a@example.com', ...names } }).person).toEqual({ Email: 'a@example.com', FirstName: 'Ada', LastName: 'Lovelace' })
  })

  it('prefers the usual spelling when two spellings of one trait arrive together', () => {
    expect(map({ type: 'identify', traits: { email: 'a@example.com', FIRSTNAME: 'Shout', firstName: 'Ada' } }).person.FirstName).toBe('Ada')
  })
})

describe('Engage audiences', () => {
  it('an audience identify sets the audience boolean (true on entry, false on exit)', () => {
    expect(map(engageAudience).person.custom).toEqual({ 'boolean--order_completed_last_30days': true })
    expect(map({ ...engageAudience, traits: { ...engageAudience.traits, order_completed_last_30days: false } }).person.custom).toEqual({ 'boolean--order_completed_last_30days': false })
  })

  it('a mapped Audience Entered sets the boolean and enters the journey: the contact first, then the trigger', async () => {
    const { post, autopilot } = setup({ AUTOPILOT_TRIGGERS: JSON.stringify({ 'Audience Entered': '0003' }) })
    const response = await post({
      type: 'track',
      messageId: 'aud-1',
      userId: 'u-aud',
      event: 'Audience Entered',
      properties: { audience_key: 'vip_customers', vip_customers: true },
      context: { traits: { email: 'vip@example.com' }, personas: { computation_class: 'audience', computation_key: 'vip_customers' } },
    })
    expect(response.status).toBe(200)
    expect(autopilot.calls.map((call) => [call.path, call.status])).toEqual([
      ['/contact', 200],
      ['/trigger/0003/contact/vip%40example.com', 200],
    ])
    expect(autopilot.contacts.get('vip@example.com')?.custom).toEqual({ 'boolean--vip_customers': true })
    expect(autopilot.enrolments).toHaveLength(1)
  })
})

describe('dates: recognised strictly, never invented', () => {
  it.each(['Version 2', '0', '12', '2026-02-30', '2026-13-01', '2025-02-29', 'tomorrow', '2026-11-28T25:00:00Z', '12/03/2026'])('a date-named trait holding %j is left out with an issue', (value) => {
    const action = map({ type: 'identify', traits: { email: 'a@example.com', createdAt: value } })
    expect(action.person.custom).toBeUndefined()
    expect(action.issues).toEqual([{ path: 'traits.createdAt', message: expect.stringContaining('is not a date') }])
  })

  it.each([
    ['2026-11-28T10:00:00.000Z', '2026-11-28T10:00:00.000Z'], // analytics.js, Ruby
    ['2026-11-28T10:00:00+0000', '2026-11-28T10:00:00+0000'], // Android
    ['2026-11-28T10:00:00.123456+00:00', '2026-11-28T10:00:00.123456+00:00'], // Python
    ['2026-11-28T10:00:00.1234567Z', '2026-11-28T10:00:00.1234567Z'], // .NET
    ['2026-11-28T10:00:00+05', '2026-11-28T05:00:00.000Z'], // an hours-only offset: in UTC
    ['2024-02-29', '2024-02-29'],
    ['Sat, 28 Nov 2026 10:00:00 GMT', '2026-11-28T10:00:00.000Z'], // JavaScript's toUTCString()
  ])('%j is a date: sent as %j', (value, sent) => {
    expect(strictDate(value)).toBe(sent)
    expect(map({ type: 'identify', traits: { email: 'a@example.com', createdAt: value } }).person.custom).toEqual({ 'date--createdAt': sent })
  })
})

describe('numbers and text', () => {
  it('1e309 as a phone is left out with an issue, not sent as "Infinity"', async () => {
    const { post, autopilot } = setup()
    const response = await post('{"type":"identify","messageId":"inf","traits":{"email":"inf@example.com","phone":1e309,"score":1e309}}')
    expect(response.status).toBe(200)
    expect(autopilot.calls[0].body.contact).toEqual({ Email: 'inf@example.com' })
    expect((await json(response)).issues).toEqual([
      { path: 'traits.phone', message: 'is not a finite number; not sent' },
      { path: 'traits.score', message: expect.stringContaining('is not a finite number') },
    ])
  })
})

describe('one contact per email', () => {
  it('merges emails that differ only in case into one lowercased contact; the newest event wins', async () => {
    const { post, autopilot } = setup()
    await post([
      { type: 'identify', messageId: 'c2', traits: { email: 'Ada@Example.com', plan: 'newer' }, timestamp: '2026-11-28T11:00:00Z' },
      { type: 'identify', messageId: 'c1', traits: { email: 'ada@example.com', plan: 'older' }, timestamp: '2026-11-28T10:00:00Z' },
    ])
    expect(autopilot.calls.map((call) => call.body.contact ?? call.body.contacts)).toEqual([{ Email: 'ada@example.com', custom: { 'string--plan': 'newer' } }])
  })
})

describe('a bad reserved trait costs that field, not the event', () => {
  beforeEach(freshDb)

  it('an address given as text is left out; the rest is delivered', async () => {
    const { post, autopilot } = setup()
    const response = await post({ type: 'identify', messageId: 'addr', traits: { email: 'addr@example.com', firstName: 'Ada', address: '6th St, San Francisco' } })
    expect(response.status).toBe(200)
    expect(await json(response)).toMatchObject({ status: 'delivered', issues: [{ path: 'traits.address', message: expect.stringContaining('must be an object') }] })
    expect(autopilot.contacts.get('addr@example.com')).toMatchObject({ FirstName: 'Ada' })
  })

  it("an empty traits.email next to a known userId: the userId's email is used, the empty one reported", async () => {
    const { post, autopilot } = setup()
    await post({ type: 'identify', messageId: 'e1', userId: 'u-empty', traits: { email: 'known@example.com' } })
    const response = await post({ type: 'identify', messageId: 'e2', userId: 'u-empty', traits: { email: '', plan: 'pro' } })
    expect(response.status).toBe(200)
    expect((await json(response)).issues).toEqual([{ path: 'traits.email', message: 'must not be empty; not used' }])
    expect(autopilot.contacts.get('known@example.com')?.custom).toEqual({ 'string--plan': 'pro' })
  })
})

describe('a track as analytics-node sends it', () => {
  it('is accepted as is (library metadata and all) and enters its journey', async () => {
    const { post, autopilot } = setup({ AUTOPILOT_TRIGGERS: JSON.stringify({ 'Order Completed': '0002' }) })
    autopilot.contacts.set('buyer@example.com', { Email: 'buyer@example.com', custom: {} })
    const response = await post({
      type: 'track',
      event: 'Order Completed',
      userId: '019mr8mf4r',
      properties: { email: 'buyer@example.com', revenue: 19.99, products: [{ sku: 'A-1', price: 19.99 }] },
      context: { library: { name: 'analytics-node', version: '6.0.0' } },
      _metadata: { nodeVersion: '20.20.2', jsRuntime: 'node' },
      integrations: {},
      messageId: 'node-next-1732788000000-7b3c2f1e-9a8d-4c6b-b5e4-3f2a1d0c9b8a',
      timestamp: '2026-11-28T10:00:00.000Z',
      originalTimestamp: '2026-11-28T10:00:00.000Z',
    })
    expect(response.status).toBe(200)
    expect(autopilot.enrolments).toEqual([expect.objectContaining({ triggerId: '0002', email: 'buyer@example.com' })])
  })
})

describe('property: any trait becomes a field Autopilot accepts, or an issue — never an invented value', () => {
  const names = fc.oneof(fc.constantFrom('createdAt', 'plan', 'age', 'birthday', 'Renewal Date', 'score', 'trial_end_date'), fc.string({ minLength: 1, maxLength: 12 }))
  const values = fc.oneof(
    fc.string({ maxLength: 30 }),
    fc.constantFrom('2026-02-30', 'Version 2', '0', '12', '2026-11-28T10:00:00Z', 'true', '42', '4.2e1'),
    fc.double(),
    fc.integer(),
    fc.boolean(),
    fc.array(fc.oneof(fc.string({ maxLength: 5 }), fc.integer()), { maxLength: 3 }),
  )
  const accountTypes = fc.constantFrom<CustomType | undefined>(undefined, 'string', 'integer', 'float', 'boolean', 'date')

  it('holds for 2,000 traits', () => {
    fc.assert(
      fc.property(names, values, accountTypes, (name, value, accountType) => {
        const fieldName = name.trim().replace(/\s+/g, '--')
        const accountFields = accountType ? { byName: new Map([[fieldName, { name: fieldName, type: accountType }]]), byLowerName: new Map() } : undefined
        const input = { type: 'identify', traits: { email: 'p@example.com', [name]: value } }
        const checked = checkEvent(input)
        if (!checked.ok) return
        const action = toAction(checked.event, { ...settings, accountFields })
        if (action.kind !== 'upsert') return
        expect(contactProblem(action.person, new Map(accountType ? [[fieldName, accountType]] : []))).toBeUndefined()
        const sent = Object.entries(action.person.custom ?? {})
        const reported = action.issues ?? []
        const standard = Object.keys(action.person).filter((key) => key !== 'Email' && key !== 'custom')
        // Accounted for: sent (as a custom or standard field), reported, or a name that is never sent.
        expect(sent.length + reported.length + standard.length > 0 || !fieldName || ['__proto__', 'constructor', 'prototype'].includes(name) || value === null).toBe(true)
        for (const [key, out] of sent) {
          const type = key.slice(0, key.indexOf('--'))
          if (type === 'date') expect(strictDate(String(value)) ?? (typeof value === 'number' ? out : undefined)).toBe(out)
          if (type === 'integer' || type === 'float') expect(out).toBe(typeof value === 'string' ? Number(value) : value)
          if (type === 'boolean') expect(String(out)).toBe(typeof value === 'boolean' ? String(value) : String(value).trim().toLowerCase())
        }
      }),
      { numRuns: 2000 },
    )
  })
})
