// Segment `group`: Ortto accounts (the person linked, the link read back), Autopilot's Company,
// and the Ortto stand-in's Accounts.
import { beforeEach, describe, expect, it } from 'vitest'
import { forgetLinks } from '../src/destinations/ortto/accounts'
import type { OrttoOptions } from '../sandbox/ortto.js'
import { fakeQueue, freshDb, json, setup as setupAutopilot, setupOrtto, type Loose } from './helpers'
import { body, ortto } from './ortto-helpers'

beforeEach(freshDb)

const id = () => `m-${crypto.randomUUID()}`
const KEY_FIELD = { 'str:oc:segment-group-id': 'Segment Group ID' }

/** A fresh isolate's view (no link key learnt yet) and a fresh Ortto with Accounts. */
function setup(env: Record<string, string> = {}, options: OrttoOptions = {}) {
  forgetLinks()
  const base = setupOrtto(env as never, options)
  const { ortto } = base
  const personBy = (field: string, value: string) => [...ortto.people.values()].find((p) => p.fields[field] === value)
  const accountBy = (field: string, value: unknown) => [...ortto.orgs.accounts.values()].find((a) => a.fields[field] === value)
  return { ...base, personBy, accountBy, linked: (personId: string) => ortto.orgs.linked(personId) }
}

const group = (groupId: string, traits: Record<string, unknown> = {}, extra: Record<string, unknown> = {}) => ({
  type: 'group',
  messageId: id(),
  userId: 'u-1',
  groupId,
  traits,
  context: { traits: { email: 'ada@example.com' } },
  ...extra,
})

