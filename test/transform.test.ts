import { describe, expect, it } from 'vitest'
import { contactProblem } from '../sandbox/autopilot.js'
import type { ValueType as CustomType } from '../src/values'
import { checkEvent, type SegmentEvent } from '../src/segment/schema'
import { mergeContacts, MISSING_IDENTIFIER, toAction, traitsToContact, type Contact } from '../src/destinations/autopilot/mapping'
import { customName } from '../src/destinations/autopilot/fields'

const settings = {
  triggers: new Map([['Step Activated', '0001']]),
  fieldTypes: new Map<string, CustomType>(),
}
const EMAIL = 'jane@example.com'

/** Validates like the Worker does, then maps. */
function event(input: Record<string, unknown>): SegmentEvent {
  const checked = checkEvent(input)
  if (!checked.ok) throw new Error(checked.message)
  return checked.event
}
function contactFrom(traits: Record<string, unknown>, fieldTypes = settings.fieldTypes): Contact {
  const action = toAction(event({ type: 'identify', userId: 'u', traits: { email: EMAIL, ...traits } }), { ...settings, fieldTypes })
  if (action.kind !== 'upsert') throw new Error(`expected an upsert, got ${action.kind}`)
  expect(contactProblem(action.person)).toBeUndefined()
  return action.person
}

