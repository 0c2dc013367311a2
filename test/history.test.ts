import { createExecutionContext, createScheduledController, waitOnExecutionContext } from 'cloudflare:test'
import { beforeEach, describe, expect, it, vi } from 'vitest'
import worker from '../src'
import { HOUR_MS, history } from '../src/store/history'
import { topReasons } from '../src/http/history-charts'
import { db, fakeQueue, freshDb, identify, json, rows, setup, sign, testDb } from './helpers'

// Delivery history (counters per hour, both modes), the operator page's charts and test
// event, /admin/history.json, and the sweep's alerts with their rate limit.
const ADMIN = 'history-token-7d1c'
const ORIGIN = 'https://worker.test'
const HOOK = 'https://hooks.example/alerts'
const basic = { authorization: `Basic ${btoa(`ops:${ADMIN}`)}` }
const counters = () => rows<{ kind: string; key: string; n: number }>('SELECT kind, key, sum(n) AS n FROM history GROUP BY kind, key ORDER BY kind, key')

beforeEach(freshDb)

/** A worker whose fetch goes to the Autopilot stand-in, except the alert webhook's, which `hook` answers. */
function withHook(env: Record<string, unknown> = {}, hook: (request: Request) => Promise<Response> = async () => new Response('ok')) {
  const base = setup({ ADMIN_TOKEN: ADMIN, ALERT_WEBHOOK_URL: HOOK, ...env })
  const posts: { text: string }[] = []
  base.fetchSpy.mockImplementation(async (input: RequestInfo | URL, init?: RequestInit) => {
    const request = new Request(input, init)
    if (request.url === HOOK) {
      posts.push((await request.clone().json()) as { text: string })
      return hook(request)
    }
    return base.autopilot.fetch(request)
  })
  const sweep = () => worker.scheduled(createScheduledController(), base.env)
  /** The posts about dead letters (the others, such as the stand-in's setup check, apart). */
  const about = (words: string) => posts.filter((p) => p.text.includes(words))
  return { ...base, posts, sweep, about }
}

