import { describe, expect, it } from 'vitest'
import engageAudience from '../examples/identify-engage-audience.json'
import identifySeed from '../examples/identify.json'
import trackSeed from '../examples/track.json'
import { API_KEY, identify, json, setup, track } from './helpers'

describe('identify -> POST /contact', () => {
  it('sends the mapped contact with the API key header', async () => {
    const { post, autopilot } = setup()
    const response = await post(identify({ email: 'ada@example.com', firstName: 'Ada', plan: 'pro', logins: 3 }))
    expect(response.status).toBe(200)
    expect(autopilot.calls).toEqual([
      expect.objectContaining({
        method: 'POST',
        path: '/contact',
        apiKey: API_KEY,
        body: { contact: { Email: 'ada@example.com', FirstName: 'Ada', custom: { 'string--plan': 'pro', 'float--logins': 3 } } },
      }),
    ])
  })

  it('delivers an Engage audience entry (true) and exit (false)', async () => {
    const { post, autopilot } = setup()
    expect((await post(engageAudience)).status).toBe(200)
    expect(autopilot.contacts.get('buyer@example.com')?.custom).toEqual({ 'boolean--order_completed_last_30days': true })
    const exit = { ...engageAudience, messageId: 'exit-1', traits: { ...engageAudience.traits, order_completed_last_30days: false } }
    expect((await post(exit)).status).toBe(200)
    expect(autopilot.contacts.get('buyer@example.com')?.custom).toEqual({ 'boolean--order_completed_last_30days': false })
  })

  it('answers 400 with the exact message when there is neither email nor userId, and sends nothing', async () => {
    const { post, autopilot } = setup()
    const response = await post({ type: 'identify', anonymousId: 'anon', traits: { plan: 'pro' } })
    expect(response.status).toBe(400)
    expect((await json(response)).message).toBe('Missing unique identifier traits. Either email or user_id traits must be provided')
    expect(autopilot.calls).toHaveLength(0)
  })

  it('parks a userId without email until the email is known (202 deferred), and sends nothing yet', async () => {
    const { post, autopilot } = setup()
    const response = await post({ type: 'identify', messageId: 'park-u7', userId: 'u-7', traits: { plan: 'pro' } })
    expect(response.status).toBe(202)
    expect(await json(response)).toMatchObject({ status: 'deferred' })
    expect(autopilot.calls).toHaveLength(0)
  })
})

describe('track -> journey trigger', () => {
  it('triggers the mapped journey for a known contact, email URL-encoded', async () => {
    const { post, autopilot } = setup()
    autopilot.contacts.set('a+b@example.com', { Email: 'a+b@example.com', custom: {} })
    const response = await post(track('Step Activated', 'a+b@example.com'))
    expect(response.status).toBe(200)
    expect(await json(response)).toEqual({ status: 'delivered', message: 'entered journey trigger 0001' })
    expect(autopilot.calls.map((call) => call.path)).toEqual(['/trigger/0001/contact/a%2Bb%40example.com'])
    expect(autopilot.enrolments).toMatchObject([{ triggerId: '0001', email: 'a+b@example.com' }])
  })

  it('on 404 for an unknown contact, upserts it (email + context.traits) and triggers once more', async () => {
    const { post, autopilot } = setup()
    const response = await post(trackSeed)
    expect(response.status).toBe(200)
    expect(autopilot.calls.map((call) => `${call.path} ${call.status}`)).toEqual([
      '/trigger/0001/contact/john.doe%40example.com 404',
      '/contact 200',
      '/trigger/0001/contact/john.doe%40example.com 200',
    ])
    expect(autopilot.calls[1].body).toEqual({ contact: { Email: 'john.doe@example.com' } })
    expect(autopilot.enrolments).toHaveLength(1)
  })

  it('answers 503 when the trigger still answers 404 after the upsert (wrong trigger id)', async () => {
    const { post, autopilot } = setup({}, { triggers: ['9999'] })
    const response = await post(track('Step Activated', 'x@example.com'))
    expect(response.status).toBe(503)
    expect((await json(response)).message).toContain('AUTOPILOT_TRIGGERS')
    expect(autopilot.enrolments).toHaveLength(0)
  })

  it('answers 200 with the reason for an unmapped event and sends nothing', async () => {
    const { post, autopilot } = setup()
    const response = await post(track('Clicked Button', 'x@example.com'))
    expect(response.status).toBe(200)
    expect(await json(response)).toMatchObject({ status: 'skipped', message: expect.stringContaining('"Clicked Button"') })
    expect(autopilot.calls).toHaveLength(0)
  })

  it('still upserts for an unmapped event whose context.traits carry more than the email', async () => {
    const { post, autopilot } = setup()
    const response = await post(track('Clicked Button', undefined, { context: { traits: { email: 'x@example.com', plan: 'pro' } } }))
    expect(response.status).toBe(200)
    expect(autopilot.contacts.get('x@example.com')?.custom).toEqual({ 'string--plan': 'pro' })
    expect(autopilot.enrolments).toHaveLength(0)
  })

  it('answers 400 with the exact message for a track with no email and no userId', async () => {
    const { post, autopilot } = setup()
    const response = await post({ type: 'track', event: 'Step Activated', anonymousId: 'anon' })
    expect(response.status).toBe(400)
    expect((await json(response)).message).toBe('Missing unique identifier traits. Either email or user_id traits must be provided')
    expect(autopilot.calls).toHaveLength(0)
  })
})

