// @ts-check
// `npm run setup` against the stand-in wrangler: which commands run, what reaches wrangler on
// stdin and in which environment, that no secret is ever an argument, in wrangler's
// environment, or written to disk, and that a second run changes nothing.
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { test } from 'node:test'
import { readValue } from '../wrangler-toml.js'
import { commands, project } from './harness.js'

/** @param {Awaited<ReturnType<typeof project>>} p @param {string[]} secrets */
function assertNowhere(p, secrets) {
  for (const call of p.calls()) {
    assert.deepEqual(call.secretInEnv, [], `a secret in the environment of wrangler ${call.args.join(' ')}`)
    for (const secret of secrets) assert.ok(!call.args.some((a) => a.includes(secret)), `a secret in the arguments of wrangler ${call.args.join(' ')}`)
  }
  for (const [path, text] of p.files()) for (const secret of secrets) assert.ok(!text.includes(secret), `a secret written to ${path}`)
}

const bulkCalls = (/** @type {Awaited<ReturnType<typeof project>>} */ p) => p.calls().filter((c) => c.args[0] === 'secret' && c.args[1] === 'bulk')

test('direct mode: creates the database, puts the key and two new tokens on stdin, prints the header once; a second run changes nothing; --rotate makes new tokens', async (t) => {
  const p = await project()
  t.after(p.cleanup)
  const key = `ap-${randomBytes(8).toString('hex')}`
  const before = p.toml()

  const first = await p.run('setup.js', [], { env: { AUTOPILOT_API_KEY: key } })
  assert.equal(first.code, 0, first.output)
  assert.deepEqual(commands(p.calls()), ['secret list', 'd1 list', 'd1 create', 'secret bulk'])
  const [bulk] = bulkCalls(p)
  assert.deepEqual(bulk.args, ['secret', 'bulk', '--env', ''])
  assert.equal(bulk.env.WRANGLER_LOG_SANITIZE, 'true', "wrangler's debug log leaves the request body out")
  const secrets = JSON.parse(bulk.stdin)
  assert.deepEqual(Object.keys(secrets).sort(), ['ADMIN_TOKEN', 'AUTOPILOT_API_KEY', 'SEGMENT_WEBHOOK_TOKEN'])
  assert.equal(secrets.AUTOPILOT_API_KEY, key)
  assert.match(secrets.SEGMENT_WEBHOOK_TOKEN, /^[0-9a-f]{64}$/)
  assert.match(secrets.ADMIN_TOKEN, /^[0-9a-f]{64}$/)
  assert.notEqual(secrets.SEGMENT_WEBHOOK_TOKEN, secrets.ADMIN_TOKEN)
  assert.equal(first.output.split(`Authorization: Bearer ${secrets.SEGMENT_WEBHOOK_TOKEN}`).length, 2, 'the header, printed once')
  assert.equal(first.output.split(secrets.ADMIN_TOKEN).length, 2, 'ADMIN_TOKEN, printed once')
  assert.ok(!first.output.includes(key), 'the API key is never printed')
  assert.match(first.output, /Next: npm run deploy\n/)
  // The id is written where wrangler reads it, in this environment's block only.
  assert.equal(readValue(p.toml(), 'd1_databases', 'database_id'), '00000000-0000-4000-8000-000000000001')
  assert.equal(readValue(p.toml(), 'env.queued.d1_databases', 'database_id'), undefined)
  assert.equal(readValue(p.toml(), 'vars', 'DESTINATION'), 'autopilot')
  assert.deepEqual(
    p
      .toml()
      .split('\n')
      .filter((line, i) => line !== before.split('\n')[i]),
    ['database_id = "00000000-0000-4000-8000-000000000001"'],
  )
  assertNowhere(p, Object.values(secrets))

  const afterFirst = p.toml()
  p.clearCalls()
  const second = await p.run('setup.js', [], { env: { AUTOPILOT_API_KEY: key } })
  assert.equal(second.code, 0, second.output)
  assert.deepEqual(commands(p.calls()), ['secret list'], 'nothing made or put again')
  assert.equal(p.toml(), afterFirst)
  for (const secret of Object.values(secrets)) assert.ok(!second.output.includes(secret), 'an existing secret is never shown')
  assert.match(second.output, /kept/)

  p.clearCalls()
  const rotated = await p.run('setup.js', ['--rotate'])
  assert.equal(rotated.code, 0, rotated.output)
  const [rotation] = bulkCalls(p)
  const fresh = JSON.parse(rotation.stdin)
  assert.deepEqual(Object.keys(fresh).sort(), ['ADMIN_TOKEN', 'SEGMENT_WEBHOOK_TOKEN'], 'the key is kept')
  assert.notEqual(fresh.SEGMENT_WEBHOOK_TOKEN, secrets.SEGMENT_WEBHOOK_TOKEN)
  assert.notEqual(fresh.ADMIN_TOKEN, secrets.ADMIN_TOKEN)
  assert.ok(rotated.output.includes(`Authorization: Bearer ${fresh.SEGMENT_WEBHOOK_TOKEN}`))
  assert.match(rotated.output, /old SEGMENT_WEBHOOK_TOKEN no longer works/)
  assertNowhere(p, [...Object.values(secrets), ...Object.values(fresh)])
})

