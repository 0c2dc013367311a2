// @ts-check
// One measured request, and the statistics `npm run bench` reports.
import { setTimeout as sleep } from 'node:timers/promises'
import { statCpuMs, threadCpuMs } from './processes.js'

/** After the answer, time for whatever the request left running (logging) before CPU is read again. */
const SETTLE_MS = 15

/**
 * Sends one request and reads the Worker's workerd CPU before and after it: `cpuMs` (all
 * threads) and `mainMs` (the main thread) from the scheduler's per-thread runtime (ns
 * resolution), `statMs` from /proc/<pid>/stat's utime + stime (10 ms ticks: meaningful summed
 * over many requests).
 * @param {{ mf: import('miniflare').Miniflare, pid: number }} worker
 * @param {{ body: string, headers: Record<string, string> }} request
 * @param {string} [url] http://empty.bench/ for the empty Worker
 */
export async function measure(worker, { body, headers }, url = 'http://worker.bench/') {
  const stat = statCpuMs(worker.pid)
  const threads = threadCpuMs(worker.pid)
  const started = performance.now()
  const response = await worker.mf.dispatchFetch(url, { method: 'POST', body, headers })
  const text = await response.text()
  const wallMs = performance.now() - started
  await sleep(SETTLE_MS)
  const after = threadCpuMs(worker.pid)
  return { status: response.status, text, wallMs, cpuMs: after.total - threads.total, mainMs: after.main - threads.main, statMs: statCpuMs(worker.pid) - stat }
}

/** A process's CPU (ms per second) while nothing is sent to it: what each reading carries as noise. */
export async function idleCpuMsPerSecond(/** @type {number} */ pid, seconds = 1) {
  const before = threadCpuMs(pid).total
  await sleep(seconds * 1000)
  return (threadCpuMs(pid).total - before) / seconds
}

export const median = (/** @type {number[]} */ xs) => {
  const sorted = [...xs].sort((a, b) => a - b)
  const mid = Math.floor(sorted.length / 2)
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2
}

/** Median and spread (min–max); the mean too (GC pauses land in some requests, and are billed). */
export const summary = (/** @type {number[]} */ xs) => ({ median: median(xs), min: Math.min(...xs), max: Math.max(...xs), mean: xs.reduce((a, b) => a + b, 0) / xs.length, n: xs.length })

/**
 * CPU ≈ fixed + perEvent × size, through the medians at two sizes; the largest size (a
 * multiple of `step`) whose predicted CPU stays within `budgetMs`.
 */
export function fit(/** @type {{ size: number, ms: number }} */ small, /** @type {{ size: number, ms: number }} */ large, budgetMs = 10, step = 5) {
  const perEvent = (large.ms - small.ms) / (large.size - small.size)
  const fixed = small.ms - perEvent * small.size
  const largest = perEvent > 0 ? Math.max(0, Math.floor((budgetMs - fixed) / perEvent / step) * step) : Infinity
  return { fixedMs: fixed, perEventUs: perEvent * 1000, largest }
}

/** What a batch answer of ours says: its counts of outcomes, or the reason it is not a clean one. */
export function oursAnswer(/** @type {{ status: number, text: string }} */ result) {
  let counts
  try {
    counts = JSON.parse(result.text).counts
  } catch {
    counts = undefined
  }
  const problem = result.status !== 200 ? `status ${result.status}: ${result.text.slice(0, 300)}` : counts?.retry || counts?.rejected ? `outcomes ${JSON.stringify(counts)}` : undefined
  return { counts, problem }
}
