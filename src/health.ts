// GET /health: what is configured (never a value) and whether it can work.
import { Hono } from 'hono'
import { version } from '../package.json'
import { authMode, methodNotAllowed, type App } from './http'

export const health = new Hono<App>()

health.get('/health', (c) => {
  const { config } = c.var
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
