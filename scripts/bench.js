// @ts-check
// `npm run bench`: our Worker's CPU per event as Cloudflare bills it, against a bare Worker.
// In production D1 runs outside the Worker, which pays only for building its queries and
// reading the answers. So here each Worker has a workerd process of its own and D1 a third:
//   - ours: the bundle `wrangler deploy` builds, its `DB` a shim (bench/d1-shim.js) that sends
//     every query over HTTP to the real D1, migrated, in another process (bench/d1-server.js);
//     the shim is first checked against real D1 (bench/d1-parity.js);
//   - bare: the same credential check, JSON parse and one bulk call per 100 events
//     (bench/bare-worker.js);
//   - Autopilot: each Worker's own stand-in (sandbox/autopilot.js), answering at once.
// The same signed batches (bench/events.js) go to both, taking turns (who goes first alternates
// per round); each request's CPU is the workerd process's CPU (Linux /proc) before and after
// it, all threads and the main one (where isolates run). An empty Worker in the bare one's
// process gives what workerd spends on any request, and on each outbound call; from them, a
// rough estimate of our isolate's own CPU (which is what Cloudflare bills; `npm run
// bench:profile` samples it). Then the largest batch within Workers Free's 10 ms, predicted
// from the two sizes and measured. Numbers go to bench/results/ so runs can be compared.
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { gzipSync } from 'node:zlib'
import { createAutopilot } from '../sandbox/autopilot.js'
import { checkShim } from '../bench/d1-parity.js'
import { API_KEY, batchOf, bindingsFor, peopleIn } from '../bench/events.js'
import { fit, idleCpuMsPerSecond, measure, median, oursAnswer, summary } from '../bench/measure.js'
import { startD1Server, startWorker } from '../bench/processes.js'
import { printReport } from '../bench/report.js'
import { buildWorker } from './worker.js'

const DEFAULT_ROUNDS = 20
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? DEFAULT_ROUNDS)
/** Rounds at each size tried for the largest batch within 10 ms. */
const FIT_ROUNDS = Number(process.env.BENCH_FIT_ROUNDS ?? Math.max(3, Math.ceil(ROUNDS / 2)))
/** 'token' (how Segment must send batches) or 'signature' (whole-body HMAC): the check both Workers make. */
const AUTH = process.env.BENCH_AUTH === 'signature' ? 'signature' : 'token'
/** Short requests are read several in a row per sample (CPU per request is their mean). */
const REQUESTS_PER_SAMPLE = (/** @type {number} */ size) => (size === 1 ? 10 : size <= 100 ? 3 : 1)
const CASES = /** @type {const} */ ([
  { name: 'single event, new user', size: 1, users: 'new' },
  { name: '100 events, new users', size: 100, users: 'new' },
  { name: '100 events, known users', size: 100, users: 'known' },
  { name: '1,000 events, new users', size: 1000, users: 'new' },
  { name: '1,000 events, known users', size: 1000, users: 'known' },
])
const startedAt = Date.now()
console.log(`npm run bench: ${ROUNDS} rounds (BENCH_ROUNDS; default ${DEFAULT_ROUNDS}) + ${FIT_ROUNDS} per size tried for 10 ms (BENCH_FIT_ROUNDS), auth ${AUTH} (BENCH_AUTH=token|signature)`)
console.log('a default run takes 40–70 s on our 2-core machines: build and warm-up ~10 s, ~1.5 s a round, ~15 s finding the largest batch within 10 ms')

const outdir = mkdtempSync(join(tmpdir(), 'bench-build-'))
console.log('building the Worker (wrangler deploy --dry-run)…')
const scriptPath = buildWorker({ outdir })
const bundle = readFileSync(scriptPath)
const bindings = bindingsFor(AUTH)
const autopilots = { ours: createAutopilot({ apiKey: API_KEY }), bare: createAutopilot({ apiKey: API_KEY }) }

const d1 = await startD1Server()
const parity = await checkShim(d1.address)
console.log(`D1 shim matches D1 on ${parity} checks (results, meta, errors, batch rollback)`)
const ours = await startWorker({ scriptPath, bindings, autopilot: autopilots.ours, d1Address: d1.address })
const bare = await startWorker({ scriptPath: 'bench/bare-worker.js', bindings, autopilot: autopilots.bare, withEmpty: true })
const pids = { ours: ours.pid, bare: bare.pid, d1: d1.pid }
if (new Set(Object.values(pids)).size !== 3) throw new Error(`expected three workerd processes, got ${JSON.stringify(pids)}`)
console.log(`workerd processes: ours ${pids.ours}, bare ${pids.bare} (and the empty Worker), D1 ${pids.d1} (not counted)`)

