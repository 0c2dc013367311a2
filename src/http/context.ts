// What every route shares: the app's types, the per-request middleware, the admin guard.
import type { Context, MiddlewareHandler } from 'hono'
import { bearerAuth } from 'hono/bearer-auth'
import { bodyLimit } from 'hono/body-limit'
import { adminTokenMatches } from '../segment/auth'
import { getConfig, secretPut, type Config, type Env } from '../config'
import { RequestLog } from '../log'
import { Sql } from '../store/sql'

export type App = { Bindings: Env; Variables: { config: Config; log: RequestLog; sql?: Sql } }

/** Settings (parsed once per isolate), the database handle, and one log line per request. */
export const perRequest: MiddlewareHandler<App> = async (c, next) => {
  const config = getConfig(c.env)
  const log = new RequestLog(c.req.header('cf-ray') ?? crypto.randomUUID(), c.env.ANALYTICS, config.destination.id)
  const sql = c.env.DB && new Sql(c.env.DB, config.storeTimeoutMs)
  c.set('config', config)
  c.set('log', log)
  c.set('sql', sql)
  await next()
  if (sql?.stats.queries) log.fields.d1 = sql.stats
  log.emit({ kind: 'request', method: c.req.method, path: c.req.path, status: c.res.status })
}

const UNAUTHORIZED = { message: { message: 'unauthorized' } }
/** hono/bearer-auth against ADMIN_TOKEN, compared in constant time (auth.ts); JSON answers like every other. */
const bearer = bearerAuth<App>({
  verifyToken: (token, c) => adminTokenMatches(token, c.var.config),
  noAuthenticationHeader: UNAUTHORIZED,
  invalidAuthenticationHeader: UNAUTHORIZED,
  invalidToken: UNAUTHORIZED,
})

/** The admin endpoints: `Authorization: Bearer <ADMIN_TOKEN>`; refused with a hint when no ADMIN_TOKEN is set. */
export const adminOnly: MiddlewareHandler<App> = async (c, next) => {
  if (!c.var.config.adminToken) return c.json({ message: `Set ADMIN_TOKEN (${secretPut(c.var.config.deployEnv, 'ADMIN_TOKEN')}) to use the admin endpoints` }, 403)
  return bearer(c, async () => {
    c.var.log.fields.auth = 'admin'
    await next()
  })
}

const limiters = new Map<number, MiddlewareHandler<App>>()
/** hono/body-limit, built once per configured size: refuses before reading the whole body. */
export const limitBody: MiddlewareHandler<App> = (c, next) => {
  const maxSize = c.var.config.maxBodyBytes
  let limiter = limiters.get(maxSize)
  if (!limiter) {
    limiter = bodyLimit({
      maxSize,
      onError: (c) => c.json({ message: `Body is larger than MAX_BODY_BYTES (${maxSize} bytes)` }, 413),
    })
    limiters.set(maxSize, limiter)
  }
  return limiter(c, next)
}

export function methodNotAllowed(c: Context<App>, allow: string) {
  c.header('Allow', allow)
  return c.json({ message: `Method ${c.req.method} not allowed on ${c.req.path}; use ${allow}` }, 405)
}

export function authMode(config: Config): string {
  if (config.allowUnsigned) return 'off (ALLOW_UNSIGNED=true)'
  if (config.webhookToken) return 'token'
  if (config.sharedSecret) return 'signature'
  return 'locked (no SEGMENT_SHARED_SECRET or SEGMENT_WEBHOOK_TOKEN)'
}
