// @ts-check
// A V8 CPU profile (as workerd's inspector returns it) -> where the time went, by function,
// named by its place in src/ through the bundle's source map. Functions outside src/ (valibot,
// hono, V8's builtins such as JSON.parse) are shown with the src/ function that called them.
import { originalPositions } from './sourcemap.js'

/**
 * @typedef {{ id: number, callFrame: { functionName: string, url: string, lineNumber: number, columnNumber: number }, children?: number[] }} ProfileNode
 * @typedef {{ nodes: ProfileNode[], samples: number[], timeDeltas: number[], startTime: number, endTime: number }} Profile
 */

const V8_ENTRIES = new Set(['(root)', '(program)', '(idle)', '(garbage collector)'])

/**
 * @param {Profile} profile
 * @param {{ sources: string[], mappings: string }} sourceMap of the bundle
 * @param {string} bundleName how the bundle's url ends (index.js)
 */
export function analyse(profile, sourceMap, bundleName) {
  const original = originalPositions(sourceMap)
  /** @type {Map<number, ProfileNode>} */
  const byId = new Map(profile.nodes.map((node) => [node.id, node]))
  /** @type {Map<number, number>} */
  const parent = new Map()
  for (const node of profile.nodes) for (const child of node.children ?? []) parent.set(child, node.id)

  /** Where a node's function is: "src/transform.ts:178", "node_modules/valibot/…", "bench/d1-shim.js:40", or '' (V8 builtin). */
  const placeCache = new Map()
  const place = (/** @type {ProfileNode} */ node) => {
    if (placeCache.has(node.id)) return placeCache.get(node.id)
    const { url, lineNumber, columnNumber } = node.callFrame
    let where = ''
    if (url.endsWith(bundleName)) {
      const found = original(lineNumber, columnNumber)
      where = found ? (found.source.startsWith('src/') ? `${found.source}:${found.line}` : found.source.replace(/^node_modules\/([^/]+)\/.*$/, '$1')) : bundleName
    } else if (url) {
      where = url.replace(/^.*\/(bench\/[^/]+)$/, '$1') + `:${lineNumber + 1}`
    }
    placeCache.set(node.id, where)
    return where
  }
  const name = (/** @type {ProfileNode} */ node) => node.callFrame.functionName || '(anonymous)'
  /** The nearest caller (self included) whose code is in src/. */
  const ourCaller = (/** @type {number} */ id) => {
    for (let at = parent.get(id); at !== undefined; at = parent.get(at)) {
      const node = /** @type {ProfileNode} */ (byId.get(at))
      if (place(node).startsWith('src/')) return `${name(node)} (${place(node)})`
    }
    return undefined
  }
  const labelCache = new Map()
  /** How a node is reported: our functions by name and place; the rest with our caller. */
  const label = (/** @type {ProfileNode} */ node) => {
    if (labelCache.has(node.id)) return labelCache.get(node.id)
    const where = place(node)
    let text
    if (V8_ENTRIES.has(name(node))) text = name(node)
    else if (where.startsWith('src/')) text = `${name(node)} (${where})`
    else {
      const caller = ourCaller(node.id)
      text = `${where ? `${where} ` : 'builtin '}${name(node)}${caller ? ` ← ${caller}` : ''}`
    }
    labelCache.set(node.id, text)
    return text
  }

  // workerd's profiler samples only while the isolate runs JavaScript (or collects garbage): the
  // gaps while it waits for D1 or Autopilot are not samples of anything. So each sample counts
  // as the usual interval between samples, and shares are shares of samples.
  const { samples, timeDeltas } = profile
  const sorted = [...timeDeltas].sort((a, b) => a - b)
  const interval = sorted[Math.floor(sorted.length / 2)] ?? 0
  const times = samples.map(() => interval)
  /** @type {Map<string, number>} */
  const self = new Map()
  /** @type {Map<string, number>} our functions, with everything they called */
  const total = new Map()
  /** @type {Map<string, number>} by file (src/…) or library */
  const byFile = new Map()
  let busy = 0
  samples.forEach((id, i) => {
    const node = /** @type {ProfileNode} */ (byId.get(id))
    if (name(node) === '(idle)') return
    const t = times[i]
    busy += t
    self.set(label(node), (self.get(label(node)) ?? 0) + t)
    const file = V8_ENTRIES.has(name(node)) ? name(node) : place(node).replace(/:\d+$/, '') || `builtins ← ${ourCaller(id)?.replace(/^.*\((src\/[^:]+):\d+\)$/, '$1') ?? 'elsewhere'}`
    byFile.set(file, (byFile.get(file) ?? 0) + t)
    const seen = new Set()
    for (let at = /** @type {number | undefined} */ (id); at !== undefined; at = parent.get(at)) {
      const frame = /** @type {ProfileNode} */ (byId.get(at))
      if (!place(frame).startsWith('src/')) continue
      const key = label(frame)
      if (seen.has(key)) continue
      seen.add(key)
      total.set(key, (total.get(key) ?? 0) + t)
    }
  })
  const ranked = (/** @type {Map<string, number>} */ map, /** @type {number} */ n) =>
    [...map.entries()]
      .sort((a, b) => b[1] - a[1])
      .slice(0, n)
      .map(([what, us]) => ({ what, ms: us / 1000, share: us / busy }))
  return { busyMs: busy / 1000, intervalUs: interval, samples: samples.length, self: ranked(self, 30), total: ranked(total, 20), byFile: ranked(byFile, 20) }
}

/** @param {ReturnType<typeof analyse>} result */
export function printAnalysis(result, /** @type {number} */ requests) {
  const line = (/** @type {{ what: string, ms: number, share: number }} */ r) => console.log(`${(100 * r.share).toFixed(1).padStart(6)} %  ${(r.ms / requests).toFixed(2).padStart(6)} ms  ${r.what}`)
  console.log(
    `\n${result.samples} samples, one every ${result.intervalUs} µs while the isolate ran: ≈ ${(result.busyMs / requests).toFixed(1)} ms of JavaScript and GC per request; shares of that, and ms per request:`,
  )
  console.log('\nby file or library (builtins counted to the src/ file that called them):')
  result.byFile.forEach(line)
  console.log('\ntop self time (the function itself; library code and builtins with the src/ function that called them):')
  result.self.forEach(line)
  console.log('\ntop total time (src/ functions with everything they called):')
  result.total.forEach(line)
}
