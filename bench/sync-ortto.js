// @ts-check
// `npm run bench:sync -- --destination ortto`: queued mode against an Ortto stand-in that
// enforces ORTTO_MAX_RPS (10 r/s, Ortto's Professional plan) and answers each call in
// SYNC_LATENCY_MS. Ortto takes 100 people or 100 activities a call, so the ceiling is
// ORTTO_MAX_RPS × 100 events/s; this measures events/s against it, nothing lost, no activity
// twice, and that Ortto never banned the IP (15 refused calls in 15 s).
import { createOrtto } from '../sandbox/ortto.js'
import { startWorker } from '../scripts/worker.js'
import { peak } from './peak.js'

const RPS = Number(process.env.ORTTO_MAX_RPS ?? 10)
const KEY = 'bench-key'
const TOKEN = 'bench-token'
const ACTIVITY = 'act:cm:order-completed'

/**
 * @param {{ queuedScript: string, users: number, tracks: number, latencyMs: number, failureRate: number, timeoutMs: number,
 *   send: (worker: import('miniflare').Miniflare, batches: unknown[][]) => Promise<number> }} options
 */
export async function orttoQueuedRun({ queuedScript, users, tracks, latencyMs, failureRate, timeoutMs, send }) {
  const run = `o${Math.round(failureRate * 100)}`
  const ortto = createOrtto({
    apiKey: KEY,
    rateLimit: RPS,
    failureRate,
    seed: 7,
    latencyMs,
    customFields: { 'str:cm:plan': 'Plan', 'dec:cm:lifetime-value': 'Lifetime Value' },
    activities: { [ACTIVITY]: { name: 'Order Completed', attributes: { 'str:cm:product': 'Product' } } },
  })
  const worker = await startWorker({
    scriptPath: queuedScript,
    env: 'queued',
    outbound: (request) => ortto.fetch(request),
    bindings: {
      DESTINATION: 'ortto',
      ORTTO_API_KEY: KEY,
      ORTTO_BASE_URL: 'https://ortto.bench/v1',
      ORTTO_MAX_RPS: String(RPS),
      ORTTO_ACTIVITIES: JSON.stringify({ 'Order Completed': ACTIVITY }),
      SEGMENT_WEBHOOK_TOKEN: TOKEN,
      QUEUE_RETRY_BASE_SECONDS: '1',
      // The calls this bench measures, and nothing created on the way.
      ORTTO_CREATE: 'none',
    },
  })
  const people = Array.from({ length: users }, (_, i) => ({
    type: 'identify',
    messageId: `${run}-i${i}`,
    userId: `${run}-user-${i}`,
    traits: { email: `${run}${i}@example.com`, vip_customers: true, lifetime_value: i * 1.5, plan: i % 3 ? 'pro' : 'free' },
    context: { personas: { computation_class: 'audience', computation_key: 'vip_customers' } },
  }))
  // Journey entries: one activity each, 100 a call (an audience track would also merge its tag first).
  const entries = Array.from({ length: tracks }, (_, i) => ({
    type: 'track',
    messageId: `${run}-t${i}`,
    userId: `${run}-user-${i}`,
    event: 'Order Completed',
    properties: { product: 'Tea' },
    context: { traits: { email: `${run}${i}@example.com` } },
  }))
  const tagged = () => [...ortto.people.values()].filter((p) => p.tags.includes('vip_customers')).length
  const phase = async (/** @type {string} */ name, /** @type {unknown[]} */ events, /** @type {() => boolean} */ done) => {
    const from = ortto.calls.length
    const started = Date.now()
    const batches = Array.from({ length: Math.ceil(events.length / 100) }, (_, i) => events.slice(i * 100, (i + 1) * 100))
    const requests = await send(worker, batches)
    for (let tick = 1; !done() && Date.now() - started < timeoutMs; tick++) {
      await new Promise((resolve) => setTimeout(resolve, 50))
      if (process.env.SYNC_DEBUG && tick % 100 === 0) console.log(`${name}: ${tagged()} tagged, ${ortto.activities.length} activities, ${ortto.calls.length} calls, bans ${ortto.bans}`)
    }
    const calls = ortto.calls.slice(from)
    if (process.env.SYNC_DEBUG) for (const c of calls) console.log(`${((c.at - started) / 1000).toFixed(3)} ${c.path} ${c.status}`)
    const seconds = (Math.max(...calls.filter((c) => c.status === 200).map((c) => c.done ?? c.at)) - started) / 1000
    const floor = events.length / (RPS * 100)
    return {
      name,
      events: events.length,
      segmentRequests: requests,
      complete: done(),
      orttoCalls: calls.length,
      status429: calls.filter((c) => c.status === 429).length,
      refused: calls.filter((c) => c.status >= 400 && c.status < 500).length,
      seconds: +seconds.toFixed(1),
      eventsPerSecond: +(events.length / seconds).toFixed(0),
      ceiling: RPS * 100,
      ratioToCeiling: +(events.length / seconds / (RPS * 100)).toFixed(2),
      floorSeconds: +floor.toFixed(1),
      ratioToFloor: +(seconds / floor).toFixed(3),
      peakStartsInASecond: peak(calls.map((c) => c.at)),
    }
  }
  const identifies = await phase('identifies', people, () => tagged() >= users)
  const activityRun = await phase('tracks', entries, () => new Set(ortto.activities.map((a) => a.email)).size >= tracks)
  const db = await worker.getD1Database('DB')
  const deadLetters = /** @type {{ n: number }} */ (await db.prepare('SELECT count(*) AS n FROM dead_letters').first()).n
  await worker.dispose()
  const counts = new Map()
  for (const { email } of ortto.activities) counts.set(email, (counts.get(email) ?? 0) + 1)
  const lost = users - tagged() + entries.filter((e) => !counts.has(e.context.traits.email)).length
  const duplicates = [...counts.values()].reduce((n, c) => n + c - 1, 0)
  return { destination: 'ortto', failureRate, latencyMs, maxRps: RPS, identifies, tracks: activityRun, lost, duplicateActivities: duplicates, deadLetters, bans: ortto.bans }
}
