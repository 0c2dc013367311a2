// @ts-check
// `npm start [-- options] [wrangler dev flags]`: a local sandbox of the destination on :8788
// and the Worker (wrangler dev) on :8787, wired together, with a migrated local D1 of its
// own per mode (.wrangler/state/<mode>). Authentication is off (ALLOW_UNSIGNED) unless
// --signed, for local use only. Every child (wrangler, workerd) stops when this stops.
import { existsSync, rmSync } from 'node:fs'
import { createRequire } from 'node:module'
import { createServer } from 'node:net'
import { isAbsolute, join, relative, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import { startSandbox } from '../sandbox/server.js'
import { spawnGroup, stopGroups } from './children.js'
import { LOCAL_ADMIN_TOKEN, LOCAL_SECRET } from './local.js'

const USAGE = `usage: npm start -- [--signed] [--env queued] [--fresh] [--destination autopilot|ortto] [--port N] [wrangler dev flags]
  --signed       require signatures (secret "${LOCAL_SECRET}", which npm run send uses)
  --env queued   queued mode, with a local queue
  --fresh        empty this mode's local state (.wrangler/state/<mode>) first
  --destination  which destination's sandbox and settings: autopilot (the default) or ortto
  --port N       the Worker's port (or PORT=N); the sandbox's: SANDBOX_PORT=N
Anything else is passed to wrangler dev.`

/** The settings a destination reads from the shell, parsed; a bad one ends with its name. */
function json(/** @type {string} */ name, /** @type {string} */ fallback) {
  try {
    return JSON.parse(process.env[name] ?? fallback)
  } catch (error) {
    fail(`${name} is not JSON: ${error instanceof Error ? error.message : error}`)
  }
}

/**
 * What `npm start` needs to know about one destination. Adding one is an entry here.
 * @typedef {object} Destination
 * @property {string} label                       as the banner and the sandbox's log lines say it
 * @property {string} state                       its local state's directory name per mode (.wrangler/state/<state><mode>)
 * @property {Record<string, unknown>} sandbox    startSandbox options beyond port and log
 * @property {(sandboxUrl: string) => Record<string, string>} vars    the Worker's settings, pointed at the sandbox
 * @property {(sandboxUrl: string) => [string, string][]} banner     [label, text] lines for the banner
 * @property {string[]} examples                  files for `npm run send -- <file>` in the banner
 */
/** @type {Record<string, () => Destination>} */
const DESTINATIONS = {
  autopilot: () => {
    const apiKey = 'sandbox-key'
    const triggers = process.env.AUTOPILOT_TRIGGERS ?? JSON.stringify({ 'Step Activated': '0001', 'Order Completed': '0002' })
    const mapped = Object.entries(json('AUTOPILOT_TRIGGERS', triggers))
      .map(([event, id]) => `${event} → ${id}`)
      .join(', ')
    // The sandbox account: its journeys' API triggers and custom fields (as if made in Autopilot's UI).
    const sandboxTriggers = (process.env.SANDBOX_TRIGGERS ?? '0001,0002').split(',').filter(Boolean)
    const sandboxFields = json('SANDBOX_CUSTOM_FIELDS', '{"Age": "integer", "Lifetime Value": "float"}')
    const fieldTypes = process.env.AUTOPILOT_FIELD_TYPES
    return {
      label: 'autopilot',
      state: '',
      sandbox: { apiKey, triggers: sandboxTriggers, customFields: sandboxFields },
      vars: (url) => ({
        AUTOPILOT_BASE_URL: url,
        AUTOPILOT_API_KEY: apiKey,
        AUTOPILOT_TRIGGERS: triggers,
        ...(fieldTypes && { AUTOPILOT_FIELD_TYPES: fieldTypes }),
      }),
      banner: (url) => [
        ['Triggers', `${mapped || 'none (every track is skipped)'}   (AUTOPILOT_TRIGGERS='{"Event": "id"}' npm start)`],
        ...(fieldTypes ? [/** @type {[string, string]} */ (['Pinned', `AUTOPILOT_FIELD_TYPES=${fieldTypes}`])] : []),
        [
          'Autopilot',
          `${url}  (a local sandbox: triggers ${sandboxTriggers.join(', ')}; custom fields ${
            Object.entries(sandboxFields)
              .map(([n, t]) => `${n} (${t})`)
              .join(', ') || 'none'
          })`,
        ],
      ],
      examples: ['examples/identify.json', 'examples/track.json'],
    }
  },
  ortto: () => {
    const apiKey = 'sandbox-key'
    // No setup, as on a first deploy: a track goes to the activity of its name, created when missing.
    const activities = process.env.ORTTO_ACTIVITIES ?? '{}'
    const create = process.env.ORTTO_CREATE ?? 'fields,activities'
    const mapped = Object.entries(json('ORTTO_ACTIVITIES', activities))
      .map(([event, id]) => `${event} → ${id}`)
      .join(', ')
    // The sandbox account: its custom fields and activities (as if made in Ortto's UI).
    const customFields = json('SANDBOX_ORTTO_FIELDS', '{"int:cm:age": "Age", "str:cm:plan": "Plan", "bol:cm:vip": "VIP", "dec:cm:lifetime-value": "Lifetime Value"}')
    const sandboxActivities = json(
      'SANDBOX_ORTTO_ACTIVITIES',
      JSON.stringify({
        'act:cm:order-completed': { name: 'Order Completed', attributes: { 'str:cm:product': 'Product', 'int:cm:quantity': 'Quantity' } },
      }),
    )
    return {
      label: 'ortto',
      state: 'ortto-', // .wrangler/state/ortto-direct: not Autopilot's database
      sandbox: { destination: 'ortto', apiKey, customFields, activities: sandboxActivities },
      vars: (url) => ({ DESTINATION: 'ortto', ORTTO_BASE_URL: url, ORTTO_API_KEY: apiKey, ORTTO_ACTIVITIES: activities, ORTTO_CREATE: create }),
      banner: (url) => [
        [
          'Activities',
          `each track to the activity of its name${mapped ? `; routed: ${mapped}` : ''}   (ORTTO_CREATE=${create}: ${create === 'none' ? 'nothing is created' : `missing ${create.replace(',', ' and ')} are created`})`,
        ],
        [
          'Ortto',
          `${url}  (a local sandbox: activities ${
            Object.values(sandboxActivities)
              .map((a) => a.name)
              .join(', ') || 'none'
          }; custom fields ${Object.values(customFields).join(', ') || 'none'})`,
        ],
      ],
      examples: ['examples/identify.json', 'examples/track.json'],
    }
  },
}

const root = fileURLToPath(new URL('..', import.meta.url))
const wranglerBin = (() => {
  const manifest = createRequire(import.meta.url).resolve('wrangler/package.json')
  return join(manifest, '..', 'bin', 'wrangler.js')
})()
// What wrangler prints that nobody running this needs (the user's own settings win):
const quiet = {
  WRANGLER_SEND_METRICS: 'false', // no telemetry, nor its notice
  WRANGLER_HIDE_BANNER: 'true', // no version banner and update check (the banner below says what runs)
  CLOUDFLARE_CF_FETCH_ENABLED: 'false', // no fetch of workers.cloudflare.com/cf.json (offline: a stack trace, twice); the Worker reads no request.cf
}
const childEnv = { ...quiet, ...process.env }

// --- arguments: ours by name, everything else (in order) to wrangler dev ---
const argv = process.argv.slice(2)
const { values, tokens } = parseArgs({
  args: argv,
  strict: false,
  allowPositionals: true,
  tokens: true,
  options: {
    destination: { type: 'string' },
    env: { type: 'string' },
    signed: { type: 'boolean' },
    fresh: { type: 'boolean' },
    port: { type: 'string' },
    'persist-to': { type: 'string' },
    help: { type: 'boolean', short: 'h' },
  },
})
const ours = new Set(['destination', 'env', 'signed', 'fresh', 'port', 'persist-to', 'help', 'h'])
const taken = new Set()
for (const token of tokens ?? []) {
  if (token.kind !== 'option' || !ours.has(token.name)) continue
  taken.add(token.index)
  if (token.value !== undefined && !token.inlineValue) taken.add(token.index + 1)
}
const devArgs = argv.filter((_, i) => !taken.has(i))
if (values.help) {
  console.log(USAGE)
  process.exit(0)
}
for (const name of ['destination', 'env', 'port', 'persist-to']) if (values[name] === true) fail(`--${name} needs a value\n${USAGE}`)
const str = (/** @type {unknown} */ value) => (typeof value === 'string' ? value : undefined)

const destinationName = (str(values.destination) ?? process.env.DESTINATION ?? 'autopilot').toLowerCase()
if (!Object.hasOwn(DESTINATIONS, destinationName)) fail(`unknown destination "${destinationName}" (npm start knows: ${Object.keys(DESTINATIONS).join(', ')})`)
const destination = DESTINATIONS[destinationName]()
const envName = str(values.env)
const mode = envName ?? 'direct'
const signed = values.signed === true
const port = str(values.port) ?? process.env.PORT ?? '8787'
const sandboxPort = Number(process.env.SANDBOX_PORT ?? 8788)
const stateDir = resolve(root, str(values['persist-to']) ?? join('.wrangler', 'state', `${destination.state}${mode}`))
const shownState = relative(root, stateDir) || '.'

// --- stopping: every child with us, whatever stops us ---
/** @type {Awaited<ReturnType<typeof startSandbox>> | undefined} */
let sandbox
let stopping = false
async function stop(/** @type {number} */ code) {
  if (stopping) return
  stopping = true
  await stopGroups()
  await Promise.race([sandbox?.close(), new Promise((done) => setTimeout(done, 1000))])
  process.exit(code)
}
for (const signal of /** @type {const} */ (['SIGINT', 'SIGTERM', 'SIGHUP'])) {
  process.on(signal, () => {
    if (stopping) return stopGroups({ signal: 'SIGKILL', graceMs: 0 }).then(() => process.exit(1)) // a second Ctrl-C
    console.log(`\nStopping (${signal}): wrangler, workerd and the sandbox…`)
    return stop(0)
  })
}
// `kill <npm's pid>`: npm passes SIGTERM to its `sh -c`, which ends without passing it on to
// us: being orphaned is the signal then.
const parent = process.ppid
setInterval(() => {
  if (process.ppid === parent || stopping) return
  console.log('\nStopping (npm start ended): wrangler, workerd and the sandbox…')
  stop(0)
}, 500).unref()

/**
 * Runs wrangler in a process group of its own. Resolves with its exit code.
 * @param {string[]} args @param {import('node:child_process').StdioOptions} stdio @param {Record<string, string>} [env]
 */
function wrangler(args, stdio, env = {}) {
  const child = spawnGroup(process.execPath, [wranglerBin, ...args], { cwd: root, env: { ...childEnv, ...env }, stdio })
  let output = ''
  child.stdout?.on('data', (chunk) => (output += chunk))
  child.stderr?.on('data', (chunk) => (output += chunk))
  return new Promise((done) => child.on('exit', (code, signal) => done({ code: code ?? (signal ? 1 : 0), output })))
}

// --- the ports: say so now, not as workerd's stack trace after the migrations ---
for (const [which, number, variable] of [
  ['Worker', Number(port), 'PORT'],
  ['sandbox', sandboxPort, 'SANDBOX_PORT'],
]) {
  const free = await new Promise((done) => {
    const probe = createServer().once('error', () => done(false))
    probe.listen(number, '127.0.0.1', () => probe.close(() => done(true)))
  })
  if (!free) fail(`port ${number} (the ${which}'s) is in use — another npm start? Stop it, or ${variable}=<port> npm start`)
}

// --- the local state: one D1 per mode, emptied on --fresh ---
if (values.fresh) {
  const inside = relative(resolve(root, '.wrangler'), stateDir)
  if (!inside || inside.startsWith('..') || isAbsolute(inside)) {
    fail(`--fresh only empties state under .wrangler/ (not ${shownState}); delete it yourself if you mean it`)
  }
  rmSync(stateDir, { recursive: true, force: true })
}
const isNew = !existsSync(stateDir)
// CI=true: no prompt before applying. Its table of what it applied is not shown, unless it fails.
const migrated = /** @type {{ code: number, output: string }} */ (
  await wrangler(['d1', 'migrations', 'apply', 'DB', '--local', '--persist-to', stateDir, ...(envName ? ['--env', envName] : [])], ['ignore', 'pipe', 'pipe'], { CI: 'true' })
)
if (stopping) await halted() // a signal came during the migrations: stop() exits
if (migrated.code !== 0) fail(`Applying migrations/ to the local D1 (${shownState}) failed:\n${migrated.output.trim()}`)

sandbox = await startSandbox({ port: sandboxPort, ...destination.sandbox, log: (line) => console.log(`[${destination.label} sandbox] ${line}`) })

const vars = {
  ...destination.vars(sandbox.url),
  ADMIN_TOKEN: LOCAL_ADMIN_TOKEN,
  ...(signed ? { SEGMENT_SHARED_SECRET: LOCAL_SECRET } : { ALLOW_UNSIGNED: 'true' }),
}
const worker = `http://127.0.0.1:${port}`
const urlFlag = port === '8787' ? '' : ` --url ${worker}` // send and doctor default to :8787
/** @type {[string, string][]} */
const lines = [
  ['Worker', `${worker}  (${mode === 'queued' ? 'queued mode: events go through a local queue' : `${mode} mode`})`],
  ['Auth', signed ? `X-Signature with the shared secret "${LOCAL_SECRET}"` : 'off (ALLOW_UNSIGNED=true, local only); `npm start -- --signed` requires signatures'],
  ...destination.banner(sandbox.url),
  [
    'State',
    `${shownState}${isNew ? (values.fresh ? ' (emptied by --fresh)' : ' (new)') : ''}: kept between runs (a re-sent track answers "already delivered"); \`npm start -- ${envName ? `--env ${envName} ` : ''}--fresh\` empties it`,
  ],
  ['Sweep', `curl ${worker}/__scheduled  (the */30 cron does not fire locally)`],
  ['', ''],
  [
    'Try',
    destination.examples
      .map((file) => `npm run send -- ${file}${urlFlag}`)
      .concat(`npm run doctor${urlFlag && ` --${urlFlag}`}`)
      .join('\n             '),
  ],
]
console.log(`\n${lines.map(([label, text]) => (label || text ? `  ${label.padEnd(10)} ${text}` : '')).join('\n')}\n`)

if (stopping) await halted()
const dev = spawnGroup(
  process.execPath,
  [
    wranglerBin,
    'dev',
    '--ip',
    '127.0.0.1',
    '--port',
    port,
    '--persist-to',
    stateDir,
    '--show-interactive-dev-session=false',
    '--test-scheduled', // /__scheduled runs the sweep; and no warning that crons do not fire
    ...(envName ? ['--env', envName] : []),
    ...Object.entries(vars).flatMap(([name, value]) => ['--var', `${name}:${value}`]),
    ...devArgs,
  ],
  { cwd: root, env: childEnv, stdio: ['ignore', 'inherit', 'inherit'] },
)
// wrangler ended by itself (an error, a port in use): the rest of its group and the sandbox go too.
dev.on('exit', (code, signal) => {
  if (!stopping) console.error(`npm start: wrangler dev ended (${signal ?? `exit code ${code}`}); stopping the rest`)
  stop(code ?? 1)
})

/** Never resolves: for when stop() is under way and will exit. */
function halted() {
  return new Promise(() => {})
}

/** @returns {never} */
function fail(/** @type {string} */ message) {
  console.error(`npm start: ${message}`)
  process.exit(1)
}
