// @ts-check
// `npm run deploy` against the stand-in wrangler, its deployed URL a local server that answers
// /health and the setup check like the Worker: the order of the steps, the check run with the
// admin token it was given (from the environment, never an argument), the URL printed for
// Segment, and a failure naming the command that fixes it.
import assert from 'node:assert/strict'
import { createServer } from 'node:http'
import { test } from 'node:test'
import { writeValue } from '../wrangler-toml.js'
import { commands, project } from './harness.js'

const ADMIN_TOKEN = 'c0ffee'.repeat(10)

/** A stand-in deployed Worker; `problem` makes its setup check fail. */
async function worker(/** @type {{ problem?: boolean }} */ { problem = false } = {}) {
  /** @type {string[]} */
  const seen = []
  const server = createServer((req, res) => {
    seen.push(`${req.url} ${req.headers.authorization ?? ''}`)
    res.setHeader('content-type', 'application/json')
    if (req.url === '/health') return res.end(JSON.stringify({ status: 'ok', destination: 'autopilot' }))
    if (req.headers.authorization !== `Bearer ${ADMIN_TOKEN}`) return res.writeHead(401).end(JSON.stringify({ message: 'unauthorized' }))
    res.end(JSON.stringify({ checks: [{ ok: !problem, check: 'autopilot', message: problem ? 'Autopilot rejected the API key' : 'the API key works' }] }))
  })
  await new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(undefined)))
  const address = server.address()
  const url = `http://127.0.0.1:${typeof address === 'object' && address ? address.port : 0}`
  return { url, seen, close: () => server.close() }
}

/** A project that `npm run setup` has prepared: the database named in wrangler.toml. */
async function prepared(/** @type {string} */ env = '') {
  const p = await project()
  const table = env ? `env.${env}.d1_databases` : 'd1_databases'
  p.writeToml(writeValue(p.toml(), table, 'database_id', '00000000-0000-4000-8000-0000000000aa'))
  return p
}

test('migrates, deploys, checks the deployed Worker with the admin token, and prints the URL for Segment', async (t) => {
  const p = await prepared()
  const w = await worker()
  t.after(() => (p.cleanup(), w.close()))
  p.account({ url: w.url })
  const run = await p.run('deploy.js', [], { env: { ADMIN_TOKEN } })
  assert.equal(run.code, 0, run.output)
  const calls = p.calls()
  assert.deepEqual(
    calls.map((c) => c.args),
    [
      ['d1', 'migrations', 'apply', 'segment-autopilot', '--remote', '--env', ''],
      ['deploy', '--env', ''],
    ],
  )
  assert.equal(calls[0].env.CI, 'true', 'the migrations are applied without a prompt')
  for (const call of calls) assert.ok(!call.args.some((a) => a.includes(ADMIN_TOKEN)) && !call.secretInEnv.length)
  assert.ok(w.seen.includes(`/health?check=autopilot Bearer ${ADMIN_TOKEN}`), w.seen.join('\n'))
  assert.match(run.output, /Ready\./)
  assert.ok(run.output.includes(`URL      ${w.url}\n`))
  assert.match(run.output, /Headers {2}Authorization: Bearer <SEGMENT_WEBHOOK_TOKEN/)
})

test('a setup check that finds a problem fails the run, saying what to do', async (t) => {
  const p = await prepared()
  const w = await worker({ problem: true })
  t.after(() => (p.cleanup(), w.close()))
  p.account({ url: w.url })
  const run = await p.run('deploy.js', [], { env: { ADMIN_TOKEN } })
  assert.equal(run.code, 1)
  assert.match(run.output, /✗ autopilot: Autopilot rejected the API key/)
  assert.match(run.output, /setup check found problems .*a refused key: npm run setup -- --new-key\)/)
})

test('a failure names the command that fixes it', async (t) => {
  const fresh = await project()
  t.after(fresh.cleanup)
  const unset = await fresh.run('deploy.js')
  assert.equal(unset.code, 1)
  assert.match(unset.output, /Fix: npm run setup\n/)
  assert.deepEqual(fresh.calls(), [], 'nothing run before setup')

  const p = await prepared()
  t.after(p.cleanup)
  p.account({ loggedIn: false })
  const out = await p.run('deploy.js')
  assert.equal(out.code, 1)
  assert.match(out.output, /Fix: npx wrangler login/)
  assert.deepEqual(commands(p.calls()), ['d1 migrations apply'], 'nothing deployed after a failed migration')

  const q = await prepared('queued')
  t.after(q.cleanup)
  const queued = await q.run('deploy.js', ['--env', 'queued'])
  assert.equal(queued.code, 1)
  assert.match(queued.output, /Queue "autopilot-events" does not exist/)
  assert.match(queued.output, /Fix: npm run setup -- --env queued\n/)
})

test("--dry-run runs only wrangler's offline steps (local migrations, a build) and says what the real run does", async (t) => {
  const p = await project()
  t.after(p.cleanup)
  const run = await p.run('deploy.js', ['--dry-run', '--env', 'queued'])
  assert.equal(run.code, 0, run.output)
  const [migrate, build] = p.calls().map((c) => c.args)
  assert.deepEqual(migrate.slice(0, 5), ['d1', 'migrations', 'apply', 'segment-autopilot-queued', '--local'])
  assert.deepEqual(build.slice(0, 4), ['deploy', '--env', 'queued', '--dry-run'])
  assert.equal(p.calls().length, 2)
  assert.ok(!migrate.concat(build).some((arg) => arg.startsWith('.') || arg.startsWith('dist')), 'its database and bundle outside the project')
  assert.match(run.output, /npx wrangler d1 migrations apply segment-autopilot-queued --remote --env queued/)
  assert.match(run.output, /run npm run setup -- --env queued first/)
})
