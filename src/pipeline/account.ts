// What the destination reads from the account (custom field definitions, schemas), so a
// trait goes into the field the account already has, in its type. Kept per isolate and in
// D1 (shared by every isolate), read again when the destination's refresh interval has
// passed. When the destination cannot say, the last copy known is used; with none, the
// destination's `none`.
import type { AccountSource, AnyDestination } from '../destinations/destination'
import type { CallOptions } from '../destinations/transport'
import type { Snapshot, Writes } from '../store/store'

/** After a failed read, the next try waits this long (not on every request). */
const RETRY_AFTER_FAILURE_MS = 60_000

interface Known {
  account: unknown
  /** When it was read from the destination. */
  fetchedAt: number
  /** Not before this may the destination be asked again. */
  nextTry: number
}
const known = new WeakMap<AccountSource<unknown>, Known>()

/** The cache key the pipeline's read should include: none when this isolate's copy is fresh (or reading is off). */
export function accountKeyDue(destination: AnyDestination, now = Date.now()): string | undefined {
  const source = destination.account
  if (!source || source.refreshMs <= 0) return undefined
  const mine = known.get(source)
  return !mine || now >= mine.nextTry ? source.key : undefined
}

/**
 * The account as the mapping sees it. Reads the destination only when neither this isolate
 * nor D1 has a fresh copy; a copy it reads is added to `writes` for D1.
 */
export async function accountFor(destination: AnyDestination, snapshot: Snapshot, options: CallOptions, writes: Writes, onError: (message: string) => void): Promise<unknown> {
  const source = destination.account
  if (!source) return undefined
  if (source.refreshMs <= 0) return source.none
  const now = Date.now()
  let mine = known.get(source)
  if (mine && now < mine.nextTry) return mine.account
  const stored = snapshot.cache.get(source.key)
  if (stored && (!mine || stored.fetchedAt > mine.fetchedAt)) {
    mine = { account: restore(source, stored.value), fetchedAt: stored.fetchedAt, nextTry: stored.fetchedAt + source.refreshMs }
    known.set(source, mine)
    if (now < mine.nextTry) return mine.account
  }
  try {
    const account = await source.read(options)
    known.set(source, { account, fetchedAt: now, nextTry: now + source.refreshMs })
    writes.cache.push({ key: source.key, value: source.store(account) })
    return account
  } catch (error) {
    onError(`custom fields: ${error instanceof Error ? error.message : 'unknown error'}`)
    const fallback = mine ?? { account: source.unknown ?? source.none, fetchedAt: 0, nextTry: 0 }
    known.set(source, { ...fallback, nextTry: now + RETRY_AFTER_FAILURE_MS })
    return fallback.account
  }
}

function restore<A>(source: AccountSource<A>, text: string): A {
  try {
    return source.restore(text)
  } catch {
    return source.none
  }
}
