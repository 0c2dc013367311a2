// The operator page's delivery history (GET /admin), drawn on the server as SVG: the page runs
// no script. Every bar and point carries its numbers in a <title>, and a table says the same
// in text, so the charts read without eyes too.
import { html } from 'hono/html'
import { BUCKETS, HOUR_MS, type HistoryRow } from '../store/history'

export const OUTCOMES = ['delivered', 'skipped', 'parked', 'retried', 'rejected', 'dead-lettered'] as const
type OutcomeName = (typeof OUTCOMES)[number]
/** Stacked: each event once. A dead letter is already a rejected (or last retried) event: it is a number of its own, not a bar. */
const STACKED = OUTCOMES.filter((o) => o !== 'dead-lettered')
const COLOURS: Record<OutcomeName, string> = { delivered: '#2f9e44', skipped: '#adb5bd', parked: '#4dabf7', retried: '#f59f00', rejected: '#e03131', 'dead-lettered': '#862e9c' }

export interface Hour {
  hour: number
  outcomes: Record<OutcomeName, number>
  tests: number
  calls: number
  failed: number
  byClass: Record<string, number>
  ms: Map<number, number>
}

/** The rows as one summary per hour, for the last `hours` hours (empty hours included). */
export function hoursOf(rows: readonly HistoryRow[], hours: number, now: number): Hour[] {
  const last = Math.floor(now / HOUR_MS)
  const list: Hour[] = Array.from({ length: hours }, (_, i) => ({
    hour: last - hours + 1 + i,
    outcomes: { delivered: 0, skipped: 0, parked: 0, retried: 0, rejected: 0, 'dead-lettered': 0 },
    tests: 0,
    calls: 0,
    failed: 0,
    byClass: {},
    ms: new Map(),
  }))
  for (const row of rows) {
    const hour = list[row.hour - (last - hours + 1)]
    if (!hour) continue
    if (row.kind === 'event') {
      const outcome = row.key.slice(row.key.lastIndexOf(':') + 1) as OutcomeName
      if (outcome in hour.outcomes) hour.outcomes[outcome] += row.n
    } else if (row.kind === 'test') hour.tests += row.n
    else if (row.kind === 'call') {
      hour.calls += row.n
      if (row.key !== 'ok') hour.failed += row.n
      hour.byClass[row.key] = (hour.byClass[row.key] ?? 0) + row.n
    } else if (row.kind === 'ms') hour.ms.set(Number(row.key), (hour.ms.get(Number(row.key)) ?? 0) + row.n)
  }
  return list
}

/** The duration bucket (its upper bound, ms) under which `share` of the calls ended. */
export function percentile(ms: Map<number, number>, share: number): number | undefined {
  const total = [...ms.values()].reduce((a, b) => a + b, 0)
  if (!total) return undefined
  let seen = 0
  for (const bound of BUCKETS) {
    seen += ms.get(bound) ?? 0
    if (seen >= share * total) return bound
  }
  return Infinity
}

const label = (hour: number) => new Date(hour * HOUR_MS).toISOString().slice(0, 13).replace('T', ' ') + ':00'
const bound = (ms: number | undefined) => (ms === undefined ? '–' : ms === Infinity ? `over ${BUCKETS.at(-2)! / 1000} s` : `≤ ${ms} ms`)
const total = (h: Hour) => STACKED.reduce((n, o) => n + h.outcomes[o], 0)

/** Outcomes stacked per hour. */
export function outcomesChart(id: string, title: string, hours: Hour[]) {
  const width = 720
  const height = 150
  const step = width / hours.length
  const most = Math.max(1, ...hours.map(total))
  const bars = hours.map((h, i) => {
    let y = height
    return STACKED.filter((o) => h.outcomes[o]).map((o) => {
      const size = (h.outcomes[o] / most) * (height - 10)
      y -= size
      return html`<rect x="${(i * step).toFixed(1)}" y="${y.toFixed(1)}" width="${Math.max(1, step - 1).toFixed(1)}" height="${size.toFixed(1)}" fill="${COLOURS[o]}"><title>${label(h.hour)} UTC: ${h.outcomes[o]} ${o}</title></rect>`
    })
  })
  return html`<figure id="${id}"><figcaption>${title} (most in an hour: ${most === 1 && !hours.some(total) ? 0 : most})</figcaption>
<svg role="img" aria-label="${title}" viewBox="0 0 ${width} ${height}" width="100%" height="${height}" xmlns="http://www.w3.org/2000/svg"><rect width="${width}" height="${height}" fill="#fafbfc"/>${bars}</svg>
<p class="legend">${STACKED.map((o) => html`<span><i style="background:${COLOURS[o]}"></i>${o}</span>`)} <span class="muted">(dead letters are counted in the table: each is also a rejected or retried event)</span></p></figure>`
}

