import { createScheduledController } from 'cloudflare:test'
import { beforeEach, describe, expect, it } from 'vitest'
import type { Env } from '../src/config'
import main from '../src'
import type { AutopilotOptions } from '../sandbox/autopilot.js'
import { API_KEY, db, fakeQueue, freshDb, identify, rows, SECRET, setup, testDb, track } from './helpers'
import { putLedger } from './ledger-helpers'

// GET /admin, the operator's page: what it shows (counts from seeded state), that nothing
// on it can inject markup, who gets in, that forms from elsewhere are refused, that a
// redrive takes exactly one reason's letters, and how few D1 queries it costs.
const ADMIN = 'admin-page-token-3c8e'
const DAY = 24 * 3600 * 1000
const ORIGIN = 'https://worker.test'
const basic = (password: string, user = 'ops') => ({ authorization: `Basic ${btoa(`${user}:${password}`)}` })
const REJECTED = 'Autopilot rejected it (400): Invalid contact_id_or_email value provided.'
const EXHAUSTED = 'retries exhausted (moved by Cloudflare Queues)'
const HOSTILE = `"><script>alert('reason')</script><img src=x onerror=alert(1)>`

type Worker = ReturnType<typeof setup>
const admin = (env: Partial<Env> = {}, autopilot: AutopilotOptions = {}) => setup({ ADMIN_TOKEN: ADMIN, ...env }, autopilot)

async function page(worker: Worker, query = '', headers: Record<string, string> = basic(ADMIN)) {
  const response = await worker.request(new Request(`${ORIGIN}/admin${query}`, { headers }))
  return { response, text: await response.text() }
}

/** The text of the element with this id (the page marks each number it shows). */
const shown = (text: string, id: string) => new RegExp(`id="${id}"[^>]*>([^<]*)<`).exec(text)?.[1]

const redrive = (worker: Worker, reason: string, headers: Record<string, string> = { origin: ORIGIN }) =>
  worker.request(
    new Request(`${ORIGIN}/admin/redrive`, {
      method: 'POST',
      redirect: 'manual',
      headers: { 'content-type': 'application/x-www-form-urlencoded', ...basic(ADMIN), ...headers },
      body: new URLSearchParams({ reason }),
    }),
  )

async function seedDeadLetters(letters: { reason: string; event: Record<string, unknown>; firstSeen?: number }[]) {
  await db()
    .prepare(
      `INSERT INTO dead_letters (reason, attempts, first_seen, last_seen, message_id, type, event)
       SELECT value->>'r', 20, value->>'f', value->>'f', value->>'m', value->>'t', value->>'e' FROM json_each(?1)`,
    )
    .bind(JSON.stringify(letters.map((l, i) => ({ r: l.reason, f: l.firstSeen ?? Date.now() - (i + 1) * 3600_000, m: l.event.messageId, t: l.event.type, e: JSON.stringify(l.event) }))))
    .run()
}

async function seedParked(list: { userHash: string; messageId: string; parkedAt: number }[]) {
  await db()
    .prepare(`INSERT INTO parked (user_hash, message_id, type, parked_at, event) SELECT value->>'u', value->>'m', 'track', value->>'p', '{}' FROM json_each(?1)`)
    .bind(JSON.stringify(list.map((p) => ({ u: p.userHash, m: p.messageId, p: p.parkedAt }))))
    .run()
}

