import * as v from 'valibot'
import { isObject as isPlainObject } from '../values'

// Liberal about fields we don't read (SDKs add channel, request_ip, offsets, numeric
// versions...), strict about the ones we do. Schemas are built once, at module load.

export const EVENT_TYPES = ['identify', 'track', 'page', 'screen', 'group', 'alias', 'delete'] as const
/** Types that are acknowledged and never lead to an Autopilot call. */
export const ACKNOWLEDGED_ONLY: ReadonlySet<string> = new Set(['page', 'screen'])

// looseObject's own message is only ever used for a missing required key: the
// plain-object checks run first.
const REQUIRED = 'is required'

/** An object (not an array, not null) whose listed keys are checked and the rest kept. */
const object = <E extends v.ObjectEntries>(entries: E) => v.pipe(v.custom<Record<string, unknown>>(isPlainObject, 'must be an object'), v.looseObject(entries, REQUIRED))

/** Limits for trait values we pass on: far above anything Segment sends (32 KB per event). */
export const MAX_TRAIT_TEXT = 32_768
export const MAX_TRAIT_DEPTH = 16

/** Walks a value without recursion, so no nesting can overflow the stack. */
function withinLimits(value: unknown): boolean {
  if (typeof value !== 'object' || value === null) return typeof value !== 'string' || value.length <= MAX_TRAIT_TEXT
  const stack: [unknown, number][] = [[value, 0]]
  while (stack.length) {
    const [item, depth] = stack.pop()!
    if (typeof item === 'string' && item.length > MAX_TRAIT_TEXT) return false
    if (typeof item === 'object' && item !== null) {
      if (depth >= MAX_TRAIT_DEPTH) return false
      for (const inner of Object.values(item)) stack.push([inner, depth + 1])
    }
  }
  return true
}
const OVER_LIMITS = `must hold text of at most ${MAX_TRAIT_TEXT} characters, nested at most ${MAX_TRAIT_DEPTH} levels`

const AnyObject = v.custom<Record<string, unknown>>(isPlainObject, 'must be an object')

// Plausible, not RFC-complete: one @, something on both sides, no spaces or control
// characters. Autopilot makes the final call (a 400 we pass on per event).
export const Email = v.pipe(
  v.string('must be a string'),
  v.trim(),
  v.nonEmpty('must not be empty'),
  v.maxLength(254, 'must be at most 254 characters'),
  v.regex(/^[^\s@\p{Cc}]+@[^\s@\p{Cc}]+$/u, 'must be an email address'),
  v.check((s) => s.isWellFormed(), 'must be an email address'),
)

const Id = v.pipe(v.union([v.string(), v.pipe(v.number(), v.transform(String))], 'must be a string'), v.trim(), v.maxLength(512, 'must be at most 512 characters'))

/**
 * Traits: an object whose values are within the limits. Reserved traits (email, firstName,
 * address...) are read by the mapping, which leaves out a field it cannot send (with an
 * issue) rather than refusing the event.
 */
export const Traits = v.pipe(
  v.custom<Record<string, unknown>>(isPlainObject, 'must be an object'),
  // One pass over the object as it is (no copy, every event has traits); an issue names the trait.
  v.rawCheck(({ dataset, addIssue }) => {
    if (!dataset.typed) return
    const traits = dataset.value
    for (const key in traits) {
      const value = traits[key]
      if (!withinLimits(value)) addIssue({ message: OVER_LIMITS, path: [{ type: 'object', origin: 'value', input: traits, key, value }] })
    }
  }),
)
export type Traits = v.InferOutput<typeof Traits>

const common = {
  // Well-formed, as D1 stores it (a lone surrogate becomes U+FFFD there): the ledger compares them.
  messageId: v.optional(
    v.pipe(
      v.string('must be a string'),
      v.maxLength(256, 'must be at most 256 characters'),
      v.transform((id) => id.toWellFormed()),
    ),
  ),
  userId: v.nullish(Id),
  anonymousId: v.nullish(Id),
}
/** Identify and track read `context.traits` (Engage puts the email there). */
const ContextWithTraits = object({ traits: v.optional(Traits) })

