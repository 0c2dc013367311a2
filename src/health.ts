// GET /health: what is configured (never a value) and whether it can work.
// GET /health?check=autopilot (ADMIN_TOKEN): the setup check against Autopilot and D1.
import { Hono } from 'hono/tiny'
import { version } from '../package.json'
import { AutopilotClient } from './autopilot'
import { checkSetup } from './doctor'
import { adminOnly, authMode, methodNotAllowed, type App } from './http'
import { Upkeep } from './upkeep'

export const health = new Hono<App>()

health.get('/health', async (c, next) => (c.req.query('check') ? adminOnly(c, next) : next()))

health.get('/health', async (c) => {
  const { config, log, sql } = c.var
  const check = c.req.query('check')
  if (check !== undefined) {
    if (check !== 'autopilot') return c.json({ message: 'The only check is ?check=autopilot' }, 400)
    const client = config.apiKey ? AutopilotClient.for(config, { onCall: log.onCall }) : undefined
    const report = await checkSetup(config, client, sql && new Upkeep(sql))
    const failed = report.checks.filter((item) => !item.ok).length
    return c.json({ message: failed ? `${failed} problems: see checks` : 'ready: Autopilot, the triggers and the database check out', ...report })
  }
  return c.json({
    status: config.problems.length ? 'misconfigured' : 'ok',
    version,
    mode: c.env.EVENTS ? 'queued' : 'direct',
    auth: authMode(config),
    settings: {
      AUTOPILOT_API_KEY: Boolean(config.apiKey),
      SEGMENT_SHARED_SECRET: Boolean(config.sharedSecret),
      SEGMENT_WEBHOOK_TOKEN: Boolean(config.webhookToken),
      ALLOW_UNSIGNED: config.allowUnsigned,
      AUTOPILOT_TRIGGERS: config.triggers.size,
      ADMIN_TOKEN: Boolean(config.adminToken),
    },
    bindings: { DB: Boolean(c.env.DB), EVENTS: Boolean(c.env.EVENTS), ANALYTICS: Boolean(c.env.ANALYTICS) },
    ...(config.problems.length && { problems: config.problems }),
  })
})

health.all('/health', (c) => methodNotAllowed(c, 'GET'))