describe('delivery history', () => {
  it('counts events by type and outcome, calls by class and duration, in direct mode', async () => {
    const { post, autopilot } = setup()
    autopilot.inject({ status: 503 })
    await post([identify({ email: 'h1@example.com' }), identify({ email: 'h2@localhost' })]) // 503: both retried
    await post([identify({ email: 'h1@example.com' }), identify({ email: 'h2@localhost' })])
    const got = await counters()
    expect(got).toContainEqual({ kind: 'event', key: 'identify:retried', n: 2 })
    expect(got).toContainEqual({ kind: 'event', key: 'identify:delivered', n: 1 })
    expect(got).toContainEqual({ kind: 'event', key: 'identify:rejected', n: 1 })
    expect(got).toContainEqual({ kind: 'call', key: 'unavailable', n: 1 })
    expect(got.filter((c) => c.kind === 'call' && c.key === 'ok')[0].n).toBeGreaterThanOrEqual(1)
    expect(got.filter((c) => c.kind === 'ms').reduce((n, c) => n + c.n, 0)).toBe(got.filter((c) => c.kind === 'call').reduce((n, c) => n + c.n, 0))
    // A reason is kept without the email in it.
    expect(
      got
        .filter((c) => c.kind === 'reason')
        .map((c) => c.key)
        .join(),
    ).not.toContain('@')
  })

  it('counts a queue batch the same way, dead letters included', async () => {
    const events = fakeQueue()
    const { consume } = setup({ EVENTS: events.queue })
    await consume([
      {
        v: 2,
        items: [
          { event: identify({ email: 'q1@example.com' }), at: 1 },
          { event: identify({ email: 'q2@localhost' }), at: 1 },
        ],
      },
    ])
    const got = await counters()
    expect(got).toContainEqual({ kind: 'event', key: 'identify:delivered', n: 1 })
    expect(got).toContainEqual({ kind: 'event', key: 'identify:rejected', n: 1 })
    expect(got).toContainEqual({ kind: 'event', key: 'any:dead-lettered', n: 1 })
  })

  it('an isolate sends its counts beside a write at most once per HISTORY_FLUSH_SECONDS, and the rest when due with no further traffic', async () => {
    const { env } = setup({ HISTORY_FLUSH_SECONDS: '2' })
    const delivered = async () => (await counters()).find((c) => c.key === 'identify:delivered')?.n ?? 0
    const contexts: ExecutionContext[] = []
    const post = async (email: string) => {
      const body = JSON.stringify(identify({ email }))
      const ctx = createExecutionContext()
      contexts.push(ctx)
      const headers = { 'content-type': 'application/json', 'x-signature': await sign(body) }
      expect((await worker.fetch(new Request('https://worker.test/', { method: 'POST', headers, body }), env, ctx)).status).toBe(200)
    }
    await post('m1@example.com') // the isolate's first counts: sent beside this write
    expect(await delivered()).toBe(1)
    await post('m2@example.com')
    expect(await delivered()).toBe(1) // held in the isolate: no statement of its own
    for (let i = 3; i <= 9; i++) await post(`m${i}@example.com`)
    await Promise.all(contexts.map((ctx) => waitOnExecutionContext(ctx))) // then silence: the timer one of them left
    expect(await delivered()).toBe(9)
  })

  it("one timer per flush period, none while nothing is held, and none past waitUntil's 30 s", async () => {
    const timers: Promise<unknown>[] = []
    const sent: number[] = []
    const send = async (due: { n: number }[]) => (sent.push(due.reduce((n, c) => n + c.n, 0)), true)
    const now = Date.now()
    history.flushWhenDue(1000, (p) => timers.push(p), send, now)
    expect(timers).toHaveLength(0) // nothing held
    const first = history.add([{ kind: 'event', key: 'identify:delivered', n: 1 }], 1000, now)! // first: due at once
    history.settled(first, true)
    for (let i = 0; i < 5; i++) {
      expect(history.add([{ kind: 'event', key: 'identify:delivered', n: 1 }], 1000, now)).toBeUndefined()
      history.flushWhenDue(1000, (p) => timers.push(p), send, now)
    }
    expect(timers).toHaveLength(1)
    await Promise.all(timers)
    expect(sent).toEqual([5]) // one statement for the five
    history.add([{ kind: 'event', key: 'identify:delivered', n: 1 }], 60_000)
    history.flushWhenDue(60_000, (p) => timers.push(p), send)
    expect(timers).toHaveLength(1) // a minute ahead: the next write takes them
  })

  it('a counter write that fails changes no answer, and costs no extra round trip', async () => {
    const store = testDb()
    const { post, logLines } = setup({ DB: store.db })
    store.fail('INSERT INTO history', 5)
    const response = await post(identify({ email: 'f@example.com' }))
    expect(response.status).toBe(200)
    expect(await counters()).toEqual([])
    expect(logLines().at(-1)!.problems).toMatchObject({ history: expect.stringContaining('not counted') })
  })

  it('counts the answers a failed final write turned into retries as retries, not as delivered', async () => {
    const store = testDb()
    const { post } = setup({ DB: store.db })
    store.fail('INSERT INTO identities', 5)
    const batch = [identify({ email: 'w1@example.com' }), identify({ email: 'w2@example.com' })]
    expect((await post(batch)).status).toBe(503) // delivered, but not recorded: retried
    // (Sent beside that write as delivered; the correction goes with the next flush.)
    store.up()
    expect((await post(batch)).status).toBe(200)
    expect((await counters()).filter((c) => c.kind === 'event')).toEqual([
      { kind: 'event', key: 'identify:delivered', n: 2 },
      { kind: 'event', key: 'identify:retried', n: 2 },
    ])
  })

  it("an isolate's tally: corrections and failed flushes go with the next flush, never stall it; a count back at 0 is no row", () => {
    const delivered = (n: number) => [{ kind: 'event' as const, key: 'identify:delivered', n }]
    const t = 10_000_000
    const first = history.add(delivered(2), 60_000, t)!
    expect(first).toEqual(delivered(2))
    history.merge(delivered(-2)) // the write beside that flush failed: a correction
    history.settled(first, false) // and the flush failed too: its counts come back
    // The clock went back (as a test's may): the correction alone never flushes, nor stops later ones.
    history.merge(delivered(0))
    expect(history.add([], 60_000, t + 61_000)).toBeUndefined() // 2 − 2 + 0: nothing to send
    expect(history.add(delivered(1), 60_000, t - 5_000)).toEqual(delivered(1))
    // A reason whose rows net to nothing is no top reason.
    const hour = Math.floor(t / HOUR_MS)
    expect(
      topReasons([
        { hour, kind: 'reason', key: 'gone', n: 1 },
        { hour: hour + 1, kind: 'reason', key: 'gone', n: -1 },
      ]),
    ).toEqual([])
  })

  it('the sweep keeps 14 days', async () => {
    const { sweep } = withHook({ ALERT_WEBHOOK_URL: undefined })
    const hour = Math.floor(Date.now() / HOUR_MS)
    await db()
      .prepare("INSERT INTO history (hour, kind, key, n) VALUES (?1, 'event', 'identify:delivered', 1), (?2, 'event', 'identify:delivered', 2)")
      .bind(hour - 15 * 24, hour - 13 * 24)
      .run()
    await sweep()
    expect(await rows('SELECT hour FROM history')).toEqual([{ hour: hour - 13 * 24 }])
  })
})