describe('identify: reserved traits -> standard fields', () => {
  it.each([
    [{ firstName: 'Ada' }, { FirstName: 'Ada' }],
    [{ first_name: 'Ada' }, { FirstName: 'Ada' }],
    [{ lastName: 'Lovelace' }, { LastName: 'Lovelace' }],
    [{ last_name: 'Lovelace' }, { LastName: 'Lovelace' }],
    [{ name: 'Ada King Lovelace' }, { FirstName: 'Ada', LastName: 'King Lovelace' }],
    [{ name: 'Cher' }, { FirstName: 'Cher' }],
    [{ phone: '+44 20 7946 0000' }, { Phone: '+44 20 7946 0000' }],
    [{ phone: 5550100 }, { Phone: '5550100' }],
    [{ mobile: '07700 900000' }, { MobilePhone: '07700 900000' }],
    [{ mobilePhone: '07700 900001' }, { MobilePhone: '07700 900001' }],
    [{ mobile_phone: '07700 900002' }, { MobilePhone: '07700 900002' }],
    [{ title: 'CTO' }, { Title: 'CTO' }],
    [{ website: 'https://example.com' }, { Website: 'https://example.com' }],
    [{ company: 'Analytical Engines' }, { Company: 'Analytical Engines' }],
    [{ company: { name: 'Analytical Engines' } }, { Company: 'Analytical Engines' }],
    [{ company: { employee_count: 42 } }, { NumberOfEmployees: '42' }],
    [{ company: { industry: 'Computing' } }, { Industry: 'Computing' }],
    [{ industry: 'Computing' }, { Industry: 'Computing' }],
    [{ address: { street: '1 Main St' } }, { MailingStreet: '1 Main St' }],
    [{ address: { city: 'London' } }, { MailingCity: 'London' }],
    [{ address: { state: 'Greater London' } }, { MailingState: 'Greater London' }],
    [{ address: { postalCode: 'N1 9GU' } }, { MailingPostalCode: 'N1 9GU' }],
    [{ address: { postal_code: 'N1 9GU' } }, { MailingPostalCode: 'N1 9GU' }],
    [{ address: { country: 'UK' } }, { MailingCountry: 'UK' }],
    [{ leadSource: 'Webinar' }, { LeadSource: 'Webinar' }],
    [{ lead_source: 'Webinar' }, { LeadSource: 'Webinar' }],
    [{ LeadSource: 'Webinar' }, { LeadSource: 'Webinar' }],
    [{ status: 'Customer' }, { Status: 'Customer' }],
    [{ salutation: 'Dr' }, { Salutation: 'Dr' }],
    [{ twitter: '@ada' }, { Twitter: '@ada' }],
    [{ linkedin: 'in/ada' }, { LinkedIn: 'in/ada' }],
    [{ fax: '+44 20 7946 0001' }, { Fax: '+44 20 7946 0001' }],
    [{ unsubscribed: true }, { unsubscribed: true }],
    [{ unsubscribed: false }, { unsubscribed: false }],
    [{ newEmail: 'ada@new.example.com' }, { _NewEmail: 'ada@new.example.com' }],
    [{ _NewEmail: 'ada@new.example.com' }, { _NewEmail: 'ada@new.example.com' }],
  ])('%j -> %j', (traits, expected) => {
    expect(contactFrom(traits)).toEqual({ Email: EMAIL, ...expected })
  })

  it('uses firstName/lastName over name, and splits name only when both are absent', () => {
    expect(contactFrom({ name: 'Ada Lovelace', firstName: 'Augusta' })).toEqual({ Email: EMAIL, FirstName: 'Augusta' })
  })

  it('reports a name that is a list or blank instead of dropping it silently (found by the mapping property)', () => {
    for (const [name, message] of [
      [[], 'must be text; not sent'],
      [['Ada', 'Lovelace'], 'must be text; not sent'],
      ['   ', 'is blank; not sent'],
    ] as const) {
      const { contact, issues } = traitsToContact(EMAIL, [['traits', { name }]], settings)
      expect(contact).toEqual({ Email: EMAIL })
      expect(issues).toEqual([{ path: 'traits.name', message }])
    }
  })

  it('never takes a trait spelled like a prototype key ("Constructor", "constructor ") for a standard field (found by the mapping property)', () => {
    const { contact, issues } = traitsToContact(EMAIL, [['traits', { 'constructor ': 'a', Constructor: 'b', company: { CONSTRUCTOR: 'c' }, address: { con_structor: 'd' } }]], settings)
    expect(Object.keys(contact).sort()).toEqual(['Email', 'custom'])
    expect(contactProblem(contact, new Map())).toBeUndefined()
    expect(contact.custom).toEqual({ 'string--Constructor': 'b', 'string--company--CONSTRUCTOR': 'c', 'string--address--con_structor': 'd' })
    // Autopilot refuses a field named constructor: the trait is left out, and the answer says so.
    expect(issues).toEqual([{ path: 'traits.constructor ', message: expect.stringMatching(/^the name cannot be an Autopilot field .*; not sent$/) }])
  })

  it('says so when a trait name cannot be a field (blank, over 200 characters)', () => {
    const long = 'x'.repeat(201)
    const { contact, issues } = traitsToContact(EMAIL, [['traits', { '  ': 1, [long]: 2, plan: 'pro' }]], settings)
    expect(contact.custom).toEqual({ 'string--plan': 'pro' })
    expect(issues.map((issue) => issue.path)).toEqual(['traits.  ', `traits.${long}`])
  })

  it('takes the email from context.traits when traits has none', () => {
    const action = toAction(event({ type: 'identify', userId: 'u', traits: { plan: 'pro' }, context: { traits: { email: EMAIL } } }), settings)
    expect(action).toMatchObject({ kind: 'upsert', person: { Email: EMAIL, custom: { 'string--plan': 'pro' } } })
  })

  it('keeps company and address sub-fields it has no standard field for as custom fields', () => {
    expect(contactFrom({ company: { name: 'AE', plan: 'enterprise', id: 7 }, address: { city: 'London', unit: '4B' } })).toEqual({
      Email: EMAIL,
      Company: 'AE',
      MailingCity: 'London',
      custom: { 'string--company--plan': 'enterprise', 'float--company--id': 7, 'string--address--unit': '4B' },
    })
  })
})

