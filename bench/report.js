// @ts-check
// The tables `npm run bench` prints.

const ms = (/** @type {number} */ x) => (Math.abs(x) >= 10 ? x.toFixed(1) : x.toFixed(2))
const spread = (/** @type {{ median: number, min: number, max: number }} */ s, /** @type {(x: number) => string} */ f = ms) => `${f(s.median)} (${f(s.min)}–${f(s.max)})`
const times = (/** @type {number} */ x) => `${x.toFixed(2)}×`

/** Prints rows with the first column left-aligned and the others right-aligned to `widths`. */
const table = (/** @type {number[]} */ widths) => (/** @type {string[]} */ cells) => console.log(cells.map((c, i) => (i ? c.padStart(widths[i]) : c.padEnd(widths[0]))).join(''))

/** @param {any} report what scripts/bench.js gathered */
export function printReport(report) {
  console.log(`\nworkerd CPU per request (ms, all threads of the Worker's process): median over ${report.rounds} rounds (min–max)`)
  console.log(
    `ours and bare take turns on the same requests; D1 runs in its own process; auth: ${report.auth === 'token' ? 'bearer token (SEGMENT_WEBHOOK_TOKEN), as Segment must send batches' : 'X-Signature over the whole body (SEGMENT_SHARED_SECRET)'}, the same check in both\n`,
  )
  let row = table([27, 20, 20, 24, 24, 15])
  row(['', 'ours', 'bare', 'ours / bare', 'ours µs/event', 'bare µs/event'])
  for (const c of report.cases) {
    const perEvent = (/** @type {number} */ x) => ((x * 1000) / c.size).toFixed(1)
    row([c.name, spread(c.ours), spread(c.bare), spread(c.ratio, times), spread(c.ours, perEvent), perEvent(c.bare.median)])
  }

  console.log(`\nwhere it runs (medians, ms): workerd's main thread (JavaScript, and GC when it must) and its other threads (V8's concurrent GC and compiler);`)
  console.log(`workerd alone = the empty Worker (takes the body in, answers); each outbound call costs workerd ${ms(report.perOutboundCall.mainMs)} ms here (Miniflare's outbound path).`)
  console.log(`ours isolate ≈ ours' main thread − workerd alone − its calls × that: the isolate's own CPU, which is what Cloudflare bills\n`)
  row = table([27, 11, 12, 11, 12, 11, 15, 15])
  row(['', 'ours main', 'ours other', 'bare main', 'bare other', 'calls o/b', 'workerd alone', 'ours isolate≈'])
  for (const c of report.cases) {
    row([
      c.name,
      ms(c.oursMain.median),
      ms(Math.max(0, c.ours.median - c.oursMain.median)),
      ms(c.bareMain.median),
      ms(Math.max(0, c.bare.median - c.bareMain.median)),
      `${c.calls.ours} / ${c.calls.bare}`,
      ms(c.emptyMain.median),
      ms(c.isolateEstimateMs),
    ])
  }
  console.log('(a rough estimate, a difference of medians; for the bare Worker it is too small to tell from noise: `npm run bench:profile` compares both isolates directly)')

  console.log(
    `\nlargest batch within Workers Free's 10 ms of CPU: extrapolated (CPU ≈ fixed + per event × size, through the medians at 100 and 1,000 events), then measured there and at a corrected size:`,
  )
  for (const [users, f] of Object.entries(report.fits)) {
    const size = (/** @type {number} */ n) => (n === Infinity ? 'any size' : `≈ ${n} events`)
    const tried = f.tried.map((/** @type {any} */ t) => `${t.size}: ${spread(t)} ms${t.max > 10 && t.median <= 10 ? ` (${t.n} rounds, some over)` : ''}`).join('; ')
    console.log(
      `  ${users} users: largest measured within 10 ms (median) ${f.largestMeasured} events — process CPU predicted ${size(f.largest)} (fixed ${ms(f.fixedMs)} ms + ${f.perEventUs.toFixed(1)} µs/event); measured at ${tried}`,
    )
    console.log(`    isolate estimate: ${size(f.isolate.largest)} (fixed ${ms(f.isolate.fixedMs)} ms + ${f.isolate.perEventUs.toFixed(1)} µs/event)`)
  }

  const big = report.cases.filter((/** @type {any} */ c) => c.size === 1000)
  const met = (/** @type {boolean} */ ok) => (ok ? 'met' : 'MISSED')
  console.log(
    `\ngoals (issue 22): 1,000-event batches ≤ 2.0× bare — ${big.map((/** @type {any} */ c) => `${c.users} users ${times(c.ratio.median)} ${met(c.ratio.median <= 2)}`).join(', ')}; bundle ${report.bundle.rawKiB} KiB raw, ${report.bundle.gzipKiB} KiB gzip (≤ 40: ${met(report.bundle.gzipKiB <= 40)})`,
  )
  console.log(
    `guard (issue 29): 1,000-event batches within 4.5× bare — ${big.map((/** @type {any} */ c) => `${c.users} users ${met(c.ratio.median <= 4.5)}`).join(', ')}; bundle under 64 KiB gzip ${met(report.bundle.gzipKiB < 64)}`,
  )
  const { statVsSched: t, idleCpuMsPerSecond: idle } = report
  console.log(
    `check: /proc/<pid>/stat utime+stime over all measured requests ${Math.round(t.ours)} ms ours, ${Math.round(t.bare)} ms bare ` +
      `(per-thread scheduler time: ${Math.round(t.oursSched)} / ${Math.round(t.bareSched)} ms); idle CPU ${idle.ours.toFixed(2)} / ${idle.bare.toFixed(2)} ms per second`,
  )
  console.log(`took ${report.seconds} s`)
}
