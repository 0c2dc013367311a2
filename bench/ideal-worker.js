// @ts-check
// The ideal consumer `npm run bench:sync` runs beside the Worker: what the same queue settings
// and the same destination allow with nothing of ours in the way — no validation, no D1, no
// identity, no ledger. Ingress puts 100 events a message; the consumer makes one bulk call per
// message (Autopilot's triggers: one call per event, as its API has no bulk trigger), starts
// spaced evenly at the destination's rate, and retries a message whose call failed.
// The difference between its time and the Worker's is the Worker's own share.

const AUTOPILOT_TRIGGER = '0001'
const ORTTO_ACTIVITY = 'act:cm:order-completed'
let next = 0

/** Waits for this call's slot: starts spaced 1/rate apart (this isolate is the only consumer). */
async function slot(/** @type {number} */ rps) {
  const now = Date.now()
  const at = Math.max(now, next)
  next = at + 1000 / rps
  if (at > now) await new Promise((resolve) => setTimeout(resolve, at - now))
}

/** @param {any} env @param {string} path @param {unknown} body */
async function post(env, path, body) {
  const ortto = env.DESTINATION === 'ortto'
  await slot(Number(ortto ? (env.ORTTO_MAX_RPS ?? 10) : (env.AUTOPILOT_MAX_RPS ?? 5)))
  const base = ortto ? env.ORTTO_BASE_URL : env.AUTOPILOT_BASE_URL
  const headers = ortto ? { 'x-api-key': env.ORTTO_API_KEY, 'content-type': 'application/json' } : { autopilotapikey: env.AUTOPILOT_API_KEY, 'content-type': 'application/json' }
  const response = await fetch(`${base}${path}`, { method: 'POST', headers, body: body === undefined ? undefined : JSON.stringify(body) })
  await response.arrayBuffer()
  return response.ok
}

/** @param {any} env @param {any[]} events */
async function deliver(env, events) {
  const identifies = events.filter((e) => e.type === 'identify')
  const tracks = events.filter((e) => e.type === 'track')
  const email = (/** @type {any} */ e) => e.traits?.email ?? e.context?.traits?.email
  let ok = true
  if (env.DESTINATION === 'ortto') {
    if (identifies.length) {
      const people = identifies.map((e) => ({ fields: { 'str::email': email(e), 'str::ei': e.userId }, tags: ['vip_customers'] }))
      ok &&= await post(env, '/person/merge', { people, merge_by: ['str::ei', 'str::email'] })
    }
    if (tracks.length) {
      const activities = tracks.map((e) => ({ activity_id: ORTTO_ACTIVITY, attributes: { 'str:cm:product': 'Tea' }, fields: { 'str::email': email(e), 'str::ei': e.userId } }))
      ok &&= await post(env, '/activities/create', { activities, merge_by: ['str::ei', 'str::email'] })
    }
    return ok
  }
  if (identifies.length) ok &&= await post(env, '/contacts', { contacts: identifies.map((e) => ({ Email: email(e), custom: { 'boolean--vip_customers': true } })) })
  const entered = await Promise.all(tracks.map((e) => post(env, `/trigger/${AUTOPILOT_TRIGGER}/contact/${encodeURIComponent(email(e))}`)))
  return ok && entered.every(Boolean)
}

export default {
  /** @param {Request} request @param {any} env */
  async fetch(request, env) {
    const events = /** @type {unknown[]} */ (await request.json())
    const messages = []
    for (let i = 0; i < events.length; i += 100) messages.push({ body: events.slice(i, i + 100) })
    await env.EVENTS.sendBatch(messages)
    return Response.json({ queued: events.length }, { status: 202 })
  },
  /** @param {MessageBatch<any[]>} batch @param {any} env */
  async queue(batch, env) {
    await Promise.all(batch.messages.map(async (message) => ((await deliver(env, message.body)) ? message.ack() : message.retry({ delaySeconds: 1 }))))
  },
}
