// The operator page's HTML (GET /admin, http/admin.ts): hono/html escapes every value put
// into it, so a dead letter's reason, a check's message or a flash is text, never markup.
// No script at all (the Content-Security-Policy of http/admin.ts forbids it); forms only.
import { html } from 'hono/html'
import type { Check } from '../destinations/destination'
import type { SetupReport } from '../setup'
import { CLAIMS_COUNTED, type DeadLetterReason, type Overview } from '../store/store-admin'
import type { CreatedRow } from '../store/creations'
import type { HistoryRow } from '../store/history'
import { describeSize, SIZE_ALERT_SHARE, type DatabaseSize } from '../store/size'
import { byType, historyTable, hoursOf, latencyChart, outcomesChart, topReasons } from './history-charts'

export interface PageView {
  now: number
  version: string
  destination: string
  mode: 'direct' | 'queued'
  auth: string
  /** Events mapped to a journey, and the setting that maps them (AUTOPILOT_TRIGGERS, ORTTO_ACTIVITIES). */
  journeys: { setting: string; count: number }
  /** The destination's name: Autopilot, Ortto. */
  label: string
  /** Which secrets and bindings are set (never their values). */
  present: [name: string, set: boolean][]
  /** Settings that do not parse: events are answered 503 until they are fixed. */
  problems: string[]
  /** What sending found out in this isolate that the operator must act on (a link that did not take). */
  notices?: Check[]
  parkDays: number
  redriveAtOnce: number
  /** ' --env queued' in queued mode: the commands the fixes name are this deployment's. */
  envFlag: string
  /** Undefined: the setup check was not asked for. */
  check?: SetupReport
  /** Undefined: no D1 database bound. */
  overview?: Overview
  /** The database's size against the plan's cap (from the answers' meta); undefined when D1 did not say. */
  size?: DatabaseSize
  /** LEDGER_DAYS, in days. */
  ledgerDays: number
  reasons: DeadLetterReason[]
  /** What the Worker created in the account lately (ORTTO_CREATE), with the day's cap; undefined when it creates nothing. */
  created?: { max: number; rows: CreatedRow[] }
  /** The last 7 days' counters; undefined: no D1 database bound. */
  history?: HistoryRow[]
  /** Whether alerts go out (ALERT_WEBHOOK_URL), the last one sent, and the last post that failed. */
  alerts: { on: boolean; last?: { kind: string; at: number; text: string }; failed?: { at: number; reason: string } }
  flash?: { ok: boolean; text: string }
}

/** What to do about a failed check, by its kind (the check's own message names the details). */
const fixes = (envFlag: string): Record<string, string> => ({
  settings: `Correct the setting it names (wrangler.toml vars, or npx wrangler secret put NAME${envFlag}), then deploy again.`,
  database: `Bind the D1 database in wrangler.toml and apply migrations/ (npm run deploy${envFlag && ` --${envFlag}`} does both).`,
  'database size': 'Lower LEDGER_DAYS (at high volume the journey ledger is most of the database), or plan past one database: docs/limits.md.',
  'api key': `Copy the key again (Autopilot: Settings → Autopilot API; Ortto: Settings → Data sources → Custom API), then npx wrangler secret put it${envFlag}.`,
  activities: 'Map each Segment event to one of the account’s custom activity ids in ORTTO_ACTIVITIES (create the activity in Ortto first), then deploy again.',
  triggers: 'Map each Segment event to one of the account’s API trigger ids in AUTOPILOT_TRIGGERS, then deploy again.',
  'custom fields': 'Autopilot: change the pin in AUTOPILOT_FIELD_TYPES to the account’s type, or remove it. Ortto: create the custom field in Ortto.',
})

