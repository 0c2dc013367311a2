// @ts-check
// How setup and deploy run wrangler. Which one: the first `wrangler` on PATH — under
// `npm run` that is the pinned node_modules/.bin/wrangler; run by hand, the pinned one is the
// fallback. A secret only ever reaches it on stdin: never in an argument (visible in `ps`
// and shell history) nor in its environment, from which every secret name is removed.
// Its debug log keeps request bodies out (WRANGLER_LOG_SANITIZE, forced on: a secret's would
// hold it). Wrangler's own record of a run (WRANGLER_OUTPUT_FILE_PATH: the deployed URL, a failure's
// message) is read from a private temporary file and deleted.
import { spawn } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { delimiter, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'

const localBin = fileURLToPath(new URL('../node_modules/.bin', import.meta.url))
const windows = process.platform === 'win32'
const SECRETS = ['AUTOPILOT_API_KEY', 'ORTTO_API_KEY', 'SEGMENT_WEBHOOK_TOKEN', 'SEGMENT_SHARED_SECRET', 'ADMIN_TOKEN']

/** The first line of wrangler's failure message, without its final full stop. */
export const firstLine = (/** @type {string} */ message) => message.split('\n')[0].replace(/\.+$/, '')

/** A command as the user would type it. */
export const shown = (/** @type {string[]} */ args) => `npx wrangler ${args.map((arg) => (arg === '' ? '""' : /[\s"'$`\\]/.test(arg) ? `'${arg}'` : arg)).join(' ')}`

/**
 * @typedef {object} Run
 * @property {number} code         the exit code (127: wrangler did not start)
 * @property {string} stdout       what it printed (captured runs only)
 * @property {string} output       stdout and stderr as printed (captured runs only)
 * @property {string} failure      the message of the error it stopped on, as it recorded it
 * @property {Record<string, unknown>[]} records  its output-file entries (e.g. `{type: "deploy", targets}`)
 */

/**
 * Runs wrangler with these arguments.
 * @param {string[]} args
 * @param {{ stdin?: string, capture?: boolean, env?: Record<string, string> }} [options]
 *   stdin: text piped in (a secret's only way in); capture: output kept, not shown; env: more variables
 * @returns {Promise<Run>}
 */
export function wrangler(args, { stdin, capture = false, env = {} } = {}) {
  // A captured run is no conversation: it gets no terminal, and leaves piped input to us.
  const input = stdin ?? (capture ? '' : undefined)
  const dir = mkdtempSync(join(tmpdir(), 'wrangler-run-'))
  const outputFile = join(dir, 'output.json')
  const childEnv = { ...process.env, ...env, WRANGLER_OUTPUT_FILE_PATH: outputFile, WRANGLER_LOG_SANITIZE: 'true', PATH: [process.env.PATH, localBin].filter(Boolean).join(delimiter) }
  for (const name of SECRETS) delete childEnv[name]
  return new Promise((resolve) => {
    // (On Windows wrangler is a .cmd, which only a shell runs; no argument here is secret.)
    const child = spawn('wrangler', windows ? args.map((a) => JSON.stringify(a)) : args, {
      env: childEnv,
      shell: windows,
      stdio: [input === undefined ? 'inherit' : 'pipe', capture ? 'pipe' : 'inherit', capture ? 'pipe' : 'inherit'],
    })
    let stdout = ''
    let output = ''
    child.stdout?.on('data', (chunk) => ((stdout += chunk), (output += chunk)))
    child.stderr?.on('data', (chunk) => (output += chunk))
    child.stdin?.on('error', () => {}) // it may exit before reading: its exit code says so
    child.stdin?.end(input)
    const done = (/** @type {number} */ code, /** @type {string} */ failure) => {
      const records = readRecords(outputFile)
      rmSync(dir, { recursive: true, force: true })
      const failed = /** @type {any} */ (records.find((r) => r.type === 'command-failed'))
      resolve({ code, stdout, output, failure: failure || String(failed?.message ?? ''), records })
    }
    child.on('error', (error) => done(127, `wrangler did not start (${error.message}): run npm ci first`))
    child.on('close', (code) => done(code ?? 1, ''))
  })
}

/** @returns {Record<string, unknown>[]} */
function readRecords(/** @type {string} */ file) {
  try {
    return readFileSync(file, 'utf8')
      .split('\n')
      .filter(Boolean)
      .map((line) => JSON.parse(line))
  } catch {
    return []
  }
}

/**
 * The one command that fixes a failed wrangler run, when its message says which; else
 * undefined (then: what wrangler said, and the same command again).
 * @param {string} message wrangler's failure and output
 * @param {string} setup the setup command for this environment
 */
export function fixFor(message, setup) {
  if (/CLOUDFLARE_API_TOKEN|not authenticated|wrangler login|Not logged in|Did not login|Authentication error|\[code: (10000|9106|9109)\]/i.test(message)) return 'npx wrangler login'
  if (/More than one account/i.test(message)) return 'export CLOUDFLARE_ACCOUNT_ID=<one of the account ids above>, then run this again'
  if (/missing a database_id|Couldn't find (a D1 )?DB|does not exist\. To create it, run: wrangler queues create|\[code: 7404\]/i.test(message)) return setup
  return undefined
}

/** Prints the message (to stderr unless code is 0) and exits with the code. @returns {never} */
export function stop(/** @type {string} */ message, code = 1) {
  ;(code ? console.error : console.log)(message)
  process.exit(code)
}

/**
 * setup's and deploy's command line: their own options beside `--env`, `--dry-run` and `--help`
 * (which prints `usage`); a flag that does not parse stops with exit 2 and the usage.
 * @template {import('node:util').ParseArgsConfig['options']} O
 * @param {O} options
 * @param {string} usage
 */
export function commandLine(options, usage) {
  const all = {
    ...options,
    env: { type: /** @type {const} */ ('string'), default: '' },
    'dry-run': { type: /** @type {const} */ ('boolean'), default: false },
    help: { type: /** @type {const} */ ('boolean'), default: false },
  }
  /** @type {ReturnType<typeof parseArgs<{ options: typeof all }>>} */
  let parsed
  try {
    parsed = parseArgs({ options: all })
  } catch (error) {
    return stop(`${error instanceof Error ? error.message : error}\n${usage}`, 2)
  }
  const { values } = parsed
  if (values.help) stop(usage, 0)
  const env = /** @type {string} */ (values.env ?? '')
  return { values, env, dryRun: Boolean(values['dry-run']), envArgs: ['--env', env] }
}
