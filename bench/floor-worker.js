// The floor for any Worker that keeps identity in D1, as `npm run bench` measures it: the bare
// Worker (bench/bare-worker.js) plus the least such a Worker must add — hash each userId
// (no raw ids at rest; digests cached per isolate) and look them all up in one D1 query. No
// validation, mapping, ledger or write. Not shipped.
const encoder = new TextEncoder()
let key
const digests = new Map()

async function sha256(text) {
  let hex = digests.get(text)
  if (hex === undefined) {
    hex = ''
    for (const byte of new Uint8Array(await crypto.subtle.digest('SHA-256', encoder.encode(text)))) hex += byte.toString(16).padStart(2, '0')
    digests.set(text, hex)
  }
  return hex
}

export default {
  async fetch(request, env) {
    const raw = await request.text()
    key ??= crypto.subtle.importKey('raw', encoder.encode(env.SEGMENT_SHARED_SECRET), { name: 'HMAC', hash: 'SHA-1' }, false, ['verify'])
    const signature = Uint8Array.from((request.headers.get('x-signature') ?? '').match(/../g) ?? [], (h) => parseInt(h, 16))
    if (!(await crypto.subtle.verify('HMAC', await key, signature, encoder.encode(raw)))) return new Response('unauthorized', { status: 401 })
    const body = JSON.parse(raw)
    const events = Array.isArray(body) ? body : [body]
    const users = await Promise.all(events.map((event) => sha256(event.userId)))
    const { results } = await env.DB.prepare('SELECT j.key AS i, s.email AS e FROM json_each(?1) j JOIN identities s ON s.user_hash = j.value').bind(JSON.stringify(users)).all()
    if (results.length !== users.length) return new Response(null, { status: 503 }) // the bench seeds every user
    const headers = { autopilotapikey: env.AUTOPILOT_API_KEY, 'content-type': 'application/json' }
    const [path, payload] = Array.isArray(body)
      ? ['/contacts', { contacts: body.map((event) => ({ Email: event.traits.email })) }]
      : ['/contact', { contact: { Email: body.traits.email } }]
    const response = await fetch(`${env.AUTOPILOT_BASE_URL}${path}`, { method: 'POST', headers, body: JSON.stringify(payload) })
    return new Response(null, { status: response.ok ? 200 : 503 })
  },
}
