// @ts-check
// A stand-in for `wrangler` (4.86) in the setup and deploy tests. `answer()` records every
// invocation — its arguments, its stdin, and which secrets its environment held — in
// <dir>/calls.jsonl, and answers from a small account kept in <dir>/account.json, as the real
// one does: in the shapes setup and deploy read (JSON of `d1 list --json` and `secret list`;
// the snippet `d1 create` prints for a .toml config; the WRANGLER_OUTPUT_FILE_PATH records
// `deploy` and `command-failed`), with its messages for no login, a missing Worker or queue.
// account.fail = {"queues create": "message"} makes that command fail with the message.
// The harness serves it to a small bash client put first on PATH as `wrangler` (a node
// process per call would cost more than the tests); `node fake-wrangler.js …` runs it alone.
import { appendFileSync, existsSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'

export const SECRET_NAMES = ['AUTOPILOT_API_KEY', 'ORTTO_API_KEY', 'SEGMENT_WEBHOOK_TOKEN', 'ADMIN_TOKEN', 'SEGMENT_SHARED_SECRET']

/**
 * @typedef {object} Invocation
 * @property {string[]} args
 * @property {string} stdin
 * @property {string[]} secretInEnv   the secret names its environment held
 * @property {{ CI?: string, WRANGLER_LOG_SANITIZE?: string, WRANGLER_OUTPUT_FILE_PATH?: string }} env
 */

/**
 * One wrangler invocation: recorded, answered.
 * @param {Invocation} call @param {string} dir the stand-in's state
 * @returns {{ code: number, stdout: string, stderr: string }}
 */
export function answer(call, dir) {
  const { args, stdin } = call
  appendFileSync(join(dir, 'calls.jsonl'), `${JSON.stringify({ args, stdin, secretInEnv: call.secretInEnv, env: { CI: call.env.CI, WRANGLER_LOG_SANITIZE: call.env.WRANGLER_LOG_SANITIZE } })}\n`)
  const accountFile = join(dir, 'account.json')
  /** @type {{ loggedIn: boolean, d1: {name: string, uuid: string}[], queues: string[], workers: Record<string, {secrets: string[]}>, url: string, fail: Record<string, string> }} */
  const account = {
    loggedIn: true,
    d1: [],
    queues: [],
    workers: {},
    url: 'https://segment-autopilot.test.workers.dev',
    fail: {},
    ...(existsSync(accountFile) ? JSON.parse(readFileSync(accountFile, 'utf8')) : {}),
  }
  const save = () => writeFileSync(accountFile, JSON.stringify(account, null, 2))
  const record = (/** @type {object} */ entry) => call.env.WRANGLER_OUTPUT_FILE_PATH && appendFileSync(call.env.WRANGLER_OUTPUT_FILE_PATH, `${JSON.stringify({ version: 1, ...entry })}\n`)
  const ok = (/** @type {string} */ stdout) => ({ code: 0, stdout: `${stdout}\n`, stderr: '' })
  const fail = (/** @type {string} */ message) => {
    record({ type: 'command-failed', message })
    return { code: 1, stdout: '', stderr: `✘ [ERROR] ${message}\n` }
  }

  const positional = args.filter((a, i) => !a.startsWith('-') && !['--env', '--location', '--outdir', '--persist-to'].includes(args[i - 1] ?? ''))
  const command = positional.slice(0, positional[0] === 'd1' && positional[1] === 'migrations' ? 3 : 2).join(' ')
  const envIndex = args.indexOf('--env')
  const env = envIndex >= 0 ? (args[envIndex + 1] ?? '') : ''
  const worker = env ? `segment-autopilot-${env}` : 'segment-autopilot'
  const name = positional[2]

  if (account.fail[command]) return fail(account.fail[command])
  const offline = command === 'd1 migrations apply' ? !args.includes('--remote') : command === 'deploy' && args.includes('--dry-run')
  if (!account.loggedIn && !offline) return fail("In a non-interactive environment, it's necessary to set a CLOUDFLARE_API_TOKEN environment variable for wrangler to work.")
  switch (command) {
    case 'secret list':
      if (!account.workers[env]) return fail(`Worker "${worker}"${env ? ` (env: ${env})` : ''} not found.\n\nIf this is a new Worker, run \`wrangler deploy\` first to create it.`)
      return ok(
        JSON.stringify(
          account.workers[env].secrets.map((secret) => ({ name: secret, type: 'secret_text' })),
          null,
          '  ',
        ),
      )
    case 'secret bulk': {
      const content = JSON.parse(stdin)
      account.workers[env] ??= { secrets: [] }
      account.workers[env].secrets = [...new Set([...account.workers[env].secrets, ...Object.keys(content)])]
      save()
      return ok(`✨ ${Object.keys(content).length} secrets successfully uploaded`)
    }
    case 'd1 list':
      return ok(JSON.stringify(account.d1, null, 2))
    case 'd1 create': {
      if (account.d1.some((db) => db.name === name)) return fail('A database with that name already exists [code: 7502]')
      const uuid = `00000000-0000-4000-8000-${String(account.d1.length + 1).padStart(12, '0')}`
      account.d1.push({ name, uuid })
      save()
      return ok(
        `✅ Successfully created DB '${name}' in region WEUR\nCreated your new D1 database.\n\nTo access your new D1 Database in your Worker, add the following snippet to your configuration file:\n[[d1_databases]]\nbinding = "${name.replaceAll('-', '_')}"\ndatabase_name = "${name}"\ndatabase_id = "${uuid}"`,
      )
    }
    case 'queues info':
      return account.queues.includes(name) ? ok(`Queue Name: ${name}`) : fail(`Queue "${name}" does not exist. To create it, run: wrangler queues create ${name}`)
    case 'queues create':
      if (account.queues.includes(name)) return fail('A queue with this name already exists [code: 11009]')
      account.queues.push(name)
      save()
      return ok(`✅ Created queue '${name}'`)
    case 'd1 migrations apply':
      return ok('✅ migrations applied')
    case 'deploy': {
      if (args.includes('--dry-run')) return ok('--dry-run: exiting now.')
      const missing = (env === 'queued' ? ['autopilot-events', 'autopilot-events-dlq'] : []).find((queue) => !account.queues.includes(queue))
      if (missing) return fail(`Queue "${missing}" does not exist. To create it, run: wrangler queues create ${missing}`)
      account.workers[env] ??= { secrets: [] }
      save()
      record({ type: 'deploy', worker_name: worker, targets: [account.url, 'schedule: */30 * * * *'], wrangler_environment: env || undefined })
      return ok(`Uploaded ${worker}\nDeployed ${worker} triggers\n  ${account.url}`)
    }
    default:
      return fail(`the stand-in does not know \`wrangler ${args.join(' ')}\``)
  }
}

// Run alone: `node fake-wrangler.js <args>`, its state in $FAKE_WRANGLER_DIR.
if (process.argv[1] === fileURLToPath(import.meta.url)) {
  let stdin = ''
  try {
    stdin = readFileSync(0, 'utf8')
  } catch {
    // no stdin
  }
  const { CI, WRANGLER_LOG_SANITIZE, WRANGLER_OUTPUT_FILE_PATH } = process.env
  const call = { args: process.argv.slice(2), stdin, secretInEnv: SECRET_NAMES.filter((n) => n in process.env), env: { CI, WRANGLER_LOG_SANITIZE, WRANGLER_OUTPUT_FILE_PATH } }
  const result = answer(call, process.env.FAKE_WRANGLER_DIR ?? '.')
  process.stdout.write(result.stdout)
  process.stderr.write(result.stderr)
  process.exitCode = result.code
}