const Identify = v.looseObject(
  {
    ...common,
    type: v.literal('identify'),
    traits: v.optional(Traits),
    context: v.optional(ContextWithTraits),
  },
  REQUIRED,
)
const Track = v.looseObject(
  {
    ...common,
    type: v.literal('track'),
    event: v.pipe(v.string('must be a string'), v.trim(), v.nonEmpty('must be a non-empty event name'), v.maxLength(256, 'must be at most 256 characters')),
    properties: v.optional(AnyObject),
    context: v.optional(ContextWithTraits),
  },
  REQUIRED,
)
/** Types we acknowledge without mapping: only their general shape is checked. */
const other = <T extends string, E extends v.ObjectEntries>(type: T, entries: E) =>
  v.looseObject(
    {
      ...common,
      type: v.literal(type),
      context: v.optional(AnyObject),
      traits: v.optional(AnyObject),
      properties: v.optional(AnyObject),
      ...entries,
    },
    REQUIRED,
  )

export const SegmentEvent = v.pipe(
  v.unknown(),
  v.check(isPlainObject, 'an event must be a JSON object'),
  v.variant(
    'type',
    [Identify, Track, other('page', {}), other('screen', {}), other('group', { groupId: v.nullish(Id) }), other('alias', { previousId: v.nullish(Id) }), other('delete', {})],
    `must be one of ${EVENT_TYPES.join(', ')}`,
  ),
)
export type SegmentEvent = v.InferOutput<typeof SegmentEvent>
export type IdentifyEvent = v.InferOutput<typeof Identify>
export type GroupEvent = Extract<SegmentEvent, { type: 'group' }>
export type TrackEvent = v.InferOutput<typeof Track>

export interface Issue {
  path: string
  message: string
}

export type Checked = { ok: true; event: SegmentEvent } | { ok: false; message: string; issues: Issue[] }

/** An id the schema would keep as it is: null, undefined, or trimmed text of at most 512 characters. */
const plainId = (id: unknown) => id == null || (typeof id === 'string' && id.length <= 512 && id.trim() === id)
const plainTraits = (traits: unknown) => traits === undefined || v.is(Traits, traits)

/**
 * Identify and track as SDKs send them: already what SegmentEvent would make of them (no
 * id to convert or trim, a well-formed messageId), so the event itself is used, not a
 * copy. Anything else goes through SegmentEvent, which also names what is wrong.
 */
const AsSent = v.custom<IdentifyEvent | TrackEvent>((input) => {
  if (!isPlainObject(input)) return false
  const { type, messageId, context } = input
  if (type !== 'identify' && type !== 'track') return false
  if (messageId !== undefined && (typeof messageId !== 'string' || messageId.length > 256 || !messageId.isWellFormed())) return false
  if (!plainId(input.userId) || !plainId(input.anonymousId)) return false
  if (context !== undefined && !(isPlainObject(context) && plainTraits(context.traits))) return false
  if (type === 'identify') return plainTraits(input.traits)
  const { event, properties } = input
  return typeof event === 'string' && event.length > 0 && event.length <= 256 && event.trim() === event && (properties === undefined || isPlainObject(properties))
})

/** Validates one event; issues name the field, never echo its value. */
export function checkEvent(input: unknown): Checked {
  if (v.is(AsSent, input)) return { ok: true, event: input }
  const result = v.safeParse(SegmentEvent, input)
  if (result.success) return { ok: true, event: result.output }
  const issues = result.issues.map((issue) => ({ path: v.getDotPath(issue) ?? '', message: issue.message }))
  const first = issues[0]
  return { ok: false, message: `Invalid event: ${first.path ? `${first.path} ` : ''}${first.message}`, issues }
}

/** The three body shapes Segment sends: one event, an array (Actions batching), or {batch: [...]}. */
export function eventsOf(body: unknown): { events: unknown[]; batch: boolean } | undefined {
  if (Array.isArray(body)) return { events: body, batch: true }
  if (!isPlainObject(body)) return undefined
  if (Array.isArray(body.batch) && body.type === undefined) return { events: body.batch, batch: true }
  return { events: [body], batch: false }
}
