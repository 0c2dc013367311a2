// @ts-check
// `npm run cost`: what each kind of traffic costs on Cloudflare, per million events.
// Runs the bundle `wrangler deploy` builds in Miniflare (direct mode, a migrated local
// D1), sends each scenario, and reads the Worker's own log line per request, where it
// records the D1 queries it made and the rows D1 reported read and written. Prices are
// Cloudflare's list prices (../shared/reference/cloudflare.md, checked 2026-11).
// `npm run cost -- --destination ortto` (or COST_DESTINATION=ortto): the same traffic to Ortto.
import { mkdirSync, writeFileSync } from 'node:fs'
import { parseArgs } from 'node:util'
import { createAutopilot } from '../sandbox/autopilot.js'
import { createOrtto } from '../sandbox/ortto.js'
import { segmentSignature } from './sign.js'
import { buildWorker, startWorker } from './worker.js'

const PRICE = { requestPerM: 0.3, rowReadPerM: 0.001, rowWrittenPerM: 1.0, queueOpPerM: 0.4 }
const TARGETS = { 'single new-user identifies': 1.5, 'batches of 100 new users': 1.1, 'identifies of known users': 0.35 }
const N = Number(process.env.COST_EVENTS ?? 2000)
const SECRET = 'cost-secret'
const API_KEY = 'cost-key'

const { values } = parseArgs({ options: { destination: { type: 'string' } } })
const DESTINATION = values.destination ?? process.env.COST_DESTINATION ?? 'autopilot'
// Each destination's stand-in (no rate limit: count storage, not waiting) and settings.
const DESTINATIONS = {
  autopilot: () => ({
    standIn: createAutopilot({ apiKey: API_KEY }),
    bindings: { AUTOPILOT_API_KEY: API_KEY, AUTOPILOT_BASE_URL: 'https://autopilot.cost/v1', AUTOPILOT_TRIGGERS: JSON.stringify({ 'Order Completed': '0001' }), AUTOPILOT_MAX_RPS: '100000' },
  }),
  ortto: () => ({
    standIn: createOrtto({
      apiKey: API_KEY,
      customFields: { 'str:cm:plan': 'Plan', 'int:cm:logins': 'Logins' },
      activities: { 'act:cm:order-completed': { name: 'Order Completed', attributes: {} } },
    }),
    bindings: {
      DESTINATION: 'ortto',
      ORTTO_API_KEY: API_KEY,
      ORTTO_BASE_URL: 'https://ortto.cost/v1',
      ORTTO_ACTIVITIES: JSON.stringify({ 'Order Completed': 'act:cm:order-completed' }),
      ORTTO_MAX_RPS: '100000',
    },
  }),
}
if (!Object.hasOwn(DESTINATIONS, DESTINATION)) throw new Error(`--destination must be one of ${Object.keys(DESTINATIONS).join(', ')}`)
const { standIn, bindings } = DESTINATIONS[/** @type {keyof typeof DESTINATIONS} */ (DESTINATION)]()

/** @type {Record<string, any>[]} */
const lines = []
const began = Date.now()
console.log(`building the Worker (wrangler deploy --dry-run)… destination: ${DESTINATION}; a run takes about 40 s`)
const worker = await startWorker({
  scriptPath: buildWorker({ outdir: 'dist' }),
  bindings: { ...bindings, SEGMENT_SHARED_SECRET: SECRET },
  outbound: (request) => standIn.fetch(request),
  quiet: false,
  onLog: (line) => lines.push(line),
})

/** Posts as Segment does: again after a 503 or 429 (a batch that needs more calls than one request may make). */
const post = async (/** @type {unknown} */ payload) => {
  const body = JSON.stringify(payload)
  const headers = { 'content-type': 'application/json', 'x-signature': await segmentSignature(body, SECRET) }
  for (let attempt = 1; ; attempt++) {
    const response = await worker.dispatchFetch('http://worker.cost/', { method: 'POST', body, headers })
    const text = await response.text()
    if (response.status < 300) return
    if ((response.status !== 503 && response.status !== 429) || attempt === 10) throw new Error(`status ${response.status}: ${text.slice(0, 300)}`)
  }
}
const identify = (/** @type {string} */ prefix, /** @type {number} */ i) => ({
  type: 'identify',
  messageId: `${prefix}-${i}-${Math.random()}`,
  userId: `${prefix}-user-${i}`,
  traits: { email: `${prefix}${i}@example.com`, firstName: 'Ada', plan: 'pro', logins: i % 50 },
  timestamp: new Date().toISOString(),
})

