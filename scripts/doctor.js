// @ts-check
// `npm run doctor`: asks a running Worker (deployed, or `npm start`) whether its setup can
// work — API key, trigger ids, custom field types, D1 migrated — and prints what is wrong
// in plain words. Exits 1 when something is. A note (ALLOW_UNSIGNED with `npm start`) is said
// but is no failure — except on a Worker that is not local, where it is one.
//   npm run doctor                                  # the local Worker of `npm start`
//   npm run doctor -- --url https://segment-autopilot.<you>.workers.dev   (ADMIN_TOKEN from the environment)
import { existsSync, readFileSync } from 'node:fs'
import { parseArgs } from 'node:util'
import { isLocal, LOCAL_ADMIN_TOKEN } from './local.js'

const { values } = parseArgs({ options: { url: { type: 'string' }, token: { type: 'string' } } })
const url = (values.url ?? process.env.WORKER_URL ?? 'http://127.0.0.1:8787').replace(/\/+$/, '')
const local = isLocal(url)
const token = values.token ?? process.env.ADMIN_TOKEN ?? devVar('ADMIN_TOKEN') ?? (local ? LOCAL_ADMIN_TOKEN : undefined)
if (!token) {
  console.error("Give the Worker's ADMIN_TOKEN: ADMIN_TOKEN=… npm run doctor -- --url …  (set it with npx wrangler secret put ADMIN_TOKEN)")
  process.exit(2)
}

let response
try {
  // Which destination it delivers to names its check (a Worker from before it said: autopilot).
  const info = await fetch(`${url}/health`)
    .then((r) => r.json())
    .catch(() => ({}))
  const destination = typeof info.destination === 'string' ? info.destination : 'autopilot'
  response = await fetch(`${url}/health?check=${encodeURIComponent(destination)}`, { headers: { authorization: `Bearer ${token}` } })
} catch (error) {
  console.error(`✗ Could not reach the Worker at ${url}: ${error instanceof Error ? error.message : error}${local ? ' (is `npm start` running?)' : ''}`)
  process.exit(1)
}
const body = await response.json().catch(() => ({}))
if (!response.ok) {
  console.error(`✗ ${url} answered ${response.status}: ${body.message ?? 'no message'}`)
  process.exit(1)
}

/** @typedef {{ ok: boolean, check: string, message: string, note?: boolean }} Check */
/** @type {Check[]} */
const checks = body.checks ?? []
// ALLOW_UNSIGNED is what `npm start` runs with: a note there, a problem anywhere else. (A
// Worker from before notes were marked says it as a failure: recognised by its words.)
const unsigned = (/** @type {Check} */ c) => c.check === 'settings' && /^ALLOW_UNSIGNED is "true"/.test(c.message)
const isNote = (/** @type {Check} */ c) => !c.ok && (local ? c.note === true || unsigned(c) : c.note === true && !unsigned(c))
const failed = checks.filter((c) => !c.ok && !isNote(c)).length
const notes = checks.filter(isNote).length

console.log(`Setup check of ${url}\n`)
for (const c of checks) {
  const fix = !local && unsigned(c) ? ": remove ALLOW_UNSIGNED from this Worker's vars and set the secrets: npm run setup" : ''
  console.log(`${c.ok ? '✓' : isNote(c) ? '•' : '✗'} ${c.check}${isNote(c) ? ' (note)' : ''}: ${c.message}${fix}`)
}
if (Array.isArray(body.activities)) console.log(`\nActivities in the account: ${body.activities.join(', ') || 'none (create them in Ortto: Settings → Activities)'}`)
if (body.triggers?.length)
  console.log(`\nAPI triggers in the account: ${body.triggers.map((/** @type {{triggerId: string, journey?: string}} */ t) => `${t.triggerId}${t.journey ? ` (${t.journey})` : ''}`).join(', ')}`)
if (body.customFields?.length)
  console.log(
    `Custom fields in the account: ${body.customFields.map((/** @type {{name: string, type?: string, id?: string}} */ f) => `${f.name.replaceAll('--', ' ')} (${f.type ?? f.id})`).join(', ')}`,
  )
if (body.accountFields?.length) console.log(`Custom account fields (groups): ${body.accountFields.map((/** @type {{name: string, id: string}} */ f) => `${f.name} (${f.id})`).join(', ')}`)
const count = (/** @type {number} */ n, /** @type {string} */ word) => `${n} ${word}${n === 1 ? '' : 's'}`
if (failed) console.log(`\n${count(failed, 'problem')} (✗ above)${notes ? ` and ${count(notes, 'note')}` : ''}.`)
else console.log(`\nReady.${notes ? ` (${count(notes, 'note')}: expected with npm start)` : ''}`)
process.exit(failed ? 1 : 0)

/** A value from .dev.vars, if the file has it. */
function devVar(/** @type {string} */ name) {
  if (!existsSync('.dev.vars')) return undefined
  const line = readFileSync('.dev.vars', 'utf8')
    .split('\n')
    .find((l) => l.startsWith(`${name}=`))
  return line?.slice(name.length + 1).trim() || undefined
}