/** Three parked events of two users (one parked 6.5 days ago), dead letters with three reasons, claims. */
async function seedState() {
  const now = Date.now()
  await seedParked([
    { userHash: 'a'.repeat(64), messageId: 'p-1', parkedAt: now - 6.5 * DAY },
    { userHash: 'a'.repeat(64), messageId: 'p-2', parkedAt: now - DAY },
    { userHash: 'b'.repeat(64), messageId: 'p-3', parkedAt: now - 3600_000 },
  ])
  await seedDeadLetters([
    { reason: REJECTED, event: identify({ email: 'dead1@example', n: 1 }, { userId: 'user-dead-1', messageId: 'dl-r1' }) },
    { reason: REJECTED, event: identify({ email: 'dead2@example', n: 2 }, { userId: 'user-dead-2', messageId: 'dl-r2' }) },
    { reason: REJECTED, event: identify({ email: 'dead3@example', n: 3 }, { userId: 'user-dead-3', messageId: 'dl-r3' }) },
    // Contains the first reason: a redrive of that reason must not take these.
    { reason: `${REJECTED} (again)`, event: identify({ email: 'dead4@example.com' }, { userId: 'user-dead-4', messageId: 'dl-a1' }) },
    { reason: EXHAUSTED, event: track('Step Activated', 'dead5@example.com', { userId: 'user-dead-5', messageId: 'dl-e1' }) },
    { reason: EXHAUSTED, event: track('Step Activated', 'dead6@example.com', { userId: 'user-dead-6', messageId: 'dl-e2' }) },
  ])
  await putLedger([
    { messageId: 'c-1', state: 'claimed', at: now - 60_000, leaseUntil: now + 600_000, note: 'req-1' },
    { messageId: 'c-2', state: 'claimed', at: now - 60_000, leaseUntil: now + 600_000, note: 'req-2' },
    { messageId: 'c-3', state: 'claimed', at: now - 60_000, leaseUntil: now - 30_000, note: 'req-3' },
    { messageId: 'd-1', state: 'done', at: now - 60_000 },
  ])
}

const deadLetterIds = async () => (await rows<{ message_id: string }>('SELECT message_id FROM dead_letters ORDER BY id')).map((r) => r.message_id)

beforeEach(freshDb)

