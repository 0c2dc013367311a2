import fc from 'fast-check'
import { describe, it } from 'vitest'
import { setup } from './helpers'
import { anyBodyProperty, customKeyProperty, FUZZ_API_KEY, FUZZ_ENV, validIdentifyProperty } from './properties.js'

// The same properties run 2,500 times each (FUZZ_RUNS) against the built Worker with `npm run fuzz`;
// here a short run of each keeps npm test near a minute.
function worker() {
  const { request, autopilot } = setup(FUZZ_ENV, { apiKey: FUZZ_API_KEY })
  const send = (body: string, headers: Record<string, string>) => request(new Request('https://worker.test/', { method: 'POST', body, headers }))
  return { send, autopilot }
}

describe('properties (fast-check)', () => {
  it('any body gets 200/202/400/401/413 with a JSON message, and nothing unsigned gets in', async () => {
    const { send } = worker()
    await fc.assert(anyBodyProperty(send), { numRuns: 200 })
  })

  // Each run is a request with its D1 read and write: on a loaded machine this takes longer than 5 s.
  it("any valid identify is delivered as a contact that passes Autopilot's strict check", { timeout: 30_000 }, async () => {
    const { send, autopilot } = worker()
    await fc.assert(validIdentifyProperty(send, autopilot), { numRuns: 120 })
  })

  it('any trait name becomes a well-formed custom key or is left out', async () => {
    const { send, autopilot } = worker()
    await fc.assert(customKeyProperty(send, autopilot), { numRuns: 120 })
  })
})
