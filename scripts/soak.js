// @ts-check
// `npm run soak [-- --destination ortto]`: issue 27's acceptance case, on the bundle `wrangler
// deploy` builds, in queued mode: 1,000 identifies + 120 mapped tracks + 25 userId-only tracks
// (parked until their identify) + one poison event, with 25 % of calls failing every way a
// destination fails (500, 503, 429 with a wait and without, hangs cut by the timeout), the
// stand-in at the destination's rate and 250 ms a call. Prints what arrived, what is held by a
// journey claim's lease (a hung trigger call that may have entered it), dead letters, and the
// longest gap between two calls (a stall shows there). Exits 1 when anything is lost or repeated.
import { parseArgs } from 'node:util'
import { createAutopilot } from '../sandbox/autopilot.js'
import { createOrtto } from '../sandbox/ortto.js'
import { mulberry32 } from '../sandbox/network.js'
import { buildWorker, startWorker } from './worker.js'

const { values: args } = parseArgs({ options: { destination: { type: 'string', default: 'autopilot' } } })
const ortto = args.destination === 'ortto'
const USERS = 1000,
  TRACKS = 120,
  PARKED = 25,
  FAILING = Number(process.env.SOAK_FAILURE_RATE ?? 0.25)
const LIMIT_S = Number(process.env.SOAK_LIMIT_S ?? 300)
const rps = ortto ? 10 : 5
const standIn = ortto
  ? createOrtto({ apiKey: 'k', rateLimit: rps, latencyMs: 250, activities: { 'act:cm:step-activated': { name: 'Step Activated', attributes: {} } } })
  : createAutopilot({ apiKey: 'k', rateLimit: rps, latencyMs: 250, triggers: ['0001'] })
const faults = ortto
  ? [{ status: 500 }, { status: 503 }, { status: 429, tryInSeconds: 1 }, { status: 429, tryInSeconds: 0 }, { hang: true }]
  : [{ status: 500 }, { status: 503 }, { status: 429, retryAfter: '1' }, { status: 429 }, { hang: true }]
const random = mulberry32(27)
const bindings = {
  DESTINATION: args.destination ?? 'autopilot',
  SEGMENT_WEBHOOK_TOKEN: 't',
  QUEUE_RETRY_BASE_SECONDS: '1',
  ...(ortto
    ? { ORTTO_API_KEY: 'k', ORTTO_BASE_URL: 'https://api.ap3api.com/v1', ORTTO_MAX_RPS: String(rps), ORTTO_ACTIVITIES: JSON.stringify({ 'Step Activated': 'act:cm:step-activated' }) }
    : { AUTOPILOT_API_KEY: 'k', AUTOPILOT_BASE_URL: 'https://autopilot.soak/v1', AUTOPILOT_TRIGGERS: JSON.stringify({ 'Step Activated': '0001' }) }),
}

console.log(`building the Worker… then ${args.destination}, queued, ${rps} r/s, 250 ms a call, ${FAILING * 100} % of calls failing`)
const worker = await startWorker({
  scriptPath: buildWorker({ outdir: 'dist-queued', env: 'queued' }),
  env: 'queued',
  bindings,
  outbound: (request) => {
    if (random() < FAILING) standIn.inject(/** @type {any} */ (faults[Math.floor(random() * faults.length)]))
    return standIn.fetch(request)
  },
})
const email = (/** @type {number} */ i) => `soak${i}@example.com`
const people = Array.from({ length: USERS }, (_, i) => ({ type: 'identify', messageId: `i${i}`, userId: `u${i}`, traits: { email: email(i) } }))
const tracks = Array.from({ length: TRACKS }, (_, i) => ({ type: 'track', messageId: `t${i}`, userId: `u${i}`, event: 'Step Activated', context: { traits: { email: email(i) } } }))
const parked = Array.from({ length: PARKED }, (_, i) => ({ type: 'track', messageId: `p${i}`, userId: `late${i}`, event: 'Step Activated' }))
const late = parked.map((_, i) => ({ type: 'identify', messageId: `l${i}`, userId: `late${i}`, traits: { email: `late${i}@example.com` } }))
const poison = { type: 'identify', messageId: 'poison', traits: { email: 'poison@localhost' } }
const batches = [parked, ...Array.from({ length: 10 }, (_, b) => people.slice(b * 100, b * 100 + 100)), [poison], tracks, late]

const started = Date.now()
for (const batch of batches) {
  for (;;) {
    const response = await worker.dispatchFetch('http://worker.soak/', { method: 'POST', body: JSON.stringify(batch), headers: { 'content-type': 'application/json', authorization: 'Bearer t' } })
    await response.arrayBuffer()
    if (response.ok) break
  }
}
const wanted = [...tracks.map((t) => t.context.traits.email), ...late.map((e) => e.traits.email)]
const contacts = () => (ortto ? new Set([...standIn.people.values()].map((p) => p.fields['str::email'])) : new Set(standIn.contacts.keys()))
const entries = () => (ortto ? standIn.activities.map((a) => a.email) : standIn.enrolments.map((e) => e.email))
const db = await worker.getD1Database('DB')
const deadLetters = async () => /** @type {{ message_id: string, reason: string }[]} */ ((await db.prepare('SELECT message_id, reason FROM dead_letters').all()).results)
const held = async () => /** @type {{ n: number }} */ (await db.prepare('SELECT count(*) AS n FROM ledger WHERE state = 0').first()).n
for (;;) {
  const known = contacts()
  const everyone = [...people.map((p) => p.traits.email), ...late.map((p) => p.traits.email)].every((e) => known.has(e))
  const entered = new Set(entries())
  const settled = wanted.filter((e) => entered.has(e)).length + (await held()) >= wanted.length
  if ((everyone && settled && (await deadLetters()).length) || Date.now() - started > LIMIT_S * 1000) break
  await new Promise((resolve) => setTimeout(resolve, 250))
}
const seconds = (Date.now() - started) / 1000
const known = contacts()
const list = entries()
const counts = new Map()
for (const e of list) counts.set(e, (counts.get(e) ?? 0) + 1)
const calls = standIn.calls.map((c) => c.at).sort((a, b) => a - b)
const gap = Math.max(...calls.slice(1).map((at, i) => at - calls[i]))
const report = {
  destination: args.destination,
  seconds: +seconds.toFixed(1),
  calls: standIn.calls.length,
  status429: standIn.calls.filter((c) => c.status === 429).length,
  longestGapBetweenCalls_s: +(gap / 1000).toFixed(2),
  contacts: `${[...people, ...late].filter((p) => known.has(p.traits.email)).length} of ${USERS + PARKED}`,
  journeysEntered: `${wanted.filter((e) => counts.has(e)).length} of ${wanted.length}`,
  heldByLease: await held(),
  enteredTwice: [...counts.values()].filter((n) => n > 1).length,
  deadLetters: (await deadLetters()).map((d) => `${d.message_id}: ${d.reason}`),
}
if (process.env.SOAK_DEBUG) for (const c of standIn.calls.slice(0, 30)) console.log(c.method, c.path, c.status)
console.log(JSON.stringify(report, null, 2))
await worker.dispose()
const lost = USERS + PARKED - [...people, ...late].filter((p) => known.has(p.traits.email)).length
process.exit(lost === 0 && report.enteredTwice === 0 && report.deadLetters.length === 1 ? 0 : 1)