const STYLE = `
body{font:15px/1.45 system-ui,sans-serif;margin:0 auto;max-width:64rem;padding:1rem 1.5rem 3rem;color:#1d2330;background:#f6f7f9}
h1{font-size:1.4rem;margin:.5rem 0 0}h2{font-size:1.1rem;margin:0 0 .6rem}
header p{margin:.2rem 0 1rem;color:#5b6475}
section{background:#fff;border:1px solid #dde1e7;border-radius:8px;padding:1rem 1.2rem;margin:0 0 1rem}
table{border-collapse:collapse;width:100%}th,td{text-align:left;padding:.35rem .5rem;border-top:1px solid #eceef2;vertical-align:top}
th{font-weight:600;color:#5b6475;font-size:.85rem}td.n{text-align:right;font-variant-numeric:tabular-nums}
.reason{font-family:ui-monospace,monospace;font-size:.85rem;word-break:break-word}
.ok{color:#17703a}.bad{color:#b3261e}.muted{color:#5b6475}
.flash{padding:.6rem 1rem;border-radius:8px;margin:0 0 1rem;border:1px solid}
.flash.ok{background:#e9f7ee;border-color:#9fd5b1}.flash.bad{background:#fdecea;border-color:#f0aaa5}
dl{display:grid;grid-template-columns:max-content 1fr;gap:.25rem 1rem;margin:0}dt{color:#5b6475}dd{margin:0}
button,.button{white-space:nowrap;font:inherit;padding:.3rem .8rem;border-radius:6px;border:1px solid #3b5bdb;background:#3b5bdb;color:#fff;cursor:pointer;text-decoration:none;display:inline-block}
form{margin:0}table+form{margin-top:.8rem}figure{margin:.8rem 0}figcaption{font-size:.85rem;color:#5b6475}
.legend{display:flex;flex-wrap:wrap;gap:.2rem 1rem;font-size:.8rem;margin:.2rem 0}.legend i{display:inline-block;width:.7rem;height:.7rem;margin-right:.3rem;border-radius:2px}
label{margin-right:1rem}input{font:inherit;padding:.2rem .4rem}.set{display:flex;flex-wrap:wrap;gap:.1rem 1.1rem}.set span{white-space:nowrap}`

export function renderPage(view: PageView) {
  const { overview } = view
  return html`<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Segment → ${view.label}: operator page</title>
<style>${STYLE}</style>
</head>
<body>
<header>
<h1>Segment → ${view.label}: operator page</h1>
<p>Version ${view.version} · as of ${at(view.now)} · <a href="/admin">reload</a></p>
</header>
${view.flash ? html`<p class="flash ${view.flash.ok ? 'ok' : 'bad'}" id="flash" role="status">${view.flash.text}</p>` : ''}
${settings(view)}
${history(view)}
${testEvent(view)}
${setupCheck(view)}
${view.created ? created(view, view.created) : ''}
${overview ? [parked(view, overview), deadLetters(view, overview), claims(view, overview), lastSweep(view, overview)] : html`<section id="state"><h2>State</h2><p class="bad">DB (the D1 database) is not bound: nothing is stored, so there is nothing to show. See the [[d1_databases]] block in wrangler.toml.</p></section>`}
</body>
</html>`
}

function created(view: PageView, { max, rows }: NonNullable<PageView['created']>) {
  const today = new Date(view.now).toISOString().slice(0, 10)
  const used = rows.filter((r) => r.day === today && (r.state === 'held' || r.state === 'created')).length
  return html`<section id="created">
<h2>Created in ${view.label}</h2>
<p>Today <span id="created-used">${used}</span> of ${max} new fields and activities used (ORTTO_CREATE_MAX).</p>
${
  rows.length
    ? html`<table><thead><tr><th>When</th><th>What</th><th>Name</th><th>Id, or why it was left out or refused (and what to do)</th></tr></thead>
<tbody>${rows.map((r) => html`<tr><td>${at(r.at)}</td><td>${r.kind}</td><td class="reason">${r.name}</td><td class="${r.note ? 'bad' : ''}">${r.id ?? r.note ?? (r.state === 'created' ? 'created (its id not read yet)' : 'being created')}</td></tr>`)}</tbody></table>`
    : html`<p class="muted">Nothing created in the last 7 days.</p>`
}
</section>`
}

