import { describe, expect, it } from 'vitest'
import { fakeQueue, json, setup } from './helpers'

const id = () => `m-${crypto.randomUUID()}`

describe('Autopilot: group -> the contact’s Company', () => {
  it('sets Company from the group’s name on the contact of its email', async () => {
    const { post, autopilot } = setup()
    const body = await json(
      await post({ type: 'group', messageId: id(), userId: 'u-1', groupId: 'g-1', traits: { name: 'Acme Inc', employees: 120 }, context: { traits: { email: 'ada@example.com' } } }),
    )
    expect(body.status).toBe('delivered')
    expect(autopilot.contacts.get('ada@example.com')).toMatchObject({ Email: 'ada@example.com', Company: 'Acme Inc' })
  })

  it('parks a userId-only group until the email is known, then sets Company', async () => {
    const { post, autopilot } = setup()
    expect((await post({ type: 'group', messageId: id(), userId: 'u-2', groupId: 'g-1', traits: { name: 'Acme Inc' } })).status).toBe(202)
    expect(autopilot.contacts.size).toBe(0)
    expect((await json(await post({ type: 'identify', messageId: id(), userId: 'u-2', traits: { email: 'bo@example.com', firstName: 'Bo' } }))).status).toBe('delivered')
    expect(autopilot.contacts.get('bo@example.com')).toMatchObject({ FirstName: 'Bo', Company: 'Acme Inc' })
  })

  it('skips a group without a name, sending nothing', async () => {
    const { post, autopilot } = setup()
    expect(await json(await post({ type: 'group', messageId: id(), userId: 'u-3', groupId: 'g-1', traits: { industry: 'x' }, context: { traits: { email: 'cy@example.com' } } }))).toMatchObject({
      status: 'skipped',
    })
    expect(autopilot.calls).toHaveLength(0)
  })

  it('queued mode: a userId-only group is queued (not refused) for the consumer to resolve', async () => {
    const events = fakeQueue()
    const { post } = setup({ EVENTS: events.queue })
    expect(await json(await post({ type: 'group', messageId: id(), userId: 'u-4', groupId: 'g-1', traits: { name: 'Acme Inc' } }))).toMatchObject({ status: 'queued' })
  })
})
