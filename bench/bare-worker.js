// The bare Worker `npm run bench` compares against: only the irreducible part of the job —
// verify Segment's HMAC, parse the JSON, one fetch with the email (one bulk call for
// a batch). No validation, mapping, identity, logging or error handling. Not shipped.
const encoder = new TextEncoder()
let key

/** The bare Worker; `before` (the floor's D1 lookup) runs on the parsed body before the call and may refuse it. */
export function bareWorker(/** @type {((body: any, env: any) => Promise<boolean>) | undefined} */ before) {
  return {
    async fetch(/** @type {Request} */ request, /** @type {any} */ env) {
      const raw = await request.text()
      key ??= crypto.subtle.importKey('raw', encoder.encode(env.SEGMENT_SHARED_SECRET), { name: 'HMAC', hash: 'SHA-1' }, false, ['verify'])
      const signature = Uint8Array.from((request.headers.get('x-signature') ?? '').match(/../g) ?? [], (h) => parseInt(h, 16))
      if (!(await crypto.subtle.verify('HMAC', await key, signature, encoder.encode(raw)))) return new Response('unauthorized', { status: 401 })
      const body = JSON.parse(raw)
      if (before && !(await before(body, env))) return new Response(null, { status: 503 })
      const headers = { autopilotapikey: env.AUTOPILOT_API_KEY, 'content-type': 'application/json' }
      const [path, payload] = Array.isArray(body)
        ? ['/contacts', { contacts: body.map((event) => ({ Email: event.traits.email })) }]
        : ['/contact', { contact: { Email: body.traits.email } }]
      const response = await fetch(`${env.AUTOPILOT_BASE_URL}${path}`, { method: 'POST', headers, body: JSON.stringify(payload) })
      return new Response(null, { status: response.ok ? 200 : 503 })
    },
  }
}

export default bareWorker(undefined)
