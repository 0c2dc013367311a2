// @ts-check
// The server libraries against the Worker, from Node (part of `npm test`; alone: `node
// scripts/libraries-test.js`). RudderStack's @rudderstack/rudder-sdk-node needs Node (node:zlib,
// node:crypto, axios over node:http), so it cannot run inside workerd beside the suite: here the
// Worker is bundled as deploy bundles it (esbuild) and served by Miniflare, one Worker per
// destination, each on its own port with its stand-in answering its outbound calls. Both
// libraries post over real HTTP (RudderStack's gzipped). Segment's also runs inside workerd, in
// both modes: test/tracking-api.test.ts.
import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'
import { after, before, describe, it } from 'node:test'
import { fileURLToPath } from 'node:url'
import { Analytics as SegmentAnalytics } from '@segment/analytics-node'
import RudderAnalytics from '@rudderstack/rudder-sdk-node'
import { build } from 'esbuild'
import { Miniflare, Response as MiniflareResponse } from 'miniflare'
import { createAutopilot } from '../sandbox/autopilot.js'
import { createOrtto } from '../sandbox/ortto.js'
import { migrationStatements } from './migrations.js'

const root = new URL('..', import.meta.url)
const WRITE_KEY = 'write-key-5d0e7c1a9b'
const AUTOPILOT_KEY = 'ap-library-key'
const ORTTO_KEY = 'ortto-library-key'

const autopilot = createAutopilot({ apiKey: AUTOPILOT_KEY, triggers: ['0001'] })
const ortto = createOrtto({ apiKey: ORTTO_KEY, customFields: { 'str:cm:plan': 'Plan' }, activities: { 'act:cm:order-completed': { name: 'Order Completed', attributes: {} } } })
/** @type {Record<'autopilot' | 'ortto', { fetch: (request: Request) => Promise<Response> | Response }>} */
const standIns = { autopilot, ortto }
const settings = {
  autopilot: { AUTOPILOT_API_KEY: AUTOPILOT_KEY, AUTOPILOT_BASE_URL: 'https://api2.autopilothq.com/v1', AUTOPILOT_TRIGGERS: '{"Order Completed": "0001"}', AUTOPILOT_MAX_RPS: '1000' },
  ortto: { DESTINATION: 'ortto', ORTTO_API_KEY: ORTTO_KEY, ORTTO_CREATE: 'fields,activities', ORTTO_MAX_RPS: '1000' },
}
/** What each destination's stand-in holds for an email: is the person there, how many journey entries. */
const arrived = {
  autopilot: (/** @type {string} */ email) => ({ person: autopilot.contacts.has(email), entries: autopilot.enrolments.filter((e) => e.email === email).length }),
  ortto: (/** @type {string} */ email) => ({
    person: [...ortto.people.values()].some((p) => p.fields['str::email'] === email),
    entries: ortto.activities.filter((a) => a.email === email).length,
  }),
}
const calls = () => autopilot.calls.length + ortto.calls.length

/** @type {Miniflare} */
let mf
/** @type {Record<string, string>} */
const urls = {}
let output = ''

before(async () => {
  const [bundle] = (
    await build({
      entryPoints: [fileURLToPath(new URL('src/index.ts', root))],
      bundle: true,
      format: 'esm',
      platform: 'neutral',
      conditions: ['workerd', 'worker', 'browser'],
      mainFields: ['module', 'main'],
      target: 'es2024',
      write: false,
    })
  ).outputFiles
  const compatibilityDate = /^compatibility_date\s*=\s*"([^"]+)"/m.exec(readFileSync(new URL('wrangler.toml', root), 'utf8'))?.[1]
  mf = new Miniflare({
    port: 0,
    workers: /** @type {const} */ (['autopilot', 'ortto']).map((destination) => ({
      name: destination,
      modules: true,
      script: bundle.text,
      compatibilityDate,
      d1Databases: { DB: `library-${destination}` },
      bindings: { ...settings[destination], SEGMENT_WEBHOOK_TOKEN: WRITE_KEY },
      outboundService: async (/** @type {any} */ request) => {
        const response = await standIns[destination].fetch(request)
        return new MiniflareResponse(await response.arrayBuffer(), { status: response.status, headers: Object.fromEntries(response.headers) })
      },
      unsafeDirectSockets: [{ host: '127.0.0.1', port: 0 }],
    })),
    // The Worker's log lines, kept to check that no write key is in them.
    handleRuntimeStdio: (stdout, stderr) => {
      stdout.on('data', (/** @type {Buffer} */ chunk) => (output += chunk))
      stderr.on('data', (/** @type {Buffer} */ chunk) => (output += chunk))
    },
  })
  await mf.ready
  for (const destination of ['autopilot', 'ortto']) {
    const db = await mf.getD1Database('DB', destination)
    await db.batch(migrationStatements(fileURLToPath(new URL('migrations', root))).map((sql) => db.prepare(sql)))
    urls[destination] = (await mf.unsafeGetDirectURL(destination)).href.replace(/\/$/, '')
  }
})