function history(view: PageView) {
  if (!view.history) return ''
  const day = hoursOf(view.history, 24, view.now)
  const week = hoursOf(view.history, 7 * 24, view.now)
  const reasons = topReasons(view.history)
  const { alerts } = view
  return html`<section id="history">
<h2>Delivery history</h2>
<p id="alerts-line">${
    alerts.on
      ? alerts.last
        ? html`Alerts on (ALERT_WEBHOOK_URL). Last sent ${at(alerts.last.at, view.now)}: ${alerts.last.text}`
        : 'Alerts on (ALERT_WEBHOOK_URL): none sent yet.'
      : html`<span class="muted">Alerts are off: set ALERT_WEBHOOK_URL (a Slack, Discord or Teams incoming webhook) to be told when delivery fails.</span>`
  }
${alerts.failed ? html` <span class="bad">The last post failed ${at(alerts.failed.at, view.now)}: ${alerts.failed.reason}.</span>` : ''}</p>
${outcomesChart('day-chart', 'Events per hour, last 24 hours', day)}
${latencyChart(day)}
${outcomesChart('week-chart', 'Events per hour, last 7 days', week)}
${historyTable(day)}
<p id="by-type">By type, last 7 days: ${byType(view.history).join('; ') || 'no events'}</p>
<h3>Top reasons for rejections, last 7 days</h3>
${
  reasons.length
    ? html`<table id="top-reasons"><thead><tr><th>Reason</th><th>Events</th></tr></thead><tbody>${reasons.map((r) => html`<tr><td class="reason">${r.reason}</td><td class="n">${r.n}</td></tr>`)}</tbody></table>`
    : html`<p class="muted">No rejections in the last 7 days.</p>`
}
<p class="muted">The counters as JSON: <a href="/admin/history.json">/admin/history.json</a>.</p>
</section>`
}

function testEvent(view: PageView) {
  return html`<section id="test-event">
<h2>Send a test event</h2>
<p>One identify for this email (and a track of the event name, when given), sent through the same pipeline to ${view.label}; its messageId starts with <code>test-</code> and the history counts it as a test.</p>
<form method="post" action="/admin/test">
<label>Email <input type="email" name="email" required></label>
<label>Segment event name (optional) <input type="text" name="event" maxlength="200"></label>
<button type="submit">Send</button>
</form>
</section>`
}

function settings(view: PageView) {
  return html`<section id="settings">
<h2>Settings in force</h2>
<dl>
<dt>Destination</dt><dd id="destination">${view.destination}</dd>
<dt>Mode</dt><dd><span id="mode">${view.mode}</span> <span class="muted">(${view.mode === 'queued' ? 'events go through the autopilot-events queue' : 'events are delivered while Segment waits for the answer'})</span></dd>
<dt>Segment authentication</dt><dd id="auth">${view.auth}</dd>
<dt>Journeys mapped</dt><dd><span id="triggers">${view.journeys.count}</span> ${plural(view.journeys.count, 'Segment event')} → journey (${view.journeys.setting})</dd>
<dt>Set</dt><dd class="set">${view.present.map(([name, set]) => html`<span class="${set ? 'ok' : 'muted'}">${set ? '✓' : '✗'} ${name}</span>`)}</dd>
</dl>
${view.problems.length ? html`<p class="bad" id="problems">Events are answered 503 (Segment retries) until these are fixed:</p><ul>${view.problems.map((problem) => html`<li>${problem}</li>`)}</ul>` : ''}
${view.notices?.length ? html`<ul id="notices">${view.notices.map((n) => html`<li class="${n.ok ? 'ok' : 'bad'}">${n.check}: ${n.message}</li>`)}</ul>` : ''}
</section>`
}

