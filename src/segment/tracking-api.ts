// The HTTP Tracking API's bodies, as Segment's and RudderStack's server libraries send them,
// made into the events POST / receives: `/v1/batch` takes {"batch": [...], "sentAt", "context"},
// `/v1/<type>` one event whose type is the path's. Each event's time is corrected for the
// sender's clock, as Segment's own API does; Segment's Webhooks keep their timestamps (their
// clock is Segment's).
import { isObject } from '../values'

/** The single-event paths: `/v1/identify`, `/v1/track`... */
export const TRACKING_TYPES = ['identify', 'track', 'group', 'alias', 'page', 'screen'] as const
export type TrackingType = (typeof TRACKING_TYPES)[number]

/**
 * The events of a Tracking API body (objects changed in place), or undefined when the body
 * has not the path's shape.
 * @param type the single-event path's type; undefined for `/v1/batch`
 * @param receivedAt when the request arrived (ms)
 */
export function trackingEvents(body: unknown, type: TrackingType | undefined, receivedAt: number): { events: unknown[]; batch: boolean } | undefined {
  if (!isObject(body)) return undefined
  if (type) {
    body.type = type
    correctClock(body, body.sentAt, receivedAt)
    return { events: [body], batch: false }
  }
  if (!Array.isArray(body.batch)) return undefined
  // The batch's own context and integrations apply to every event; an event's own keys win
  // (and one that is no object is left for validation to name).
  const { context, integrations, sentAt } = body
  const merge = (shared: unknown, own: unknown) => (isObject(shared) && (own === undefined || isObject(own)) ? { ...shared, ...own } : own)
  for (const event of body.batch) {
    if (!isObject(event)) continue
    if (context !== undefined) event.context = merge(context, event.context)
    if (integrations !== undefined) event.integrations = merge(integrations, event.integrations)
    correctClock(event, event.sentAt ?? sentAt, receivedAt)
  }
  return { events: body.batch, batch: true }
}

/**
 * `timestamp` (Segment's libraries) or `originalTimestamp` (RudderStack's) is the sender's
 * clock; `sentAt` is that clock when the request left. The event happened `sentAt - stamp`
 * before it arrived: `timestamp` becomes that, so a clock an hour fast does not make an event
 * an hour newer than later ones (newest wins). The sender's own stamp stays in
 * `originalTimestamp`. Without `sentAt` the stamp is used as it is. Either way no event is
 * newer than its arrival: a stamp in the future would otherwise beat every later event.
 */
function correctClock(event: Record<string, unknown>, sentAt: unknown, receivedAt: number) {
  const stamp = event.timestamp ?? event.originalTimestamp
  const happened = timeOf(stamp)
  if (happened === undefined) return
  const sent = timeOf(sentAt)
  const skew = sent === undefined ? 0 : receivedAt - sent
  const corrected = new Date(Math.min(receivedAt, happened + skew))
  if (Number.isNaN(corrected.getTime())) return // before the year -271821: left to fail as it is
  event.originalTimestamp ??= stamp
  event.timestamp = corrected.toISOString()
}

/** An ISO-8601 time (ms), or undefined for anything else. */
function timeOf(value: unknown): number | undefined {
  if (typeof value !== 'string') return undefined
  const time = Date.parse(value)
  return Number.isFinite(time) ? time : undefined
}
