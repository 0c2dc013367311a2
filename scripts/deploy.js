// @ts-check
// `npm run deploy [-- --env queued] [-- --dry-run]`: migrations/ applied to the remote D1
// database, then `wrangler deploy` — in that order, so the new code never runs against an
// older schema. --dry-run does both offline: the migrations on the local database and
// `wrangler deploy --dry-run`, which builds the bundle and lists the bindings.
import { execFileSync } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { parseArgs } from 'node:util'

const { values } = parseArgs({ options: { env: { type: 'string', default: '' }, 'dry-run': { type: 'boolean', default: false } } })
const env = values.env ?? ''
const dryRun = values['dry-run']
const envFlag = env ? ['--env', env] : ['--env', '']
const database = env ? `segment-autopilot-${env}` : 'segment-autopilot'

const run = (/** @type {string[]} */ args) => {
  console.log(`\n$ npx ${args.map((arg) => (arg === '' ? '""' : arg)).join(' ')}`)
  execFileSync('npx', args, { stdio: 'inherit', env: { ...process.env, CI: 'true' } })
}

if (!dryRun && !databaseIdIn(readFileSync('wrangler.toml', 'utf8'), env)) {
  console.error(`The D1 database of this deployment has no database_id in wrangler.toml yet. Create it once:

  npx wrangler d1 create ${database}

and put the database_id it prints into wrangler.toml, in the [[${env ? `env.${env}.` : ''}d1_databases]] block
(the line "# database_id = …"). Then run this again.`)
  process.exit(1)
}

run(['wrangler', 'd1', 'migrations', 'apply', database, dryRun ? '--local' : '--remote', ...(env ? ['--env', env] : [])])
run(['wrangler', 'deploy', ...envFlag, ...(dryRun ? ['--dry-run', '--outdir', `dist-deploy${env ? `-${env}` : ''}`] : [])])
console.log(dryRun ? '\nDry run done: nothing was uploaded.' : `\nDeployed. Check it: npm run doctor -- --url https://<the URL above>  (with ADMIN_TOKEN set)`)

/** Whether the d1_databases block of this environment has an uncommented database_id. */
function databaseIdIn(/** @type {string} */ toml, /** @type {string} */ name) {
  const header = name ? `[[env.${name}.d1_databases]]` : '[[d1_databases]]'
  const start = toml.indexOf(header)
  if (start < 0) return false
  const rest = toml.slice(start + header.length)
  const block = rest.slice(0, rest.search(/^\[/m) === -1 ? undefined : rest.search(/^\[/m))
  return /^\s*database_id\s*=\s*"[^"]+"/m.test(block)
}