describe('the operator page: history, test event, history.json', () => {
  it('draws the charts with their numbers in text, the top reasons, and says when history is empty', async () => {
    const empty = setup({ ADMIN_TOKEN: ADMIN })
    const before = await (await empty.request(new Request(`${ORIGIN}/admin`, { headers: basic }))).text()
    expect(before).toContain('id="history-empty"')
    const { post, request } = setup({ ADMIN_TOKEN: ADMIN })
    await post([identify({ email: 'p1@example.com' }), identify({ email: 'p2@localhost' })])
    const page = await (await request(new Request(`${ORIGIN}/admin`, { headers: basic }))).text()
    expect(page).toMatch(/<svg[^>]*aria-label="Events per hour, last 24 hours"/)
    // (At least this one: counts an earlier test's failed flush kept for the next one may join it.)
    expect(page).toMatch(/<title>[^<]*UTC: \d+ delivered<\/title>/)
    expect(page).toMatch(/<title>[^<]*UTC: 1 rejected<\/title>/)
    expect(page).toContain('id="latency-chart"')
    expect(page).toContain('id="history-table"')
    expect(page).toMatch(/id="top-reasons"[\s\S]*Invalid contact_id_or_email/)
    expect(page).not.toContain('p2@localhost')
    expect(page).not.toContain('<script')
    expect(page).toContain('Alerts are off')
  })

  it('sends a test event through the pipeline, shows the answer in words, and counts it as a test', async () => {
    const { request, autopilot } = setup({ ADMIN_TOKEN: ADMIN })
    const form = new URLSearchParams({ email: 'Tester@Example.com', event: 'Step Activated' })
    const sent = await request(
      new Request(`${ORIGIN}/admin/test`, { method: 'POST', body: form, redirect: 'manual', headers: { ...basic, origin: ORIGIN, 'content-type': 'application/x-www-form-urlencoded' } }),
    )
    expect(sent.status).toBe(303)
    const flash = new URL(sent.headers.get('location')!, ORIGIN).searchParams.get('tested')!
    expect(flash).toContain('identify delivered')
    expect(flash).toContain('track “Step Activated” delivered')
    expect(flash).not.toContain('tester@example.com')
    expect(autopilot.contacts.has('tester@example.com')).toBe(true)
    expect(autopilot.enrolments).toHaveLength(1)
    expect(await counters()).toContainEqual({ kind: 'test', key: 'identify:delivered', n: 1 })
    expect((await counters()).filter((c) => c.kind === 'event')).toEqual([])
    // Never from elsewhere, never on a GET.
    const forged = await request(
      new Request(`${ORIGIN}/admin/test`, { method: 'POST', body: form, headers: { ...basic, origin: 'https://evil.example', 'content-type': 'application/x-www-form-urlencoded' } }),
    )
    expect(forged.status).toBe(403)
    expect((await request(new Request(`${ORIGIN}/admin/test?email=a@example.com`, { headers: basic }))).status).toBe(405)
  })

  it('gives the counters as JSON to the admin token', async () => {
    const { post, request } = setup({ ADMIN_TOKEN: ADMIN })
    await post(identify({ email: 'j@example.com' }))
    const answer = await json(await request(new Request(`${ORIGIN}/admin/history.json`, { headers: basic })))
    expect(answer.rows).toContainEqual({ hour: expect.stringMatching(/T\d\d:00:00/), kind: 'event', key: 'identify:delivered', n: 1 })
    expect((await request(new Request(`${ORIGIN}/admin/history.json`))).status).toBe(401)
  })

  it('shows no count below 0 (a correction whose hour ended before it was sent)', async () => {
    const { request } = setup({ ADMIN_TOKEN: ADMIN })
    await db()
      .prepare("INSERT INTO history (hour, kind, key, n) VALUES (?1, 'event', 'identify:delivered', -2)")
      .bind(Math.floor(Date.now() / HOUR_MS))
      .run()
    const answer = await json(await request(new Request(`${ORIGIN}/admin/history.json`, { headers: basic })))
    expect(answer.rows).toEqual([expect.objectContaining({ key: 'identify:delivered', n: 0 })])
  })
})

