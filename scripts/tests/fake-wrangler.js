// @ts-check
// A stand-in for `wrangler` (4.86) in the setup and deploy tests, put first on PATH by a shim.
// It records every invocation — its arguments, its stdin, and whether its environment held a
// secret — in $FAKE_WRANGLER_DIR/calls.jsonl, and answers from a small account kept in
// $FAKE_WRANGLER_DIR/account.json: as the real one does, in the shapes setup and deploy read
// (JSON of `whoami --json`, `d1 list --json`, `secret list`; the snippet `d1 create` prints for
// a .toml config; the WRANGLER_OUTPUT_FILE_PATH records `deploy` and `command-failed`), with
// its messages for a missing Worker or queue. account.fail = {"queues create": "message"}
// makes that command fail with the message.
import { appendFileSync, existsSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'

const dir = process.env.FAKE_WRANGLER_DIR ?? '.'
const accountFile = join(dir, 'account.json')
/** @type {{ loggedIn: boolean, accounts: {id: string, name: string}[], d1: {name: string, uuid: string}[], queues: string[], workers: Record<string, {secrets: string[]}>, url: string, fail: Record<string, string> }} */
const account = {
  loggedIn: true,
  accounts: [{ id: 'acc1', name: 'Test' }],
  d1: [],
  queues: [],
  workers: {},
  url: 'https://segment-autopilot.test.workers.dev',
  fail: {},
  ...(existsSync(accountFile) ? JSON.parse(readFileSync(accountFile, 'utf8')) : {}),
}
const args = process.argv.slice(2)
let stdin = ''
try {
  stdin = readFileSync(0, 'utf8')
} catch {
  // no stdin (a terminal, or closed)
}
const secretNames = ['AUTOPILOT_API_KEY', 'ORTTO_API_KEY', 'SEGMENT_WEBHOOK_TOKEN', 'ADMIN_TOKEN', 'SEGMENT_SHARED_SECRET']
appendFileSync(
  join(dir, 'calls.jsonl'),
  `${JSON.stringify({ args, stdin, secretInEnv: secretNames.filter((n) => n in process.env), env: { CI: process.env.CI, WRANGLER_LOG_SANITIZE: process.env.WRANGLER_LOG_SANITIZE } })}\n`,
)

const positional = args.filter((a, i) => !a.startsWith('-') && !['--env', '--location', '--outdir'].includes(args[i - 1] ?? ''))
const command = positional.slice(0, positional[0] === 'd1' && positional[1] === 'migrations' ? 3 : 2).join(' ')
const envIndex = args.indexOf('--env')
const env = envIndex >= 0 ? (args[envIndex + 1] ?? '') : ''
const save = () => writeFileSync(accountFile, JSON.stringify(account, null, 2))

const record = (/** @type {object} */ entry) => process.env.WRANGLER_OUTPUT_FILE_PATH && appendFileSync(process.env.WRANGLER_OUTPUT_FILE_PATH, `${JSON.stringify({ version: 1, ...entry })}\n`)
/** @returns {never} */
const fail = (/** @type {string} */ message) => {
  record({ type: 'command-failed', message })
  process.stderr.write(`✘ [ERROR] ${message}\n`)
  process.exit(1)
}

if (account.fail[command]) fail(account.fail[command])
const auth = () => account.loggedIn || fail("In a non-interactive environment, it's necessary to set a CLOUDFLARE_API_TOKEN environment variable for wrangler to work.")
const worker = env ? `segment-autopilot-${env}` : 'segment-autopilot'

switch (command) {
  case 'whoami':
    console.log(JSON.stringify(account.loggedIn ? { loggedIn: true, email: 'someone@example.com', accounts: account.accounts } : { loggedIn: false }))
    process.exit(account.loggedIn ? 0 : 1)
    break
  case 'secret list':
    auth()
    if (!account.workers[env]) fail(`Worker "${worker}"${env ? ` (env: ${env})` : ''} not found.\n\nIf this is a new Worker, run \`wrangler deploy\` first to create it.`)
    console.log(
      JSON.stringify(
        account.workers[env].secrets.map((name) => ({ name, type: 'secret_text' })),
        null,
        '  ',
      ),
    )
    break
  case 'secret bulk': {
    auth()
    const content = JSON.parse(stdin)
    account.workers[env] ??= { secrets: [] }
    account.workers[env].secrets = [...new Set([...account.workers[env].secrets, ...Object.keys(content)])]
    save()
    console.log(`✨ ${Object.keys(content).length} secrets successfully uploaded`)
    break
  }
  case 'd1 list':
    auth()
    console.log(JSON.stringify(account.d1, null, 2))
    break
  case 'd1 create': {
    auth()
    const name = positional[2]
    if (account.d1.some((db) => db.name === name)) fail(`A database with that name already exists [code: 7502]`)
    const uuid = `00000000-0000-4000-8000-${String(account.d1.length + 1).padStart(12, '0')}`
    account.d1.push({ name, uuid })
    save()
    console.log(
      `✅ Successfully created DB '${name}' in region WEUR\nCreated your new D1 database.\n\nTo access your new D1 Database in your Worker, add the following snippet to your configuration file:\n[[d1_databases]]\nbinding = "${name.replaceAll('-', '_')}"\ndatabase_name = "${name}"\ndatabase_id = "${uuid}"`,
    )
    break
  }
  case 'queues info':
    auth()
    if (!account.queues.includes(positional[2])) fail(`Queue "${positional[2]}" does not exist. To create it, run: wrangler queues create ${positional[2]}`)
    console.log(`Queue Name: ${positional[2]}`)
    break
  case 'queues create':
    auth()
    if (account.queues.includes(positional[2])) fail(`A queue with this name already exists [code: 11009]`)
    account.queues.push(positional[2])
    save()
    console.log(`✅ Created queue '${positional[2]}'`)
    break
  case 'd1 migrations apply':
    if (args.includes('--remote')) auth()
    console.log('✅ migrations applied')
    break
  case 'deploy':
    if (args.includes('--dry-run')) {
      console.log('--dry-run: exiting now.')
      break
    }
    auth()
    for (const queue of env === 'queued' ? ['autopilot-events', 'autopilot-events-dlq'] : [])
      if (!account.queues.includes(queue)) fail(`Queue "${queue}" does not exist. To create it, run: wrangler queues create ${queue}`)
    account.workers[env] ??= { secrets: [] }
    save()
    console.log(`Uploaded ${worker}\nDeployed ${worker} triggers\n  ${account.url}`)
    record({ type: 'deploy', worker_name: worker, targets: [account.url, 'schedule: */30 * * * *'], wrangler_environment: env || undefined })
    break
  default:
    fail(`the stand-in does not know \`wrangler ${args.join(' ')}\``)
}