after(async () => {
  await mf?.dispose()
  assert.ok(output.includes('/v1/batch'), 'the Worker logged its requests')
  assert.ok(!output.includes(WRITE_KEY), 'no write key in the Worker’s log')
})

/** RudderStack's client: `dataPlaneUrl` is the Worker; its failures collected rather than thrown. */
function rudderstack(url = '', writeKey = WRITE_KEY) {
  /** @type {any[]} */
  const errors = []
  const client = new RudderAnalytics(writeKey, { dataPlaneUrl: url, logLevel: 'none', retryCount: 0, errorHandler: (/** @type {any} */ error) => errors.push(error) })
  return { client, errors }
}

/** Segment's client: `host` is the Worker. */
function segment(url = '', writeKey = WRITE_KEY) {
  /** @type {any[]} */
  const errors = []
  const client = new SegmentAnalytics({ writeKey, host: url, maxRetries: 0 })
  client.on('error', (error) => errors.push(error))
  return { client, errors }
}

describe('a wrong write key', () => {
  it('is 401 from either library, and nothing is sent', async () => {
    const before = calls()
    const rudder = rudderstack(urls.autopilot, 'not-the-key')
    rudder.client.identify({ userId: 'u-wrong', traits: { email: 'wrong@example.com' } })
    await rudder.client.flush()
    assert.equal(rudder.errors[0]?.response?.status, 401)

    const sent = segment(urls.ortto, 'not-the-key')
    /** @type {number[]} */
    const statuses = []
    sent.client.on('http_response', ({ status }) => statuses.push(status))
    sent.client.identify({ userId: 'u-wrong', traits: { email: 'wrong@example.com' } })
    await sent.client.closeAndFlush()
    assert.deepEqual(statuses, [401])
    assert.equal(sent.errors[0]?.code, 'delivery_failure')
    assert.equal(calls(), before)
  })
})

for (const destination of /** @type {const} */ (['autopilot', 'ortto'])) {
  describe(`${destination}: identifies and mapped tracks arrive`, () => {
    it('from @rudderstack/rudder-sdk-node (dataPlaneUrl)', async () => {
      const email = `rudder-${destination}@example.com`
      const { client, errors } = rudderstack(urls[destination])
      client.identify({ userId: `u-rudder-${destination}`, traits: { email, plan: 'pro' } })
      client.track({ userId: `u-rudder-${destination}`, event: 'Order Completed', properties: { total: 12 }, context: { traits: { email } } })
      await client.flush()
      assert.deepEqual(errors, [])
      assert.deepEqual(arrived[destination](email), { person: true, entries: 1 })
    })

    it('from @segment/analytics-node (host)', async () => {
      const email = `segment-${destination}@example.com`
      const { client, errors } = segment(urls[destination])
      client.identify({ userId: `u-segment-${destination}`, traits: { email, plan: 'pro' } })
      client.track({ userId: `u-segment-${destination}`, event: 'Order Completed', properties: { total: 12 }, context: { traits: { email } } })
      await client.closeAndFlush()
      assert.deepEqual(errors, [])
      assert.deepEqual(arrived[destination](email), { person: true, entries: 1 })
    })
  })
}