describe('identify: other traits -> typed custom fields', () => {
  it.each([
    [{ plan: 'pro' }, { 'string--plan': 'pro' }],
    [{ 'Favorite Color': 'blue' }, { 'string--Favorite--Color': 'blue' }],
    [{ beta: true }, { 'boolean--beta': true }],
    [{ logins: 3 }, { 'float--logins': 3 }],
    [{ ltv: 99.5 }, { 'float--ltv': 99.5 }],
    [{ createdAt: '2026-11-28T10:00:00.000Z' }, { 'date--createdAt': '2026-11-28T10:00:00.000Z' }],
    [{ birthday: '1990-04-01' }, { 'date--birthday': '1990-04-01' }],
    [{ renewsAt: '2026-11-28T15:30:00+05:30' }, { 'date--renewsAt': '2026-11-28T15:30:00+05:30' }],
    [{ code: '2026-13-45' }, { 'string--code': '2026-13-45' }],
    [{ trial_end: '2026-01-01' }, { 'string--trial_end': '2026-01-01' }],
    [{ updated_at: '2026-11-28 10:00:00Z' }, { 'date--updated_at': '2026-11-28 10:00:00Z' }],
    [{ signupDate: 'Tue, 01 Dec 2026 10:00:00 GMT' }, { 'date--signupDate': '2026-12-01T10:00:00.000Z' }],
    [{ 'Renewal Date': '2027-01-01' }, { 'date--Renewal--Date': '2027-01-01' }],
    [
      { format: 'pdf', chat: 'on' },
      { 'string--format': 'pdf', 'string--chat': 'on' },
    ],
    [{ zip: '01234' }, { 'string--zip': '01234' }],
    [{ tags: ['a', 'b', 3] }, { 'string--tags': 'a, b, 3' }],
    [{ items: [{ sku: 1 }] }, { 'string--items': '[{"sku":1}]' }],
    [{ prefs: { color: 'red', size: 2 } }, { 'string--prefs--color': 'red', 'float--prefs--size': 2 }],
    [{ a: { b: { c: { d: 1 } } } }, { 'string--a--b--c': '{"d":1}' }],
  ])('%j -> custom %j', (traits, custom) => {
    expect(contactFrom(traits)).toEqual({ Email: EMAIL, custom })
  })

  it('keeps false (an Engage audience exit) and skips nulls', () => {
    expect(contactFrom({ order_completed_last_30days: false, gone: null })).toEqual({
      Email: EMAIL,
      custom: { 'boolean--order_completed_last_30days': false },
    })
  })

  it('gives a trait the same type whatever its value (3 and 3.5 are both float)', () => {
    expect(Object.keys(contactFrom({ score: 3 }).custom!)).toEqual(Object.keys(contactFrom({ score: 3.5 }).custom!))
  })

  it('leaves out a date-named trait whose text is not a date, rather than change its type', () => {
    expect(contactFrom({ createdAt: 'never', plan: 'pro' }).custom).toEqual({ 'string--plan': 'pro' })
  })

  it('pins a trait to the type in AUTOPILOT_FIELD_TYPES and drops values that do not fit it', () => {
    const pinned = new Map<string, CustomType>([
      ['logins', 'integer'],
      ['code', 'string'],
      ['prefs.size', 'integer'],
    ])
    expect(contactFrom({ logins: 3, code: 2026, prefs: { size: 2 } }, pinned).custom).toEqual({
      'integer--logins': 3,
      'string--code': '2026',
      'integer--prefs--size': 2,
    })
    expect(contactFrom({ logins: 3.5 }, pinned).custom).toBeUndefined()
  })

  it('never sends __proto__, constructor or prototype as fields', () => {
    const traits = JSON.parse('{"__proto__": {"polluted": 1}, "constructor": "x", "prototype": 1, "nested": {"__proto__": {"a": 1}}, "ok": 1}')
    expect(contactFrom(traits)).toEqual({ Email: EMAIL, custom: { 'float--ok': 1 } })
    expect(({} as Record<string, unknown>).polluted).toBeUndefined()
  })

  it.each([
    [['Favorite Color'], 'Favorite--Color'],
    [['  padded  '], 'padded'],
    [['tab\tand  spaces'], 'tab--and--spaces'],
    [['nul\u0000char'], 'nulchar'],
    [['   '], undefined],
    [['x'.repeat(201)], undefined],
    [['prefs', 'color'], 'prefs--color'],
  ])('custom field name %j -> %j', (path, name) => {
    expect(customName(path)).toBe(name)
  })
})

