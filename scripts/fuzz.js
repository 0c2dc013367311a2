// @ts-check
// `npm run fuzz`: the property tests of test/properties.js, many more runs, against the
// bundle `wrangler deploy` would upload, running in Miniflare (workerd).
// By default 2,500 runs per property: about a minute on our 2-core machines.
// FUZZ_RUNS=20000 for the long run (about six minutes); FUZZ_SEED to repeat one.
import fc from 'fast-check'
import { createAutopilot } from '../sandbox/autopilot.js'
import { anyBodyProperty, customKeyProperty, FUZZ_API_KEY, FUZZ_ENV, FUZZ_MAX_BODY_BYTES, validIdentifyProperty } from '../test/properties.js'
import { buildWorker, startWorker } from './worker.js'

const runs = Number(process.env.FUZZ_RUNS ?? 2_500)
const seed = process.env.FUZZ_SEED ? Number(process.env.FUZZ_SEED) : Date.now() % 2 ** 31

const autopilot = createAutopilot({ apiKey: FUZZ_API_KEY })
const scriptPath = buildWorker()
const worker = await startWorker({
  scriptPath,
  bindings: { ...FUZZ_ENV, AUTOPILOT_BASE_URL: 'https://autopilot.fuzz/v1' },
  outbound: (request) => autopilot.fetch(request),
})
let resets = 0
/**
 * When the Worker refuses an oversized body with 413 before reading it, the local
 * HTTP client sometimes loses that race and sees its socket reset (ECONNRESET, EPIPE)
 * while still uploading — more often on a busy machine. That is transport, not the
 * Worker: such a request is sent again (after a moment) and counted.
 * @type {import('../test/properties.js').Send}
 */
const RESETS = new Set(['ECONNRESET', 'EPIPE', 'UND_ERR_SOCKET'])
const send = async (body, headers) => {
  for (let attempt = 1; ; attempt++) {
    try {
      return /** @type {Response} */ (/** @type {unknown} */ (await worker.dispatchFetch('http://worker.fuzz/', { method: 'POST', body, headers })))
    } catch (error) {
      const reset = RESETS.has(/** @type {any} */ (error)?.cause?.code)
      if (!reset || Buffer.byteLength(body) <= FUZZ_MAX_BODY_BYTES || attempt === 20) {
        throw new Error(`${error instanceof Error ? error.message : error} (${/** @type {any} */ (error)?.cause?.code ?? 'no code'}, attempt ${attempt})`, { cause: error })
      }
      resets++
      await new Promise((resolve) => setTimeout(resolve, 20 * attempt))
    }
  }
}

const statuses = new Map()
const counting = (/** @type {import('../test/properties.js').Send} */ inner) => async (/** @type {string} */ body, /** @type {Record<string,string>} */ headers) => {
  const response = await inner(body, headers)
  statuses.set(response.status, (statuses.get(response.status) ?? 0) + 1)
  return response
}

let failed = false
const began = Date.now()
console.log(`fuzz: ${runs} runs per property (FUZZ_RUNS), seed ${seed} (FUZZ_SEED)`)
for (const [name, property] of [
  ['any body -> 200/202/400/401/413 with a JSON message', anyBodyProperty(counting(send))],
  ['any valid identify -> a contact Autopilot accepts', validIdentifyProperty(counting(send), autopilot)],
  ['any trait name -> a well-formed custom key', customKeyProperty(counting(send), autopilot)],
]) {
  statuses.clear()
  const started = Date.now()
  const result = await fc.check(/** @type {any} */ (property), { numRuns: runs, seed })
  const seconds = ((Date.now() - started) / 1000).toFixed(1)
  const byStatus = [...statuses]
    .sort()
    .map(([status, n]) => `${status}×${n}`)
    .join(' ')
  if (result.failed) {
    failed = true
    console.log(`FAIL ${name}: after ${result.numRuns} runs (seed ${seed}, path ${result.counterexamplePath})`)
    console.log(`  ${String(result.errorInstance).slice(0, 500)}`)
    console.log(`  counterexample: ${fc.stringify(result.counterexample).slice(0, 500)}`)
  } else {
    console.log(`ok   ${name}: ${result.numRuns} runs in ${seconds} s (${byStatus})`)
  }
}
await worker.dispose()
if (resets) console.log(`(${resets} oversized uploads were reset by the early 413 and sent again)`)
console.log(failed ? 'fuzz: FAILED' : `fuzz: all properties held (seed ${seed}) in ${Math.round((Date.now() - began) / 1000)} s`)
process.exit(failed ? 1 : 0)