describe('Ortto: group -> an account, the person linked', () => {
  it('creates the key field, merges the account with built-in and custom fields, creates the person and links them', async () => {
    const { post, calls, personBy, accountBy, linked, ortto } = setup({ ORTTO_CREATE: 'fields' })
    const traits = {
      name: 'Acme Inc',
      website: 'https://acme.example',
      employees: '120',
      industry: 'Software',
      address: { street: '1 Main St', city: 'Springfield', state: 'Oregon', country: 'US', postalCode: '97477' },
      plan: 'enterprise',
    }
    const body = await json(await post(group('g-acme', traits)))
    expect(body).toMatchObject({ status: 'delivered' })
    expect(calls('/accounts/custom-field/create').map((c) => c.body)).toEqual([
      { type: 'text', name: 'Segment Group ID' },
      { type: 'text', name: 'plan' },
    ])
    const [merge] = calls('/accounts/merge')
    expect(merge.body).toMatchObject({ merge_by: ['str:oc:segment-group-id'], merge_strategy: 2 })
    expect(merge.body.accounts[0].fields).toEqual({
      'str:oc:segment-group-id': 'g-acme',
      'str:o:name': 'Acme Inc',
      'str:o:website': 'https://acme.example',
      'int:o:employees': 120,
      'str:o:industry': 'Software',
      'str:o:address': '1 Main St',
      'geo:o:city': { name: 'Springfield' },
      'geo:o:region': { name: 'Oregon' },
      'geo:o:country': { name: 'US' },
      'str:o:postal': '97477',
      'str:oc:plan': 'enterprise',
    })
    const person = personBy('str::ei', 'u-1')!
    expect(person.fields['str::email']).toBe('ada@example.com')
    const account = accountBy('str:oc:segment-group-id', 'g-acme')!
    expect(linked(person.id)).toEqual([account.id])
    expect(ortto.orgs.accounts.size).toBe(1)
  })

  // The merge answer's id key and the link's body key are not settled: the Worker is right with each,
  // and with a stand-in that ignores keys it does not read (as Ortto does) or refuses them.
  const forms = (['organizations', 'accounts', 'none'] as const).flatMap((accountAnswer) =>
    (['organization_id', 'account_id', 'accounts_id'] as const).flatMap((linkKey) => [false, true].map((linkStrict) => ({ accountAnswer, linkKey, linkStrict }))),
  )
  it.each(forms)('links with merge answer "$accountAnswer", link key "$linkKey" (strict: $linkStrict), read back once per isolate', async ({ accountAnswer, linkKey, linkStrict }) => {
    const { post, calls, personBy, accountBy, linked } = setup({}, { accountFields: KEY_FIELD, accountAnswer, linkKey, linkStrict })
    expect((await json(await post(group('g-1', { name: 'One' })))).status).toBe('delivered')
    const account = accountBy('str:oc:segment-group-id', 'g-1')!
    expect(linked(personBy('str::ei', 'u-1')!.id)).toEqual([account.id])
    // All three keys in one call; an API that refuses that gets each key alone, until one takes.
    const tried = calls('/accounts/contacts/add').length
    expect(tried).toBe(linkStrict ? ['organization_id', 'account_id', 'accounts_id'].indexOf(linkKey) + 2 : 1)
    // Learnt: the next group links in one call, in the form that took, not read back again.
    const reads = calls('/person/get').length
    expect((await json(await post(group('g-2', { name: 'Two' }, { userId: 'u-2', context: { traits: { email: 'bo@example.com' } } })))).status).toBe('delivered')
    expect(calls('/accounts/contacts/add')).toHaveLength(tried + 1)
    expect(calls('/accounts/contacts/add').at(-1)!.body).toHaveProperty(linkKey)
    expect(calls('/person/get')).toHaveLength(reads)
    expect(linked(personBy('str::ei', 'u-2')!.id)).toEqual([accountBy('str:oc:segment-group-id', 'g-2')!.id])
  })

  it('a link Ortto answers 200 but does not take is not delivered: retried, and said on the log line, /admin and the setup check', async () => {
    const { post, request, ortto, logLines } = setup({ ADMIN_TOKEN: 'admin-token-1234567890abcdef' }, { accountFields: KEY_FIELD })
    // Ortto ignores every key this time (as it does for keys it does not read).
    for (let i = 0; i < 4; i++) ortto.inject({ status: 200, body: {}, match: (call) => call.path === '/v1/accounts/contacts/add' })
    const response = await post(group('g-1', { name: 'One' }))
    expect(response.status).toBe(503)
    const body = await json(response)
    expect(body.status).toBe('retry')
    expect(body.message).toMatch(/idt::o/)
    expect(body.message).toMatch(/Settings → General → Accounts/)
    expect(logLines().at(-1)!.problems.accounts).toMatch(/does not list the account/)
    const auth = { authorization: 'Bearer admin-token-1234567890abcdef' }
    const page = await (await request(new Request('https://worker.test/admin', { headers: { authorization: `Basic ${btoa('ops:admin-token-1234567890abcdef')}` } }))).text()
    expect(page).toContain('does not list the account')
    const check = await json(await request(new Request('https://worker.test/health?check=ortto', { headers: auth })))
    expect(check.checks.some((c: Loose) => c.check === 'accounts' && !c.ok && /does not list the account/.test(c.message))).toBe(true)
  })

  it('is rejected naming the field and the setting when the key field is missing and ORTTO_CREATE lacks fields; an identify beside it goes', async () => {
    const { post, calls } = setup()
    const response = await post({ batch: [group('g-1', { name: 'One' }), { type: 'identify', messageId: id(), userId: 'u-9', traits: { email: 'z@example.com' } }] })
    const body = await json(response)
    expect(body.counts).toEqual({ rejected: 1, delivered: 1 })
    expect(body.results[0]).toMatchObject({ index: 0, status: 'rejected' })
    expect(body.results[0].message).toMatch(/Segment Group ID/)
    expect(body.results[0].message).toMatch(/ORTTO_CREATE/)
    expect(calls('/accounts/merge')).toHaveLength(0)
  })

  it('ORTTO_ACCOUNT_MERGE_BY=str:o:name finds accounts by name, creating nothing', async () => {
    const { post, calls, accountBy } = setup({ ORTTO_ACCOUNT_MERGE_BY: 'str:o:name', ORTTO_CREATE: 'fields' })
    expect((await json(await post(group('g-1', { name: 'Acme' })))).status).toBe('delivered')
    expect(calls('/accounts/merge')[0].body.merge_by).toEqual(['str:o:name'])
    expect(calls('/accounts/custom-field/create')).toHaveLength(0)
    expect(accountBy('str:o:name', 'Acme')).toBeDefined()
  })

  it('rejects with Ortto’s reason, saying where to switch Accounts on, when the instance has no Accounts', async () => {
    const { post } = setup({}, { accountsOn: false })
    const body = await json(await post({ batch: [group('g-1', { name: 'One' }), { type: 'identify', messageId: id(), userId: 'u-9', traits: { email: 'z@example.com' } }] }))
    expect(body.counts).toEqual({ rejected: 1, delivered: 1 })
    expect(body.results[0]).toMatchObject({ index: 0, status: 'rejected' })
    expect(body.results[0].message).toMatch(/not enabled/)
    expect(body.results[0].message).toMatch(/Settings → General → Accounts/)
  })

  it('an account Ortto refuses goes no further, and the others of its call go again without it', async () => {
    const { post, ortto, calls } = setup({}, { accountFields: KEY_FIELD })
    ortto.inject({ status: 400, body: { error: 'invalid account' }, match: (call) => call.path === '/v1/accounts/merge' })
    const body = await json(await post([group('g-1', { name: 'One' }), group('g-2', { name: 'Two' }, { userId: 'u-2', context: { traits: { email: 'bo@example.com' } } })]))
    // Refused without reasons: sent in halves, each of which Ortto takes.
    expect(body.counts).toEqual({ delivered: 2 })
    expect(calls('/accounts/merge').map((c) => c.body.accounts.length)).toEqual([2, 1, 1])
    expect(ortto.orgs.accounts.size).toBe(2)
  })

  it('Accounts answering 404 (not there for this instance) reject groups with where to switch them on; identifies with custom traits still go', async () => {
    const { post, ortto } = setup({}, { accountFields: KEY_FIELD })
    ortto.inject({ status: 404, match: (call) => call.path === '/v1/accounts/custom-field/get' })
    const body = await json(await post([group('g-1', { name: 'One' }), { type: 'identify', messageId: id(), userId: 'u-9', traits: { email: 'z@example.com', plan: 'pro' } }]))
    expect(body.counts).toEqual({ rejected: 1, delivered: 1 })
    expect(body.results[0].message).toMatch(/Settings → General → Accounts/)
  })

  it('a 5xx on the merge or a 429 on the link is retried; the re-send makes no second account and links once', async () => {
    const { post, ortto, personBy, linked } = setup({}, { accountFields: KEY_FIELD })
    const event = group('g-1', { name: 'One' })
    ortto.inject({ status: 503, match: (call) => call.path === '/v1/accounts/merge' })
    expect((await post(event)).status).toBe(503)
    ortto.inject({ status: 429, tryInSeconds: 1, match: (call) => call.path === '/v1/accounts/contacts/add' })
    expect((await post(event)).status).toBe(429)
    expect((await json(await post(event))).status).toBe('delivered')
    expect(ortto.orgs.accounts.size).toBe(1)
    expect(linked(personBy('str::ei', 'u-1')!.id)).toHaveLength(1)
  })

  it('150 groups of 120 accounts: 2 merge calls, one link call per account with its people together', async () => {
    const { post, calls, ortto } = setup({ ORTTO_MAX_CALLS: '200' }, { accountFields: KEY_FIELD })
    const events = Array.from({ length: 150 }, (_, i) => group(`g-${i % 120}`, { name: `Company ${i % 120}` }, { userId: `u-${i}`, context: { traits: { email: `p${i}@example.com` } } }))
    const body = await json(await post({ batch: events }))
    expect(body.counts).toEqual({ delivered: 150 })
    expect(calls('/accounts/merge')).toHaveLength(2)
    expect(calls('/accounts/contacts/add')).toHaveLength(120)
    expect(calls('/accounts/contacts/add').find((c) => c.body.account_id === ortto.orgs.accounts.values().next().value!.id)!.body.inclusion_ids).toHaveLength(2)
    expect(ortto.orgs.accounts.size).toBe(120)
  })

  it('links a person in several groups to each', async () => {
    const { post, personBy, linked } = setup({}, { accountFields: KEY_FIELD })
    await post({ batch: [group('g-1', { name: 'One' }), group('g-2', { name: 'Two' })] })
    expect(linked(personBy('str::ei', 'u-1')!.id)).toHaveLength(2)
  })

  it('skips a group with only an anonymousId, and every group with ORTTO_ACCOUNTS=false', async () => {
    const { post, calls } = setup({}, { accountFields: KEY_FIELD })
    const anonymous = await json(await post({ type: 'group', messageId: id(), anonymousId: 'a-1', groupId: 'g-1', traits: { name: 'One' } }))
    expect(anonymous.status).toBe('skipped')
    expect(anonymous.message).toMatch(/anonymousId/)
    const off = setup({ ORTTO_ACCOUNTS: 'false' }, { accountFields: KEY_FIELD })
    expect((await json(await off.post(group('g-1', { name: 'One' })))).status).toBe('skipped')
    expect([...calls('/accounts/merge'), ...off.calls('/accounts/merge'), ...off.calls('/accounts/custom-field/get')]).toHaveLength(0)
  })

  it('newest wins: an older group retried late does not overwrite what a newer one set', async () => {
    const { post, ortto, accountBy } = setup({}, { accountFields: KEY_FIELD })
    const older = group('g-1', { name: 'Old name' }, { timestamp: '2026-01-01T00:00:00Z' })
    ortto.inject({ status: 500, match: (call) => call.path === '/v1/accounts/merge' })
    expect((await post(older)).status).toBe(503)
    expect((await json(await post(group('g-1', { name: 'New name' }, { timestamp: '2026-01-02T00:00:00Z' })))).status).toBe('delivered')
    expect((await json(await post(older))).status).toBe('delivered')
    expect(accountBy('str:oc:segment-group-id', 'g-1')!.fields['str:o:name']).toBe('New name')
  })

  it("a batch's groups and other events share one request's 8 creation calls", async () => {
    const { post, calls } = setup({ ORTTO_CREATE: 'fields' }, { accountFields: KEY_FIELD })
    const personTraits = Object.fromEntries(Array.from({ length: 6 }, (_, i) => [`person trait ${i}`, 'x']))
    const accountTraits = Object.fromEntries(Array.from({ length: 6 }, (_, i) => [`account trait ${i}`, 'y']))
    await post([{ type: 'identify', messageId: id(), userId: 'u-9', traits: { email: 'nine@example.com', ...personTraits } }, group('g-9', { name: 'Nine', ...accountTraits })])
    expect(calls('/person/custom-field/create').length + calls('/accounts/custom-field/create').length).toBe(8)
  })

  it('past Ortto’s 25 custom account fields, a new trait is left out and named', async () => {
    const many = Object.fromEntries(Array.from({ length: 23 }, (_, i) => [`str:oc:f${i}`, `F${i}`]))
    const { post, calls } = setup({ ORTTO_CREATE: 'fields' }, { accountFields: { ...KEY_FIELD, ...many } })
    const body = await json(await post(group('g-1', { name: 'One', tier: 'gold', region2: 'north' })))
    expect(body.status).toBe('delivered')
    expect(calls('/accounts/custom-field/create').map((c) => c.body.name)).toEqual(['tier'])
    expect(body.issues).toEqual([{ path: 'traits.region2', message: expect.stringContaining('at most 25 custom account fields') }])
  })

  it('with ORTTO_MERGE_BY=str::email a userId-only group waits for the email, then links', async () => {
    const { post, personBy, linked } = setup({ ORTTO_MERGE_BY: 'str::email' }, { accountFields: KEY_FIELD })
    const parked = await post(group('g-1', { name: 'One' }, { userId: 'u-7', context: {} }))
    expect(parked.status).toBe(202)
    expect((await json(await post({ type: 'identify', messageId: id(), userId: 'u-7', traits: { email: 'seven@example.com' } }))).status).toBe('delivered')
    expect(linked(personBy('str::email', 'seven@example.com')!.id)).toHaveLength(1)
  })
})