describe('identify without an email', () => {
  it('rejects neither email nor userId with the Engage message', () => {
    expect(toAction(event({ type: 'identify', anonymousId: 'a', traits: { plan: 'x' } }), settings)).toEqual({
      kind: 'reject',
      message: MISSING_IDENTIFIER,
    })
  })

  it('rejects a userId without email, saying Autopilot keys contacts by email', () => {
    const action = toAction(event({ type: 'identify', userId: 'u-9', traits: { plan: 'x' } }), settings)
    expect(action).toMatchObject({ kind: 'reject', message: expect.stringContaining('Autopilot keys contacts by email') })
  })
})

describe('track', () => {
  it('maps a configured event to its trigger, email from properties first', () => {
    const action = toAction(event({ type: 'track', event: 'Step Activated', properties: { email: 'p@example.com' }, context: { traits: { email: 'c@example.com' } } }), settings)
    expect(action).toEqual({ kind: 'enter', journey: '0001', person: { Email: 'p@example.com' }, setFirst: false })
  })

  it('takes the email from context.traits (Engage) and maps those traits for the upsert', () => {
    const action = toAction(event({ type: 'track', event: 'Step Activated', context: { traits: { email: EMAIL, firstName: 'Ada' } } }), settings)
    // It carries a trait to set: the contact is upserted before the trigger.
    expect(action).toEqual({ kind: 'enter', journey: '0001', person: { Email: EMAIL, FirstName: 'Ada' }, setFirst: true })
  })

  it('skips an unmapped event that carries nothing but the email', () => {
    const action = toAction(event({ type: 'track', event: 'Clicked', properties: { email: EMAIL } }), settings)
    expect(action).toMatchObject({ kind: 'skip', message: expect.stringContaining('"Clicked"') })
  })

  it('upserts an unmapped event whose context.traits carry more than the email', () => {
    const action = toAction(event({ type: 'track', event: 'Clicked', context: { traits: { email: EMAIL, plan: 'pro' } } }), settings)
    expect(action).toMatchObject({ kind: 'upsert', person: { Email: EMAIL, custom: { 'string--plan': 'pro' } } })
  })

  it('turns an Engage audience track into the audience boolean on the contact', () => {
    const entered = toAction(event({ type: 'track', event: 'Audience Entered', properties: { audience_key: 'vip', vip: true }, context: { traits: { email: EMAIL } } }), settings)
    expect(entered).toMatchObject({ kind: 'upsert', person: { Email: EMAIL, custom: { 'boolean--vip': true } } })
    const exited = toAction(event({ type: 'track', event: 'Audience Exited', properties: { audience_key: 'vip', vip: false }, context: { traits: { email: EMAIL } } }), settings)
    expect(exited).toMatchObject({ kind: 'upsert', person: { custom: { 'boolean--vip': false } } })
  })

  it('rejects a track with neither email nor userId', () => {
    expect(toAction(event({ type: 'track', event: 'Step Activated', anonymousId: 'a' }), settings)).toEqual({
      kind: 'reject',
      message: MISSING_IDENTIFIER,
    })
  })
})

describe('other types', () => {
  it.each(['page', 'screen', 'alias', 'delete'])('%s is skipped', (type) => {
    expect(toAction(event({ type, userId: 'u' }), settings)).toMatchObject({ kind: 'skip' })
  })
})