test('queued mode, Ortto: both queues made, the key piped in reaches --env queued, the region set in that environment only', async (t) => {
  const p = await project()
  t.after(p.cleanup)
  const key = `ortto-${randomBytes(8).toString('hex')}`
  const run = await p.run('setup.js', ['--env', 'queued', '--destination', 'ortto', '--region', 'eu'], { input: `${key}\n` })
  assert.equal(run.code, 0, run.output)
  assert.deepEqual(commands(p.calls()), ['secret list', 'd1 list', 'd1 create', 'queues info', 'queues create', 'queues info', 'queues create', 'secret bulk'])
  const created = p.calls().filter((c) => c.args[1] === 'create')
  assert.deepEqual(
    created.map((c) => c.args.slice(0, 3)),
    [
      ['d1', 'create', 'segment-autopilot-queued'],
      ['queues', 'create', 'autopilot-events'],
      ['queues', 'create', 'autopilot-events-dlq'],
    ],
  )
  const [bulk] = bulkCalls(p)
  assert.deepEqual(bulk.args, ['secret', 'bulk', '--env', 'queued'])
  const secrets = JSON.parse(bulk.stdin)
  assert.deepEqual(Object.keys(secrets).sort(), ['ADMIN_TOKEN', 'ORTTO_API_KEY', 'SEGMENT_WEBHOOK_TOKEN'])
  assert.equal(secrets.ORTTO_API_KEY, key, 'the piped key, without its newline')
  const toml = p.toml()
  assert.equal(readValue(toml, 'env.queued.vars', 'DESTINATION'), 'ortto')
  assert.equal(readValue(toml, 'env.queued.vars', 'ORTTO_REGION'), 'eu')
  assert.equal(readValue(toml, 'vars', 'DESTINATION'), 'autopilot', 'direct mode untouched')
  assert.equal(readValue(toml, 'vars', 'ORTTO_REGION'), undefined)
  assert.ok(readValue(toml, 'env.queued.d1_databases', 'database_id'))
  assert.equal(readValue(toml, 'd1_databases', 'database_id'), undefined)
  assert.match(run.output, /Batch size {2}1,000/)
  assert.match(run.output, /Next: npm run deploy -- --env queued/)
  assertNowhere(p, Object.values(secrets))

  p.clearCalls()
  const again = await p.run('setup.js', ['--env', 'queued'])
  assert.equal(again.code, 0, again.output)
  assert.deepEqual(commands(p.calls()), ['secret list', 'queues info', 'queues info'])
  assert.equal(p.toml(), toml, 'the destination and region are kept')
})

test('a failing wrangler call stops setup with the command that fixes it', async (t) => {
  const p = await project()
  t.after(p.cleanup)
  p.account({ fail: { 'queues create': 'Queues are on the Workers Paid plan only [code: 10042]' } })
  const run = await p.run('setup.js', ['--env', 'queued'], { env: { AUTOPILOT_API_KEY: 'ap-key-1234' } })
  assert.equal(run.code, 1)
  assert.match(run.output, /✗ npx wrangler queues create autopilot-events failed: Queues are on the Workers Paid plan only/)
  assert.match(run.output, /Fix: what wrangler says above, then run npm run setup -- --env queued again/)
  assert.ok(!commands(p.calls()).includes('secret bulk'), 'stopped there')

  const q = await project()
  t.after(q.cleanup)
  q.account({ loggedIn: false })
  const out = await q.run('setup.js', [], { env: { AUTOPILOT_API_KEY: 'ap-key-1234' } })
  assert.equal(out.code, 1)
  assert.match(out.output, /Fix: npx wrangler login/)
  assert.deepEqual(commands(q.calls()), ['secret list'])
})

test('no key anywhere: stops before putting anything, saying how to give it', async (t) => {
  const p = await project()
  t.after(p.cleanup)
  const run = await p.run('setup.js')
  assert.equal(run.code, 1)
  assert.match(run.output, /No AUTOPILOT_API_KEY/)
  assert.ok(!commands(p.calls()).includes('secret bulk'))
})

test('--dry-run runs nothing, changes nothing, and prints every command', async (t) => {
  const p = await project()
  t.after(p.cleanup)
  const before = p.toml()
  const run = await p.run('setup.js', ['--dry-run', '--env', 'queued', '--destination', 'ortto'])
  assert.equal(run.code, 0, run.output)
  assert.deepEqual(p.calls(), [])
  assert.equal(p.toml(), before)
  for (const command of [
    'npx wrangler secret list --env queued',
    'npx wrangler d1 create segment-autopilot-queued',
    'npx wrangler queues create autopilot-events',
    'npx wrangler queues create autopilot-events-dlq',
    'npx wrangler secret bulk --env queued',
  ])
    assert.ok(run.output.includes(command), command)
})
