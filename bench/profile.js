// @ts-check
// `npm run bench:profile`: where our Worker's CPU goes on 1,000-event batches of known users
// (PROFILE_USERS=new for new ones), as `npm run bench` runs it — the bundle `wrangler deploy`
// builds, unminified for readable names (--minify=false), in its own workerd with D1 in
// another — sampled by V8's profiler through workerd's DevTools inspector, which samples the
// isolate only while it runs: what Cloudflare bills. The bare Worker gets the same batches and
// is sampled too, for the two isolates' ratio. Prints the top functions by self and total
// time, mapped to src/ by the bundle's source map, and writes ours' profile to bench/results/
// (open it in Chrome DevTools' Performance panel).
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createAutopilot } from '../sandbox/autopilot.js'
import { buildWorker } from '../scripts/worker.js'
import { API_KEY, batchOf, bindingsFor } from './events.js'
import { measure } from './measure.js'
import { startD1Server, startWorker } from './processes.js'
import { analyse, printAnalysis } from './profile-report.js'

const REQUESTS = Number(process.env.PROFILE_REQUESTS ?? 40)
const SIZE = Number(process.env.PROFILE_SIZE ?? 1000)
const USERS = process.env.PROFILE_USERS === 'new' ? 'new' : 'known'
/** Microseconds between samples. */
const INTERVAL_US = 100

if (typeof WebSocket === 'undefined') throw new Error('needs a WebSocket client: Node 22, or Node 20 with --experimental-websocket (as `npm run bench:profile` runs it)')

const freePort = () =>
  new Promise((resolve) => {
    const server = createServer().listen(0, '127.0.0.1', () => {
      const { port } = /** @type {import('node:net').AddressInfo} */ (server.address())
      server.close(() => resolve(port))
    })
  })

/** A DevTools protocol session: send(method, params) -> result. */
async function inspect(/** @type {string} */ url) {
  const socket = new WebSocket(url)
  await new Promise((resolve, reject) => {
    socket.addEventListener('open', resolve, { once: true })
    socket.addEventListener('error', reject, { once: true })
  })
  let ids = 0
  /** @type {Map<number, { resolve: (v: any) => void, reject: (e: Error) => void }>} */
  const waiting = new Map()
  socket.addEventListener('message', (event) => {
    const message = JSON.parse(String(event.data))
    const pending = message.id !== undefined && waiting.get(message.id)
    if (!pending) return
    waiting.delete(message.id)
    if (message.error) pending.reject(new Error(message.error.message))
    else pending.resolve(message.result)
  })
  return {
    send: (/** @type {string} */ method, /** @type {object} */ params = {}) =>
      new Promise((resolve, reject) => {
        const id = ++ids
        waiting.set(id, { resolve, reject })
        socket.send(JSON.stringify({ id, method, params }))
      }),
    close: () => socket.close(),
  }
}

/** Starts V8's sampling profiler in a Worker's isolate, through workerd's inspector. */
async function profiler(/** @type {number} */ port) {
  const targets = await (await fetch(`http://127.0.0.1:${port}/json/list`)).json()
  const target = targets.find((/** @type {{ id: string }} */ t) => t.id === 'core:user:measured')
  const session = await inspect(target.webSocketDebuggerUrl)
  await session.send('Profiler.enable')
  await session.send('Profiler.setSamplingInterval', { interval: INTERVAL_US })
  await session.send('Profiler.start')
  return async () => {
    const { profile } = await session.send('Profiler.stop')
    session.close()
    return /** @type {import('./profile-report.js').Profile} */ (profile)
  }
}

const outdir = mkdtempSync(join(tmpdir(), 'bench-profile-'))
console.log('building the Worker unminified (wrangler deploy --dry-run --minify=false)…')
const scriptPath = buildWorker({ outdir, minify: false })
const sourceMap = JSON.parse(readFileSync(`${scriptPath}.map`, 'utf8'))
const ports = { ours: /** @type {number} */ (await freePort()), bare: /** @type {number} */ (await freePort()) }
const autopilots = { ours: createAutopilot({ apiKey: API_KEY }), bare: createAutopilot({ apiKey: API_KEY }) }
const bindings = bindingsFor('token')
const d1 = await startD1Server()
const ours = await startWorker({ scriptPath, bindings, autopilot: autopilots.ours, d1Address: d1.address, inspectorPort: ports.ours })
const bare = await startWorker({ scriptPath: 'bench/bare-worker.js', bindings, autopilot: autopilots.bare, inspectorPort: ports.bare })

let tags = 0
/** The same batch to both Workers; their workerd CPU (ms). */
const send = async () => {
  const request = batchOf({ size: SIZE, users: USERS, tag: `p${tags++}`, time: Date.UTC(2026, 10, 28) + tags * 1000 })
  const cpu = { ours: 0, bare: 0 }
  for (const [who, worker] of /** @type {const} */ ([
    ['ours', ours],
    ['bare', bare],
  ])) {
    autopilots[who].reset()
    const result = await measure(worker, request)
    if (result.status !== 200) throw new Error(`${who}: status ${result.status}: ${result.text.slice(0, 300)}`)
    cpu[who] = result.cpuMs
  }
  return cpu
}
// Warm-up: known users taught, code compiled.
for (let i = 0; i < 5; i++) await send()

const stop = { ours: await profiler(ports.ours), bare: await profiler(ports.bare) }
const cpu = { ours: 0, bare: 0 }
for (let i = 0; i < REQUESTS; i++) {
  const got = await send()
  cpu.ours += got.ours
  cpu.bare += got.bare
}
const profiles = { ours: await stop.ours(), bare: await stop.bare() }
await Promise.all([ours.mf.dispose(), bare.mf.dispose(), d1.mf.dispose()])
rmSync(outdir, { recursive: true, force: true })

console.log(`\n${REQUESTS} batches of ${SIZE} events, ${USERS} users, to ours and to the bare Worker, sampled every ${INTERVAL_US} µs (the profiler adds to the CPU it measures)`)
const result = analyse(profiles.ours, sourceMap, 'index.js')
const bareResult = analyse(profiles.bare, { sources: [], mappings: '' }, 'index.js')
const perRequest = (/** @type {number} */ total) => (total / REQUESTS).toFixed(1)
console.log(
  `isolate JavaScript and GC per batch, from the samples: ours ${perRequest(result.busyMs)} ms, bare ${perRequest(bareResult.busyMs)} ms — ${(result.busyMs / bareResult.busyMs).toFixed(2)}× bare`,
)
console.log(`workerd process CPU per batch meanwhile: ours ${perRequest(cpu.ours)} ms, bare ${perRequest(cpu.bare)} ms`)
printAnalysis(result, REQUESTS)
mkdirSync('bench/results', { recursive: true })
const file = `bench/results/profile-${new Date().toISOString().replace(/[:.]/g, '-')}.cpuprofile`
writeFileSync(file, JSON.stringify(profiles.ours))
console.log(`\nprofile written to ${file}`)
