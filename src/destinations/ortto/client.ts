// The Ortto client (api.ap3api.com/v1 and its regions), and the one table that says what
// its answers mean. Ortto answers per item inside a 200 (a person or activity "invalid"),
// refuses a whole call with 400 and per-item details, says how long to wait in the body
// of a 429, and bans an IP after 15 refused calls in 15 s — so this client never makes a
// call that could be the 11th refused one in 15 s.
import * as v from 'valibot'
import { Stopped } from '../../pipeline/gate'
import { answerRows, answerTable, call, CallError, reasonOf, redact, waitSeconds, type CallOptions, type Endpoint } from '../transport'

export const BULK_LIMIT = 100
export type Op = 'merge' | 'activities' | 'find' | 'archive' | 'delete' | 'read' | 'create' | 'accounts' | 'link'

/** Ortto's answers -> what happens next; first matching row wins (docs/delivery.md lists it). */
/** A 404 is a wrong region or base URL (every path this Worker calls exists): retried while it is fixed. */
export const ANSWERS = answerRows<Op>([{ statuses: '404', kind: 'unavailable' }])
export const kindOf = answerTable<Op>(ANSWERS)

/** One item's answer: done, or refused with Ortto's reason. */
export type ItemAnswer = { ok: true; id?: string } | { ok: false; reason: string }

const Item = v.looseObject({ status: v.optional(v.string()), error: v.optional(v.unknown()), person_id: v.optional(v.string()), id: v.optional(v.string()) })
const MergeAnswer = v.looseObject({ people: v.array(Item) })
const ActivitiesAnswer = v.looseObject({ activities: v.array(Item) })
const ErrorAnswer = v.looseObject({ details: v.optional(v.array(Item)), error: v.optional(v.unknown()), 'try-in-seconds': v.optional(v.unknown()) })
// Creation answers as recorded live (../shared/reference/ortto-api.md): a field's flat
// {name, field_id, display_type}; an activity's nested under custom_activity, its id in
// activity_field_id, each attribute's in field_id. Other spellings seen in copies are read too.
const CreatedField = v.looseObject({ field_id: v.optional(v.string()), id: v.optional(v.string()), field: v.optional(v.looseObject({ id: v.optional(v.string()), field_id: v.optional(v.string()) })) })
const Attribute = v.looseObject({ name: v.string(), field_id: v.optional(v.string()), id: v.optional(v.string()) })
const ActivityBody = v.looseObject({
  activity_field_id: v.optional(v.string()),
  activity_id: v.optional(v.string()),
  id: v.optional(v.string()),
  attributes: v.optional(v.nullable(v.array(Attribute)), []),
})
const CreatedActivity = v.looseObject({ custom_activity: v.optional(ActivityBody) })
/** The icon a created activity shows in Ortto (the only icon id seen in a live answer). */
const ACTIVITY_ICON = 'moneys-illustration-icon'
// Its `contacts` (null or absent when none match), or at least its `meta`: a 2xx with neither is
// not "nobody" (a delete would then find no one and leave the person; found by the simulation).
const FoundPeople = v.pipe(
  v.looseObject({ contacts: v.optional(v.nullable(v.array(v.looseObject({ id: v.string() }))), []), meta: v.optional(v.looseObject({})) }),
  v.check((answer) => answer.meta !== undefined || (answer.contacts?.length ?? 0) > 0, 'neither contacts nor meta'),
)

/** Statuses of an item that went through. */
const DONE = new Set(['created', 'merged', 'updated', 'queued', 'success', 'ok', 'valid'])

// Ortto bans an IP for 15 s after 15 refused calls within 15 s: hold back well before. Calls in
// flight may each be refused too, so a call starts only while refusals + calls in flight < 10.
const REFUSAL_WINDOW_MS = 15_000
const MAX_REFUSALS = 10
const refusals: number[] = []
let inFlight = 0
/** Forgets the refused calls counted (tests start each case as a fresh IP). */
export const forgetRefusals = () => void (refusals.splice(0), (inFlight = 0))

/** As a call starts (after the pacer): not when it could be the one that gets the IP banned. */
function admit(): () => void {
  if (refusalsInWindow(Date.now()) + inFlight >= MAX_REFUSALS && refusals.length) {
    throw new Stopped(`not attempted: Ortto refused ${refusals.length} calls within 15 s, and it bans an IP after 15; will retry`)
  }
  inFlight++
  return () => void inFlight--
}
const refusalsInWindow = (now: number) => {
  while (refusals.length && now - refusals[0] >= REFUSAL_WINDOW_MS) refusals.shift()
  return refusals.length
}

/** A definition Ortto made (2xx) whose answer names no id this Worker can read: it exists, so it is read back from the account, never made again. */
export class CreatedUnread extends Error {
  override name = 'CreatedUnread'
}

/** A call refused whole (400) with a reason per item, in order. */
export class RefusedItems extends CallError {
  constructor(
    message: string,
    status: number,
    readonly items: ItemAnswer[],
  ) {
    super('rejected', message, status)
  }
}

