// @ts-check
// `npm run setup [-- --destination ortto] [-- --env queued]` (after `npx wrangler login`):
// everything a first deploy needs but the code — the D1 database (named in wrangler.toml),
// queued mode's queues, DESTINATION and ORTTO_REGION, and the secrets (the destination's API
// key, asked for hidden; SEGMENT_WEBHOOK_TOKEN and ADMIN_TOKEN, 32 random bytes each), put on
// wrangler's stdin. Safe to run again: what exists is kept, what is missing is made. Ends with
// what to paste into Segment. --dry-run prints every command and runs none. docs/operations.md.
import { randomBytes } from 'node:crypto'
import { readFileSync, writeFileSync } from 'node:fs'
import { ask, askHidden, interactive } from './ask.js'
import { hasTable, queueNames, readValue, tableOf, writeValue } from './wrangler-toml.js'
import { commandLine, firstLine, fixFor, shown, stop, wrangler } from './wrangler.js'

const USAGE = `usage: npm run setup -- [--destination autopilot|ortto] [--env queued] [--region eu|au|default] [--plan free|paid] [--rotate] [--new-key] [--dry-run]
  --destination  where events go (default: DESTINATION in wrangler.toml, else autopilot)
  --env queued   queued mode (its own Worker, database, queues and secrets)
  --region       Ortto's region: eu, au, or default (api.ap3api.com); asked when not given
  --plan         your Workers plan, for Segment's batch size; asked when not given (direct mode)
  --location     a D1 location hint for a new database (weur, eeur, apac, oc, wnam, enam)
  --rotate       new SEGMENT_WEBHOOK_TOKEN and ADMIN_TOKEN (Segment's header must then change)
  --new-key      replace the destination's API key that is set
  --dry-run      print every command it would run, run none, change nothing
The API key is asked for hidden, or read from AUTOPILOT_API_KEY / ORTTO_API_KEY in the environment, or piped in.`

const { values, env, dryRun, envArgs } = commandLine(
  {
    destination: { type: 'string' },
    region: { type: 'string' },
    plan: { type: 'string' },
    location: { type: 'string' },
    rotate: { type: 'boolean', default: false },
    'new-key': { type: 'boolean', default: false },
  },
  USAGE,
)
// The command that runs this again, as given (no secret is ever an argument).
const flags = [env && `--env ${env}`, values.destination && `--destination ${values.destination}`].filter(Boolean)
const again = `npm run setup${flags.length ? ` -- ${flags.join(' ')}` : ''}`

let toml = readFileSync('wrangler.toml', 'utf8')
if (env && !hasTable(toml, `env.${env}`)) stop(`wrangler.toml has no [env.${env}]: the environments are ${envNames(toml).join(', ') || 'none'}.`, 2)
const varsTable = tableOf(env, 'vars')
const d1Table = tableOf(env, 'd1_databases')
const database = readValue(toml, d1Table, 'database_name')
if (!database) stop(`wrangler.toml has no database_name under [[${d1Table}]].`, 2)
const destination = values.destination ?? readValue(toml, varsTable, 'DESTINATION') ?? 'autopilot'
if (destination !== 'autopilot' && destination !== 'ortto') stop(`--destination is autopilot or ortto, not "${destination}".`, 2)
if (values.plan && !/^(free|paid)$/i.test(values.plan)) stop(`--plan is free or paid, not "${values.plan}".`, 2)
if (values.region && !/^(eu|au|default)$/i.test(values.region)) stop(`--region is eu, au or default (api.ap3api.com), not "${values.region}".`, 2)
const keyName = destination === 'ortto' ? 'ORTTO_API_KEY' : 'AUTOPILOT_API_KEY'
const queues = queueNames(toml, env)
const worker = (env ? readValue(toml, `env.${env}`, 'name') : /^name\s*=\s*"([^"]+)"/m.exec(toml)?.[1]) ?? 'the Worker'
const label = `${worker} (${queues.length ? 'queued' : 'direct'} mode, ${destination === 'ortto' ? 'Ortto' : 'Autopilot'})`

if (dryRun) {
  printPlan()
  process.exit(0)
}

// 1. The secrets already set (a Worker not deployed yet has none). Also the login's check:
// without one, this fails first and says `npx wrangler login`.
console.log(`Setting up ${label}.`)
const listed = await wrangler(['secret', 'list', ...envArgs], { capture: true })
if (listed.code !== 0 && !/not found/i.test(listed.failure || listed.output)) fail(['secret', 'list', ...envArgs], listed)
/** @type {Set<string>} */
const set = new Set(listed.code === 0 ? parseJson(listed.stdout, []).map((/** @type {{name: string}} */ s) => s.name) : [])

