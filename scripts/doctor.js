// @ts-check
// `npm run doctor`: asks a running Worker (deployed, or `npm start`) whether its setup can
// work — API key, trigger ids, custom field types, D1 migrated — and prints what is wrong
// in plain words. Exits 1 when something is.
//   npm run doctor                                  # the local Worker of `npm start`
//   npm run doctor -- --url https://segment-autopilot.<you>.workers.dev   (ADMIN_TOKEN from the environment)
import { existsSync, readFileSync } from 'node:fs'
import { parseArgs } from 'node:util'
import { LOCAL_ADMIN_TOKEN } from './local.js'

const { values } = parseArgs({ options: { url: { type: 'string' }, token: { type: 'string' } } })
const url = (values.url ?? process.env.WORKER_URL ?? 'http://127.0.0.1:8787').replace(/\/+$/, '')
const local = /^http:\/\/(127\.0\.0\.1|localhost)(:\d+)?$/.test(url)
const token = values.token ?? process.env.ADMIN_TOKEN ?? devVar('ADMIN_TOKEN') ?? (local ? LOCAL_ADMIN_TOKEN : undefined)
if (!token) {
  console.error('Give the Worker\'s ADMIN_TOKEN: ADMIN_TOKEN=… npm run doctor -- --url …  (set it with npx wrangler secret put ADMIN_TOKEN)')
  process.exit(2)
}

let response
try {
  response = await fetch(`${url}/health?check=autopilot`, { headers: { authorization: `Bearer ${token}` } })
} catch (error) {
  console.error(`✗ Could not reach the Worker at ${url}: ${error instanceof Error ? error.message : error}${local ? ' (is `npm start` running?)' : ''}`)
  process.exit(1)
}
const body = await response.json().catch(() => ({}))
if (!response.ok) {
  console.error(`✗ ${url} answered ${response.status}: ${body.message ?? 'no message'}`)
  process.exit(1)
}
console.log(`Setup check of ${url}\n`)
for (const { ok, check, message } of body.checks ?? []) console.log(`${ok ? '✓' : '✗'} ${check}: ${message}`)
if (body.triggers?.length) console.log(`\nAPI triggers in the account: ${body.triggers.map((/** @type {{triggerId: string, journey?: string}} */ t) => `${t.triggerId}${t.journey ? ` (${t.journey})` : ''}`).join(', ')}`)
if (body.customFields?.length) console.log(`Custom fields in the account: ${body.customFields.map((/** @type {{name: string, type: string}} */ f) => `${f.name.replaceAll('--', ' ')} (${f.type})`).join(', ')}`)
console.log(`\n${body.status === 'ok' ? 'Ready.' : body.message}`)
process.exit(body.status === 'ok' ? 0 : 1)

/** A value from .dev.vars, if the file has it. */
function devVar(/** @type {string} */ name) {
  if (!existsSync('.dev.vars')) return undefined
  const line = readFileSync('.dev.vars', 'utf8').split('\n').find((l) => l.startsWith(`${name}=`))
  return line?.slice(name.length + 1).trim() || undefined
}