export class OrttoClient {
  private readonly endpoint: Endpoint

  constructor(
    { baseUrl, apiKey, timeoutMs }: { baseUrl: string; apiKey: string; timeoutMs: number },
    private readonly options: CallOptions = {},
  ) {
    this.endpoint = { label: 'Ortto', baseUrl, timeoutMs, secret: apiKey, admit, headers: { 'x-api-key': apiKey, 'content-type': 'application/json', accept: 'application/json' } }
  }

  /** Up to 100 people, found by `mergeBy` (email; a rename by external id); one answer per person, in order. */
  async merge(
    people: { fields: Record<string, unknown>; tags?: string[]; unset_tags?: string[]; location?: { source_ip: string } }[],
    mergeBy: readonly string[] = ['str::email'],
  ): Promise<ItemAnswer[]> {
    const response = await this.send('merge', 'POST', '/person/merge', { people, merge_by: mergeBy, merge_strategy: 2, find_strategy: 0 })
    return itemsOf(v.safeParse(MergeAnswer, await response.json().catch(() => undefined)), people.length, 'people')
  }

  /** Up to 100 activities; one answer per activity, in order. Not safe to repeat when unanswered. */
  async createActivities(
    activities: { activity_id: string; attributes?: Record<string, unknown>; fields: Record<string, unknown>; location?: { source_ip: string } }[],
    mergeBy: readonly string[] = ['str::email'],
  ): Promise<ItemAnswer[]> {
    const response = await this.send('activities', 'POST', '/activities/create', { activities, merge_by: mergeBy })
    return itemsOf(v.safeParse(ActivitiesAnswer, await response.json().catch(() => undefined)), activities.length, 'activities')
  }

  /** The ids of the people with this external id or email. */
  async find({ email, userId }: { email?: string; userId?: string }): Promise<string[]> {
    const is = (field_id: string, value: string) => ({ '$str::is': { field_id, value } })
    const either = [...(userId ? [is('str::ei', userId)] : []), ...(email ? [is('str::email', email)] : [])]
    const filter = either.length === 1 ? either[0] : { $or: either }
    const response = await this.send('find', 'POST', '/person/get', { limit: 10, fields: ['str::email'], filter })
    const parsed = v.safeParse(FoundPeople, await response.json().catch(() => undefined))
    if (!parsed.success) throw new CallError('unavailable', 'Ortto answered person/get with a body this Worker does not understand', response.status)
    return (parsed.output.contacts ?? []).map((person) => person.id)
  }

  async archive(ids: string[]): Promise<void> {
    await this.send('archive', 'PUT', '/person/archive', { inclusion_ids: ids })
  }

  async delete(ids: string[]): Promise<void> {
    await this.send('delete', 'DELETE', '/person/delete', { inclusion_ids: ids })
  }

  /** A new custom person field: its id. Throws CreatedUnread when Ortto made it but its answer has no id. */
  async createField(name: string, type: string): Promise<string> {
    const response = await this.send('create', 'POST', '/person/custom-field/create', { name, type })
    const parsed = v.safeParse(CreatedField, await response.json().catch(() => undefined))
    const id = parsed.success ? (parsed.output.field_id ?? parsed.output.field?.id ?? parsed.output.field?.field_id ?? parsed.output.id) : undefined
    if (!id) throw new CreatedUnread('Ortto created the field but its answer (person/custom-field/create) has no field id')
    return id
  }

  /** A new activity definition: its id and its attributes' ids by name. Throws CreatedUnread when Ortto made it but its answer has no id. */
  async createActivity(name: string, attributes: { name: string; display_type: string }[]): Promise<{ id: string; attributes: { id: string; name: string }[] }> {
    const body = { name, icon_id: ACTIVITY_ICON, track_conversion_value: false, touch: false, filterable: true, visible_in_feeds: true, attributes }
    const response = await this.send('create', 'POST', '/definitions/activity/create', body)
    const answer: unknown = await response.json().catch(() => undefined)
    const nested = v.safeParse(CreatedActivity, answer)
    const parsed = nested.success && nested.output.custom_activity ? { success: true as const, output: nested.output.custom_activity } : v.safeParse(ActivityBody, answer)
    const id = parsed.success ? (parsed.output.activity_field_id ?? parsed.output.activity_id ?? parsed.output.id) : undefined
    if (!parsed.success || !id) throw new CreatedUnread('Ortto created the activity but its answer (definitions/activity/create) has no activity id')
    return { id, attributes: (parsed.output.attributes ?? []).flatMap((a) => ((a.field_id ?? a.id) ? [{ id: (a.field_id ?? a.id)!, name: a.name }] : [])) }
  }

  /** An Accounts call (Segment `group`, ./accounts.ts): its JSON answer, read there. */
  async accountCall(op: 'accounts' | 'link' | 'create' | 'read', method: string, path: string, body: unknown): Promise<unknown> {
    const response = await this.send(op, method, path, body)
    return response.json().catch(() => undefined)
  }

