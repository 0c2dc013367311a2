// @ts-check
// `npm start [-- --signed] [-- --env queued] [other wrangler dev flags]`: the Autopilot
// sandbox on :8788 and the Worker (wrangler dev) on :8787, wired together, with a migrated
// local D1. Authentication is off (ALLOW_UNSIGNED) unless --signed, for local use only.
import { execFileSync, spawn } from 'node:child_process'
import { startSandbox } from '../sandbox/server.js'
import { LOCAL_ADMIN_TOKEN, LOCAL_SECRET } from './local.js'

const args = process.argv.slice(2)
const signed = args.includes('--signed')
const devArgs = args.filter((arg) => arg !== '--signed')
const envName = devArgs.includes('--env') ? devArgs[devArgs.indexOf('--env') + 1] : undefined
const port = process.env.PORT ?? '8787'
const apiKey = 'sandbox-key'
const triggers = process.env.AUTOPILOT_TRIGGERS ?? JSON.stringify({ 'Step Activated': '0001', 'Order Completed': '0002' })
// The sandbox account: its journeys' API triggers and custom fields (as if made in Autopilot's UI).
const sandboxTriggers = (process.env.SANDBOX_TRIGGERS ?? '0001,0002').split(',').filter(Boolean)
const sandboxFields = JSON.parse(process.env.SANDBOX_CUSTOM_FIELDS ?? '{"Age": "integer", "Lifetime Value": "float"}')

// The local D1 database (.wrangler/state) gets the migrations first; CI=true skips wrangler's prompt.
execFileSync('npx', ['wrangler', 'd1', 'migrations', 'apply', 'DB', '--local', ...(envName ? ['--env', envName] : [])], {
  stdio: ['ignore', 'ignore', 'inherit'],
  env: { ...process.env, CI: 'true' },
})

const sandbox = await startSandbox({
  port: Number(process.env.SANDBOX_PORT ?? 8788),
  apiKey,
  triggers: sandboxTriggers,
  customFields: sandboxFields,
  log: (line) => console.log(`[autopilot sandbox] ${line}`),
})

const vars = {
  AUTOPILOT_BASE_URL: sandbox.url,
  AUTOPILOT_API_KEY: apiKey,
  AUTOPILOT_TRIGGERS: triggers,
  ADMIN_TOKEN: LOCAL_ADMIN_TOKEN,
  ...(signed ? { SEGMENT_SHARED_SECRET: LOCAL_SECRET } : { ALLOW_UNSIGNED: 'true' }),
  ...(process.env.AUTOPILOT_FIELD_TYPES && { AUTOPILOT_FIELD_TYPES: process.env.AUTOPILOT_FIELD_TYPES }),
}
const mapped = Object.entries(JSON.parse(triggers)).map(([event, id]) => `${event} → ${id}`).join(', ') || 'none (every track is skipped)'
console.log(`
  Worker     http://127.0.0.1:${port}  (${envName === 'queued' ? 'queued mode: events go through a local queue' : 'direct mode'})
  Auth       ${signed ? `X-Signature with the shared secret "${LOCAL_SECRET}"` : 'off (ALLOW_UNSIGNED=true, local only); `npm start -- --signed` requires signatures'}
  Triggers   ${mapped}   (AUTOPILOT_TRIGGERS='{"Event": "id"}' npm start)
  ${process.env.AUTOPILOT_FIELD_TYPES ? `Pinned     AUTOPILOT_FIELD_TYPES=${process.env.AUTOPILOT_FIELD_TYPES}\n  ` : ''}Autopilot  ${sandbox.url}  (a local sandbox: triggers ${sandboxTriggers.join(', ')}; custom fields ${Object.entries(sandboxFields).map(([n, t]) => `${n} (${t})`).join(', ') || 'none'})

  Try        npm run send -- examples/identify.json
             npm run send -- examples/track.json
             npm run doctor
`)

const wrangler = spawn(
  'npx',
  [
    'wrangler', 'dev',
    '--ip', '127.0.0.1',
    '--port', port,
    '--show-interactive-dev-session=false',
    ...Object.entries(vars).flatMap(([name, value]) => ['--var', `${name}:${value}`]),
    ...devArgs,
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