describe('Ortto accounts in queued mode', () => {
  it('queues groups and delivers them from the queue as in direct mode: one merge call, one link per account', async () => {
    const events = fakeQueue()
    const { post, consume, calls, ortto, personBy, linked } = setup({ EVENTS: events.queue as never }, { accountFields: KEY_FIELD })
    const batch = [group('g-1', { name: 'One' }), group('g-1', { name: 'One' }, { userId: 'u-2', context: { traits: { email: 'bo@example.com' } } }), group('g-2', { name: 'Two' })]
    const queued = await post(batch)
    expect(await json(queued)).toMatchObject({ counts: { queued: 3 } })
    expect(ortto.calls).toHaveLength(0)
    const result = await consume(events.sent.map((m) => m.body))
    expect(result.retryMessages).toEqual([])
    expect(calls('/accounts/merge')).toHaveLength(1)
    expect(calls('/accounts/contacts/add')).toHaveLength(2)
    expect(linked(personBy('str::ei', 'u-1')!.id)).toHaveLength(2)
    expect(linked(personBy('str::ei', 'u-2')!.id)).toHaveLength(1)
  })
})

describe('Ortto accounts on the operator page', () => {
  it('counts groups in the delivery history and lists the account fields created', async () => {
    const { post, request } = setup({ ORTTO_CREATE: 'fields', ADMIN_TOKEN: 'admin-token-1234567890abcdef' })
    expect((await json(await post(group('g-1', { name: 'One', tier: 'gold' })))).status).toBe('delivered')
    const auth = { authorization: `Basic ${btoa('ops:admin-token-1234567890abcdef')}` }
    const page = await (await request(new Request('https://worker.test/admin', { headers: auth }))).text()
    expect(page).toContain('account field')
    expect(page).toContain('Segment Group ID')
    expect(page).toMatch(/By type, last 7 days: [^<]*group: 1 delivered/)
    const history = await json(await request(new Request('https://worker.test/admin/history.json', { headers: auth })))
    expect(history.rows).toContainEqual(expect.objectContaining({ kind: 'event', key: 'group:delivered', n: 1 }))
  })
})