/** @typedef {'ours' | 'bare' | 'empty'} Who */
/** @typedef {{ size: number, users: 'new' | 'known' }} Case */
const targets = { ours: { worker: ours, url: undefined }, bare: { worker: bare, url: undefined }, empty: { worker: bare, url: 'http://empty.bench/' } }
/** Autopilot writes each Worker makes for a batch: bulk calls (and ours, a trigger call per journey entered). */
const expectedCalls = (/** @type {Who} */ who, /** @type {Case} */ c) =>
  who === 'empty' ? 0 : who === 'bare' ? Math.ceil(c.size / 100) : c.size === 1 ? 1 : Math.ceil(peopleIn(c.size) / 100) + Math.floor(c.size / 100)

let tags = 0
/** Fresh requests for one sample of a case: new messageIds (and new users, where the case says so); short ones several in a row. */
const requestsFor = (/** @type {Case} */ c) => Array.from({ length: REQUESTS_PER_SAMPLE(c.size) }, () => batchOf({ ...c, tag: `r${tags++}`, time: Date.UTC(2026, 10, 28) + tags * 1000 }))

/** One sample of a case on one Worker: CPU per request (ms), each answer and Autopilot call count checked. */
async function sample(/** @type {Who} */ who, /** @type {Case} */ c, /** @type {{ body: string, headers: Record<string, string> }[]} */ requests, url = targets[who].url) {
  const sum = { cpuMs: 0, mainMs: 0, statMs: 0, wallMs: 0 }
  for (const request of requests) {
    const autopilot = autopilots[who === 'ours' ? 'ours' : 'bare']
    autopilot.reset()
    const result = await measure(targets[who].worker, request, url)
    const problem = who !== 'ours' || c.size === 1 ? (result.status === 200 ? undefined : `status ${result.status}`) : oursAnswer(result).problem
    if (problem) throw new Error(`${who}, ${c.size} ${c.users}: ${problem}`)
    // Writes only: the account's field list (a GET) is read once an hour per isolate.
    const calls = autopilot.calls.filter((call) => call.method === 'POST' && call.status === 200).length
    if (url === targets[who].url && calls !== expectedCalls(who, c)) throw new Error(`${who}, ${c.size} ${c.users}: ${calls} Autopilot calls, expected ${expectedCalls(who, c)}`)
    for (const key of /** @type {const} */ (['cpuMs', 'mainMs', 'statMs', 'wallMs'])) sum[key] += result[key]
  }
  const n = requests.length
  return { cpuMs: sum.cpuMs / n, mainMs: sum.mainMs / n, wallMs: sum.wallMs / n, statTotalMs: sum.statMs, cpuTotalMs: sum.cpuMs }
}

/** Every Worker on the same requests, ours and bare taking turns at going first. */
async function round(/** @type {Case} */ c, /** @type {Who[]} */ order) {
  const requests = requestsFor(c)
  /** @type {Record<string, Awaited<ReturnType<typeof sample>>>} */
  const got = {}
  for (const who of order) got[who] = await sample(who, c, requests)
  return got
}

// Warm-up: the known users are taught (and each Worker's code is compiled) before anything counts.
process.stdout.write('warm-up')
for (let i = 0; i < 3; i++) for (const c of CASES) await round(c, ['ours', 'bare', 'empty'])
const idle = { ours: await idleCpuMsPerSecond(pids.ours), bare: await idleCpuMsPerSecond(pids.bare) }

// What one outbound call costs workerd here (Miniflare's outboundService path): the empty
// Worker making 10 bulk calls, against making none.
const calibration = { none: /** @type {number[]} */ ([]), ten: /** @type {number[]} */ ([]), noneMain: /** @type {number[]} */ ([]), tenMain: /** @type {number[]} */ ([]) }
for (let i = 0; i < 10; i++) {
  const single = requestsFor({ size: 1, users: 'new' }).slice(0, 1)
  const [none, ten] = [await sample('empty', { size: 1, users: 'new' }, single), await sample('empty', { size: 1, users: 'new' }, single, 'http://empty.bench/?calls=10')]
  calibration.none.push(none.cpuMs)
  calibration.ten.push(ten.cpuMs)
  calibration.noneMain.push(none.mainMs)
  calibration.tenMain.push(ten.mainMs)
}
const perCall = { cpuMs: (median(calibration.ten) - median(calibration.none)) / 10, mainMs: (median(calibration.tenMain) - median(calibration.noneMain)) / 10 }

