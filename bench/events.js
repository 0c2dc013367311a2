// @ts-check
// What `npm run bench` sends: batches as Segment sends them in direct mode — a JSON array
// with a Content-Length, the bearer token and an X-Signature over the body. In every 5
// events, 4 identifies (a userId, an email, reserved and custom traits, context) and a
// userId-only track of the person just identified: "Product Viewed", or — once per 100
// events — "Order Completed", which enters a journey (a claim in the ledger, a trigger
// call). New users are fresh userIds and emails each time; known users are the same
// people again (taught by the warm-up) with fresh messageIds.
import { createHmac } from 'node:crypto'

export const SECRET = 'bench-secret'
export const TOKEN = 'bench-token-3f9a1c7e5b2d4086'
export const API_KEY = 'bench-key'
export const TRIGGER_EVENT = 'Order Completed'

/**
 * The Workers' settings. `auth`: 'token' (SEGMENT_WEBHOOK_TOKEN: how Segment must send
 * batches, see docs/security.md) or 'signature' (SEGMENT_SHARED_SECRET, whole-body HMAC).
 * Both Workers get the same settings, so they make the same credential check.
 */
export const bindingsFor = (/** @type {'token' | 'signature'} */ auth) => ({
  AUTOPILOT_API_KEY: API_KEY,
  AUTOPILOT_BASE_URL: 'https://autopilot.bench/v1',
  ...(auth === 'token' ? { SEGMENT_WEBHOOK_TOKEN: TOKEN } : { SEGMENT_SHARED_SECRET: SECRET }),
  AUTOPILOT_TRIGGERS: JSON.stringify({ [TRIGGER_EVENT]: '0001' }),
  // The stand-in answers at once with no rate limit: measure the Worker, not Autopilot's 5 r/s.
  AUTOPILOT_MAX_RPS: '100000',
})

const context = { library: { name: 'analytics.js', version: 'next-1.70.0' }, ip: '203.0.113.7' }

/** Identify and track of user `userId`, as Segment sends them. */
const identify = (/** @type {string} */ messageId, /** @type {string} */ userId, /** @type {number} */ n, /** @type {string} */ timestamp) => ({
  type: 'identify',
  messageId,
  userId,
  anonymousId: `anon-${userId}`,
  traits: {
    email: `${userId}@example.com`,
    firstName: 'Ada',
    lastName: 'Lovelace',
    plan: 'pro',
    logins: n % 50,
    beta: true,
    createdAt: '2026-11-01T10:00:00Z',
    company: { name: 'AE', employee_count: 12 },
  },
  context,
  timestamp,
  version: 2,
})
const track = (/** @type {string} */ messageId, /** @type {string} */ userId, /** @type {string} */ event, /** @type {string} */ timestamp) => ({
  type: 'track',
  messageId,
  userId,
  anonymousId: `anon-${userId}`,
  event,
  properties: { product_id: 'sku-1234', price: 19.99, currency: 'EUR' },
  context,
  timestamp,
  version: 2,
})

/** How many people a batch of `size` events identifies (4 in 5 events are identifies). */
export const peopleIn = (/** @type {number} */ size) => size - Math.floor(size / 5)

/**
 * A batch of `size` events; `tag` makes its messageIds (and, for new users, its userIds) unique.
 * @param {{ size: number, users: 'new' | 'known', tag: string, time: number }} options
 */
export function batchOf({ size, users, tag, time }) {
  const timestamp = new Date(time).toISOString()
  const events = []
  let person = -1
  for (let j = 0; j < size; j++) {
    const messageId = `${tag}-${j}`
    if (j % 5 !== 4) {
      person++
      events.push(identify(messageId, users === 'new' ? `new-${tag}-${person}` : `known-${person}`, person, timestamp))
    } else {
      const userId = /** @type {{ userId: string }} */ (events[j - 1]).userId
      events.push(track(messageId, userId, j % 100 === 99 ? TRIGGER_EVENT : 'Product Viewed', timestamp))
    }
  }
  return signed(size === 1 ? events[0] : events)
}

/** The request: body, Content-Length (without one dispatchFetch streams it chunked), token, signature. */
export function signed(/** @type {unknown} */ payload) {
  const body = JSON.stringify(payload)
  /** @type {Record<string, string>} */
  const headers = {
    'content-type': 'application/json',
    'content-length': String(Buffer.byteLength(body)),
    authorization: `Bearer ${TOKEN}`,
    'x-signature': createHmac('sha1', SECRET).update(body).digest('hex'),
  }
  return { body, headers }
}