/** Sends the requests of a scenario and sums what the Worker logged for them. */
async function measure(/** @type {string} */ name, /** @type {unknown[]} */ requests, /** @type {number} */ events) {
  lines.length = 0
  const callsBefore = standIn.calls.length
  for (const payload of requests) await post(payload)
  await new Promise((resolve) => setTimeout(resolve, 200)) // the last log lines
  const requestLines = lines.filter((line) => line.kind === 'request')
  const sum = (/** @type {string} */ key) => requestLines.reduce((n, line) => n + (line.d1?.[key] ?? 0), 0)
  const row = {
    scenario: name,
    events,
    requests: requestLines.length,
    d1QueriesPerRequest: +(sum('queries') / requestLines.length).toFixed(2),
    rowsReadPerEvent: +(sum('rowsRead') / events).toFixed(2),
    rowsWrittenPerEvent: +(sum('rowsWritten') / events).toFixed(3),
    destinationCallsPer100Events: +(((standIn.calls.length - callsBefore) / events) * 100).toFixed(2),
  }
  const perM = {
    requests: (row.requests / events) * PRICE.requestPerM,
    rowsRead: row.rowsReadPerEvent * PRICE.rowReadPerM,
    rowsWritten: row.rowsWrittenPerEvent * PRICE.rowWrittenPerM,
  }
  return { ...row, dollarsPerMillionEvents: +(perM.requests + perM.rowsRead + perM.rowsWritten).toFixed(3), breakdown: Object.fromEntries(Object.entries(perM).map(([k, v]) => [k, +v.toFixed(4)])) }
}

const results = []
results.push(
  await measure(
    'single new-user identifies',
    Array.from({ length: N }, (_, i) => identify('single', i)),
    N,
  ),
)
const batches = Array.from({ length: N / 100 }, (_, b) => Array.from({ length: 100 }, (_, i) => identify('batch', b * 100 + i)))
results.push(await measure('batches of 100 new users', batches, N))
results.push(
  await measure(
    'identifies of known users',
    Array.from({ length: N }, (_, i) => identify('single', i)),
    N,
  ),
)
const tracks = Array.from({ length: N }, (_, i) => ({ type: 'track', messageId: `track-${i}-${Math.random()}`, userId: `single-user-${i}`, event: 'Order Completed' }))
results.push(await measure('userId-only tracks entering a journey', tracks, N))
const trackBatches = Array.from({ length: N / 100 }, (_, b) =>
  Array.from({ length: 100 }, (_, i) => ({ type: 'track', messageId: `tb-${b}-${i}-${Math.random()}`, userId: `batch-user-${b * 100 + i}`, event: 'Order Completed' })),
)
results.push(await measure('batches of 100 tracks entering a journey', trackBatches, N))
await worker.dispose()

const pad = (/** @type {unknown} */ s, n = 12) => String(s).padStart(n)
console.log(
  `\nCloudflare cost per million events to ${DESTINATION}, direct mode (${N} events per scenario; $${PRICE.requestPerM}/M requests, $${PRICE.rowReadPerM}/M rows read, $${PRICE.rowWrittenPerM}/M rows written)\n`,
)
console.log(`${'scenario'.padEnd(40)}${pad('D1 q/req')}${pad('rows r/ev')}${pad('rows w/ev')}${pad('calls/100 ev')}${pad('$/M events')}${pad('target')}`)
for (const r of results) {
  const target = TARGETS[/** @type {keyof typeof TARGETS} */ (r.scenario)]
  const verdict = target === undefined ? '-' : `≤ ${target} ${r.dollarsPerMillionEvents <= target ? 'met' : 'MISSED'}`
  console.log(
    `${r.scenario.padEnd(40)}${pad(r.d1QueriesPerRequest)}${pad(r.rowsReadPerEvent)}${pad(r.rowsWrittenPerEvent)}${pad(r.destinationCallsPer100Events, 13)}${pad(r.dollarsPerMillionEvents.toFixed(3))}${pad(verdict, 14)}`,
  )
}
console.log('\nQueued mode adds 3 queue operations per message ($1.20 per million messages); a message carries up to 100 events.')
mkdirSync('bench/results', { recursive: true })
const file = `bench/results/cost-${new Date().toISOString().replace(/[:.]/g, '-')}.json`
writeFileSync(file, JSON.stringify({ date: new Date().toISOString(), destination: DESTINATION, prices: PRICE, results }, null, 2))
console.log(`written to ${file} (took ${Math.round((Date.now() - began) / 1000)} s)`)
const missed = results.some((r) => {
  const target = TARGETS[/** @type {keyof typeof TARGETS} */ (r.scenario)]
  return target !== undefined && r.dollarsPerMillionEvents > target
})
process.exit(missed ? 1 : 0)
