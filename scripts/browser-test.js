// @ts-check
// `npm run test:browser`: the operator page (GET /admin) in a real browser. The bundle
// `wrangler deploy` would upload runs in Miniflare (scripts/worker.js) with seeded state
// and the Autopilot stand-in; Debian's headless Chromium (`apt-get install -y chromium`;
// CHROMIUM=/path to use another) is driven by playwright-core through: the login, the page,
// the setup check, the delivery history's charts, a test event, the alert line, a redrive and
// its result, and forms from elsewhere that must be refused.
// Saves docs/admin.png (the README shows it). Exits non-zero on any failure.
import { createServer } from 'node:http'
import { chromium } from 'playwright-core'
import { createAutopilot } from '../sandbox/autopilot.js'
import { buildWorker, startWorker } from './worker.js'

const ADMIN_TOKEN = 'browser-test-admin-token'
const API_KEY = 'browser-test-key'
const REJECTED = 'Autopilot rejected it (400): Invalid contact_id_or_email value provided.'
const EXHAUSTED = 'retries exhausted (moved by Cloudflare Queues)'
const DAY = 24 * 3600 * 1000
const SCREENSHOT = 'docs/admin.png'

let failures = 0
/** @param {string} name @param {() => Promise<unknown>} step */
async function check(name, step) {
  try {
    await step()
    console.log(`ok   ${name}`)
  } catch (error) {
    failures++
    console.log(
      `FAIL ${name}\n     ${String(error instanceof Error ? error.message : error)
        .split('\n')
        .join('\n     ')}`,
    )
  }
}
/** @param {unknown} condition @param {string} message */
function assert(condition, message) {
  if (!condition) throw new Error(message)
}

const autopilot = createAutopilot({ apiKey: API_KEY, triggers: ['0001', '0002'], customFields: { Age: 'integer' } })
const worker = await startWorker({
  scriptPath: buildWorker({ outdir: 'dist-browser' }),
  bindings: {
    ADMIN_TOKEN,
    AUTOPILOT_API_KEY: API_KEY,
    AUTOPILOT_BASE_URL: 'https://autopilot.browser-test/v1',
    SEGMENT_SHARED_SECRET: 'browser-test-secret',
    // 9999 is not one of the account's triggers: the setup check has one problem to show.
    AUTOPILOT_TRIGGERS: JSON.stringify({ 'Step Activated': '0001', 'Order Completed': '9999' }),
    ALERT_WEBHOOK_URL: 'https://hooks.browser-test/alerts',
  },
  outbound: (request) => (new URL(request.url).host === 'hooks.browser-test' ? Promise.resolve(new Response('ok')) : autopilot.fetch(request)),
})
const base = String(await worker.ready).replace(/\/$/, '')
const db = await worker.getD1Database('DB')

// Seeded state: parked events of two users (and one a week old, for the sweep to expire),
// dead letters with two reasons, journey claims (one stale), then one real sweep.
const now = Date.now()
const identify = (/** @type {number} */ i) => ({ type: 'identify', messageId: `dl-${i}`, userId: `user-${i}`, traits: { email: `fixed${i}@example.com`, plan: 'pro' } })
/** @type {[string, number][]} */
const letters = [
  [REJECTED, 1],
  [REJECTED, 2],
  [EXHAUSTED, 3],
  [EXHAUSTED, 4],
  [EXHAUSTED, 5],
]
await db.batch([
  ...[
    ['1', 'p-1', now - 8 * DAY],
    ['1', 'p-2', now - 2 * DAY],
    ['1', 'p-3', now - 5 * 3600_000],
    ['2', 'p-4', now - 40 * 60_000],
  ].map(([user, messageId, at]) => db.prepare(`INSERT INTO parked (user_hash, message_id, type, parked_at, event) VALUES (?1, ?2, 'track', ?3, '{}')`).bind(String(user).repeat(64), messageId, at)),
  ...letters.map(([reason, i]) =>
    db
      .prepare('INSERT INTO dead_letters (reason, attempts, first_seen, last_seen, message_id, type, event) VALUES (?1, 20, ?2, ?3, ?4, ?5, ?6)')
      .bind(reason, now - (30 - i) * 3600_000, now - (10 - i) * 3600_000, `dl-${i}`, 'identify', JSON.stringify(identify(i))),
  ),
  db.prepare(`INSERT INTO ledger (key, state, at, lease_until, note) VALUES (randomblob(16), 0, ?1, ?2, 'r1'), (randomblob(16), 0, ?1, ?3, 'r2')`).bind(now - 90_000, now + 600_000, now - 60_000),
  // A day of history: deliveries every hour, a bad hour of retries, a few rejections.
  ...Array.from({ length: 30 }, (_, h) => {
    const hour = Math.floor(now / 3600_000) - h
    return db
      .prepare(
        `INSERT INTO history (hour, kind, key, n) VALUES (?1, 'event', 'identify:delivered', ?2), (?1, 'event', 'track:retried', ?3), (?1, 'event', 'identify:rejected', ?4), (?1, 'call', 'ok', ?5), (?1, 'ms', '250', ?5), (?1, 'ms', '500', 2), (?1, 'reason', ?6, ?4)`,
      )
      .bind(hour, 80 + ((h * 37) % 60), h === 5 ? 40 : 0, h % 7 === 0 ? 3 : 0, 10 + (h % 4), REJECTED)
  }),
])
await (await worker.getWorker()).scheduled({ cron: '*/30 * * * *' })
const deadLetterCount = async (/** @type {string} */ reason) => Number((await db.prepare('SELECT count(*) AS n FROM dead_letters WHERE reason = ?1').bind(reason).first('n')) ?? -1)

