// @ts-check
// Before `npm run bench` measures anything: does bench/d1-shim.js behave as D1 does?
// bench/d1-probe.js runs once against Miniflare's real D1 and once through the shim to the
// bench's D1 server; the transcripts (results, meta rows_read/rows_written/changes/
// last_row_id, errors, batch rollback) must be the same.
import { Miniflare } from 'miniflare'
import { unstable_getMiniflareWorkerOptions } from 'wrangler'
import { startWorker } from './processes.js'

async function transcript(/** @type {Miniflare} */ mf) {
  const response = await mf.dispatchFetch('http://probe/')
  if (!response.ok) throw new Error(`the D1 probe answered ${response.status}: ${await response.text()}`)
  return /** @type {{ step: string }[]} */ (await response.json())
}

/** Throws, naming the first step that differs, unless the shim matches real D1 step by step. */
export async function checkShim(/** @type {string} */ d1Address) {
  const { workerOptions } = unstable_getMiniflareWorkerOptions('wrangler.toml')
  const viaShim = (await startWorker({ scriptPath: 'bench/d1-probe.js', bindings: {}, autopilot: { fetch: async () => new Response(null, { status: 599 }) }, d1Address })).mf
  const real = new Miniflare({ modules: true, scriptPath: 'bench/d1-probe.js', compatibilityDate: workerOptions.compatibilityDate, d1Databases: { DB: 'parity' } })
  try {
    const [expected, actual] = await Promise.all([transcript(real), transcript(viaShim)])
    for (let i = 0; i < Math.max(expected.length, actual.length); i++) {
      const [want, got] = [JSON.stringify(expected[i]), JSON.stringify(actual[i])]
      if (want !== got) throw new Error(`the D1 shim differs from D1 at step ${i} (${expected[i]?.step}):\n  D1:   ${want}\n  shim: ${got}`)
    }
    return expected.length
  } finally {
    await Promise.all([real.dispose(), viaShim.dispose()])
  }
}
