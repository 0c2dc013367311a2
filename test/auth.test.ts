import { describe, expect, it } from 'vitest'
import batchExample from '../examples/batch.json'
import identifySeed from '../examples/identify.json'
import { json, SECRET, setup, sign, TOKEN } from './helpers'

const body = JSON.stringify(identifySeed)

describe('X-Signature (SEGMENT_SHARED_SECRET)', () => {
  it('lets in a request signed over its raw body', async () => {
    const { post, autopilot } = setup()
    const response = await post(body, { signature: await sign(body) })
    expect(response.status).toBe(200)
    expect(autopilot.calls).toHaveLength(1)
  })

  it('accepts an upper-case hex signature', async () => {
    const { post } = setup()
    expect((await post(body, { signature: (await sign(body)).toUpperCase() })).status).toBe(200)
  })

  it('lets in a batch signed over JSON.stringify(events[0]) only, as Segment signs arrays', async () => {
    const { post, autopilot } = setup()
    const raw = JSON.stringify(batchExample, null, 2)
    const response = await post(raw, { signature: await sign(JSON.stringify(batchExample[0])) })
    expect(response.status).toBe(200)
    expect(autopilot.enrolments).toHaveLength(1)
  })

  it.each([
    ['no signature', 'none'],
    ['a signature with another secret', 'other-secret'],
    ['a signature of another body', 'other-body'],
    ['a malformed signature', 'zz-not-hex'],
    ['a truncated signature', 'truncated'],
  ])('refuses %s with 401 JSON and forwards nothing', async (_, kind) => {
    const { post, autopilot } = setup()
    const signature =
      kind === 'none' ? 'none'
      : kind === 'other-secret' ? await sign(body, 'other-secret')
      : kind === 'other-body' ? await sign('{}')
      : kind === 'truncated' ? (await sign(body)).slice(0, 39)
      : kind
    const response = await post(body, { signature })
    expect(response.status).toBe(401)
    expect(await json(response)).toEqual({ message: 'unauthorized' })
    expect(autopilot.calls).toHaveLength(0)
  })

  it('does not accept a first-event signature for a single-event body', async () => {
    const { post } = setup()
    const raw = JSON.stringify({ batch: batchExample })
    expect((await post(raw, { signature: await sign(JSON.stringify(batchExample[0])) })).status).toBe(401)
  })

  it('refuses unparseable bodies with 401 before saying anything about them', async () => {
    const { post } = setup()
    const response = await post('[{"type":', { signature: await sign('nope') })
    expect(response.status).toBe(401)
  })
})