describe('Autopilot: group -> the contact’s Company', () => {
  it('sets Company from the group’s name on the contact of its email', async () => {
    const { post, autopilot } = setupAutopilot()
    const body = await json(
      await post({ type: 'group', messageId: id(), userId: 'u-1', groupId: 'g-1', traits: { name: 'Acme Inc', employees: 120 }, context: { traits: { email: 'ada@example.com' } } }),
    )
    expect(body.status).toBe('delivered')
    expect(autopilot.contacts.get('ada@example.com')).toMatchObject({ Email: 'ada@example.com', Company: 'Acme Inc' })
  })

  it('parks a userId-only group until the email is known, then sets Company', async () => {
    const { post, autopilot } = setupAutopilot()
    expect((await post({ type: 'group', messageId: id(), userId: 'u-2', groupId: 'g-1', traits: { name: 'Acme Inc' } })).status).toBe(202)
    expect(autopilot.contacts.size).toBe(0)
    expect((await json(await post({ type: 'identify', messageId: id(), userId: 'u-2', traits: { email: 'bo@example.com', firstName: 'Bo' } }))).status).toBe('delivered')
    expect(autopilot.contacts.get('bo@example.com')).toMatchObject({ FirstName: 'Bo', Company: 'Acme Inc' })
  })

  it('skips a group without a name, sending nothing', async () => {
    const { post, autopilot } = setupAutopilot()
    expect(await json(await post({ type: 'group', messageId: id(), userId: 'u-3', groupId: 'g-1', traits: { industry: 'x' }, context: { traits: { email: 'cy@example.com' } } }))).toMatchObject({
      status: 'skipped',
    })
    expect(autopilot.calls).toHaveLength(0)
  })

  it('queued mode: a userId-only group is queued (not refused) for the consumer to resolve', async () => {
    const events = fakeQueue()
    const { post } = setupAutopilot({ EVENTS: events.queue })
    expect(await json(await post({ type: 'group', messageId: id(), userId: 'u-4', groupId: 'g-1', traits: { name: 'Acme Inc' } }))).toMatchObject({ status: 'queued' })
  })
})

