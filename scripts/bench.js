// @ts-check
// `npm run bench`: the Worker's own cost per event, against a bare Worker and a D1 floor.
// Builds the Worker as `wrangler deploy` does and runs the bundle in Miniflare, next to
// a bare Worker (bench/bare-worker.js) that only verifies the HMAC, parses the JSON
// and makes one fetch, and to that bare Worker plus one D1 lookup of the userIds
// (bench/floor-worker.js: the least a Worker keeping identity in D1 adds). All get the same
// signed events; Autopilot is the local stand-in answering at once. They take turns over
// several rounds; the table shows medians, with each workerd process's CPU time per request
// (Linux /proc; D1 runs in that process too). Numbers go to bench/results/ so runs can be compared.
import { execFileSync } from 'node:child_process'
import { createHash, createHmac } from 'node:crypto'
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { gzipSync } from 'node:zlib'
import { createAutopilot } from '../sandbox/autopilot.js'
import { buildWorker, startWorker } from './worker.js'

const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 5)
const SINGLE_EVENTS = Number(process.env.BENCH_SINGLE ?? 2000)
const BATCHES = Number(process.env.BENCH_BATCHES ?? 60)
const SECRET = 'bench-secret'
/** Linux's USER_HZ: /proc reports CPU time in these. */
const CLOCK_TICKS = 100
const API_KEY = 'bench-key'
const bindings = {
  AUTOPILOT_API_KEY: API_KEY,
  AUTOPILOT_BASE_URL: 'https://autopilot.bench/v1',
  SEGMENT_SHARED_SECRET: SECRET,
  AUTOPILOT_TRIGGERS: JSON.stringify({ 'Order Completed': '0001' }),
  // The stand-in answers at once with no rate limit: measure the Worker, not Autopilot's 5 r/s.
  AUTOPILOT_MAX_RPS: '100000',
}

// Realistic identifies: a userId, an email, reserved and custom traits, context.
const identify = (/** @type {number} */ i) => ({
  type: 'identify',
  messageId: `bench-${i}`,
  userId: `user-${i % 1000}`,
  anonymousId: `anon-${i}`,
  traits: { email: `user${i % 1000}@example.com`, firstName: 'Ada', lastName: 'Lovelace', plan: 'pro', logins: i % 50, beta: true, createdAt: '2026-11-01T10:00:00Z', company: { name: 'AE', employee_count: 12 } },
  context: { library: { name: 'analytics.js', version: 'next-1.70.0' }, ip: '203.0.113.7' },
  timestamp: '2026-11-28T10:00:00.000Z',
  version: 2,
})
// As Segment sends them: signed, with a Content-Length (without one, dispatchFetch streams the body chunked).
const signed = (/** @type {unknown} */ payload) => {
  const body = JSON.stringify(payload)
  const headers = { 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(body)), 'x-signature': createHmac('sha1', SECRET).update(body).digest('hex') }
  return { body, headers }
}
const singles = Array.from({ length: SINGLE_EVENTS }, (_, i) => signed(identify(i)))
const batches = Array.from({ length: BATCHES }, (_, b) => signed(Array.from({ length: 100 }, (_, i) => identify(b * 100 + i))))

console.log('building the Worker (wrangler deploy --dry-run)…')
const scriptPath = buildWorker({ outdir: 'dist' })
const bundle = readFileSync(scriptPath)
const autopilot = createAutopilot({ apiKey: API_KEY })
const outbound = (/** @type {Request} */ request) => autopilot.fetch(request)
const ours = await startWorker({ scriptPath, bindings, outbound })
const oursProcess = newestWorkerd()
const bare = await startWorker({ scriptPath: 'bench/bare-worker.js', bindings, outbound })
const bareProcess = newestWorkerd()
const floor = await startWorker({ scriptPath: 'bench/floor-worker.js', bindings, outbound })
await seedIdentities(floor)
const workers = { ours, bare, floor }
/** Each Worker runs in its own workerd process: its CPU time is the Worker's work (and D1's, run in-process). */
const processes = { ours: oursProcess, bare: bareProcess, floor: newestWorkerd() }

/** The floor Worker looks up every bench userId: all are known, as they are to ours after its warm-up. */
async function seedIdentities(/** @type {import('miniflare').Miniflare} */ worker) {
  const hashes = Array.from({ length: 1000 }, (_, i) => createHash('sha256').update(`user-${i}`).digest('hex'))
  const db = await worker.getD1Database('DB')
  await db.prepare("INSERT INTO identities (user_hash, email, taught_at) SELECT value, 'someone@example.com', 0 FROM json_each(?1)").bind(JSON.stringify(hashes)).run()
}

