import { describe, expect, it } from 'vitest'
import { body, ortto } from './ortto-helpers'

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