// 2. The database, named in wrangler.toml (found by name, else created).
const knownId = readValue(toml, d1Table, 'database_id')
if (knownId) console.log(`✓ D1 database ${database}: in wrangler.toml (${knownId})`)
else {
  const found = parseJson((await must(['d1', 'list', '--json'])).stdout, []).find((/** @type {{name: string}} */ db) => db.name === database)
  let id = found?.uuid
  if (!id) {
    const created = await must(['d1', 'create', database, ...(values.location ? ['--location', values.location] : [])])
    id = /database_id"?\s*[=:]\s*"([0-9a-f-]{36})"/.exec(created.stdout)?.[1]
    if (!id) stop(`${shown(['d1', 'create', database])} printed no database_id:\n${created.output}\nRun ${again} again: it finds the database by name.`)
  }
  toml = writeValue(toml, d1Table, 'database_id', id)
  writeFileSync('wrangler.toml', toml)
  console.log(`✓ D1 database ${database}: ${found ? 'found' : 'created'}, its id written to wrangler.toml [[${d1Table}]] (${id})`)
}

// 3. Queued mode's queues.
for (const queue of queues) {
  const info = await wrangler(['queues', 'info', queue], { capture: true })
  if (info.code === 0) console.log(`✓ Queue ${queue}: exists`)
  else if (/does not exist/i.test(info.failure || info.output)) {
    await must(['queues', 'create', queue])
    console.log(`✓ Queue ${queue}: created`)
  } else fail(['queues', 'info', queue], info)
}

// 4. The destination (and Ortto's region) in this environment's vars.
let vars = writeValue(toml, varsTable, 'DESTINATION', destination)
if (destination === 'ortto') {
  const current = readValue(toml, varsTable, 'ORTTO_REGION') ?? ''
  let region = values.region ?? process.env.ORTTO_REGION
  if (region === undefined && interactive()) region = await ask(`Ortto region: eu, au or default (api.ap3api.com) [${current || 'default'}]: `)
  region = region === undefined || region === '' ? current : region === 'default' ? '' : region.toLowerCase()
  if (region !== '' && region !== 'eu' && region !== 'au') stop(`Ortto's region is eu, au or default (api.ap3api.com), not "${region}".`, 2)
  vars = writeValue(vars, varsTable, 'ORTTO_REGION', region || undefined)
}
if (vars !== toml) {
  toml = vars
  writeFileSync('wrangler.toml', toml)
}
const region = destination === 'ortto' ? readValue(toml, varsTable, 'ORTTO_REGION') : undefined
console.log(`✓ wrangler.toml [${varsTable}]: DESTINATION = "${destination}"${destination === 'ortto' ? `, ORTTO_REGION ${region ? `= "${region}"` : 'unset (api.ap3api.com)'}` : ''}`)

// 5. The secrets: what is missing is made; an existing token is kept (and not shown) unless --rotate.
/** @type {Record<string, string>} */
const secrets = {}
if (!set.has(keyName) || values['new-key']) {
  const where = destination === 'ortto' ? 'Ortto → Settings → Data sources → Custom API' : 'Autopilot → Settings → Autopilot API'
  const key = (process.env[keyName] ?? (await askHidden(`${keyName} (${where}; hidden as you type): `))).trim()
  if (!key) stop(`No ${keyName}: type it when asked (hidden), pipe it in, or export it (read -rs ${keyName}; export ${keyName}), then ${again}`)
  secrets[keyName] = key
}
const newToken = () => randomBytes(32).toString('hex')
for (const name of ['SEGMENT_WEBHOOK_TOKEN', 'ADMIN_TOKEN']) if (!set.has(name) || values.rotate) secrets[name] = newToken()
if (Object.keys(secrets).length) {
  await must(['secret', 'bulk', ...envArgs], JSON.stringify(secrets))
  console.log(`✓ Secrets of ${worker}: ${Object.keys(secrets).join(', ')} put${set.size ? `; kept: ${[...set].filter((s) => !(s in secrets)).join(', ') || 'none'}` : ''}`)
} else console.log(`✓ Secrets of ${worker}: ${keyName}, SEGMENT_WEBHOOK_TOKEN, ADMIN_TOKEN set (kept)`)

// 6. What to paste into Segment, once.
const plan = queues.length ? 'paid' : (values.plan ?? (interactive() ? (await ask('Your Workers plan, free or paid? [free]: ')) || 'free' : '')).toLowerCase()
const batch =
  plan === 'paid' ? "1,000 (Segment's default)" : plan === 'free' ? '150 or less (Workers Free: 10 ms of CPU a request)' : "150 or less on Workers Free, 1,000 (Segment's default) on Workers Paid"