/** The workerd process Miniflare started last (Linux: /proc), or undefined where that cannot be read. */
function newestWorkerd() {
  try {
    return execFileSync('pgrep', ['-n', 'workerd'], { encoding: 'utf8' }).trim() || undefined
  } catch {
    return undefined
  }
}
/** CPU time (ms) a process has used so far. */
function cpuMs(/** @type {string | undefined} */ pid) {
  if (!pid) return NaN
  try {
    const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ')
    return ((Number(fields[11]) + Number(fields[12])) * 1000) / CLOCK_TICKS
  } catch {
    return NaN
  }
}

/** Sends the requests with `concurrency` in flight; events/s and per-request latencies (ms). */
async function drive(/** @type {import('miniflare').Miniflare} */ worker, /** @type {{body: string, headers: Record<string,string>}[]} */ requests, eventsPer = 1, concurrency = 16) {
  const latencies = []
  let next = 0
  const started = performance.now()
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < requests.length) {
        const { body, headers } = requests[next++]
        const t = performance.now()
        const response = await worker.dispatchFetch('http://worker.bench/', { method: 'POST', body, headers })
        await response.arrayBuffer()
        if (response.status !== 200) throw new Error(`status ${response.status}`)
        latencies.push(performance.now() - t)
      }
    }),
  )
  const seconds = (performance.now() - started) / 1000
  return { eventsPerSecond: (requests.length * eventsPer) / seconds, latencies }
}

const median = (/** @type {number[]} */ xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]
const percentile = (/** @type {number[]} */ xs, /** @type {number} */ p) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(xs.length * p))]

const runs = () => ({ eps: /** @type {number[]} */ ([]), p50: /** @type {number[]} */ ([]), p99: /** @type {number[]} */ ([]), cpu: /** @type {number[]} */ ([]) })
const results = { single: { ours: runs(), bare: runs(), floor: runs() }, batch: { ours: runs(), bare: runs(), floor: runs() } }
/** @type {('ours' | 'bare' | 'floor')[]} */
const order = ['ours', 'bare', 'floor']
let ourBatchCalls = 0
for (let round = 0; round <= ROUNDS; round++) {
  for (const name of [...order.slice(round % 3), ...order.slice(0, round % 3)]) {
    for (const [kind, requests, per, concurrency] of /** @type {const} */ ([['single', singles, 1, 16], ['batch', batches, 100, 4]])) {
      autopilot.reset()
      const cpuBefore = cpuMs(processes[name])
      const { eventsPerSecond, latencies } = await drive(workers[name], requests, per, concurrency)
      const cpuPerRequest = (cpuMs(processes[name]) - cpuBefore) / requests.length
      if (kind === 'batch' && name === 'ours') ourBatchCalls = autopilot.calls.length
      if (round === 0) continue // warm-up
      results[kind][name].eps.push(eventsPerSecond)
      results[kind][name].p50.push(percentile(latencies, 0.5))
      results[kind][name].p99.push(percentile(latencies, 0.99))
      results[kind][name].cpu.push(cpuPerRequest)
    }
  }
  process.stdout.write(round === 0 ? 'warm-up done' : ` · round ${round}`)
}
process.stdout.write('\n')
await Promise.all(Object.values(workers).map((worker) => worker.dispose()))

// The bundle's own CPU time per event, for Cloudflare's CPU caps (10 ms per request on
// Workers Free): the same bundle called in this Node process, D1 and Autopilot stubbed to
// answer at once, so what is timed is validation, mapping, identity and answer-building.
const cpu = await cpuTime(scriptPath, bindings)

const summary = Object.fromEntries(
  Object.entries(results).map(([kind, byWorker]) => [
    kind,
    {
      ratio: +median(byWorker.ours.eps.map((eps, i) => eps / byWorker.bare.eps[i])).toFixed(3),
      floorRatio: +median(byWorker.floor.eps.map((eps, i) => eps / byWorker.bare.eps[i])).toFixed(3),
      ...Object.fromEntries(
        Object.entries(byWorker).map(([name, r]) => [name, { eventsPerSecond: Math.round(median(r.eps)), p50ms: +median(r.p50).toFixed(2), p99ms: +median(r.p99).toFixed(2), workerdCpuMsPerRequest: +median(r.cpu).toFixed(2) }]),
      ),
    },
  ]),
)
const report = {
  date: new Date().toISOString(),
  rounds: ROUNDS,
  ...summary,
  autopilotCallsPer100IdentifiesInABatch: +(ourBatchCalls / ((BATCHES * 100) / 100)).toFixed(2),
  bundle: { rawKiB: +(bundle.length / 1024).toFixed(1), gzipKiB: +(gzipSync(bundle).length / 1024).toFixed(1) },
  cpuMicrosecondsPerEvent: cpu,
}