describe('settings', () => {
  it('answers 503 naming AUTOPILOT_API_KEY when it is missing, and sends nothing', async () => {
    const { post, autopilot } = setup({ AUTOPILOT_API_KEY: undefined })
    for (const event of [identifySeed, trackSeed]) {
      const response = await post(event)
      expect(response.status).toBe(503)
      expect((await json(response)).message).toContain('AUTOPILOT_API_KEY')
    }
    expect(autopilot.calls).toHaveLength(0)
  })

  it.each([
    ['not JSON', '{"Step Activated": '],
    ['an array', '["0001"]'],
    ['a non-string id', '{"Step Activated": 1}'],
  ])('treats AUTOPILOT_TRIGGERS that is %s as a configuration error (503), not a crash', async (_, value) => {
    const { post, get, autopilot } = setup({ AUTOPILOT_TRIGGERS: value })
    const response = await post(trackSeed)
    expect(response.status).toBe(503)
    expect((await json(response)).message).toContain('AUTOPILOT_TRIGGERS')
    expect(autopilot.calls).toHaveLength(0)
    const health = await json(await get('/health'))
    expect(health.status).toBe('misconfigured')
    expect(health.problems.join()).toContain('AUTOPILOT_TRIGGERS')
  })

  it.each([
    ['AUTOPILOT_FIELD_TYPES', '{"logins": "int"}'],
    ['AUTOPILOT_BASE_URL', 'not a url'],
    ['AUTOPILOT_TIMEOUT_MS', 'soon'],
    ['MAX_BODY_BYTES', '-5'],
  ])('treats a malformed %s as a configuration error (503) naming it', async (name, value) => {
    const { post, get, autopilot } = setup({ [name]: value })
    const response = await post(identifySeed)
    expect(response.status).toBe(503)
    expect((await json(response)).message).toContain(name)
    expect(autopilot.calls).toHaveLength(0)
    expect((await json(await get('/health'))).status).toBe('misconfigured')
  })

  it('accepts AUTOPILOT_TRIGGERS as a TOML table (an object var)', async () => {
    const { post, autopilot } = setup({ AUTOPILOT_TRIGGERS: { 'Step Activated': '0042' } })
    autopilot.contacts.set('x@example.com', { Email: 'x@example.com', custom: {} })
    expect((await post(track('Step Activated', 'x@example.com'))).status).toBe(200)
    expect(autopilot.enrolments).toMatchObject([{ triggerId: '0042' }])
  })
})
