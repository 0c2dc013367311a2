// Trait values -> Autopilot's typed custom fields. Pure. A value is sent only as what it
// is: converted when the conversion is exact (the text "42" into an integer field),
// reported as an issue when it is not — never an invented value.
import * as v from 'valibot'
import { Memo } from '../../cache'
import type { Issue } from '../../segment/schema'
import { convert, isObject, present, UNSAFE_NAMES, VALUE_TYPES, type CustomValue, type ValueType } from '../../values'

type CustomType = ValueType

/** A custom field the account already has: its exact name, and its type. */
export interface AccountField {
  name: string
  type: CustomType
}

/** The account's custom fields by name (spaces as --), and by lowercased name. */
export interface AccountFields {
  byName: ReadonlyMap<string, AccountField>
  byLowerName: ReadonlyMap<string, AccountField>
}

const MAX_NAME_LENGTH = 200
const UNSENDABLE_NAME = `the name cannot be an Autopilot field (empty, over ${MAX_NAME_LENGTH} characters, or __proto__, constructor, prototype); not sent`

/** Autopilot's custom field name: spaces become `--`; names that cannot be sent give undefined. */
export function customName(path: readonly string[]): string | undefined {
  const parts: string[] = []
  for (const segment of path) {
    const part = fieldName(segment)
    if (!part) return undefined
    parts.push(part)
  }
  const name = parts.join('--')
  return name.length <= MAX_NAME_LENGTH ? name : undefined
}

// The same trait names arrive in event after event: clean each once per isolate.
const fieldNames = new Memo<string, string>()
const fieldName = (segment: string): string => fieldNames.of(segment, cleanName)
function cleanName(segment: string): string {
  const part = segment
    .toWellFormed()
    .replace(/(?![\t\n\v\f\r])\p{Cc}/gu, '') // control characters; whitespace becomes -- below
    .trim()
    .replace(/\s+/gu, '--')
  return UNSAFE_NAMES.has(part) ? '' : part // "constructor " too: Autopilot refuses the name as it ends up
}

/** createdAt, updated_at, signupDate, trial_end_date, "Renewal Date", birthday, date. */
const DATE_NAME = /(?:[a-z\d](?:At|Date)|[_\s-](?:at|At|date|Date))$|^(?:date|Date|birthday|Birthday)$/

/**
 * The type a trait gets when the account has no field for it yet: from the trait's name and
 * the kind of its value, never from the particular value (3 and 3.5 must not make two types).
 */
export function defaultType(name: string, value: unknown): CustomType {
  switch (typeof value) {
    case 'boolean':
      return 'boolean'
    case 'number':
      return 'float'
    case 'string':
      return DATE_NAME.test(name.trim()) ? 'date' : 'string'
    default:
      return 'string'
  }
}

/** A field as public clients show them: name under one of three keys, type under one of three. */
const FieldItem = v.looseObject({
  name: v.optional(v.unknown()),
  field_name: v.optional(v.unknown()),
  fieldName: v.optional(v.unknown()),
  fieldType: v.optional(v.unknown()),
  field_type: v.optional(v.unknown()),
  type: v.optional(v.unknown()),
})
/** A list Autopilot answers with: the body itself, or the first array among its values (the shapes public clients show). */
export const ListIn = v.pipe(
  v.unknown(),
  v.transform((body) => (Array.isArray(body) ? body : isObject(body) ? (Object.values(body).find(Array.isArray) ?? []) : [])),
  v.array(v.unknown()),
)
const TYPE_ALIASES: Record<string, CustomType> = { number: 'float', text: 'string' }

/** Reads Autopilot's GET /contacts/custom_fields answer, tolerating the shapes public clients show. */
export function parseAccountFields(body: unknown): AccountFields {
  const byName = new Map<string, AccountField>()
  const byLowerName = new Map<string, AccountField>()
  for (const raw of v.parse(ListIn, body)) {
    const item = v.safeParse(FieldItem, raw)
    if (!item.success) continue
    const { name: rawName = item.output.field_name ?? item.output.fieldName } = item.output
    const rawType = String(item.output.fieldType ?? item.output.field_type ?? item.output.type ?? '').toLowerCase()
    const type = (VALUE_TYPES as readonly string[]).includes(rawType) ? (rawType as CustomType) : TYPE_ALIASES[rawType]
    const name = typeof rawName === 'string' ? customName([rawName]) : undefined
    if (!name || !type || byName.has(name)) continue
    byName.set(name, { name, type })
    if (!byLowerName.has(name.toLowerCase())) byLowerName.set(name.toLowerCase(), { name, type })
  }
  return { byName, byLowerName }
}

export const noAccountFields: AccountFields = { byName: new Map(), byLowerName: new Map() }

