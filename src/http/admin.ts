// GET /admin: the operator's page, for a person rather than a script: the settings in force,
// the setup check (when asked), parked events, dead letters by reason with a redrive button
// each, journey claims and the last sweep. One server-rendered page (http/admin-page.ts), no
// script. The browser's own login (Basic auth: any user name, ADMIN_TOKEN as the password)
// and Hono's CSRF check on every form post. It reads what the Worker already stores, in two
// D1 queries (three with the setup check), and writes nothing but a redrive's.
import { Hono } from 'hono/tiny'
import type { Context, MiddlewareHandler } from 'hono'
import { basicAuth } from 'hono/basic-auth'
import { csrf } from 'hono/csrf'
import { html } from 'hono/html'
import { HTTPException } from 'hono/http-exception'
import { adminTokenMatches } from '../segment/auth'
import { version } from '../../package.json'
import { renderPage, type PageView } from './admin-page'
import { secretPut } from '../config'
import { redrive, REDRIVE_AT_ONCE } from './dead-letters'
import { sendTestEvent } from './test-event'
import { checkSetup } from '../setup'
import { authMode, methodNotAllowed, type App } from './context'
import { PARK_DAYS } from '../pipeline/identity'
import { StoreAdmin } from '../store/store-admin'
import { databaseSize } from '../store/size'
import { readHistory } from '../store/history'
import { readAlertState } from '../queue/alerts'

const DAY_MS = 24 * 3600 * 1000
/** Dead letter reasons listed (the most recently seen); GET /dead-letters has them all. */
const REASONS_SHOWN = 50
const MAX_FLASH = 300

/** No script may run on the page, nothing may frame it, and its forms post only to this Worker. */
const PAGE_HEADERS = {
  'content-security-policy': "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
  'cache-control': 'no-store',
  // Not no-referrer: with it a browser sends `Origin: null` on the page's own form posts.
  'referrer-policy': 'same-origin',
  'x-content-type-options': 'nosniff',
}

export const admin = new Hono<App>()

const login = basicAuth({
  realm: 'Segment to Autopilot and Ortto: operator page',
  // Any user name: the password is what is checked, in constant time.
  verifyUser: (_user, password, c) => adminTokenMatches(password, (c as Context<App>).var.config),
  invalidUserMessage: { message: 'unauthorized: sign in with any user name and ADMIN_TOKEN as the password' },
})
/** Default: a form is accepted only from this Worker's own origin (Origin or Sec-Fetch-Site). */
const sameOrigin = csrf()

/**
 * Runs one of Hono's checks apart from the rest of the chain. Its refusal is an
 * HTTPException carrying the response to send, which app.onError would turn into JSON
 * without its headers (WWW-Authenticate among them): it is returned as it is instead.
 */
async function refusal(c: Context<App>, check: MiddlewareHandler): Promise<Response | undefined> {
  try {
    await check(c, async () => {})
    return undefined
  } catch (error) {
    if (error instanceof HTTPException) return error.getResponse()
    throw error
  }
}

const operatorOnly: MiddlewareHandler<App> = async (c, next) => {
  const { config, log } = c.var
  if (!config.adminToken) {
    const message = `Set ADMIN_TOKEN (${secretPut(config.deployEnv, 'ADMIN_TOKEN')}) to use the operator page: then sign in with any user name and the token as the password`
    return c.req.header('accept')?.includes('text/html') ? c.html(notice('Closed', message), 403, PAGE_HEADERS) : c.json({ message }, 403)
  }
  const refused = await refusal(c, login)
  if (refused) return refused
  log.fields.auth = 'admin'
  await next()
}

// '/admin/*' is also '/admin' (and '/admin/'): one guard per request.
admin.use('/admin/*', operatorOnly)

admin.get('/admin', async (c) => {
  const { config, log, sql } = c.var
  const now = Date.now()
  const storeAdmin = sql && new StoreAdmin(sql)
  const wantCheck = c.req.query('check') !== undefined
  // At most four D1 queries: the counts, the dead letters by reason, what was created (when the destination creates), and the check's.
  const { creates } = config.destination
  const [overview, reasons, created, history, alertState, check] = await Promise.all([
    storeAdmin?.overview(now, now - (PARK_DAYS - 1) * DAY_MS),
    storeAdmin?.deadLetterReasons(REASONS_SHOWN),
    creates ? storeAdmin?.creations().recent() : undefined,
    sql && readHistory(sql, 7 * 24, now),
    sql && config.alerts.webhookUrl ? readAlertState(sql) : undefined,
    wantCheck ? checkSetup(config, { onCall: log.onCall }, storeAdmin) : undefined,
  ])
  const view: PageView = {
    now,
    version,
    destination: config.destination.id,
    label: config.destination.label,
    mode: c.env.EVENTS ? 'queued' : 'direct',
    auth: authMode(config),
    journeys: journeysOf(config.destination.settings),
    present: [
      ...Object.entries(config.destination.settings).filter((entry): entry is [string, boolean] => typeof entry[1] === 'boolean'),
      ['SEGMENT_WEBHOOK_TOKEN', Boolean(config.webhookToken)],
      ['SEGMENT_SHARED_SECRET', Boolean(config.sharedSecret)],
      ['DB', Boolean(c.env.DB)],
      ['EVENTS (queue)', Boolean(c.env.EVENTS)],
      ['ANALYTICS', Boolean(c.env.ANALYTICS)],
    ],
    problems: config.problems,
    notices: config.destination.notices?.() ?? [],
    parkDays: PARK_DAYS,
    redriveAtOnce: REDRIVE_AT_ONCE,
    envFlag: config.deployEnv ? ` --env ${config.deployEnv}` : '',
    check,
    overview,
    ...(sql?.dbBytes !== undefined && { size: databaseSize(sql.dbBytes, config.plan) }),
    ledgerDays: config.ledgerMs / DAY_MS,
    reasons: reasons ?? [],
    ...(creates && created && { created: { max: creates.max, rows: created } }),
    ...(history && { history }),
    alerts: { on: Boolean(config.alerts.webhookUrl), ...(alertState?.last && { last: alertState.last }), ...(alertState?.failed && { failed: alertState.failed }) },
    flash: flashOf(c),
  }
  return c.html(renderPage(view), 200, PAGE_HEADERS)
})

