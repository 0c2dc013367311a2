// The operator page's test event: an identify for the email given (and a track of the event
// name, when one is given) built here, its messageId marked as a test, sent through the same
// pipeline as Segment's events (direct, in either mode, so the answer is seen at once), and
// the destination's answer put in words. Counted in the history as tests, not events.
import type { Context } from 'hono'
import { checkEvent } from '../segment/schema'
import { normalEmail } from '../segment/traits'
import type { App } from './context'
import { deliverEvents } from '../pipeline/pipeline'
import { deliveryRun } from '../pipeline/run'
import { reasonKey, TEST_PREFIX } from '../store/history'
import { Store } from '../store/store'

const EMAIL = /^[^\s@]+@[^\s@]+\.[^\s@]+$/

export async function sendTestEvent(c: Context<App>, email: string, eventName: string): Promise<{ ok: boolean; text: string }> {
  const address = normalEmail(email)
  if (!EMAIL.test(address)) return { ok: false, text: 'give the email of a person to send the test identify for' }
  const name = eventName.trim().slice(0, 200)
  const id = `${TEST_PREFIX}${crypto.randomUUID()}`
  const timestamp = new Date().toISOString()
  const raw = [
    { type: 'identify', messageId: `${id}-identify`, traits: { email: address }, timestamp, context: { library: { name: 'operator page test' } } },
    ...(name ? [{ type: 'track', messageId: `${id}-track`, event: name, properties: {}, context: { traits: { email: address }, library: { name: 'operator page test' } }, timestamp }] : []),
  ]
  const events = raw.flatMap((event) => {
    const checked = checkEvent(event)
    return checked.ok ? [checked.event] : []
  })
  const { config, log, sql } = c.var
  const outcomes = await deliverEvents(
    events.map((event) => ({ event, at: Date.now() })),
    deliveryRun('redrive', { config, store: new Store(sql!), log }),
  )
  // The answer in words, without the email (the page shows no email).
  const said = outcomes.map((outcome, i) => `${events[i].type === 'track' ? `track “${name}”` : 'identify'} ${outcome.status}: ${reasonKey(outcome.message)}`)
  return { ok: outcomes.every((outcome) => outcome.status === 'delivered' || outcome.status === 'skipped'), text: `${config.destination.label} — ${said.join('; ')}` }
}
