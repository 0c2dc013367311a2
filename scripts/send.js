// @ts-check
// `npm run send -- <file|-> [--url URL] [--secret S | --token T]`: posts a Segment body
// the way Segment does — its exact bytes, signed like Segment signs: X-Signature = hex
// HMAC-SHA1 with the shared secret, over the body for one event and over
// JSON.stringify(events[0]) for a batch (an array) — or with "Authorization: Bearer" for
// a token. Prints the Worker's answer.
// `--library` posts as Segment's and RudderStack's server libraries do instead: to /v1/batch,
// the events as {"batch": [...], "sentAt": now}, with "Authorization: Basic" and the token as
// the write key.
//   npm run send -- examples/identify.json              # to `npm start -- --signed`
//   npm run send -- examples/batch.json --token "$T" --url https://…workers.dev/
//   npm run send -- examples/track.json --library       # to `npm start`
import { readdirSync, readFileSync } from 'node:fs'
import { parseArgs } from 'node:util'
import { isLocal, LOCAL_SECRET } from './local.js'
import { segmentSignature } from './sign.js'

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: { url: { type: 'string' }, secret: { type: 'string' }, token: { type: 'string' }, unsigned: { type: 'boolean' }, library: { type: 'boolean' } },
})
const file = positionals[0]
if (!file) {
  console.error('usage: npm run send -- <file.json | -> [--url URL] [--secret SECRET | --token TOKEN | --unsigned] [--library]')
  process.exit(2)
}
let body
try {
  body = readFileSync(file === '-' ? 0 : file, 'utf8')
} catch (error) {
  const { code, message } = /** @type {NodeJS.ErrnoException} */ (error)
  const why = code === 'ENOENT' ? 'no such file' : code === 'EISDIR' ? 'it is a directory' : code === 'EACCES' ? 'permission denied' : message
  console.error(`npm run send: cannot read ${file === '-' ? 'standard input' : file}: ${why}${code === 'ENOENT' ? ` (examples: ${examples()})` : ''}`)
  process.exit(1)
}
let url = values.url ?? process.env.WORKER_URL ?? 'http://127.0.0.1:8787/'
const local = isLocal(url)
const token = values.token ?? process.env.SEGMENT_WEBHOOK_TOKEN
const secret = values.secret ?? process.env.SEGMENT_SHARED_SECRET ?? (local ? LOCAL_SECRET : undefined)

/** @type {Record<string, string>} */
const headers = { 'content-type': 'application/json', 'user-agent': 'Segment (npm run send)' }
let how = 'unsigned'
if (values.library) {
  ;({ url, body } = asLibrary(url, body))
  if (token && !values.unsigned) headers.authorization = `Basic ${Buffer.from(`${token}:`).toString('base64')}`
  how = headers.authorization ? 'as a library: the token as the write key' : 'as a library, with no write key (--token or SEGMENT_WEBHOOK_TOKEN; `npm start` takes none)'
} else if (token && !values.unsigned) {
  headers.authorization = `Bearer ${token}`
  how = 'with the bearer token'
} else if (secret && !values.unsigned) {
  let signed = body
  try {
    const parsed = JSON.parse(body)
    // Segment signs a batch over its first event only (JSON.stringify: no spaces).
    if (Array.isArray(parsed) && parsed.length) signed = JSON.stringify(parsed[0])
  } catch {
    // not JSON: signed as it is, and the Worker says what is wrong with it
  }
  headers['x-signature'] = await segmentSignature(signed, secret)
  how = signed === body ? 'signed over the body' : 'signed over its first event, as Segment signs batches'
}

let response
try {
  response = await fetch(url, { method: 'POST', headers, body })
} catch (error) {
  console.error(`Could not reach ${url}: ${error instanceof Error ? error.message : error}${local ? ' (is `npm start` running?)' : ''}`)
  process.exit(1)
}
const text = await response.text()
let shown = text
try {
  shown = JSON.stringify(JSON.parse(text), null, 2)
} catch {
  // not JSON
}
console.log(`POST ${url} (${Buffer.byteLength(body)} bytes, ${how}) -> ${response.status}`)
const retryAfter = response.headers.get('retry-after')
if (retryAfter) console.log(`Retry-After: ${retryAfter}`)
console.log(shown)
process.exit(response.ok ? 0 : 1)

/** The example bodies, as paths to pass. */
function examples() {
  try {
    return readdirSync(new URL('../examples/', import.meta.url))
      .filter((name) => name.endsWith('.json'))
      .map((name) => `examples/${name}`)
      .join(', ')
  } catch {
    return 'none found'
  }
}

/**
 * The body as the libraries send it, to the Tracking API's batch path of the Worker's URL: one
 * event, an array or {"batch": [...]} becomes {"batch": [...], "sentAt": now} (a sentAt given is kept).
 * @param {string} url
 * @param {string} text
 */
function asLibrary(url, text) {
  let parsed
  try {
    parsed = JSON.parse(text)
  } catch {
    console.error('npm run send: --library needs a JSON body (one event, an array of events, or {"batch": [...]})')
    process.exit(1)
  }
  const wrapped = Array.isArray(parsed) ? { batch: parsed } : Array.isArray(parsed?.batch) ? parsed : { batch: [parsed] }
  const target = new URL(url)
  if (!target.pathname.endsWith('/v1/batch')) target.pathname = `${target.pathname.replace(/\/$/, '')}/v1/batch`
  return { url: target.href, body: JSON.stringify({ ...wrapped, sentAt: wrapped.sentAt ?? new Date().toISOString() }) }
}