describe('alerts', () => {
  it('an alert webhook that is no URL turns alerts off, never delivery, and is never shown', async () => {
    const secret = 'hooks.example/services/T000/B000/not-a-url-secret'
    const { post, request, autopilot } = setup({ ADMIN_TOKEN: ADMIN, ALERT_WEBHOOK_URL: secret })
    expect((await post(identify({ email: 'ok@example.com' }))).status).toBe(200)
    expect(autopilot.contacts.has('ok@example.com')).toBe(true)
    const health = await (await request(new Request(`${ORIGIN}/health`))).text()
    const check = await (await request(new Request(`${ORIGIN}/health?check=autopilot`, { headers: { authorization: `Bearer ${ADMIN}` } }))).text()
    const page = await (await request(new Request(`${ORIGIN}/admin`, { headers: basic }))).text()
    for (const text of [health, check, page]) expect(text).not.toContain('not-a-url-secret')
    expect(check).toContain('ALERT_WEBHOOK_URL is not an http(s) URL')
  })

  it('posts new dead letters once per ALERT_EVERY_MINUTES, as {"text"}, with no email; the page shows the last one', async () => {
    const { consume, sweep, posts, about, request } = withHook({ EVENTS: fakeQueue().queue })
    await consume([{ v: 2, items: [{ event: identify({ email: 'dead@localhost' }), at: 1 }] }])
    await sweep()
    expect(about('dead letters')).toHaveLength(1)
    expect(about('dead letters')[0].text).toContain('1 new dead letters')
    expect(posts.map((p) => p.text).join()).not.toContain('dead@localhost')
    const sent = posts.length
    await consume([{ v: 2, items: [{ event: identify({ email: 'dead2@localhost' }), at: 1 }] }])
    await sweep() // within the hour: nothing again, of any kind
    expect(posts).toHaveLength(sent)
    const page = await (await request(new Request(`${ORIGIN}/admin`, { headers: basic }))).text()
    expect(page).toMatch(/id="alerts-line"[^>]*>Alerts on \(ALERT_WEBHOOK_URL\)\. Last sent/)
  })

  it('announces letters made after others were deleted or re-driven: their ids are never used again', async () => {
    const events = fakeQueue()
    const { consume, sweep, about, request } = withHook({ EVENTS: events.queue })
    const dead = (n: number) => consume([{ v: 2, items: Array.from({ length: n }, (_, i) => ({ event: identify({ email: `dead${i}@localhost` }), at: 1 })) }])
    const later = async (minutes: number) => {
      vi.useFakeTimers({ toFake: ['Date'], shouldAdvanceTime: true })
      vi.setSystemTime(Date.now() + minutes * 60_000)
      await sweep()
      vi.useRealTimers()
    }
    await dead(3)
    await later(0)
    expect(about('dead letters').map((p) => p.text.match(/\d+ new/)![0])).toEqual(['3 new'])
    await db().prepare('DELETE FROM dead_letters').run() // the operator deletes them
    await dead(2) // without AUTOINCREMENT: ids 1 and 2 again, below the alert's mark of 3
    await later(61)
    expect(about('dead letters').map((p) => p.text.match(/\d+ new/)![0])).toEqual(['3 new', '2 new'])
    // Re-driven (queued mode: back on the queue, the letters removed), they fail again: new letters, announced again.
    const redriven = await request(new Request(`${ORIGIN}/dead-letters/redrive`, { method: 'POST', headers: { authorization: `Bearer ${ADMIN}` } }))
    expect(await redriven.json()).toMatchObject({ redriven: 2 })
    await consume(events.sent.map((m) => m.body))
    await later(122)
    expect(about('dead letters').map((p) => p.text.match(/\d+ new/)![0])).toEqual(['3 new', '2 new', '2 new'])
  })

  it('posts when the database holds 80 % of the plan’s cap (the size D1 states in its answers)', async () => {
    // D1 in front of the local one, saying in every answer that the database holds 450 MB.
    const inner = db()
    const grown = <T extends { meta?: object }>(result: T) => ({ ...result, meta: { ...result.meta, size_after: 450_000_000 } })
    const statement = (s: D1PreparedStatement): D1PreparedStatement =>
      ({
        inner: s,
        bind: (...v: unknown[]) => statement(s.bind(...v)),
        all: async () => grown(await s.all()),
        run: async () => grown(await s.run()),
        first: (c?: string) => s.first(c as string),
        raw: () => s.raw(),
      }) as unknown as D1PreparedStatement
    const big = {
      prepare: (sql: string) => statement(inner.prepare(sql)),
      batch: async (list: { inner: D1PreparedStatement }[]) => (await inner.batch(list.map((s) => s.inner))).map(grown),
      exec: (q: string) => inner.exec(q),
    }
    const { sweep, posts } = withHook({ DB: big as unknown as D1Database, WORKERS_PLAN: 'free' })
    await sweep()
    expect(posts.map((p) => p.text).join('\n')).toContain("The D1 database holds 450 MB of the Free plan's 500 MB (90 %)")
  })

  it('posts when the last hour failed above ALERT_FAILURE_RATE, when the setup check fails, and when parked events near expiry', async () => {
    const { sweep, posts } = withHook({ AUTOPILOT_API_KEY: 'wrong-key', AUTOPILOT_FIELDS_REFRESH_SECONDS: '0' })
    const hour = Math.floor(Date.now() / HOUR_MS)
    await db().prepare("INSERT INTO history (hour, kind, key, n) VALUES (?1, 'call', 'ok', 6), (?1, 'call', 'unavailable', 6)").bind(hour).run()
    await db()
      .prepare("INSERT INTO parked (user_hash, message_id, type, parked_at, event) VALUES ('h', 'old', 'track', ?1, '{}')")
      .bind(Date.now() - 6.5 * 24 * HOUR_MS)
      .run()
    await sweep()
    const texts = posts.map((p) => p.text).join('\n')
    expect(texts).toContain('50 % of the last hour')
    expect(texts).toContain('setup check fails')
    expect(texts).toContain('1 parked events expire within a day')
    expect(texts).not.toContain('wrong-key')
  })

  it('a webhook that answers 500 or hangs never breaks the sweep; the alert goes the next time', async () => {
    let answer: 'fail' | 'hang' | 'ok' = 'fail'
    const { consume, sweep, about, posts, request } = withHook({ EVENTS: fakeQueue().queue }, async (req) => {
      if (answer === 'fail') return new Response('no', { status: 500 })
      if (answer === 'hang') return new Promise((_, reject) => req.signal.addEventListener('abort', () => reject(req.signal.reason)))
      return new Response('ok')
    })
    await consume([{ v: 2, items: [{ event: identify({ email: 'x@localhost' }), at: 1 }] }])
    await sweep()
    expect(await rows("SELECT key FROM account_cache WHERE key = 'sweep:last'")).toHaveLength(1)
    expect(posts.map((p) => p.text.includes('setup check'))).toEqual([false, true]) // a refusal ends only its own post: the dead letters and the setup check were each tried
    const page = await (await request(new Request(`${ORIGIN}/admin`, { headers: basic }))).text()
    expect(page).toContain('The last post failed')
    answer = 'hang'
    const before = posts.length
    await sweep()
    expect(posts.length - before).toBe(1) // no answer at all: the first post's hang ends this sweep's posts
    answer = 'ok'
    await sweep()
    // Tried at each sweep (500, then a hang cut at 5 s), sent at the third.
    expect(about('dead letters')).toHaveLength(3)
    expect(about('dead letters')[2].text).toContain('1 new dead letters')
    // Posted again: the page no longer says the last post failed.
    expect(await (await request(new Request(`${ORIGIN}/admin`, { headers: basic }))).text()).not.toContain('The last post failed')
  }, 20_000)
})