const row = (/** @type {string[]} */ cells) => console.log(cells.map((c, i) => (i ? c.padStart(14) : c.padEnd(33))).join(''))
console.log(`\nmedians over ${ROUNDS} rotating rounds (${SINGLE_EVENTS} single events, ${BATCHES} batches of 100 identifies per round)`)
console.log('floor: the bare Worker plus one D1 lookup of the userIds (bench/floor-worker.js)\n')
row(['', 'ours', 'floor', 'bare', 'ours/bare', 'floor/bare'])
for (const kind of ['single', 'batch']) {
  const s = report[kind]
  const cells = (/** @type {string} */ label, /** @type {(r: any) => number} */ pick, ratios = false) =>
    row([`${kind}: ${label}`, String(pick(s.ours)), String(pick(s.floor)), String(pick(s.bare)), ratios ? String(s.ratio) : '', ratios ? String(s.floorRatio) : ''])
  cells('events/s', (r) => r.eventsPerSecond, true)
  cells('p50 latency (ms)', (r) => r.p50ms)
  cells('p99 latency (ms)', (r) => r.p99ms)
  cells('workerd CPU ms/request', (r) => r.workerdCpuMsPerRequest)
}
row(['Autopilot calls / 100 identifies', String(report.autopilotCallsPer100IdentifiesInABatch), '1', '1', '', ''])
row(['bundle (KiB raw / gzip)', `${report.bundle.rawKiB} / ${report.bundle.gzipKiB}`, '', '', '', ''])
row(['Node CPU µs/event: 1 / batch', `${cpu.single} / ${cpu.batch}`, '', '', '', ''])
console.log(`\nWorkers Free allows 10 ms of CPU per request: at ${cpu.batch} µs per event a batch of ≈ ${Math.floor(10_000 / cpu.batch)} events fits (set Segment's batch size below that, or use Workers Paid: 30 s).`)
const met = (/** @type {boolean} */ ok) => (ok ? 'met' : 'MISSED')
console.log(
  `\ntargets: batch events/s ≥ 0.85 × bare (${met(report.batch.ratio >= 0.85)}; the floor reaches ${report.batch.floorRatio}), single ≥ 0.9 × bare (${met(report.single.ratio >= 0.9)}); ` +
    `1 call per 100 identifies (${met(report.autopilotCallsPer100IdentifiesInABatch <= 1)}); bundle ≤ 30 KiB gzip (${met(report.bundle.gzipKiB <= 30)})`,
)
mkdirSync('bench/results', { recursive: true })
const file = `bench/results/bench-${report.date.replace(/[:.]/g, '-')}.json`
writeFileSync(file, JSON.stringify(report, null, 2))
console.log(`written to ${file}`)

/** Median CPU time (µs) per event of the bundle's fetch handler, single events and batches of 100. */
async function cpuTime(/** @type {string} */ path, /** @type {Record<string, string>} */ vars) {
  const { default: handler } = await import(`${process.cwd()}/${path}?timing`)
  const statement = { bind: () => statement, all: async () => ({ results: [], meta: {} }), run: async () => ({ results: [], meta: {} }) }
  const DB = { prepare: () => statement, batch: async (/** @type {unknown[]} */ list) => list.map(() => ({ results: [], meta: {} })) }
  const realFetch = globalThis.fetch
  const realLog = console.log
  globalThis.fetch = async () => new Response('{}')
  console.log = () => {}
  const env = { ...vars, DB, AUTOPILOT_FIELDS_REFRESH_SECONDS: '0' }
  const ctx = { waitUntil() {}, passThroughOnException() {} }
  const time = async (/** @type {{body: string, headers: Record<string,string>}[]} */ requests, /** @type {number} */ per) => {
    const samples = []
    for (let round = 0; round < 5; round++) {
      // CPU time, not wall time: what Cloudflare's caps count (idle waits on timers are not work).
      const started = process.cpuUsage()
      for (const { body, headers } of requests) await (await handler.fetch(new Request('http://worker.bench/', { method: 'POST', body, headers }), env, ctx)).arrayBuffer()
      const { user, system } = process.cpuUsage(started)
      samples.push((user + system) / (requests.length * per))
    }
    return +median(samples.slice(1)).toFixed(1)
  }
  try {
    return { single: await time(singles.slice(0, 500), 1), batch: await time(batches.slice(0, 20), 100) }
  } finally {
    globalThis.fetch = realFetch
    console.log = realLog
  }
}