const deploy = `npm run deploy${env ? ` -- --env ${env}` : ''}`
console.log(`
Segment → Webhooks (Actions) → your mapping "Send":
  Headers     Authorization: Bearer ${secrets.SEGMENT_WEBHOOK_TOKEN ?? '<the token shown when it was made (kept, not shown again; --rotate makes a new one)>'}
  Batch size  ${batch}
  URL         printed by ${deploy}
${secrets.ADMIN_TOKEN ? `ADMIN_TOKEN   ${secrets.ADMIN_TOKEN}\n              the operator page's password (/admin); ${deploy} asks for it to check the setup` : ''}
${secrets.SEGMENT_WEBHOOK_TOKEN || secrets.ADMIN_TOKEN ? 'Shown this once and kept nowhere else: put them in your password manager now.\n' : ''}${values.rotate && set.has('SEGMENT_WEBHOOK_TOKEN') ? "The old SEGMENT_WEBHOOK_TOKEN no longer works: until Segment's header has the new one, its requests get 401 (Segment retries them for 4 hours).\n" : ''}
Next: ${deploy}`)

/** Runs wrangler captured; a failure stops setup with the command that fixes it. */
async function must(/** @type {string[]} */ args, /** @type {string | undefined} */ stdin = undefined) {
  const run = await wrangler(args, { capture: true, stdin: stdin ?? '' })
  if (run.code !== 0) fail(args, run)
  return run
}

/** @returns {never} */
function fail(/** @type {string[]} */ args, /** @type {import('./wrangler.js').Run} */ run) {
  if (run.output.trim()) process.stderr.write(`${run.output.trimEnd()}\n\n`)
  const fix = fixFor(`${run.failure}\n${run.output}`, again)
  stop(`✗ ${shown(args)} failed${run.failure ? `: ${firstLine(run.failure)}` : ` (exit ${run.code})`}.\nFix: ${fix ?? `what wrangler says above, then run ${again} again (what is done is kept)`}`)
}

/** @returns {never} */
function parseJson(/** @type {string} */ text, /** @type {any} */ fallback) {
  const start = text.search(/[[{]/)
  try {
    return start < 0 ? fallback : JSON.parse(text.slice(start))
  } catch {
    return fallback
  }
}

function envNames(/** @type {string} */ text) {
  return [...new Set([...text.matchAll(/^\[env\.([^.\]]+)\]/gm)].map((m) => m[1]))]
}

function printPlan() {
  const step = (/** @type {string} */ what, /** @type {string[]} */ args, /** @type {string} */ note = '') => console.log(`  ${what}\n      ${shown(args)}${note}`)
  console.log(`Dry run: nothing is run or changed. \`${again}\` for ${label} would:\n`)
  step('list the secrets already set (a new Worker has none; this checks the login too):', ['secret', 'list', ...envArgs])
  if (readValue(toml, d1Table, 'database_id')) console.log(`  keep the D1 database named in wrangler.toml: ${database} (${readValue(toml, d1Table, 'database_id')})`)
  else {
    step(`find the D1 database ${database} by name:`, ['d1', 'list', '--json'])
    step('create it if it is not there:', ['d1', 'create', database, ...(values.location ? ['--location', values.location] : [])])
    console.log(`      and write its id into wrangler.toml: database_id under [[${d1Table}]]`)
  }
  for (const queue of queues) {
    step(`check the queue ${queue}:`, ['queues', 'info', queue])
    step('create it if it is not there:', ['queues', 'create', queue])
  }
  console.log(`  set in wrangler.toml [${varsTable}]: DESTINATION = "${destination}"${destination === 'ortto' ? ', and ORTTO_REGION (asked: eu, au or the default host)' : ''}`)
  console.log(
    `  ask for ${keyName} (hidden) unless it is set or in the environment; make SEGMENT_WEBHOOK_TOKEN and ADMIN_TOKEN (32 random bytes each) unless set${values.rotate ? ' (--rotate: new ones)' : ''}`,
  )
  step("put the ones not set yet, as JSON on wrangler's stdin (never an argument):", ['secret', 'bulk', ...envArgs], `   < {"${keyName}": "…", "SEGMENT_WEBHOOK_TOKEN": "…", "ADMIN_TOKEN": "…"}`)
  console.log(`  print what to paste into Segment (the Authorization header, the batch size), and the next command: npm run deploy${env ? ` -- --env ${env}` : ''}`)
}