admin.post('/admin/redrive', async (c) => {
  if (await refusal(c, sameOrigin)) {
    return c.html(
      notice('Refused', 'This form did not come from the operator page itself (its Origin is not this Worker’s), so nothing was re-driven. Open /admin and use its button.'),
      403,
      PAGE_HEADERS,
    )
  }
  const form = await c.req.parseBody()
  const reason = typeof form.reason === 'string' ? form.reason : ''
  if (!reason) return c.html(notice('Nothing to re-drive', 'The form names no reason. Open /admin and use a button there.'), 400, PAGE_HEADERS)
  if (!c.var.sql) throw new HTTPException(503, { message: 'DB (the D1 database) is not bound: see wrangler.toml' })
  // Exactly this reason's letters, oldest first (POST /dead-letters/redrive matches part of a reason).
  const letters = await new StoreAdmin(c.var.sql).deadLettersWithReason(reason, REDRIVE_AT_ONCE)
  const result = letters.length ? await redrive(c, letters) : { message: 'no dead letters with this reason are left', redriven: 0 }
  const flash = new URLSearchParams({ redriven: String(result.redriven), of: String(letters.length), reason: reason.slice(0, MAX_FLASH), note: result.message.slice(0, MAX_FLASH) })
  return c.redirect(`/admin?${flash}`, 303)
})

// A test event: built here, marked as a test in its messageId, through the same pipeline to the destination.
admin.post('/admin/test', async (c) => {
  if (await refusal(c, sameOrigin)) {
    return c.html(notice('Refused', 'This form did not come from the operator page itself, so no test event was sent. Open /admin and use its form.'), 403, PAGE_HEADERS)
  }
  if (!c.var.sql) throw new HTTPException(503, { message: 'DB (the D1 database) is not bound: see wrangler.toml' })
  const form = await c.req.parseBody()
  const sent = await sendTestEvent(c, typeof form.email === 'string' ? form.email : '', typeof form.event === 'string' ? form.event : '')
  const flash = new URLSearchParams({ tested: sent.text.slice(0, MAX_FLASH * 2), ok: sent.ok ? '1' : '0' })
  return c.redirect(`/admin?${flash}`, 303)
})

// The delivery history's counters, for scripts (ADMIN_TOKEN as the Basic password, as the page).
admin.get('/admin/history.json', async (c) => {
  if (!c.var.sql) throw new HTTPException(503, { message: 'DB (the D1 database) is not bound: see wrangler.toml' })
  const hours = Math.min(14 * 24, Math.max(1, Number(c.req.query('hours')) || 7 * 24))
  const rows = await readHistory(c.var.sql, hours, Date.now())
  return c.json({ hours, rows: rows.map((row) => ({ hour: new Date(row.hour * 3_600_000).toISOString(), kind: row.kind, key: row.key, n: row.n })) })
})

admin.all('/admin', (c) => methodNotAllowed(c, 'GET'))
admin.all('/admin/test', (c) => methodNotAllowed(c, 'POST'))
admin.all('/admin/redrive', (c) => methodNotAllowed(c, 'POST'))

/** After a redrive's or a test event's redirect: what happened (from the query string, so shown as text only). */
function flashOf(c: Context<App>): PageView['flash'] {
  const tested = c.req.query('tested')
  if (tested !== undefined) return { ok: c.req.query('ok') === '1', text: `Test event: ${tested.slice(0, MAX_FLASH * 2)}` }
  const redriven = c.req.query('redriven')
  if (redriven === undefined) return undefined
  const count = Number(redriven)
  const of = Number(c.req.query('of'))
  const reason = (c.req.query('reason') ?? '').slice(0, MAX_FLASH)
  const note = (c.req.query('note') ?? '').slice(0, MAX_FLASH)
  if (!Number.isSafeInteger(count) || count < 0) return undefined
  const ok = Number.isSafeInteger(of) ? count >= of : count > 0
  return { ok, text: `Redrive of “${reason}”: ${note || `${count} re-driven`}.` }
}

/** A page with one message: refusals and mistakes. */
function notice(title: string, message: string) {
  return html`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>${title}: Segment → Autopilot operator page</title></head>
<body style="font:15px/1.45 system-ui,sans-serif;max-width:40rem;margin:2rem auto;padding:0 1rem"><h1>${title}</h1><p>${message}</p><p><a href="/admin">Back to the operator page</a></p></body></html>`
}

/** How many Segment events are mapped to a journey, and the setting that maps them. */
function journeysOf(settings: Record<string, boolean | number>): { setting: string; count: number } {
  const [setting, count] = Object.entries(settings).find((entry): entry is [string, number] => typeof entry[1] === 'number') ?? ['', 0]
  return { setting, count }
}