describe('GET /admin: the page', () => {
  it('shows the settings in force, parked events, dead letters by reason, claims, in sections, with the right counts', async () => {
    const worker = admin()
    await seedState()
    const { response, text } = await page(worker)
    expect(response.status).toBe(200)
    expect(response.headers.get('content-type')).toMatch(/^text\/html/)
    for (const section of ['settings', 'setup-check', 'parked', 'dead-letters', 'claims', 'sweep']) expect(text).toContain(`<section id="${section}">`)
    expect([shown(text, 'destination'), shown(text, 'mode'), shown(text, 'auth'), shown(text, 'triggers')]).toEqual(['autopilot', 'direct', 'signature', '2'])
    expect([shown(text, 'parked-count'), shown(text, 'parked-users'), shown(text, 'parked-expiring')]).toEqual(['3', '2', '1'])
    // The oldest (6.5 days) expires half a day from now.
    expect(text).toMatch(/id="parked-expires"><time datetime="[^"]+">[^<]+<\/time> \(in 12 h\)/)
    expect([shown(text, 'dead-count'), shown(text, 'dead-reasons')]).toEqual(['6', '3'])
    expect(text.match(/<tr class="dead-reason">/g)).toHaveLength(3)
    expect(text).toContain(`<td class="reason">${EXHAUSTED}</td><td class="n">2</td>`)
    expect(text.match(/<form method="post" action="\/admin\/redrive">/g)).toHaveLength(3)
    expect([shown(text, 'claims-pending'), shown(text, 'claims-stale')]).toEqual(['2', '1'])
    expect(text).toContain('id="sweep-none"')
  })

  it('shows queued mode', async () => {
    const { text } = await page(admin({ EVENTS: fakeQueue().queue }))
    expect(shown(text, 'mode')).toBe('queued')
  })

  it('carries no secret, email or userId, and allows no script', async () => {
    const worker = admin({ SEGMENT_WEBHOOK_TOKEN: 'webhook-token-on-page-check' })
    await seedState()
    const { response, text } = await page(worker, '?check=1')
    for (const secret of [API_KEY, SECRET, ADMIN, 'webhook-token-on-page-check']) expect(text).not.toContain(secret)
    expect(text).not.toMatch(/@example|user-dead-/)
    expect(response.headers.get('content-security-policy')).toMatch(/default-src 'none'.*form-action 'self'.*frame-ancestors 'none'/)
    // no-referrer would make the browser post the page's own forms with `Origin: null`.
    expect(response.headers.get('referrer-policy')).toBe('same-origin')
  })

  it('escapes a hostile dead letter reason, in the text and in the redrive form', async () => {
    const worker = admin()
    await seedDeadLetters([{ reason: HOSTILE, event: identify({ email: 'h@example.com' }) }])
    const { text } = await page(worker)
    expect(text).not.toMatch(/<script|<img/i)
    expect(text).toContain('&quot;&gt;&lt;script&gt;alert(&#39;reason&#39;)&lt;/script&gt;&lt;img src=x onerror=alert(1)&gt;')
    expect(text).toContain('<input type="hidden" name="reason" value="&quot;&gt;&lt;script&gt;')
    // And in a flash someone put in a link.
    const flash = await page(worker, `?redriven=1&of=1&reason=${encodeURIComponent(HOSTILE)}&note=${encodeURIComponent('<b>x</b>')}`)
    expect(flash.text).not.toMatch(/<script|<img|<b>/i)
    expect(shown(flash.text, 'flash')).toContain('&lt;b&gt;x&lt;/b&gt;')
  })

  it('costs three D1 queries (four with the setup check), and calls Autopilot only when asked', async () => {
    const worker = admin()
    await seedState()
    await page(worker)
    expect(worker.autopilot.calls).toEqual([])
    await page(worker, '?check=1')
    expect(worker.autopilot.calls.map((call) => call.path)).toEqual(['/account', '/triggers', '/contacts/custom_fields'])
    const lines = worker.logLines().filter((line) => line.path === '/admin')
    expect(lines.map((line) => [line.status, line.d1.queries, line.autopilot.length])).toEqual([
      [200, 3, 0],
      [200, 4, 3],
    ])
  })

  it('shows the setup check, each failed check with its fix', async () => {
    const worker = admin({ AUTOPILOT_TRIGGERS: JSON.stringify({ 'Step Activated': '0001', 'Order Completed': '9999' }) }, { triggers: ['0001', '0002'] })
    const { text } = await page(worker, '?check=1')
    expect(shown(text, 'check-status')).toBe('1 problem to fix')
    const failed = text.match(/<tr class="failed">.*?<\/tr>/gs) ?? []
    expect(failed).toHaveLength(1)
    expect(failed[0]).toContain('&quot;Order Completed&quot; is mapped to trigger 9999, which your Autopilot account does not have')
    expect(failed[0]).toContain('AUTOPILOT_TRIGGERS, then deploy again')
    expect(text).toContain('<tr class="passed"><td class="ok">✓</td><td>api key</td>')
  })

  it('shows the last sweep, which each sweep records in one write', async () => {
    const store = testDb()
    const worker = admin({ DB: store.db })
    const now = Date.now()
    await seedParked([1, 2, 3].map((i) => ({ userHash: `${i}`.repeat(64), messageId: `old-${i}`, parkedAt: now - 8 * DAY })))
    await putLedger([{ messageId: 'old-done', state: 'done', at: now - 8 * DAY }], worker.env.DB!)
    await main.scheduled(createScheduledController(), worker.env)
    // One write at the end: the summary and where the ledger's prune stopped (read once at the start).
    expect(store.statements.filter((sql) => sql.includes('INTO account_cache'))).toHaveLength(2)
    expect(store.statements.filter((sql) => sql.includes('FROM account_cache'))).toHaveLength(1)
    const { text } = await page(worker)
    expect([shown(text, 'sweep-expired'), shown(text, 'sweep-replayed'), shown(text, 'sweep-pruned')]).toEqual(['3', '0', '1'])
    expect(text).toMatch(/id="sweep-at"><time datetime="[^"]+">[^<]+<\/time> \(\d+ s ago\)/)
    expect(text).not.toContain('id="sweep-none"')
  })
})

