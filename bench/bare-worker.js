// The bare Worker `npm run bench` compares against: only the irreducible part of the job.
// The same credential check ours makes — the bearer token when SEGMENT_WEBHOOK_TOKEN is set
// (compared as SHA-256 digests, in constant time), else Segment's HMAC-SHA1 over the raw
// body — parse the JSON, and one bulk call per 100 events carrying the emails (calls in
// flight together). No validation, mapping, identity, ledger, logging or error handling.
// Not shipped.
const encoder = new TextEncoder()
/** @type {Promise<CryptoKey> | undefined} */
let hmacKey
/** @type {Promise<ArrayBuffer> | undefined} */
let tokenDigest

const sha256 = (/** @type {string} */ text) => crypto.subtle.digest('SHA-256', encoder.encode(text))

async function authorized(/** @type {Request} */ request, /** @type {string} */ raw, /** @type {Record<string, string>} */ env) {
  if (env.SEGMENT_WEBHOOK_TOKEN) {
    tokenDigest ??= sha256(env.SEGMENT_WEBHOOK_TOKEN)
    const bearer = /^Bearer\s+(\S+)\s*$/i.exec(request.headers.get('authorization') ?? '')?.[1]
    return Boolean(bearer) && crypto.subtle.timingSafeEqual(await sha256(/** @type {string} */ (bearer)), await tokenDigest)
  }
  hmacKey ??= crypto.subtle.importKey('raw', encoder.encode(env.SEGMENT_SHARED_SECRET), { name: 'HMAC', hash: 'SHA-1' }, false, ['verify'])
  const signature = Uint8Array.from((request.headers.get('x-signature') ?? '').match(/../g) ?? [], (h) => parseInt(h, 16))
  return crypto.subtle.verify('HMAC', await hmacKey, signature, encoder.encode(raw))
}

/** The email an event carries, where Segment puts it. */
const emailOf = (/** @type {any} */ event) => event.traits?.email ?? event.properties?.email ?? event.context?.traits?.email

export default {
  async fetch(/** @type {Request} */ request, /** @type {Record<string, string>} */ env) {
    const raw = await request.text()
    if (!(await authorized(request, raw, env))) return new Response('unauthorized', { status: 401 })
    const body = JSON.parse(raw)
    const events = Array.isArray(body) ? body : [body]
    const headers = { autopilotapikey: env.AUTOPILOT_API_KEY, 'content-type': 'application/json' }
    const calls = []
    for (let start = 0; start < events.length; start += 100) {
      const contacts = []
      for (const event of events.slice(start, start + 100)) {
        const email = emailOf(event)
        if (email) contacts.push({ Email: email })
      }
      if (contacts.length) calls.push(fetch(`${env.AUTOPILOT_BASE_URL}/contacts`, { method: 'POST', headers, body: JSON.stringify({ contacts }) }))
    }
    const answers = await Promise.all(calls)
    for (const answer of answers) await answer.arrayBuffer()
    return new Response(null, { status: answers.every((answer) => answer.ok) ? 200 : 503 })
  },
}
