// @ts-check
// `npm run bench:sync`: an Engage audience's first sync through queued mode.
// 10,000 identifies and a few hundred tracks, sent the way Segment's Webhooks
// (Actions) sends them (batches, re-sent on any non-2xx), to the bundle that
// `wrangler deploy --env queued` builds, running in Miniflare with the real queue
// settings of wrangler.toml, against an Autopilot stand-in that allows 5 requests/s
// and fails 20% of calls (429/500/503). The one-call-per-event way other routers
// deliver is replayed against an identical stand-in on a simulated clock.
import { mkdirSync, writeFileSync } from 'node:fs'
import { createAutopilot } from '../sandbox/autopilot.js'
import { buildWorker, startWorker } from './worker.js'

const IDENTIFIES = Number(process.env.SYNC_IDENTIFIES ?? 10_000)
const TRACKS = Number(process.env.SYNC_TRACKS ?? 300)
const FAILURE_RATE = Number(process.env.SYNC_FAILURE_RATE ?? 0.2)
const RATE_LIMIT = 5
const SEGMENT_BATCH = 1000
const TIMEOUT_MS = Number(process.env.SYNC_TIMEOUT_S ?? 900) * 1000
const API_KEY = 'bench-key'
const TOKEN = 'bench-token'
const TRIGGER = '0001'

// ---- the events Engage sends on a first sync
const identifies = Array.from({ length: IDENTIFIES }, (_, i) => ({
  type: 'identify',
  messageId: `sync-i${i}`,
  userId: `user-${i}`,
  traits: { email: `member${i}@example.com`, vip_customers: true, lifetime_value: i * 1.5, plan: i % 3 ? 'pro' : 'free' },
  context: { personas: { computation_class: 'audience', computation_key: 'vip_customers' } },
}))
const tracks = Array.from({ length: TRACKS }, (_, i) => ({
  type: 'track',
  messageId: `sync-t${i}`,
  userId: `user-${i * 7}`,
  event: 'Audience Entered',
  properties: { audience_key: 'vip_customers', vip_customers: true },
  context: { traits: { email: `member${i * 7}@example.com` } },
}))
// Tracks arrive interleaved with the identifies, as they do from Engage.
const events = [...identifies]
tracks.forEach((event, i) => events.splice(Math.floor(((i + 0.5) * events.length) / TRACKS), 0, event))

// ---- ours: queued mode
const autopilot = createAutopilot({ apiKey: API_KEY, rateLimit: RATE_LIMIT, failureRate: FAILURE_RATE, seed: 7, triggers: [TRIGGER] })
console.log('building the queued Worker (wrangler deploy --dry-run --env queued)…')
const worker = startWorker({
  scriptPath: buildWorker({ outdir: 'dist-queued', env: 'queued' }),
  env: 'queued',
  bindings: {
    AUTOPILOT_API_KEY: API_KEY,
    AUTOPILOT_BASE_URL: 'https://autopilot.bench/v1',
    SEGMENT_WEBHOOK_TOKEN: TOKEN,
    AUTOPILOT_TRIGGERS: JSON.stringify({ 'Audience Entered': TRIGGER }),
    // Shorter than production's 10 s so the run ends sooner; the pacing is unchanged.
    QUEUE_RETRY_BASE_SECONDS: '1',
  },
  outbound: (request) => autopilot.fetch(request),
})
await worker.ready

const started = Date.now()
let segmentRequests = 0
let segmentResends = 0
for (let start = 0; start < events.length; start += SEGMENT_BATCH) {
  const body = JSON.stringify(events.slice(start, start + SEGMENT_BATCH))
  for (;;) {
    segmentRequests++
    const response = await worker.dispatchFetch('http://worker.bench/', {
      method: 'POST',
      body,
      headers: { 'content-type': 'application/json', authorization: `Bearer ${TOKEN}` },
    })
    await response.arrayBuffer()
    if (response.ok) break
    segmentResends++ // Segment re-sends the whole batch on any non-2xx
  }
}
const ingressMs = Date.now() - started

const expectedContacts = IDENTIFIES
const expectedEnrolments = new Set(tracks.map((t) => t.context.traits.email)).size
process.stdout.write('delivering')
let deadLetters = 0
while (Date.now() - started < TIMEOUT_MS) {
  await new Promise((resolve) => setTimeout(resolve, 1000))
  process.stdout.write('.')
  const enrolled = new Set(autopilot.enrolments.map((e) => e.email)).size
  if (autopilot.contacts.size >= expectedContacts && enrolled >= expectedEnrolments) break
}
const wallMs = Date.now() - started
const dlq = await worker.getKVNamespace('DELIVERIES')
deadLetters = (await dlq.list({ prefix: 'dead:' })).keys.length
await worker.dispose()
process.stdout.write('\n')
if (process.env.SYNC_DEBUG) for (const c of autopilot.calls) console.log(((c.at - started) / 1000).toFixed(1), c.method, c.path.slice(0, 30), c.status, c.body?.contacts?.length ?? '')

const delivered =
  identifies.filter((event) => autopilot.contacts.get(event.traits.email)?.custom?.['boolean--vip_customers'] === true).length +
  tracks.filter((event) => autopilot.enrolments.some((e) => e.email === event.context.traits.email)).length