const METRICS = /** @type {const} */ (['ours', 'bare', 'empty', 'oursMain', 'bareMain', 'emptyMain', 'ratio', 'oursWall', 'bareWall'])
/** @type {Record<string, Record<(typeof METRICS)[number], number[]>>} */
const samples = Object.fromEntries(CASES.map((c) => [c.name, Object.fromEntries(METRICS.map((m) => [m, []]))]))
const statTotals = { ours: 0, bare: 0, oursSched: 0, bareSched: 0 }
for (let r = 1; r <= ROUNDS; r++) {
  for (const c of CASES) {
    const got = await round(c, r % 2 ? ['ours', 'bare', 'empty'] : ['bare', 'ours', 'empty'])
    const s = samples[c.name]
    for (const who of /** @type {const} */ (['ours', 'bare', 'empty'])) {
      s[who].push(got[who].cpuMs)
      s[`${who}Main`].push(got[who].mainMs)
    }
    s.ratio.push(got.ours.cpuMs / got.bare.cpuMs)
    s.oursWall.push(got.ours.wallMs)
    s.bareWall.push(got.bare.wallMs)
    statTotals.ours += got.ours.statTotalMs
    statTotals.bare += got.bare.statTotalMs + got.empty.statTotalMs
    statTotals.oursSched += got.ours.cpuTotalMs
    statTotals.bareSched += got.bare.cpuTotalMs + got.empty.cpuTotalMs
  }
  process.stdout.write(` · round ${r}`)
}
process.stdout.write('\n')

// The largest batch within Workers Free's 10 ms: predicted from the medians at 100 and 1,000
// events (CPU ≈ fixed + per event × size), then measured at that size. Also an estimate of the
// isolate's own share: the main thread, less what workerd spends on any request (the empty
// Worker) and on each outbound call here, none of which Cloudflare bills to the isolate.
const at = (/** @type {string} */ name, /** @type {(typeof METRICS)[number]} */ metric) => median(samples[name][metric])
const isolateEstimate = (/** @type {Case & { name: string }} */ c) => at(c.name, 'oursMain') - at(c.name, 'emptyMain') - expectedCalls('ours', c) * perCall.mainMs
const caseOf = (/** @type {number} */ size, /** @type {string} */ users) => /** @type {Case & { name: string }} */ (CASES.find((c) => c.size === size && c.users === users))
/** @type {Record<string, any>} */
const fits = {}
/** ours' CPU per request at a size (medians over FIT_ROUNDS). */
const measureAt = async (/** @type {number} */ size, /** @type {'new' | 'known'} */ users) => {
  const got = /** @type {number[]} */ ([])
  for (let r = 0; r < FIT_ROUNDS; r++) got.push((await sample('ours', { size, users }, requestsFor({ size, users }))).cpuMs)
  return { size, ...summary(got) }
}
for (const users of /** @type {const} */ (['new', 'known'])) {
  const [small, large] = [caseOf(100, users), caseOf(1000, users)]
  const points = [
    { size: 100, ms: at(small.name, 'ours') },
    { size: 1000, ms: at(large.name, 'ours') },
  ]
  const gross = fit(points[0], points[1])
  const isolate = fit({ size: 100, ms: isolateEstimate(small) }, { size: 1000, ms: isolateEstimate(large) })
  // Measured at the predicted size, then once more at the size the line through that
  // measurement and the nearer size on the other side of 10 ms predicts.
  const tried = []
  let size = Math.min(gross.largest, 1000)
  for (let step = 0; step < 2 && size >= 5 && !tried.some((t) => t.size === size); step++) {
    const m = await measureAt(size, users)
    tried.push(m)
    const point = { size, ms: m.median }
    const other = m.median <= 10 ? points.filter((p) => p.ms > 10 && p.size > size)[0] : points.filter((p) => p.ms <= 10 && p.size < size).at(-1)
    points.push(point)
    points.sort((a, b) => a.size - b.size)
    if (!other) break
    size = Math.min(fit(point.size < other.size ? point : other, point.size < other.size ? other : point).largest, 1000)
  }
  const fitting = tried.filter((t) => t.median <= 10).sort((a, b) => b.size - a.size)[0]
  fits[users] = { ...gross, tried, largestMeasured: fitting?.size ?? 0, isolate }
}
await Promise.all([ours.mf.dispose(), bare.mf.dispose(), d1.mf.dispose()])
rmSync(outdir, { recursive: true, force: true })

const report = {
  date: new Date().toISOString(),
  rounds: ROUNDS,
  auth: AUTH,
  seconds: Math.round((Date.now() - startedAt) / 1000),
  bundle: { rawKiB: +(bundle.length / 1024).toFixed(1), gzipKiB: +(gzipSync(bundle).length / 1024).toFixed(1) },
  idleCpuMsPerSecond: idle,
  statVsSched: statTotals,
  perOutboundCall: perCall,
  cases: CASES.map((c) => {
    const s = samples[c.name]
    return {
      ...c,
      calls: { ours: expectedCalls('ours', c), bare: expectedCalls('bare', c) },
      ...Object.fromEntries(METRICS.map((m) => [m, summary(s[m])])),
      isolateEstimateMs: isolateEstimate(c),
      samples: s,
    }
  }),
  fits,
}
printReport(report)
mkdirSync('bench/results', { recursive: true })
const file = `bench/results/bench-${report.date.replace(/[:.]/g, '-')}.json`
writeFileSync(file, JSON.stringify(report, null, 2))
console.log(`written to ${file}`)
