// Who gets in: Segment's X-Signature (HMAC-SHA1 of the body with the shared secret)
// or a bearer token; on the Tracking API's paths, the same token as the write key.
// Locked unless one is configured or ALLOW_UNSIGNED="true".
import type { Config } from '../config'

export type AuthResult =
  | 'signature' // a valid X-Signature over the whole body (or over the only event of an array)
  | 'token' // a valid Authorization: Bearer token
  | 'open' // ALLOW_UNSIGNED="true": no check at all (local use)
  | 'unauthorized'
  | 'not-configured' // neither credential is set: fail closed
  | 'first-event-only' // a batch signed over its first event only: it vouches for that event alone

interface Keys {
  hmac?: Promise<CryptoKey>
  token?: Promise<ArrayBuffer>
  admin?: Promise<ArrayBuffer>
}
const encoder = new TextEncoder()
const keysByConfig = new WeakMap<Config, Keys>()

/** Imported once per isolate (per parsed config), never per event. */
function keysOf(config: Config): Keys {
  let keys = keysByConfig.get(config)
  if (!keys) {
    keys = {
      hmac: config.sharedSecret ? crypto.subtle.importKey('raw', encoder.encode(config.sharedSecret), { name: 'HMAC', hash: 'SHA-1' }, false, ['verify']) : undefined,
      token: config.webhookToken ? sha256(config.webhookToken) : undefined,
      admin: config.adminToken ? sha256(config.adminToken) : undefined,
    }
    keysByConfig.set(config, keys)
  }
  return keys
}

/**
 * When SEGMENT_WEBHOOK_TOKEN is set it is required on every request. Otherwise the
 * signature must cover what is delivered: the whole body, or an array's only event
 * (Segment signs an array over `JSON.stringify(events[0])`). A longer array signed over
 * its first event could carry anything after it, so it is not enough.
 * @param firstEvent the array's first event as Segment serialises it, and how many events
 *   the array holds; called only when the raw body's signature does not match.
 */
export async function authenticate(headers: Headers, rawBody: string, firstEvent: () => { text: string; count: number } | undefined, config: Config): Promise<AuthResult> {
  if (config.allowUnsigned) return 'open'
  const keys = keysOf(config)
  if (!keys.hmac && !keys.token) return 'not-configured'
  if (keys.token) return (await bearerMatches(headers, keys.token)) ? 'token' : 'unauthorized'

  const signature = hexBytes(headers.get('x-signature'))
  if (keys.hmac && signature) {
    const key = await keys.hmac
    const verify = (text: string) => crypto.subtle.verify('HMAC', key, signature, encoder.encode(text))
    if (await verify(rawBody)) return 'signature'
    const first = rawBody.trimStart().startsWith('[') ? firstEvent() : undefined
    if (first && (await verify(first.text))) return first.count === 1 ? 'signature' : 'first-event-only'
  }
  return 'unauthorized'
}

/**
 * The Tracking API's write key (the user name of `Authorization: Basic`, as Segment's and
 * RudderStack's libraries send it) against SEGMENT_WEBHOOK_TOKEN, in constant time.
 */
export async function writeKeyMatches(writeKey: string, config: Config): Promise<boolean> {
  return tokenMatches(writeKey, keysOf(config).token)
}

/** ADMIN_TOKEN (for hono/bearer-auth and the operator page's login), in constant time. */
export async function adminTokenMatches(token: string, config: Config): Promise<boolean> {
  return tokenMatches(token, keysOf(config).admin)
}

async function bearerMatches(headers: Headers, expected: Promise<ArrayBuffer> | undefined): Promise<boolean> {
  return tokenMatches(/^Bearer\s+(\S+)\s*$/i.exec(headers.get('authorization') ?? '')?.[1], expected)
}

async function tokenMatches(token: string | undefined, expected: Promise<ArrayBuffer> | undefined): Promise<boolean> {
  return Boolean(expected && token && crypto.subtle.timingSafeEqual(await sha256(token), await expected))
}

/** SHA-1 HMAC as 40 hex digits, or nothing. */
function hexBytes(header: string | null): Uint8Array | undefined {
  const hex = header?.trim()
  if (!hex || !/^[0-9a-f]{40}$/i.test(hex)) return undefined
  return Uint8Array.from(hex.match(/../g)!, (pair) => parseInt(pair, 16))
}

// Comparing digests keeps the comparison constant-time whatever the token's length.
const sha256 = (text: string) => crypto.subtle.digest('SHA-256', encoder.encode(text))
