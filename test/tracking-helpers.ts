// The Tracking API's requests as the server libraries make them, for test/tracking-api.test.ts
// (its clock-skew tests too).
import { Analytics } from '@segment/analytics-node'
import { setup, TOKEN } from './helpers'
import type { Env } from '../src/config'

export const id = () => `m-${crypto.randomUUID()}`
export const basic = (writeKey: string) => `Basic ${btoa(`${writeKey}:`)}`

type World = ReturnType<typeof setup>
export interface SendOptions {
  authorization?: string | null
  encoding?: 'gzip' | 'deflate' | string
  raw?: BodyInit
}

/** Posts a Tracking API body to `path` with the write key (or the given Authorization). */
export function sender(world: World) {
  return async (path: string, body: unknown, { authorization = basic(TOKEN), encoding, raw }: SendOptions = {}) => {
    const headers: Record<string, string> = { 'content-type': 'application/json' }
    if (authorization) headers.authorization = authorization
    let payload: BodyInit = raw ?? JSON.stringify(body)
    if (encoding && !raw) {
      headers['content-encoding'] = encoding
      if (encoding === 'gzip' || encoding === 'deflate') payload = await new Response(new Response(payload).body!.pipeThrough(new CompressionStream(encoding))).arrayBuffer()
    } else if (encoding) headers['content-encoding'] = encoding
    return world.request(new Request(`https://worker.test${path}`, { method: 'POST', headers, body: payload }))
  }
}

/** Segment's library posting to the Worker (in this isolate); the statuses it was answered. */
export function library(request: (input: Request) => Promise<Response>, writeKey: string) {
  const statuses: number[] = []
  const errors: unknown[] = []
  const analytics = new Analytics({
    writeKey,
    host: 'https://worker.test',
    maxRetries: 0,
    httpClient: {
      async makeRequest({ url, method, headers, body }) {
        const response = await request(new Request(url, { method, headers, body }))
        statuses.push(response.status)
        return response
      },
    },
  })
  analytics.on('error', (error) => errors.push(error))
  return { analytics, statuses, errors }
}

/** setup() with SEGMENT_WEBHOOK_TOKEN set, and a sender for the Tracking API's paths. */
export function autopilotWorld(env: Partial<Env> = {}) {
  const world = setup({ SEGMENT_WEBHOOK_TOKEN: TOKEN, ...env })
  return { ...world, send: sender(world) }
}
