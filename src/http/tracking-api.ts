// POST /v1/batch, /v1/identify, /v1/track...: Segment's HTTP Tracking API, which Segment's
// and RudderStack's server libraries speak (their `host` / `dataPlaneUrl` set to the Worker).
// The write key is SEGMENT_WEBHOOK_TOKEN; the events then take POST /'s path, with its answers
// and status codes, which those libraries retry as Segment does (5xx and 429; other 4xx dropped).
import type { Context, MiddlewareHandler } from 'hono'
import { basicAuth } from 'hono/basic-auth'
import { Hono } from 'hono/tiny'
import { secretPut } from '../config'
import { writeKeyMatches } from '../segment/auth'
import { TRACKING_TYPES, trackingEvents, type TrackingType } from '../segment/tracking-api'
import { limitBody, methodNotAllowed, type App } from './context'
import { deliverShape } from './events'

export const trackingApi = new Hono<App>()

/** hono/basic-auth: the user name is the write key (libraries send `writeKey:`), the password unused. */
const basic = basicAuth({
  verifyUser: (writeKey, _password, c: Context<App>) => writeKeyMatches(writeKey, c.var.config),
  realm: 'write key',
  invalidUserMessage: { message: 'unauthorized' },
})

/** Before the body is read: a wrong or missing write key is 401 and nothing is sent. */
const writeKeyOnly: MiddlewareHandler<App> = async (c, next) => {
  const { config, log } = c.var
  if (config.allowUnsigned) {
    log.fields.auth = 'open'
    return next()
  }
  if (!config.webhookToken) {
    log.fields.auth = 'not-configured'
    // 503, not 401: a library keeps the events and retries once the key is set.
    return c.json({ message: `The Tracking API paths take SEGMENT_WEBHOOK_TOKEN as the write key: set it (${secretPut(config.deployEnv, 'SEGMENT_WEBHOOK_TOKEN')})` }, 503)
  }
  log.fields.auth = 'unauthorized'
  return basic(c, async () => {
    log.fields.auth = 'write-key'
    await next()
  })
}

const route = (type: TrackingType | undefined) => async (c: Context<App>) => {
  const started = Date.now()
  const text = await bodyText(c)
  if (typeof text !== 'string') return text
  let body: unknown
  try {
    body = JSON.parse(text)
  } catch {
    return c.json({ message: 'Body is not valid JSON' }, 400)
  }
  const shape = trackingEvents(body, type, started)
  if (!shape) return c.json({ message: type ? `Body must be one ${type} event (a JSON object)` : 'Body must be {"batch": [...]}' }, 400)
  return deliverShape(c, shape, started)
}

trackingApi.post('/v1/batch', writeKeyOnly, limitBody, route(undefined))
trackingApi.all('/v1/batch', (c) => methodNotAllowed(c, 'POST'))
for (const type of TRACKING_TYPES) {
  trackingApi.post(`/v1/${type}`, writeKeyOnly, limitBody, route(type))
  trackingApi.all(`/v1/${type}`, (c) => methodNotAllowed(c, 'POST'))
}

/**
 * The body as text. RudderStack's library gzips it (`Content-Encoding: gzip`); inflated, it
 * is held to MAX_BODY_BYTES too, so a small compressed body cannot become a huge one.
 */
async function bodyText(c: Context<App>): Promise<string | Response> {
  const encoding = (c.req.header('content-encoding') ?? 'identity').trim().toLowerCase()
  if (encoding === 'identity') return c.req.text()
  if (encoding !== 'gzip' && encoding !== 'deflate') return c.json({ message: `Content-Encoding ${encoding.slice(0, 40)} is not supported: send gzip, deflate or none` }, 415)
  const max = c.var.config.maxBodyBytes
  const chunks: Uint8Array[] = []
  let size = 0
  try {
    const reader = (c.req.raw.body ?? new Response('').body!).pipeThrough(new DecompressionStream(encoding)).getReader()
    for (let read = await reader.read(); !read.done; read = await reader.read()) {
      size += read.value.byteLength
      if (size > max) {
        await reader.cancel()
        return c.json({ message: `Body is larger than MAX_BODY_BYTES (${max} bytes) once inflated` }, 413)
      }
      chunks.push(read.value)
    }
  } catch {
    return c.json({ message: `Body is not valid ${encoding}` }, 400)
  }
  const bytes = new Uint8Array(size)
  let offset = 0
  for (const chunk of chunks) {
    bytes.set(chunk, offset)
    offset += chunk.byteLength
  }
  return new TextDecoder().decode(bytes)
}