const KEY = { 'str:oc:segment-group-id': 'Segment Group ID' }
const account = (id: string, fields: Record<string, unknown> = {}) => ({ fields: { 'str:oc:segment-group-id': id, ...fields } })
const mergeBody = (accounts: unknown[]) => ({ accounts, merge_by: ['str:oc:segment-group-id'], merge_strategy: 2, find_strategy: 0, async: false })

describe('Ortto stand-in: Accounts', () => {
  it.each([
    ['organizations', { organizations: [{ organization_id: expect.stringMatching(/^10[0-9a-f]{22}$/), status: 'created' }] }],
    ['accounts', { accounts: [{ account_id: expect.stringMatching(/^10[0-9a-f]{22}$/), status: 'created' }] }],
    ['none', {}],
  ] as const)('answers accounts/merge in the "%s" form, and merges by the key (no second account)', async (accountAnswer, shape) => {
    const o = ortto({ accountFields: KEY, accountAnswer })
    expect(await body(await o.call('POST', '/v1/accounts/merge', mergeBody([account('g-1', { 'str:o:name': 'One' })])))).toEqual(shape)
    await o.call('POST', '/v1/accounts/merge', mergeBody([account('g-1', { 'str:o:name': 'Uno' })]))
    expect([...o.state.orgs.accounts.values()].map((a) => a.fields['str:o:name'])).toEqual(['Uno'])
    const found = await body(await o.call('POST', '/v1/accounts/get', { limit: 10, fields: ['str:o:name'], filter: { '$str::is': { field_id: 'str:oc:segment-group-id', value: 'g-1' } } }))
    expect(found.accounts).toEqual([{ id: expect.any(String), fields: { 'str:o:name': 'Uno' } }])
  })

  it('refuses an account field it does not have, or a value of the wrong type, per account', async () => {
    const o = ortto({ accountFields: KEY })
    const response = await o.call('POST', '/v1/accounts/merge', mergeBody([account('g-1', { 'str:oc:nope': 'x' }), account('g-2', { 'int:o:employees': 'many' })]))
    expect(response.status).toBe(400)
    expect((await body(response)).details).toEqual([
      { status: 'invalid', error: expect.stringContaining('str:oc:nope') },
      { status: 'invalid', error: expect.stringContaining('int:o:employees') },
    ])
    expect(o.state.orgs.accounts.size).toBe(0)
  })

  it.each(['organization_id', 'account_id', 'accounts_id'] as const)('links people by "%s" only: another key answers 200 {} and links nobody; person/get reads idt::o', async (linkKey) => {
    const o = ortto({ accountFields: KEY, linkKey })
    const personId = (await body(await o.merge([{ fields: { 'str::email': 'a@example.com' } }]))).people[0].person_id
    const accounts = await body(await o.call('POST', '/v1/accounts/merge', mergeBody([account('g-1')])))
    const accountId = accounts.organizations[0].organization_id
    const other = ['organization_id', 'account_id', 'accounts_id'].find((k) => k !== linkKey)!
    const ignored = await o.call('PUT', '/v1/accounts/contacts/add', { inclusion_ids: [personId], [other]: accountId })
    expect([ignored.status, await body(ignored)]).toEqual([200, {}])
    expect(o.state.orgs.linked(personId)).toEqual([])
    await o.call('PUT', '/v1/accounts/contacts/add', { inclusion_ids: [personId], [linkKey]: accountId })
    const read = await body(await o.find({ '$str::is': { field_id: 'str::email', value: 'a@example.com' } }, ['idt::o']))
    expect(read.contacts[0].fields).toEqual({ 'idt::o': [accountId] })
  })

  it('holds 25 custom account fields, then refuses (403); refuses every accounts call while Accounts are off', async () => {
    const many = Object.fromEntries(Array.from({ length: 25 }, (_, i) => [`str:oc:f${i}`, `F${i}`]))
    const full = ortto({ accountFields: many })
    const refused = await full.call('POST', '/v1/accounts/custom-field/create', { type: 'text', name: 'One more' })
    expect(refused.status).toBe(403)
    const off = ortto({ accountsOn: false })
    for (const path of ['/v1/accounts/custom-field/get', '/v1/accounts/merge']) expect((await off.call('POST', path, {})).status).toBe(400)
  })
})
