// @ts-check
// Property-based robustness checks, shared by the workerd suite (test/properties.test.ts,
// a few hundred runs) and `npm run fuzz` (scripts/fuzz.js, the built Worker in
// Miniflare, tens of thousands of runs). Plain JS so Node can load it unbuilt.
import fc from 'fast-check'
import { contactProblem, isWellFormedCustomKey } from '../sandbox/autopilot.js'

export const FUZZ_SECRET = 'fuzz-shared-secret-3c1d'
export const FUZZ_API_KEY = 'fuzz-api-key-8e2a'
export const FUZZ_MAX_BODY_BYTES = 64 * 1024
/** Settings the Worker under test runs with. */
export const FUZZ_ENV = {
  AUTOPILOT_API_KEY: FUZZ_API_KEY,
  SEGMENT_SHARED_SECRET: FUZZ_SECRET,
  AUTOPILOT_TRIGGERS: JSON.stringify({ 'Step Activated': '0001', a: '0002' }),
  MAX_BODY_BYTES: String(FUZZ_MAX_BODY_BYTES),
  // The stand-in has no rate limit here: measure the Worker, not Autopilot's 5 r/s.
  AUTOPILOT_MAX_RPS: '100000',
}

const RESERVED = new Set([
  'email',
  'name',
  'firstName',
  'first_name',
  'lastName',
  'last_name',
  'phone',
  'mobile',
  'mobilePhone',
  'mobile_phone',
  'title',
  'website',
  'industry',
  'company',
  'address',
  'leadSource',
  'lead_source',
  'LeadSource',
  'status',
  'salutation',
  'twitter',
  'linkedin',
  'fax',
  'unsubscribed',
  'newEmail',
  'new_email',
  '_NewEmail',
])

/** Text with the awkward parts mixed in: NUL and other controls, lone surrogates, emoji, RTL marks. */
export const awkwardText = fc.string({
  unit: fc.oneof(
    { weight: 6, arbitrary: fc.string({ unit: 'grapheme', minLength: 1, maxLength: 1 }) },
    { weight: 1, arbitrary: fc.constantFrom('\u0000', '\u0007', '\t', '\n', ' ', '\ud800', '\udfff', '\u200f', '\ufeff', '😀', '--') },
  ),
  maxLength: 24,
})

/** Any trait name at all, including the dangerous ones. */
export const traitName = fc.oneof({ weight: 8, arbitrary: awkwardText }, { weight: 1, arbitrary: fc.constantFrom('__proto__', 'constructor', 'prototype', 'toString', 'hasOwnProperty', '', '   ') })

const leaf = fc.oneof(
  awkwardText,
  fc.integer(),
  fc.double({ noNaN: true, noDefaultInfinity: true }),
  fc.boolean(),
  fc.constant(null),
  fc.constantFrom('2026-11-28', '2026-11-28T10:00:00Z', 'not a date'),
)
/** Trait values within the Worker's limits: any JSON shape a few levels deep. */
const traitValue = fc.letrec((tie) => ({
  value: fc.oneof({ depthSize: 'small', withCrossShrink: true }, leaf, tie('array'), tie('object')),
  array: fc.array(tie('value'), { maxLength: 4 }),
  object: fc.dictionary(traitName, tie('value'), { maxKeys: 4 }),
})).value

const email = fc.emailAddress({ size: 'small' })

/** A valid identify: a valid email, some reserved traits, and arbitrary others. */
export const validIdentify = fc
  .record({
    email,
    reserved: fc.record(
      {
        firstName: awkwardText,
        last_name: awkwardText,
        name: awkwardText,
        phone: fc.oneof(awkwardText, fc.integer()),
        company: fc.oneof(awkwardText, fc.record({ name: awkwardText, employee_count: fc.nat(), plan: awkwardText }, { requiredKeys: [] })),
        address: fc.record({ city: awkwardText, postal_code: awkwardText, zip: fc.nat() }, { requiredKeys: [] }),
        unsubscribed: fc.boolean(),
        LeadSource: awkwardText,
      },
      { requiredKeys: [] },
    ),
    others: fc.dictionary(
      traitName.filter((name) => !RESERVED.has(name)),
      traitValue,
      { maxKeys: 8 },
    ),
  })
  .map(({ email, reserved, others }) => ({
    type: 'identify',
    messageId: 'fuzz-identify',
    userId: 'fuzz-user',
    traits: { ...others, ...reserved, email },
  }))

/** Something shaped like a Segment event, with wrong types anywhere. */
const eventLike = fc.record(
  {
    type: fc.oneof(fc.constantFrom('identify', 'track', 'page', 'screen', 'group', 'alias', 'delete'), fc.jsonValue({ maxDepth: 1 })),
    event: fc.oneof(fc.constantFrom('Step Activated', 'a', 'Other'), fc.jsonValue({ maxDepth: 1 })),
    messageId: fc.oneof(awkwardText, fc.jsonValue({ maxDepth: 1 })),
    userId: fc.oneof(awkwardText, fc.jsonValue({ maxDepth: 1 })),
    traits: fc.oneof(fc.dictionary(traitName, traitValue, { maxKeys: 6 }), fc.record({ email }), fc.jsonValue({ maxDepth: 2 })),
    properties: fc.oneof(fc.record({ email }), fc.dictionary(traitName, traitValue, { maxKeys: 4 }), fc.jsonValue({ maxDepth: 2 })),
    context: fc.oneof(fc.record({ traits: fc.oneof(fc.record({ email }), fc.jsonValue({ maxDepth: 2 })) }), fc.jsonValue({ maxDepth: 2 })),
  },
  { requiredKeys: [] },
)

