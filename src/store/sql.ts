// The D1 plumbing every query goes through: one place that counts queries and the rows D1
// reports (for the log line and the cost report), and that turns D1's errors and slowness
// into StoreError, so callers decide what can go on without the store.

export class StoreError extends Error {
  override name = 'StoreError'
  constructor(
    message: string,
    /** It timed out (and may still complete), rather than failed. */
    readonly slow = false,
  ) {
    super(message)
  }
}

export interface QueryStats {
  queries: number
  rowsRead: number
  rowsWritten: number
  /** Queries tried again after a failure. */
  retried?: number
}

/** Many rows as one bound parameter, read with json_each: no statement needs more than a few. */
export const json = (value: unknown) => JSON.stringify(value)

/**
 * D1 refuses a string over 2,000,000 bytes (SQLITE_TOOBIG), and with it the whole atomic
 * batch: rows that carry events (parked events, dead letters) go as several JSON texts of
 * at most this many bytes, one statement each, in the same batch.
 */
export const MAX_BOUND_BYTES = 1_000_000
const encoder = new TextEncoder()

/** `rows` as JSON array texts of at most `maxBytes` each (a row larger than that goes alone). */
export function jsonChunks(rows: readonly unknown[], maxBytes = MAX_BOUND_BYTES): string[] {
  const chunks: string[] = []
  let current: string[] = []
  let bytes = 2
  for (const row of rows) {
    const text = JSON.stringify(row)
    const size = encoder.encode(text).byteLength + 1
    if (current.length && bytes + size > maxBytes) {
      chunks.push(`[${current.join(',')}]`)
      current = []
      bytes = 2
    }
    current.push(text)
    bytes += size
  }
  if (current.length) chunks.push(`[${current.join(',')}]`)
  return chunks
}

/** A retry needs at least this long to be worth starting. */
const MIN_RETRY_MS = 100

export class Sql {
  /** Queries made through this handle and the rows D1 says they touched. */
  readonly stats: QueryStats = { queries: 0, rowsRead: 0, rowsWritten: 0 }
  /** The database's size in bytes after the latest query answered (D1 says it in every answer's meta). */
  dbBytes?: number

  constructor(
    private readonly db: D1Database,
    private readonly timeoutMs: number,
  ) {}

  prepare(query: string): D1PreparedStatement {
    return this.db.prepare(query)
  }

  private count(meta: D1Meta | undefined, queries = 1) {
    this.stats.queries += queries
    this.stats.rowsRead += meta?.rows_read ?? 0
    this.stats.rowsWritten += meta?.rows_written ?? 0
    if (typeof meta?.size_after === 'number' && meta.size_after > 0) this.dbBytes = meta.size_after
  }

  async all<T>(statement: D1PreparedStatement): Promise<D1Result<T>> {
    const result = await this.once(() => statement.all<T>())
    this.count(result.meta)
    return result
  }

  async first<T>(statement: D1PreparedStatement): Promise<T | null> {
    const { results } = await this.all<T>(statement)
    return results[0] ?? null
  }

  async run(statement: D1PreparedStatement): Promise<D1Result> {
    const result = await this.once(() => statement.run())
    this.count(result.meta)
    return result
  }

  /** One round trip, atomic: one failure rolls the whole batch back. Each statement counts as a query. */
  async batch(statements: D1PreparedStatement[], timeoutMs = this.timeoutMs): Promise<D1Result[]> {
    const results = await this.once(() => this.db.batch(statements), timeoutMs)
    this.stats.queries += statements.length
    for (const result of results) this.count(result.meta, 0)
    return results
  }

  /**
   * A query that failed (not one that was slow) is tried once more: Cloudflare documents D1's
   * errors as mostly transient, and a batch that failed wrote nothing. A slow one may still
   * complete, so it is not repeated: the caller goes on without it.
   */
  private async once<T>(query: () => Promise<T>, timeoutMs = this.timeoutMs): Promise<T> {
    const started = Date.now()
    try {
      return await this.timed(query(), timeoutMs)
    } catch (error) {
      // The second try gets only the time the first left (the caller's budget holds, e.g. Segment's 5 s).
      const left = timeoutMs - (Date.now() - started)
      if ((error instanceof StoreError && error.slow) || left < MIN_RETRY_MS) throw error
      this.stats.retried = (this.stats.retried ?? 0) + 1
      return this.timed(query(), left)
    }
  }

  /**
   * D1 errors and slowness become StoreError, so callers decide what can go on without
   * the store. A query given up on may still complete later; every write is safe to repeat.
   */
  private async timed<T>(promise: Promise<T>, timeoutMs = this.timeoutMs): Promise<T> {
    let timer: ReturnType<typeof setTimeout> | undefined
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new StoreError(`the database did not answer within ${timeoutMs} ms`, true)), timeoutMs)
    })
    try {
      return await Promise.race([promise, timeout])
    } catch (error) {
      if (error instanceof StoreError) throw error
      throw new StoreError(`the database failed: ${error instanceof Error ? error.message.slice(0, 200) : 'unknown error'}`)
    } finally {
      if (timer !== undefined) clearTimeout(timer)
    }
  }
}

type D1Meta = { rows_read?: number; rows_written?: number; size_after?: number }