const enrolmentCounts = new Map()
for (const { email } of autopilot.enrolments) enrolmentCounts.set(email, (enrolmentCounts.get(email) ?? 0) + 1)
const duplicates = [...enrolmentCounts.values()].reduce((n, count) => n + count - 1, 0)
const calls = autopilot.calls
const bulk = calls.filter((call) => call.path === '/contacts')
const ours = {
  eventsSent: events.length,
  eventsDelivered: delivered,
  eventsLost: events.length - delivered,
  duplicateEnrolments: duplicates,
  deadLetters,
  autopilotCalls: calls.length,
  callsByStatus: Object.fromEntries([...new Set(calls.map((c) => c.status))].sort().map((s) => [s, calls.filter((c) => c.status === s).length])),
  bulkCalls: bulk.length,
  bulkCallsSucceeded: bulk.filter((call) => call.status === 200).length,
  bulkCallsPer100Identifies: +((bulk.length / IDENTIFIES) * 100).toFixed(2),
  successfulBulkCallsPer100Identifies: +((bulk.filter((call) => call.status === 200).length / IDENTIFIES) * 100).toFixed(2),
  singleContactCallsForTracks: calls.filter((call) => call.path === '/contact').length,
  triggerCalls: calls.filter((call) => call.path.startsWith('/trigger/')).length,
  segmentRequests,
  segmentResends,
  ingressSeconds: +(ingressMs / 1000).toFixed(1),
  wallSeconds: +(wallMs / 1000).toFixed(1),
}

// ---- theirs: one call per event, no bulk, no retries, on a simulated clock
let clock = 0
const naive = createAutopilot({ apiKey: API_KEY, rateLimit: RATE_LIMIT, failureRate: FAILURE_RATE, seed: 7, triggers: [TRIGGER], now: () => clock })
let naiveLost = 0
for (const event of events) {
  const email = event.type === 'identify' ? event.traits.email : event.context.traits.email
  const url = event.type === 'identify' ? 'https://autopilot.bench/v1/contact' : `https://autopilot.bench/v1/trigger/${TRIGGER}/contact/${encodeURIComponent(email)}`
  const body = event.type === 'identify' ? JSON.stringify({ contact: { Email: email } }) : undefined
  const response = await naive.fetch(new Request(url, { method: 'POST', body, headers: { autopilotapikey: API_KEY } }))
  if (!response.ok) naiveLost++
  clock += 1000 / RATE_LIMIT // the best such a router can do under 5 r/s
}
const theirs = {
  autopilotCalls: naive.calls.length,
  eventsLost: naiveLost,
  wallSeconds: +(clock / 1000).toFixed(1),
}

const ratio = {
  calls: +(ours.autopilotCalls / theirs.autopilotCalls).toFixed(3),
  time: +(ours.wallSeconds / theirs.wallSeconds).toFixed(3),
}
const pad = (/** @type {unknown} */ s, n = 14) => String(s).padStart(n)
console.log(`\nEngage first sync: ${IDENTIFIES} identifies + ${TRACKS} tracks, Autopilot at ${RATE_LIMIT} r/s, ${FAILURE_RATE * 100}% of calls failing\n`)
console.log(`${''.padEnd(34)}${pad('ours (queued)')}${pad('1 call/event')}`)
console.log(`${'events delivered'.padEnd(34)}${pad(ours.eventsDelivered)}${pad(events.length - theirs.eventsLost)}`)
console.log(`${'events lost'.padEnd(34)}${pad(ours.eventsLost)}${pad(theirs.eventsLost)}`)
console.log(`${'duplicate enrolments'.padEnd(34)}${pad(ours.duplicateEnrolments)}${pad('-')}`)
console.log(`${'dead letters'.padEnd(34)}${pad(ours.deadLetters)}${pad('-')}`)
console.log(`${'Autopilot calls'.padEnd(34)}${pad(ours.autopilotCalls)}${pad(theirs.autopilotCalls)}`)
console.log(`${'  bulk calls per 100 identifies'.padEnd(34)}${pad(`${ours.successfulBulkCallsPer100Identifies} ok, ${ours.bulkCallsPer100Identifies} all`)}${pad('100')}`)
console.log(`${'  trigger calls'.padEnd(34)}${pad(ours.triggerCalls)}${pad(TRACKS)}`)
console.log(`${'  contact calls for new track users'.padEnd(34)}${pad(ours.singleContactCallsForTracks)}${pad('-')}`)
console.log(`${'wall time (s)'.padEnd(34)}${pad(ours.wallSeconds)}${pad(theirs.wallSeconds)}`)
console.log(`\nratio ours/theirs: calls ×${ratio.calls}, time ×${ratio.time}; Autopilot answers: ${JSON.stringify(ours.callsByStatus)}`)
console.log(`Segment requests: ${segmentRequests} (${segmentResends} re-sent), ingress took ${ours.ingressSeconds} s`)

mkdirSync('bench/results', { recursive: true })
const file = `bench/results/sync-${new Date().toISOString().replace(/[:.]/g, '-')}.json`
writeFileSync(file, JSON.stringify({ date: new Date().toISOString(), identifies: IDENTIFIES, tracks: TRACKS, failureRate: FAILURE_RATE, ours, theirs, ratio }, null, 2))
console.log(`written to ${file}`)
process.exit(ours.eventsLost === 0 && ours.duplicateEnrolments === 0 ? 0 : 1)