/** Any body: any JSON value, events, batches of them, non-JSON text, and deep nesting. */
export const anyBody = fc.oneof(
  { weight: 3, arbitrary: fc.jsonValue().map((value) => JSON.stringify(value)) },
  { weight: 4, arbitrary: eventLike.map((event) => JSON.stringify(event)) },
  { weight: 3, arbitrary: fc.array(eventLike, { maxLength: 6 }).map((events) => JSON.stringify(events)) },
  { weight: 1, arbitrary: fc.array(eventLike, { maxLength: 3 }).map((batch) => JSON.stringify({ batch })) },
  { weight: 1, arbitrary: fc.string({ maxLength: 64 }) },
  { weight: 1, arbitrary: fc.nat({ max: 3000 }).map((depth) => '['.repeat(depth) + ']'.repeat(depth)) },
  { weight: 1, arbitrary: fc.nat({ max: 3 }).map((n) => JSON.stringify({ type: 'identify', traits: { email: 'a@b.co', big: 'x'.repeat(FUZZ_MAX_BODY_BYTES * n) } })) },
)

const encoder = new TextEncoder()
/** @param {string} text @param {string} [secret] */
export async function sign(text, secret = FUZZ_SECRET) {
  const key = await crypto.subtle.importKey('raw', encoder.encode(secret), { name: 'HMAC', hash: 'SHA-1' }, false, ['sign'])
  const mac = await crypto.subtle.sign('HMAC', key, encoder.encode(text))
  return [...new Uint8Array(mac)].map((b) => b.toString(16).padStart(2, '0')).join('')
}

/**
 * @typedef {(body: string, headers: Record<string, string>) => Promise<Response>} Send
 * @typedef {{ calls: { path: string, status: number, body: any }[], reset: () => void }} Account
 */

/** Any JSON value (or worse) as a body: one of 200/202/400/401/413, JSON with a message, no secrets. */
export function anyBodyProperty(/** @type {Send} */ send) {
  return fc.asyncProperty(anyBody, fc.constantFrom('signed', 'signed', 'signed', 'unsigned', 'wrong'), async (body, signing) => {
    /** @type {Record<string, string>} */
    const headers = { 'content-type': 'application/json' }
    if (signing === 'signed') headers['x-signature'] = await sign(body)
    if (signing === 'wrong') headers['x-signature'] = await sign(body, 'not-the-secret')
    const response = await send(body, headers)
    const text = await response.text()
    if (![200, 202, 400, 401, 413].includes(response.status)) throw new Error(`status ${response.status}: ${text.slice(0, 300)}`)
    if (!/application\/json/.test(response.headers.get('content-type') ?? '')) throw new Error('answer is not JSON')
    const answer = JSON.parse(text)
    if (typeof answer?.message !== 'string') throw new Error(`no message: ${text.slice(0, 300)}`)
    // Too-large bodies are refused before anything else is looked at, credentials included.
    if (signing !== 'signed' && ![401, 413].includes(response.status)) throw new Error(`${signing} request let in: ${response.status}`)
    if (text.includes(FUZZ_API_KEY) || text.includes(FUZZ_SECRET)) throw new Error('a secret leaked into the answer')
  })
}

/** Any valid identify is delivered, and what Autopilot received passes its strict contact check. */
export function validIdentifyProperty(/** @type {Send} */ send, /** @type {Account} */ autopilot) {
  return fc.asyncProperty(validIdentify, async (event) => {
    autopilot.reset()
    const body = JSON.stringify(event)
    const response = await send(body, { 'content-type': 'application/json', 'x-signature': await sign(body) })
    const text = await response.text()
    if (response.status !== 200) throw new Error(`status ${response.status}: ${text.slice(0, 300)}`)
    const [call] = autopilot.calls
    if (!call || call.path !== '/contact' || call.status !== 200) throw new Error(`Autopilot got ${JSON.stringify(call)?.slice(0, 300)}`)
    const problem = contactProblem(call.body.contact)
    if (problem) throw new Error(problem)
  })
}

/** Any trait name yields a well-formed custom key, or none at all. */
export function customKeyProperty(/** @type {Send} */ send, /** @type {Account} */ autopilot) {
  return fc.asyncProperty(traitName, fc.oneof(awkwardText, fc.double({ noNaN: true, noDefaultInfinity: true }), fc.boolean()), async (name, value) => {
    autopilot.reset()
    const body = JSON.stringify({ type: 'identify', userId: 'u', traits: { email: 'keys@example.com', [name]: value } })
    const response = await send(body, { 'content-type': 'application/json', 'x-signature': await sign(body) })
    if (RESERVED.has(name)) return
    if (response.status !== 200) throw new Error(`status ${response.status}: ${(await response.text()).slice(0, 300)}`)
    const custom = autopilot.calls[0]?.body?.contact?.custom ?? {}
    for (const key of Object.keys(custom)) if (!isWellFormedCustomKey(key)) throw new Error(`malformed key ${JSON.stringify(key)}`)
  })
}