  /** A read of JSON (the account's schema, the setup check). */
  async read(path: string, body: unknown = {}): Promise<unknown> {
    const response = await this.send('read', 'POST', path, body)
    return response.json().catch(() => undefined)
  }

  private async send(op: Op, method: string, path: string, body: unknown): Promise<Response> {
    // Refused before the gate too (not attempted: nothing reached Ortto), so a run stops queueing calls.
    if (refusalsInWindow(Date.now()) >= MAX_REFUSALS) throw new Stopped(`not attempted: Ortto refused ${MAX_REFUSALS} calls within 15 s, and it bans an IP after 15; will retry`)
    // An activity or a definition that got no answer may exist: not repeated in place.
    return call(this.endpoint, this.options, { op, method, path, body, repeatable: op !== 'activities' && op !== 'create' }, (response) => this.classify(response, op, path))
  }

  private async classify(response: Response, op: Op, path: string): Promise<CallError | undefined> {
    const { status } = response
    const kind = kindOf(status, op)
    if (status >= 400 && status < 500) refusals.push(Date.now())
    const secret = this.endpoint.secret
    switch (kind) {
      case 'ok':
        return undefined
      case 'rate_limited': {
        const text = await response.text().catch(() => '')
        const said = v.safeParse(v.looseObject({ error: v.optional(v.looseObject({ 'try-in-seconds': v.optional(v.unknown()) })) }), safeJson(text))
        const inBody = said.success ? said.output.error?.['try-in-seconds'] : undefined
        const wait = waitSeconds(typeof inBody === 'number' || typeof inBody === 'string' ? inBody : undefined) ?? waitSeconds(response.headers.get('retry-after'))
        return new CallError(kind, 'Ortto rate limit reached (429)', status, wait)
      }
      case 'key_rejected': {
        const said = await reasonOf(response.clone(), secret)
        if (/\bbanned\b/i.test(said)) return new CallError('unavailable', `Ortto has banned this IP for a while after refused calls (${status}); will retry`, status)
        // A definition refused with 403 is the plan's cap on fields or activities, not the key.
        // (So is a 403 on Accounts: the instance's Accounts, not the key, which every other call uses.)
        if ((op === 'create' || op === 'accounts' || op === 'link') && status === 403) return new CallError('rejected', `Ortto refused it (${status}): ${said}`, status)
        return new CallError(kind, `Ortto rejected the API key (${status}): check ORTTO_API_KEY (Ortto → Settings → Data sources → Custom API) and ORTTO_REGION`, status)
      }
      case 'redirected':
        return new CallError(kind, `Ortto redirected ${op} (${status}), which is never followed: check ORTTO_REGION and ORTTO_BASE_URL`, status)
      case 'rejected': {
        const text = await response.text().catch(() => '')
        const parsed = v.safeParse(ErrorAnswer, safeJson(text))
        const reason = redact(parsed.success && typeof parsed.output.error === 'string' ? parsed.output.error : text.slice(0, 300) || response.statusText, secret)
        const details = parsed.success ? parsed.output.details : undefined
        if (details?.length)
          return new RefusedItems(
            `Ortto refused the call (${status}): ${reason}`,
            status,
            details.map((item) => answerOf(item, secret)),
          )
        return new CallError(kind, `Ortto refused it (${status}): ${reason}`, status)
      }
      case 'not_found':
      case 'unavailable':
        if (status === 404) return new CallError('unavailable', `Ortto answered 404 for ${path}: check ORTTO_REGION and ORTTO_BASE_URL`, status)
        return new CallError('unavailable', `Ortto is unavailable (${status}): ${await reasonOf(response, secret)}`, status)
    }
  }
}

function safeJson(text: string): unknown {
  try {
    return JSON.parse(text)
  } catch {
    return undefined
  }
}

function answerOf(item: v.InferOutput<typeof Item>, secret: string): ItemAnswer {
  if (item.status && DONE.has(item.status)) return { ok: true, id: item.person_id ?? item.id }
  if (!item.status && !item.error) return { ok: true, id: item.person_id ?? item.id }
  const error = typeof item.error === 'string' ? item.error : item.error ? JSON.stringify(item.error) : item.status
  return { ok: false, reason: redact(`Ortto refused it (${item.status ?? 'invalid'}): ${String(error).slice(0, 300)}`, secret) }
}

function itemsOf(parsed: v.SafeParseResult<typeof MergeAnswer> | v.SafeParseResult<typeof ActivitiesAnswer>, count: number, key: 'people' | 'activities'): ItemAnswer[] {
  const list = parsed.success ? (parsed.output as Record<string, v.InferOutput<typeof Item>[]>)[key] : undefined
  // An answer that does not say per item: the call went through (2xx) for all of them.
  if (!list || list.length !== count) return Array.from({ length: count }, () => ({ ok: true }))
  return list.map((item) => answerOf(item, ''))
}
