// GET /health: what is configured (never a value) and whether it can work.
// GET /health?check=<destination> (ADMIN_TOKEN): the setup check against the destination and D1.
import { Hono } from 'hono/tiny'
import { version } from '../../package.json'
import { adminOnly, authMode, methodNotAllowed, type App } from './context'
import { checkSetup } from '../setup'
import { StoreAdmin } from '../store/store-admin'

export const health = new Hono<App>()

health.get('/health', async (c, next) => (c.req.query('check') ? adminOnly(c, next) : next()))

health.get('/health', async (c) => {
  const { config, log, sql } = c.var
  const check = c.req.query('check')
  if (check !== undefined) {
    const { destination } = config
    if (check !== destination.id) return c.json({ message: `The only check is ?check=${destination.id}` }, 400)
    const report = await checkSetup(config, { onCall: log.onCall }, sql && new StoreAdmin(sql))
    const failed = report.checks.filter((item) => !item.ok && !item.note).length
    return c.json({ message: failed ? `${failed} ${failed === 1 ? 'problem' : 'problems'}: see checks` : `ready: ${destination.label}, its journeys and the database check out`, ...report })
  }
  return c.json({
    status: config.problems.length ? 'misconfigured' : 'ok',
    version,
    mode: c.env.EVENTS ? 'queued' : 'direct',
    auth: authMode(config),
    destination: config.destination.id,
    settings: {
      ...config.destination.settings,
      SEGMENT_SHARED_SECRET: Boolean(config.sharedSecret),
      SEGMENT_WEBHOOK_TOKEN: Boolean(config.webhookToken),
      ALLOW_UNSIGNED: config.allowUnsigned,
      ADMIN_TOKEN: Boolean(config.adminToken),
    },
    bindings: { DB: Boolean(c.env.DB), EVENTS: Boolean(c.env.EVENTS), ANALYTICS: Boolean(c.env.ANALYTICS) },
    ...(config.problems.length && { problems: config.problems }),
  })
})

health.all('/health', (c) => methodNotAllowed(c, 'GET'))