function setupCheck(view: PageView) {
  const { check } = view
  const ask = html`<form method="get" action="/admin"><input type="hidden" name="check" value="1"><button type="submit">${check ? 'Run the setup check again' : 'Run the setup check'}</button></form>`
  if (!check) {
    return html`<section id="setup-check">
<h2>Setup check</h2>
<p class="muted">Not run on load: it calls ${view.label} on your API key (a few calls, within the rate delivery shares), so it runs when you ask.</p>
${ask}
</section>`
  }
  // Failed checks first: those are what to act on.
  const checks: Check[] = [...check.checks.filter((c) => !c.ok), ...check.checks.filter((c) => c.ok)]
  const failed = check.checks.filter((c) => !c.ok && !c.note).length
  const fix = fixes(view.envFlag)
  return html`<section id="setup-check">
<h2>Setup check</h2>
<p id="check-status" class="${failed ? 'bad' : 'ok'}">${failed ? `${failed} ${plural(failed, 'problem')} to fix` : `Ready: the destination, its journeys and the database check out`}</p>
<table>
<thead><tr><th></th><th>check</th><th>what it found</th><th>what to do</th></tr></thead>
<tbody>${checks.map(
    (c) =>
      html`<tr class="${c.ok ? 'passed' : 'failed'}"><td class="${c.ok ? 'ok' : 'bad'}">${c.ok ? '✓' : '✗'}</td><td>${c.check}</td><td>${c.message}</td><td>${c.ok ? '' : (fix[c.check] ?? '')}</td></tr>`,
  )}</tbody>
</table>
${ask}
</section>`
}

function parked(view: PageView, { parked }: Overview) {
  const expires = parked.oldestAt === null ? undefined : parked.oldestAt + view.parkDays * DAY_MS
  return html`<section id="parked">
<h2>Parked events</h2>
<p class="muted">Events with only a userId whose email is not known yet. Each is replayed as soon as an event brings that userId’s email, and dropped (logged) after ${view.parkDays} days.</p>
<dl>
<dt>Waiting</dt><dd><span id="parked-count">${parked.count}</span> ${plural(parked.count, 'event')}, of <span id="parked-users">${parked.users}</span> ${plural(parked.users, 'user')}</dd>
${
  parked.oldestAt === null
    ? ''
    : html`<dt>Oldest</dt><dd id="parked-oldest">parked ${at(parked.oldestAt, view.now)}</dd>
<dt>It expires</dt><dd id="parked-expires">${at(expires!, view.now)}, at the first sweep after that</dd>
<dt>Expiring within a day</dt><dd id="parked-expiring">${parked.expiringSoon}</dd>`
}
</dl>
</section>`
}

function deadLetters(view: PageView, { deadLetters }: Overview) {
  const where = view.mode === 'queued' ? 'sends them to the events queue again' : 'delivers them now, within this request’s call budget; those not delivered stay'
  const more = deadLetters.reasons - view.reasons.length
  return html`<section id="dead-letters">
<h2>Dead letters</h2>
<p class="muted">Events that will not be delivered without someone’s help. Fix the cause first; a redrive ${where} (at most ${view.redriveAtOnce} at a time).</p>
<p><span id="dead-count">${deadLetters.count}</span> in <span id="dead-reasons">${deadLetters.reasons}</span> ${plural(deadLetters.reasons, 'reason')}</p>
${
  view.reasons.length
    ? html`<table>
<thead><tr><th>reason</th><th>count</th><th>first seen</th><th>last seen</th><th></th></tr></thead>
<tbody>${view.reasons.map(
        (
          group,
        ) => html`<tr class="dead-reason"><td class="reason">${group.reason}</td><td class="n">${group.count}</td><td>${at(group.firstSeen, view.now)}</td><td>${at(group.lastSeen, view.now)}</td>
<td><form method="post" action="/admin/redrive"><input type="hidden" name="reason" value="${group.reason}"><button type="submit">Redrive ${Math.min(group.count, view.redriveAtOnce)}</button></form></td></tr>`,
      )}</tbody>
</table>
${more > 0 ? html`<p class="muted">And ${more} more ${plural(more, 'reason')}, seen less recently: GET /dead-letters lists them all.</p>` : ''}`
    : ''
}
</section>`
}