/** Call latency per hour: p50 and p95, from the duration buckets. */
export function latencyChart(hours: Hour[]) {
  const width = 720
  const height = 120
  const step = width / hours.length
  const scale = [...BUCKETS.slice(0, -1), BUCKETS.at(-2)! * 2]
  const y = (ms: number) => height - 8 - (scale.indexOf(ms === Infinity ? scale.at(-1)! : ms) / (scale.length - 1)) * (height - 16)
  const points = (share: number, colour: string, name: string) =>
    hours.flatMap((h, i) => {
      const ms = percentile(h.ms, share)
      return ms === undefined
        ? []
        : [html`<circle cx="${(i * step + step / 2).toFixed(1)}" cy="${y(ms).toFixed(1)}" r="3" fill="${colour}"><title>${label(h.hour)} UTC: ${name} ${bound(ms)} (${h.calls} calls)</title></circle>`]
    })
  return html`<figure id="latency-chart"><figcaption>Call latency per hour, last 24 hours: p50 (blue) and p95 (red)</figcaption>
<svg role="img" aria-label="Call latency per hour" viewBox="0 0 ${width} ${height}" width="100%" height="${height}" xmlns="http://www.w3.org/2000/svg"><rect width="${width}" height="${height}" fill="#fafbfc"/>${points(0.5, '#1c7ed6', 'p50')}${points(0.95, '#e03131', 'p95')}</svg></figure>`
}

/** The numbers behind the 24-hour charts, as text. */
export function historyTable(hours: Hour[]) {
  const shown = hours.filter((h) => total(h) || h.calls || h.tests)
  if (!shown.length) return html`<p class="muted" id="history-empty">No history yet: nothing was delivered in the last 24 hours (or the Worker was updated to keep it only now).</p>`
  return html`<table id="history-table"><thead><tr><th>Hour (UTC)</th>${OUTCOMES.map((o) => html`<th>${o}</th>`)}<th>tests</th><th>calls</th><th>failed</th><th>p50</th><th>p95</th></tr></thead>
<tbody>${shown.map(
    (h) =>
      html`<tr><td>${label(h.hour)}</td>${OUTCOMES.map((o) => html`<td class="n">${h.outcomes[o]}</td>`)}<td class="n">${h.tests}</td><td class="n">${h.calls}</td><td class="n">${h.failed}</td><td>${bound(percentile(h.ms, 0.5))}</td><td>${bound(percentile(h.ms, 0.95))}</td></tr>`,
  )}</tbody></table>`
}

/** The most frequent rejection reasons of the rows. */
export function topReasons(rows: readonly HistoryRow[], limit = 5): { reason: string; n: number }[] {
  const counts = new Map<string, number>()
  for (const row of rows) if (row.kind === 'reason') counts.set(row.key, (counts.get(row.key) ?? 0) + row.n)
  return [...counts]
    .filter(([, n]) => n > 0)
    .sort((a, b) => b[1] - a[1])
    .slice(0, limit)
    .map(([reason, n]) => ({ reason, n }))
}

/** Events by type and outcome over the rows given (group calls apart from identifies and tracks): "group: 3 delivered, 1 retried". */
export function byType(rows: readonly HistoryRow[]): string[] {
  const types = new Map<string, Map<string, number>>()
  for (const row of rows) {
    if (row.kind !== 'event' || row.key.startsWith('any:')) continue
    const at = row.key.lastIndexOf(':')
    const outcomes = types.get(row.key.slice(0, at)) ?? new Map<string, number>()
    outcomes.set(row.key.slice(at + 1), (outcomes.get(row.key.slice(at + 1)) ?? 0) + row.n)
    types.set(row.key.slice(0, at), outcomes)
  }
  return [...types].map(([type, outcomes]) => `${type}: ${[...outcomes].map(([outcome, n]) => `${n} ${outcome}`).join(', ')}`)
}
