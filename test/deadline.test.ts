import { beforeEach, describe, expect, it } from 'vitest'
import { freshDb, identify, setup, testDb, track } from './helpers'

// Direct mode answers before Segment gives up (5 s), however slow Autopilot and D1 are:
// what did not finish is answered 503 and Segment re-sends it. (Real time passes here:
// kept in a file of its own so it runs beside the rest of the suite.)
beforeEach(freshDb)

describe("the answer comes within Segment's 5 s", () => {
  it('when Autopilot is slow and then D1 is slow too', { timeout: 30_000 }, async () => {
    const store = testDb()
    store.delay('INSERT INTO identities', 3000)
    const { post } = setup({ DB: store.db }, { latencyMs: 3500 })
    const started = Date.now()
    const response = await post(identify({ email: 'slowdb@example.com' }, { userId: 'u-slowdb' }))
    expect(Date.now() - started).toBeLessThan(5000)
    expect(response.status).toBe(503) // delivered, but what it taught is not recorded yet: Segment re-sends
  })

  it('when every Autopilot call takes 3 s', { timeout: 30_000 }, async () => {
    const { post, autopilot } = setup({}, { latencyMs: 3000 })
    const started = Date.now()
    const response = await post(track('Step Activated', 'slow@example.com'))
    expect(Date.now() - started).toBeLessThan(5000)
    expect(response.status).toBe(503)
    // trigger (404 after 3 s), then the upsert, cut at the deadline: never the 9 s chain.
    expect(autopilot.calls.map((call) => call.path)).toEqual(['/trigger/0001/contact/slow%40example.com', '/contact'])
  })
})