// Another site, for the forms that must be refused: `localhost` is cross-site to 127.0.0.1.
const attacker = createServer((_, response) => {
  response.writeHead(200, { 'content-type': 'text/html' })
  response.end(`<!doctype html><form method="post" action="${base}/admin/redrive"><input type="hidden" name="reason" value="${REJECTED}"><button id="go">Win a prize</button></form>`)
})
await new Promise((resolve) => attacker.listen(0, '127.0.0.1', () => resolve(undefined)))
const address = attacker.address()
const attackerUrl = `http://localhost:${address && typeof address === 'object' ? address.port : 0}/`

const browser = await chromium.launch({ executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium' })
try {
  await check('without credentials: 401, and the browser is asked to log in', async () => {
    const context = await browser.newContext()
    const page = await context.newPage()
    // With no credentials to give, headless Chromium cancels its login prompt (ERR_INVALID_AUTH_CREDENTIALS).
    const [response] = await Promise.all([page.waitForResponse(`${base}/admin`), page.goto(`${base}/admin`).catch(() => null)])
    assert(response.status() === 401, `status ${response.status()}`)
    assert(/^Basic realm=/.test((await response.headerValue('www-authenticate')) ?? ''), 'no WWW-Authenticate: Basic')
    await context.close()
  })

  await check('a wrong password: 401', async () => {
    const context = await browser.newContext({ httpCredentials: { username: 'operator', password: 'wrong' } })
    const response = await (await context.newPage()).goto(`${base}/admin`)
    assert(response?.status() === 401, `status ${response?.status()}`)
    await context.close()
  })

  const context = await browser.newContext({
    httpCredentials: { username: 'operator', password: ADMIN_TOKEN },
    viewport: { width: 1100, height: 900 },
  })
  const page = await context.newPage()
  /** @type {string[]} */
  const pageErrors = []
  page.on('pageerror', (error) => pageErrors.push(error.message))
  page.on('dialog', (dialog) => {
    pageErrors.push(`a dialog opened: ${dialog.message()}`)
    void dialog.dismiss()
  })
  const text = async (/** @type {string} */ selector) => ((await page.locator(selector).textContent()) ?? '').trim()

  await check('logged in (any user name, ADMIN_TOKEN as the password): the page, its sections and counts', async () => {
    const response = await page.goto(`${base}/admin`)
    assert(response?.status() === 200, `status ${response?.status()}`)
    for (const id of ['settings', 'setup-check', 'parked', 'dead-letters', 'claims', 'sweep']) assert(await page.locator(`section#${id}`).isVisible(), `no section #${id}`)
    const shown = {
      mode: await text('#mode'),
      triggers: await text('#triggers'),
      parked: await text('#parked-count'),
      users: await text('#parked-users'),
      dead: await text('#dead-count'),
      reasons: await page.locator('tr.dead-reason').count(),
      pending: await text('#claims-pending'),
      stale: await text('#claims-stale'),
      expired: await text('#sweep-expired'),
    }
    const expected = { mode: 'direct', triggers: '2', parked: '3', users: '2', dead: '5', reasons: 2, pending: '1', stale: '1', expired: '1' }
    assert(JSON.stringify(shown) === JSON.stringify(expected), `shown ${JSON.stringify(shown)}, expected ${JSON.stringify(expected)}`)
    const html = await page.content()
    assert(!/@example\.com|user-\d|browser-test-(admin-token|key|secret)/.test(html), 'an email, a userId or a secret is on the page')
  })

  await check('the delivery history: charts with their numbers, the table, top reasons, the last alert', async () => {
    for (const id of ['day-chart', 'week-chart', 'latency-chart']) assert(await page.locator(`#${id} svg`).isVisible(), `no chart #${id}`)
    const titles = await page.locator('#day-chart svg rect title').allTextContents()
    assert(
      titles.some((t) => /UTC: \d+ delivered$/.test(t)),
      `no delivered bar: ${titles.slice(0, 3).join(' | ')}`,
    )
    assert(
      titles.some((t) => /UTC: 40 retried$/.test(t)),
      'the bad hour is not drawn',
    )
    assert((await page.locator('#history-table tbody tr').count()) === 24, 'the table does not list 24 hours')
    assert((await text('#top-reasons')).includes('Invalid contact_id_or_email'), 'no top reason')
    assert((await text('#alerts-line')).startsWith('Alerts on (ALERT_WEBHOOK_URL). Last sent'), `alert line: ${await text('#alerts-line')}`)
  })

  await check('a test event goes through the pipeline and the page says the answer in words', async () => {
    await page.fill('#test-event input[name=email]', 'someone@example.com')
    await page.fill('#test-event input[name=event]', 'Step Activated')
    await page.getByRole('button', { name: 'Send' }).click()
    await page.waitForURL(/tested=/)
    const flash = await text('#flash')
    assert(flash.startsWith('Test event: Autopilot — identify delivered') && flash.includes('track “Step Activated” delivered'), `flash "${flash}"`)
    assert(!flash.includes('someone@example.com'), 'the email is on the page')
    assert(autopilot.contacts.has('someone@example.com') && autopilot.enrolments.length === 1, 'the test event did not reach Autopilot')
  })

  await check('the setup check, when asked: the wrong trigger id in plain words, with its fix', async () => {
    await page.getByRole('button', { name: 'Run the setup check' }).click()
    await page.waitForURL(/check=1/)
    assert((await text('#check-status')) === '1 problem to fix', `status "${await text('#check-status')}"`)
    const failed = await text('#setup-check tr.failed')
    assert(failed.includes('"Order Completed" is mapped to trigger 9999, which your Autopilot account does not have'), `failed check: ${failed}`)
    assert(failed.includes('then deploy again'), `no fix in: ${failed}`)
    // The README's picture: everything at once (the check's results, two reasons to redrive).
    await page.screenshot({ path: SCREENSHOT, fullPage: true })
  })

  await check('a redrive button re-drives that reason’s letters, and the page says what happened', async () => {
    await page.goto(`${base}/admin`)
    const [post] = await Promise.all([
      page.waitForRequest((request) => request.method() === 'POST'),
      page
        .locator('tr.dead-reason', { hasText: EXHAUSTED })
        .getByRole('button', { name: /^Redrive/ })
        .click(),
    ])
    await page.waitForURL(/redriven=/)
    // Accepted by its Origin, not only by Sec-Fetch-Site (which older browsers do not send).
    assert((await post.allHeaders()).origin === base, `the form was posted with Origin ${(await post.allHeaders()).origin}`)
    const flash = await text('#flash')
    assert(flash === `Redrive of “${EXHAUSTED}”: delivered 3 of 3 dead letters.`, `flash "${flash}"`)
    assert((await page.locator('tr.dead-reason').count()) === 1, 'the re-driven reason is still listed')
    assert((await text('#dead-count')) === '2', `dead letters: ${await text('#dead-count')}`)
    for (const i of [3, 4, 5]) assert(autopilot.contacts.has(`fixed${i}@example.com`), `fixed${i}@example.com did not reach Autopilot`)
    assert((await deadLetterCount(EXHAUSTED)) === 0 && (await deadLetterCount(REJECTED)) === 2, 'the wrong letters were re-driven')
  })

  await check('a form posted from another site is refused (403) and re-drives nothing', async () => {
    const foreign = await context.newPage()
    await foreign.goto(attackerUrl)
    const [response] = await Promise.all([foreign.waitForResponse(`${base}/admin/redrive`), foreign.click('#go')])
    assert(response.status() === 403, `status ${response.status()}`)
    assert((await foreign.locator('body').textContent())?.includes('nothing was re-driven'), 'no refusal page')
    assert((await deadLetterCount(REJECTED)) === 2, 'letters were re-driven')
    await foreign.close()
  })

  await check('a form post with a forged foreign Origin is refused (403) and re-drives nothing', async () => {
    const response = await context.request.post(`${base}/admin/redrive`, {
      form: { reason: REJECTED },
      headers: { origin: 'https://attacker.example' },
      maxRedirects: 0,
    })
    assert(response.status() === 403, `status ${response.status()}`)
    assert((await deadLetterCount(REJECTED)) === 2, 'letters were re-driven')
  })

  await check('no script ran and no dialog opened', async () => {
    assert(pageErrors.length === 0, pageErrors.join('; '))
    assert((await page.locator('script').count()) === 0, 'the page has a script element')
  })
} finally {
  await browser.close()
  attacker.close()
  await worker.dispose()
}
console.log(failures ? `test:browser: ${failures} failed` : `test:browser: all passed; screenshot in ${SCREENSHOT}`)
process.exit(failures ? 1 : 0)