function claims(view: PageView, { claims }: Overview) {
  return html`<section id="claims">
<h2>Journey ledger</h2>
<p class="muted">A track claims its messageId before its journey trigger is called, so that it enters the journey once. A stale claim is one whose attempt stopped before saying how the call went: the next retry of that event takes it over; the sweep removes it ${view.ledgerDays} ${plural(view.ledgerDays, 'day')} after its lease (LEDGER_DAYS), as it does every entry.</p>
<dl>
<dt>Database size</dt><dd id="db-size"${view.size && view.size.share >= SIZE_ALERT_SHARE ? html` class="bad"` : ''}>${view.size ? `${describeSize(view.size)}${view.size.share >= SIZE_ALERT_SHARE ? ': D1 refuses writes when it is full (docs/limits.md)' : ''}` : 'not known'}</dd>
<dt>Claims in progress</dt><dd id="claims-pending">${claims.pending}</dd>
<dt>Stale claims</dt><dd><span id="claims-stale">${claims.stale}</span>${claims.oldestStaleLease === null ? '' : html` (the oldest lease ended ${at(claims.oldestStaleLease, view.now)})`}</dd>
</dl>
${claims.sampled ? html`<p class="muted" id="claims-sampled">Claims counted over the ledger's first ${CLAIMS_COUNTED.toLocaleString('en')} entries, of more (a fair sample: its keys are hashes): at least these many.</p>` : ''}
</section>`
}

function lastSweep(view: PageView, { lastSweep }: Overview) {
  if (!lastSweep) {
    return html`<section id="sweep"><h2>Last sweep</h2><p id="sweep-none" class="muted">No sweep recorded yet. The cron sweep runs every 30 minutes (wrangler.toml [triggers]).</p></section>`
  }
  const summary = parseSummary(lastSweep.summary)
  const count = (key: string) => (typeof summary[key] === 'number' ? (summary[key] as number) : 0)
  const pruned = (summary.pruned && typeof summary.pruned === 'object' ? summary.pruned : {}) as Record<string, unknown>
  const error = typeof summary.error === 'string' ? summary.error : undefined
  return html`<section id="sweep">
<h2>Last sweep</h2>
<dl>
<dt>Ran</dt><dd id="sweep-at">${at(typeof summary.at === 'number' ? summary.at : lastSweep.at, view.now)}${typeof summary.ms === 'number' ? `, for ${summary.ms} ms` : ''}</dd>
<dt>Replayed</dt><dd><span id="sweep-replayed">${count('replayed')}</span> parked ${plural(count('replayed'), 'event')} whose email is known now${count('waiting') ? html`; <span id="sweep-waiting">${count('waiting')}</span> still to go` : ''}</dd>
<dt>Expired</dt><dd><span id="sweep-expired">${count('expired')}</span> parked ${plural(count('expired'), 'event')} older than ${view.parkDays} days (logged, dropped)</dd>
<dt>Pruned</dt><dd><span id="sweep-pruned">${Number(pruned.messages ?? 0)}</span> ledger ${plural(Number(pruned.messages ?? 0), 'entry', 'entries')}, ${Number(pruned.guards ?? 0)} contact ${plural(Number(pruned.guards ?? 0), 'guard')}</dd>
${error ? html`<dt>Stopped by</dt><dd class="bad" id="sweep-error">${error}</dd>` : ''}
</dl>
</section>`
}

function parseSummary(text: string): Record<string, unknown> {
  try {
    const value: unknown = JSON.parse(text)
    return value && typeof value === 'object' ? (value as Record<string, unknown>) : {}
  } catch {
    return {}
  }
}

const DAY_MS = 24 * 3600 * 1000

const plural = (n: number, one: string, many = `${one}s`) => (n === 1 ? one : many)

/** A time in UTC, and how long ago (or from now) it is. */
function at(ms: number, now?: number) {
  const date = new Date(ms)
  if (Number.isNaN(date.getTime())) return 'unknown'
  const utc = `${date.toISOString().slice(0, 16).replace('T', ' ')} UTC`
  const relative = now === undefined ? '' : ms <= now ? ` (${span(now - ms)} ago)` : ` (in ${span(ms - now)})`
  return html`<time datetime="${date.toISOString()}">${utc}</time>${relative}`
}

function span(ms: number): string {
  const seconds = Math.round(ms / 1000)
  if (seconds < 90) return `${seconds} s`
  const minutes = Math.round(seconds / 60)
  if (minutes < 90) return `${minutes} min`
  const hours = Math.round(minutes / 60)
  if (hours < 48) return `${hours} h`
  return `${Math.round(hours / 24)} days`
}