/** Nested objects are flattened this deep; anything deeper is kept as JSON text. */
const MAX_DEPTH = 3
/** Typed custom fields: the pinned type, else the account's own field (and its spelling), else today's rules. */
export class CustomFields {
  readonly values: Record<string, CustomValue> = {}
  size = 0
  private readonly plans: Memo<string, Plan>
  /** Which trait fills each field (lowercased name: Autopilot matches field names without case). */
  private readonly owners = new Map<string, TraitAt & { key: string }>()

  constructor(
    private readonly fieldTypes: ReadonlyMap<string, CustomType>,
    private readonly account: AccountFields = noAccountFields,
    private readonly issues: Issue[],
  ) {
    this.plans = plansFor(fieldTypes, account)
  }

  /**
   * `path`: the trait's name, or its parts when nested (company.size). An issue names it as
   * `issueBase` followed by the parts of `path` from `issueFrom` on (the first part may be
   * spelled differently in the event).
   */
  add(path: string[], value: unknown, issueBase: string, issueFrom: number) {
    if (!present(value)) return
    const plan = this.plan(path)
    if (!plan.name) {
      this.issues.push({ path: [issueBase, ...path.slice(issueFrom)].join('.'), message: UNSENDABLE_NAME })
      return
    }
    const { pinned, existing } = plan
    if (isObject(value) && path.length < MAX_DEPTH && !pinned && !existing) {
      for (const key in value) this.add([...path, key], value[key], issueBase, issueFrom)
      return
    }
    const type = pinned ?? existing?.type ?? (plan.dateName && typeof value === 'string' ? 'date' : defaultType('', value))
    const converted = convert(type, value)
    if (!converted.ok) {
      const whose = pinned ? 'AUTOPILOT_FIELD_TYPES pins it to' : existing ? `the account's field "${existing.name}" is` : 'it is sent as'
      this.issues.push({ path: [issueBase, ...path.slice(issueFrom)].join('.'), message: `${converted.problem}, and ${whose} ${type}; not sent` })
      return
    }
    const key = (plan.keys[type] ??= `${type}--${existing?.name ?? plan.name}`)
    // Two traits for one field (names that clean to the same one: "Favorite Color", "Favorite--Color"):
    // the exact name wins, else the first in the event; the other is named in the issues.
    const where = { path, issueBase, issueFrom, exact: plan.exact, key }
    const owner = this.owners.get(plan.field)
    if (owner) {
      if (owner.exact || !plan.exact) return this.issues.push({ path: pathText(where), message: `${pathText(owner)} goes into the same field (${plan.field}); not sent` })
      this.issues.push({ path: pathText(owner), message: `${pathText(where)} is the field's exact name (${plan.field}) and goes into it; not sent` })
      delete this.values[owner.key]
      this.size--
    }
    this.owners.set(plan.field, where)
    this.size++
    this.values[key] = converted.value
  }

  /** Where a trait goes, worked out once per trait name and settings, not per event. */
  private plan(path: string[]): Plan {
    const id = path.length === 1 ? path[0] : path.join('\u0000')
    let plan = this.plans.get(id)
    if (!plan) {
      const name = customName(path)
      const { account } = this
      const field = this.account.byLowerName.get((name ?? '').toLowerCase())?.name ?? name
      plan = {
        name,
        field: (field ?? '').toLowerCase(),
        exact: path.join('--') === field,
        pinned: this.fieldTypes.get(path.join('.')),
        existing: name ? (account.byName.get(name) ?? account.byLowerName.get(name.toLowerCase())) : undefined,
        dateName: defaultType(path[path.length - 1], '') === 'date',
        keys: {},
      }
      this.plans.put(id, plan)
    }
    return plan
  }
}

interface TraitAt {
  path: string[]
  issueBase: string
  issueFrom: number
  exact: boolean
}
const pathText = ({ path, issueBase, issueFrom }: TraitAt) => [issueBase, ...path.slice(issueFrom)].join('.')

interface Plan {
  name?: string
  /** The field it fills, lowercased, and whether the trait's name is exactly the field's. */
  field: string
  exact: boolean
  pinned?: CustomType
  existing?: AccountField
  dateName: boolean
  /** The field's key in a contact's `custom`, per type sent. */
  keys: Partial<Record<CustomType, string>>
}
// Per settings (the pins) and account field list: both change rarely, so plans are reused.
const planCache = new WeakMap<object, WeakMap<object, Memo<string, Plan>>>()
/** The last pair asked for: every event of a request asks for the same one, and WeakMap lookups per event cost. */
let last: { fieldTypes: object; account: object; plans: Memo<string, Plan> } | undefined
function plansFor(fieldTypes: ReadonlyMap<string, CustomType>, account: AccountFields): Memo<string, Plan> {
  if (last?.fieldTypes === fieldTypes && last.account === account) return last.plans
  let byPins = planCache.get(account)
  if (!byPins) planCache.set(account, (byPins = new WeakMap()))
  let plans = byPins.get(fieldTypes)
  if (!plans) byPins.set(fieldTypes, (plans = new Memo()))
  last = { fieldTypes, account, plans }
  return plans
}
