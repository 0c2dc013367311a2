// @ts-check
// The three workerd processes of `npm run bench`, one Miniflare each (every Miniflare
// spawns its own workerd): the real D1 (bench/d1-server.js), our bundle with its `DB`
// bound to bench/d1-shim.js, and the bare Worker. Each Worker's outbound fetches go to
// its own Autopilot stand-in. Also: which process is whose, and how much CPU it has used.
import { readdirSync, readFileSync } from 'node:fs'
import { dirname } from 'node:path'
import { Miniflare, Response as MiniflareResponse } from 'miniflare'
import { unstable_getMiniflareWorkerOptions } from 'wrangler'
import { migrationStatements } from '../scripts/worker.js'

/** Linux's USER_HZ: /proc/<pid>/stat counts CPU time in these. */
const CLOCK_TICKS = 100

/** Pids of this Node process's workerd children. */
function workerdChildren() {
  const pids = new Set()
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue
    try {
      const stat = readFileSync(`/proc/${name}/stat`, 'utf8')
      const [comm, rest] = [stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')')), stat.slice(stat.lastIndexOf(')') + 2).split(' ')]
      if (comm === 'workerd' && Number(rest[1]) === process.pid) pids.add(Number(name))
    } catch {
      // gone meanwhile
    }
  }
  return pids
}

/** Starts a Miniflare and names the workerd process it spawned (one new child of this process). */
async function start(/** @type {import('miniflare').MiniflareOptions} */ options) {
  const before = workerdChildren()
  const mf = new Miniflare(options)
  await mf.ready
  const fresh = [...workerdChildren()].filter((pid) => !before.has(pid))
  if (fresh.length !== 1) throw new Error(`expected one new workerd process, found ${fresh.length} (Linux /proc is needed)`)
  return { mf, pid: fresh[0] }
}

/** The Autopilot stand-in as Miniflare's outboundService (it answers with Node's Response). */
const outboundTo = (/** @type {{ fetch: (r: Request) => Promise<Response> }} */ autopilot) => async (/** @type {any} */ request) => {
  const response = await autopilot.fetch(request)
  return new MiniflareResponse(await response.arrayBuffer(), { status: response.status, headers: Object.fromEntries(response.headers) })
}

const quiet = { handleRuntimeStdio: (/** @type {NodeJS.ReadableStream} */ stdout, /** @type {NodeJS.ReadableStream} */ stderr) => (stdout.resume(), stderr.resume()) }

/** The real D1, migrated, behind bench/d1-server.js. */
export async function startD1Server() {
  const { workerOptions } = unstable_getMiniflareWorkerOptions('wrangler.toml')
  const started = await start({
    ...quiet,
    port: 0,
    modules: true,
    scriptPath: 'bench/d1-server.js',
    compatibilityDate: workerOptions.compatibilityDate,
    d1Databases: workerOptions.d1Databases,
  })
  const db = await started.mf.getD1Database('DB')
  await db.batch(migrationStatements().map((sql) => db.prepare(sql)))
  const url = await started.mf.ready
  return { ...started, address: url.host }
}

/**
 * A Worker in its own workerd: `scriptPath` with wrangler.toml's vars plus `bindings`,
 * outbound fetches answered by `autopilot`, and — given `d1Address` — `DB` as the shim
 * talking to the D1 server there. `inspectorPort` opens workerd's DevTools inspector;
 * `withEmpty` adds the empty Worker below.
 * @param {{ scriptPath: string, bindings: Record<string, string>, autopilot: { fetch: (r: Request) => Promise<Response> }, d1Address?: string, inspectorPort?: number, withEmpty?: boolean }} options
 */
export async function startWorker({ scriptPath, bindings, autopilot, d1Address, inspectorPort, withEmpty }) {
  const { workerOptions } = unstable_getMiniflareWorkerOptions('wrangler.toml')
  /** @type {import('miniflare').WorkerOptions} */
  const worker = {
    name: 'measured',
    modules: true,
    scriptPath,
    // Module names are paths from here: the bundle may be built outside the project (a temp dir).
    modulesRoot: dirname(scriptPath),
    compatibilityDate: workerOptions.compatibilityDate,
    compatibilityFlags: workerOptions.compatibilityFlags,
    bindings: { ...workerOptions.bindings, ...bindings },
    outboundService: outboundTo(autopilot),
    ...(d1Address && { wrappedBindings: { DB: 'd1-shim' } }),
  }
  const shim = {
    name: 'd1-shim',
    modules: true,
    scriptPath: 'bench/d1-shim.js',
    serviceBindings: { REMOTE: { external: { address: /** @type {string} */ (d1Address), http: {} } } },
  }
  return start({ ...quiet, ...(inspectorPort && { inspectorPort }), workers: [worker, ...(d1Address ? [shim] : []), ...(withEmpty ? [{ ...empty, outboundService: outboundTo(autopilot) }] : [])] })
}

/**
 * With the bare Worker, in its process: a Worker that only takes the body in and answers
 * (http://empty.bench/) — what workerd and Miniflare spend on any request (receiving the body,
 * routing, the answer), which Cloudflare does not bill — and, given ?calls=N, makes N bulk
 * calls of 100 contacts: what each outbound call costs here.
 */
const empty = {
  name: 'empty',
  routes: ['empty.bench/*'],
  modules: true,
  script: `export default {
    async fetch(request) {
      await request.arrayBuffer()
      const calls = Number(new URL(request.url).searchParams.get('calls') ?? 0)
      const body = JSON.stringify({ contacts: Array.from({ length: 100 }, (_, i) => ({ Email: 'user' + i + '@example.com' })) })
      const init = { method: 'POST', headers: { autopilotapikey: 'bench-key', 'content-type': 'application/json' }, body }
      const answers = await Promise.all(Array.from({ length: calls }, () => fetch('https://autopilot.bench/v1/contacts', init)))
      for (const answer of answers) await answer.arrayBuffer()
      return new Response(null)
    },
  }`,
}

/** CPU time (ms) a process has used: utime + stime of /proc/<pid>/stat, in 10 ms ticks. */
export function statCpuMs(/** @type {number} */ pid) {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
  return ((Number(fields[11]) + Number(fields[12])) * 1000) / CLOCK_TICKS
}

/**
 * The same CPU time (ms), to the nanosecond: the scheduler's sum_exec_runtime of each of the
 * process's threads (/proc/<pid>/task/<tid>/sched, which utime + stime are derived from).
 * `main`: workerd's main thread, where the isolates run JavaScript (and V8 collects garbage
 * when it must); the other threads are mostly V8's helpers (concurrent GC, compiling).
 * NaN where the kernel does not expose it.
 */
export function threadCpuMs(/** @type {number} */ pid) {
  let total = 0
  let main = NaN
  for (const tid of readdirSync(`/proc/${pid}/task`)) {
    let text
    try {
      text = readFileSync(`/proc/${pid}/task/${tid}/sched`, 'utf8')
    } catch {
      continue // the thread ended meanwhile; its time moves to the process total /proc/<pid>/stat reports
    }
    const match = /se\.sum_exec_runtime\s*:\s*([\d.]+)/.exec(text)
    if (!match) return { total: NaN, main: NaN }
    total += Number(match[1])
    if (Number(tid) === pid) main = Number(match[1])
  }
  return { total, main }
}
