// The floor for any Worker that keeps identity in D1, as `npm run bench` measures it: the bare
// Worker plus the least such a Worker must add — hash each userId (no raw ids at rest; digests
// cached per isolate) and look them all up in one D1 query. No validation, mapping, ledger or
// write. Not shipped.
import { bareWorker } from './bare-worker.js'

const encoder = new TextEncoder()
const digests = new Map()

async function sha256(/** @type {string} */ text) {
  let hex = digests.get(text)
  if (hex === undefined) {
    hex = ''
    for (const byte of new Uint8Array(await crypto.subtle.digest('SHA-256', encoder.encode(text)))) hex += byte.toString(16).padStart(2, '0')
    digests.set(text, hex)
  }
  return hex
}

export default bareWorker(async (body, env) => {
  const events = Array.isArray(body) ? body : [body]
  const users = await Promise.all(events.map((event) => sha256(event.userId)))
  const { results } = await env.DB.prepare('SELECT j.key AS i, s.email AS e FROM json_each(?1) j JOIN identities s ON s.user_hash = j.value').bind(JSON.stringify(users)).all()
  return results.length === users.length // the bench seeds every user
})