describe('GET /admin: who gets in', () => {
  it('asks the browser to log in (401 with WWW-Authenticate) without credentials', async () => {
    const { response, text } = await page(admin(), '', {})
    expect(response.status).toBe(401)
    expect(response.headers.get('www-authenticate')).toMatch(/^Basic realm="/)
    expect(text).not.toContain('<section')
  })

  it.each([
    ['a wrong password', basic('not-the-token')],
    ['the token as the user name', basic('', ADMIN)],
    ['the token as a bearer token', { authorization: `Bearer ${ADMIN}` }],
  ])('refuses %s with 401', async (_, headers) => {
    const { response, text } = await page(admin(), '', headers)
    expect(response.status).toBe(401)
    expect(text).not.toContain('<section')
  })

  it('lets in any user name with ADMIN_TOKEN as the password', async () => {
    expect((await page(admin(), '', basic(ADMIN, 'someone'))).response.status).toBe(200)
  })

  it('is closed (403) until ADMIN_TOKEN is set, saying how to set it, as a page or JSON', async () => {
    const worker = setup()
    const { response, text } = await page(worker, '', { ...basic(''), accept: 'text/html' })
    expect(response.status).toBe(403)
    expect(text).toContain('Set ADMIN_TOKEN (npx wrangler secret put ADMIN_TOKEN)')
    const asJson = await page(worker, '', {})
    expect(asJson.response.status).toBe(403)
    expect(JSON.parse(asJson.text).message).toContain('Set ADMIN_TOKEN')
    const post = await worker.request(new Request(`${ORIGIN}/admin/redrive`, { method: 'POST', headers: { origin: ORIGIN }, body: new URLSearchParams({ reason: 'x' }) }))
    expect(post.status).toBe(403)
  })
})

describe('POST /admin/redrive', () => {
  it.each([
    ['a foreign Origin', { origin: 'https://attacker.example' }],
    ['Sec-Fetch-Site: cross-site and no Origin', { 'sec-fetch-site': 'cross-site' }],
    ['neither Origin nor Sec-Fetch-Site', {}],
  ])('refuses a form with %s (403) and re-drives nothing', async (_, headers) => {
    const events = fakeQueue()
    const worker = admin({ EVENTS: events.queue })
    await seedState()
    const before = await deadLetterIds()
    const response = await redrive(worker, EXHAUSTED, headers)
    expect(response.status).toBe(403)
    expect(await response.text()).toContain('nothing was re-driven')
    expect(events.sent).toEqual([])
    expect(await deadLetterIds()).toEqual(before)
  })

  it('refuses a form post without credentials (401), re-driving nothing', async () => {
    const events = fakeQueue()
    const worker = admin({ EVENTS: events.queue })
    await seedState()
    const response = await worker.request(
      new Request(`${ORIGIN}/admin/redrive`, { method: 'POST', headers: { origin: ORIGIN, 'content-type': 'application/x-www-form-urlencoded' }, body: new URLSearchParams({ reason: EXHAUSTED }) }),
    )
    expect(response.status).toBe(401)
    expect(events.sent).toEqual([])
  })

  it('queued mode: re-drives exactly that reason’s letters to the queue, then says so on the page', async () => {
    const events = fakeQueue()
    const worker = admin({ EVENTS: events.queue })
    await seedState()
    const response = await redrive(worker, REJECTED)
    expect(response.status).toBe(303)
    const location = response.headers.get('location')!
    expect(location).toMatch(/^\/admin\?redriven=3&of=3&reason=/)
    const sent = events.sent.flatMap((m) => (m.body as { items: { event: { messageId: string } }[] }).items.map((item) => item.event.messageId))
    expect(sent).toEqual(['dl-r1', 'dl-r2', 'dl-r3'])
    expect(await deadLetterIds()).toEqual(['dl-a1', 'dl-e1', 'dl-e2'])
    const after = await page(worker, location.slice('/admin'.length))
    expect(shown(after.text, 'flash')).toBe(`Redrive of “${REJECTED}”: re-drove 3 dead letters to autopilot-events.`)
    expect([shown(after.text, 'dead-count'), shown(after.text, 'dead-reasons')]).toEqual(['3', '2'])
  })

  it('direct mode: delivers that reason’s letters now, and removes them', async () => {
    const worker = admin()
    await seedState()
    worker.autopilot.contacts.set('dead5@example.com', { Email: 'dead5@example.com', custom: {} })
    worker.autopilot.contacts.set('dead6@example.com', { Email: 'dead6@example.com', custom: {} })
    const response = await redrive(worker, EXHAUSTED, { 'sec-fetch-site': 'same-origin' })
    expect(response.status).toBe(303)
    expect(new URL(response.headers.get('location')!, ORIGIN).searchParams.get('note')).toBe('delivered 2 of 2 dead letters')
    expect(worker.autopilot.enrolments.map((e) => e.email)).toEqual(['dead5@example.com', 'dead6@example.com'])
    expect(await deadLetterIds()).toEqual(['dl-r1', 'dl-r2', 'dl-r3', 'dl-a1'])
  })

  it('says when no letter has that reason any more', async () => {
    const response = await redrive(admin(), 'gone already')
    expect(response.status).toBe(303)
    expect(response.headers.get('location')).toMatch(/^\/admin\?redriven=0&of=0&/)
  })
})