describe("group: the contact's Company", () => {
  const group = (extra: Record<string, unknown>) => event({ type: 'group', groupId: 'g-1', ...extra })
  it("sets Company from the name trait on the contact of context.traits.email (or the userId's known email); other traits are not sent", () => {
    expect(toAction(group({ userId: 'u', traits: { name: ' Acme ', industry: 'x' }, context: { traits: { email: 'A@Example.com' } } }), settings)).toEqual({
      kind: 'upsert',
      person: { Email: 'a@example.com', Company: 'Acme' },
      message: "contact upserted (Company from the group's name)",
    })
    expect(toAction(group({ userId: 'u', traits: { name: 'Acme' } }), settings, 'known@example.com')).toMatchObject({ kind: 'upsert', person: { Email: 'known@example.com', Company: 'Acme' } })
  })
  it("is skipped without a name trait, or with only an anonymousId; a group's own email is not the person's", () => {
    expect(toAction(group({ userId: 'u', traits: { industry: 'x' }, context: { traits: { email: 'a@example.com' } } }), settings)).toMatchObject({
      kind: 'skip',
      message: expect.stringContaining('no name'),
    })
    expect(toAction(group({ anonymousId: 'a', traits: { name: 'Acme' } }), settings)).toMatchObject({ kind: 'skip', message: expect.stringContaining('anonymousId') })
    expect(toAction(group({ userId: 'u', traits: { name: 'Acme', email: 'billing@acme.example' } }), settings)).toMatchObject({ kind: 'reject' })
  })
})

describe('mergeContacts', () => {
  it('lets the later event win per field, custom fields included', () => {
    expect(mergeContacts({ Email: EMAIL, FirstName: 'A', Title: 'T', custom: { 'string--plan': 'free', 'float--n': 1 } }, { Email: EMAIL, FirstName: 'B', custom: { 'string--plan': 'pro' } })).toEqual(
      { Email: EMAIL, FirstName: 'B', Title: 'T', custom: { 'string--plan': 'pro', 'float--n': 1 } },
    )
  })
})

describe('traits that map to the same field', () => {
  it('keeps the exact name, else the first in the event, and names every trait left out', () => {
    const { contact, issues } = traitsToContact(EMAIL, [['traits', { 'Favorite Color': 'red', 'Favorite  Color': 'green', 'Favorite--Color': 'blue', FavoriteColor: 'cyan' }]], settings)
    expect(contact.custom).toEqual({ 'string--Favorite--Color': 'blue', 'string--FavoriteColor': 'cyan' })
    expect(issues.map((issue) => issue.path).sort()).toEqual(['traits.Favorite  Color', 'traits.Favorite Color'])
    for (const issue of issues) expect(issue.message).toContain('not sent')
  })

  it('without an exact name, the first in the event wins', () => {
    const { contact, issues } = traitsToContact(EMAIL, [['traits', { 'Favorite Color': 'red', 'Favorite  Color': 'green' }]], settings)
    expect(contact.custom).toEqual({ 'string--Favorite--Color': 'red' })
    expect(issues).toEqual([{ path: 'traits.Favorite  Color', message: 'traits.Favorite Color goes into the same field (favorite--color); not sent' }])
  })

  it('names a context.traits value that traits replaced with a different one, and not one they repeat', () => {
    const { contact, issues } = traitsToContact(
      EMAIL,
      [
        ['context.traits', { firstName: 'Old', plan: 'basic', lastName: 'Same' }],
        ['traits', { firstName: 'New', plan: 'pro', lastName: 'Same' }],
      ],
      settings,
    )
    expect(contact).toMatchObject({ FirstName: 'New', LastName: 'Same', custom: { 'string--plan': 'pro' } })
    expect(issues.map((issue) => issue.path).sort()).toEqual(['context.traits.firstName', 'context.traits.plan'])
  })
})
