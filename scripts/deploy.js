// @ts-check
// `npm run deploy [-- --env queued] [-- --dry-run]`, after `npm run setup`: migrations/ applied
// to the remote D1 database, then `wrangler deploy` — in that order, so new code never runs
// against an older schema — then the setup check (scripts/doctor.js) against the deployed URL
// with ADMIN_TOKEN (from the environment, or asked for hidden), and the URL to paste into
// Segment. A failure names the command that fixes it. --dry-run works offline: the migrations
// on the local database and `wrangler deploy --dry-run` (the bundle built, the bindings
// listed), then what the real run would do.
import { spawn } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { askHidden, interactive } from './ask.js'
import { hasTable, readValue, tableOf } from './wrangler-toml.js'
import { commandLine, firstLine, fixFor, shown, stop, wrangler } from './wrangler.js'

const USAGE = `usage: npm run deploy -- [--env queued] [--dry-run]
  --env queued  queued mode
  --dry-run     offline: local migrations and a build, nothing uploaded
ADMIN_TOKEN in the environment (else asked for, hidden) runs the setup check against the deployed Worker.`

const { env, dryRun, envArgs } = commandLine({}, USAGE)
const suffix = env ? ` -- --env ${env}` : ''
const setup = `npm run setup${suffix}`
const again = `npm run deploy${suffix}`

const toml = readFileSync('wrangler.toml', 'utf8')
if (env && !hasTable(toml, `env.${env}`)) stop(`wrangler.toml has no [env.${env}].`, 2)
const d1Table = tableOf(env, 'd1_databases')
const database = readValue(toml, d1Table, 'database_name') ?? stop(`wrangler.toml has no database_name under [[${d1Table}]].`, 2)
const databaseId = readValue(toml, d1Table, 'database_id')
if (!dryRun && !databaseId) stop(`wrangler.toml names no D1 database for this Worker yet (no database_id under [[${d1Table}]]).\nFix: ${setup}`)

// The dry run's local database and bundle go to a temporary directory: it leaves nothing in the project.
const scratch = join(tmpdir(), `segment-autopilot-deploy-dry-run${env ? `-${env}` : ''}`)
const migrate = ['d1', 'migrations', 'apply', database, ...(dryRun ? ['--local', '--persist-to', join(scratch, 'state')] : ['--remote']), ...envArgs]
const upload = ['deploy', ...envArgs, ...(dryRun ? ['--dry-run', '--outdir', join(scratch, 'dist')] : [])]
// CI: wrangler applies the migrations without asking to confirm.
await step(migrate, { CI: 'true' })
const deployed = await step(upload)

if (dryRun) {
  console.log(`\nDry run done: nothing was uploaded (the bundle: ${join(scratch, 'dist')}). The real run (\`${again}\`):
  ${shown(['d1', 'migrations', 'apply', database, '--remote', ...envArgs])}
  ${shown(['deploy', ...envArgs])}
  then the setup check against the deployed URL, and what to paste into Segment.${databaseId ? '' : `\nwrangler.toml names no D1 database for this Worker yet: run ${setup} first.`}`)
  process.exit(0)
}

const target = /** @type {any} */ (deployed.records.find((r) => r.type === 'deploy'))?.targets?.find((/** @type {unknown} */ t) => typeof t === 'string' && /^https?:\/\//.test(t))
if (!target) {
  console.log(`\nDeployed, with no workers.dev URL (routes only?): check it with npm run doctor -- --url <its URL> (ADMIN_TOKEN in the environment).`)
  process.exit(0)
}
const url = String(target).replace(/\/+$/, '')
const checked = await check(url)
console.log(`
Segment → Webhooks (Actions) → your mapping "Send":
  URL      ${url}
  Method   POST
  Headers  Authorization: Bearer <SEGMENT_WEBHOOK_TOKEN, as npm run setup printed it>`)
if (!checked)
  stop(
    `\nDeployed, but the setup check found problems (✗ above). Fix what they name (a setting in wrangler.toml, then ${again}; a refused key: npm run setup -- ${env ? `--env ${env} ` : ''}--new-key).`,
  )

/**
 * Runs one wrangler step, its output shown as it comes; a failure stops here with the fix.
 * @param {string[]} args @param {Record<string, string>} [extraEnv]
 */
async function step(args, extraEnv = {}) {
  console.log(`\n$ ${shown(args)}`)
  const run = await wrangler(args, { env: extraEnv })
  if (run.code !== 0) {
    const fix = fixFor(run.failure, setup)
    stop(`\n✗ ${shown(args)} failed${run.failure ? `: ${firstLine(run.failure)}` : ` (exit ${run.code})`}.\nFix: ${fix ?? `what wrangler says above, then ${again}`}`)
  }
  return run
}

/** The open /health once the URL answers, then the setup check with ADMIN_TOKEN. Whether nothing is wrong. */
async function check(/** @type {string} */ base) {
  const health = await reachable(`${base}/health`)
  if (!health) {
    console.log(`\n• ${base} does not answer yet (a new workers.dev name can take a minute): check it then with npm run doctor -- --url ${base}`)
    return true
  }
  const token = process.env.ADMIN_TOKEN || (interactive() ? await askHidden('\nADMIN_TOKEN (npm run setup printed it) for the setup check, or Enter to skip: ') : '')
  if (!token) {
    console.log(`\n${health.status === 'ok' ? '✓' : '✗'} ${base}/health: ${health.status ?? 'no status'}${health.problems ? ` — ${JSON.stringify(health.problems)}` : ''}`)
    console.log(`  The full check: npm run doctor -- --url ${base}  (ADMIN_TOKEN in the environment)`)
    return health.status === 'ok'
  }
  console.log('')
  const doctor = spawn(process.execPath, [fileURLToPath(new URL('doctor.js', import.meta.url)), '--url', base], { stdio: 'inherit', env: { ...process.env, ADMIN_TOKEN: token } })
  return (await new Promise((resolve) => doctor.on('close', resolve))) === 0
}

/** /health's answer, polled for up to 45 s; undefined if it never answered. */
async function reachable(/** @type {string} */ url) {
  const deadline = Date.now() + 45_000
  while (Date.now() < deadline) {
    try {
      const response = await fetch(url, { signal: AbortSignal.timeout(5000) })
      return await response.json().catch(() => ({}))
    } catch {
      await new Promise((resolve) => setTimeout(resolve, 1000))
    }
  }
  return undefined
}

/** @returns {never} */
