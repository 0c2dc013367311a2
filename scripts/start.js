// @ts-check
// `npm start`: the Autopilot sandbox on :8788 and the Worker (wrangler dev) on :8787,
// wired together, with signing relaxed explicitly (ALLOW_UNSIGNED) for local use only.
import { execFileSync, spawn } from 'node:child_process'
import { startSandbox } from '../sandbox/server.js'

// The local D1 database (.wrangler/state) gets the migrations first; CI=true skips wrangler's prompt.
const envArgs = process.argv.slice(2).includes('--env') ? ['--env', process.argv[process.argv.indexOf('--env') + 1]] : []
execFileSync('npx', ['wrangler', 'd1', 'migrations', 'apply', 'DB', '--local', ...envArgs], { stdio: ['ignore', 'ignore', 'inherit'], env: { ...process.env, CI: 'true' } })

const apiKey = 'sandbox-key'
const sandbox = await startSandbox({
  port: Number(process.env.SANDBOX_PORT ?? 8788),
  apiKey,
  log: (line) => console.log(`[autopilot sandbox] ${line}`),
})
console.log(`[autopilot sandbox] listening on ${sandbox.url}`)

const triggers = process.env.AUTOPILOT_TRIGGERS ?? JSON.stringify({ 'Step Activated': '0001', 'Order Completed': '0002' })
const wrangler = spawn(
  'npx',
  [
    'wrangler', 'dev',
    '--ip', '127.0.0.1',
    '--port', process.env.PORT ?? '8787',
    '--show-interactive-dev-session=false',
    '--var', `AUTOPILOT_BASE_URL:${sandbox.url}`,
    '--var', `AUTOPILOT_API_KEY:${apiKey}`,
    '--var', `AUTOPILOT_TRIGGERS:${triggers}`,
    '--var', 'ALLOW_UNSIGNED:true',
    ...process.argv.slice(2),
  ],
  { stdio: 'inherit' },
)
const stop = () => wrangler.kill('SIGTERM')
process.on('SIGINT', stop)
process.on('SIGTERM', stop)
wrangler.on('exit', async (code) => {
  await sandbox.close()
  process.exit(code ?? 0)
})
