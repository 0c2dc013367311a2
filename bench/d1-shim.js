// The measured Worker's `DB` in `npm run bench`: a D1Database that sends each call over a
// service binding (REMOTE) to bench/d1-server.js, the real D1 in a workerd process of its
// own. Loaded as a Miniflare wrapped binding, so it runs inside the measured Worker's
// isolate — as D1's own client does in production: values checked and converted at bind(),
// one JSON request per call, rows rebuilt as objects from columns + arrays (BLOBs are
// byte arrays, as D1 returns them). A batch is one
// call the server runs with D1's batch() (atomic); D1's errors come back with their message.
// Not shipped.

/** D1's bind() conversions: numbers, strings and null as they are, booleans as 1/0, bytes as arrays. */
function sqlValue(/** @type {unknown} */ value) {
  const type = typeof value
  if (type === 'number' || type === 'string') return value
  if (type === 'boolean') return value ? 1 : 0
  if (type === 'object') {
    if (value === null) return null
    if (Array.isArray(value) && value.every((b) => typeof b === 'number' && b >= 0 && b < 256)) return value
    if (value instanceof ArrayBuffer) return Array.from(new Uint8Array(value))
    if (ArrayBuffer.isView(value)) return Array.from(new Uint8Array(value.buffer, value.byteOffset, value.byteLength))
  }
  const message = `Type '${type}' not supported for value '${value}'`
  throw d1Error('D1_TYPE_ERROR', message, message)
}

/** As D1 words its own errors: "CODE: message", the cause without the code. */
const d1Error = (/** @type {string} */ code, /** @type {string} */ message, /** @type {string} */ cause) => new Error(`${code}: ${message}`, { cause: new Error(cause) })

/** { columns, rows, meta, success } -> D1Result with object rows. */
function d1Result(/** @type {{ columns: string[], rows: unknown[][], meta: unknown, success: boolean }} */ wire) {
  const { columns, rows } = wire
  const results = new Array(rows.length)
  for (let r = 0; r < rows.length; r++) {
    const row = rows[r]
    /** @type {Record<string, unknown>} */
    const object = {}
    for (let c = 0; c < columns.length; c++) object[columns[c]] = row[c]
    results[r] = object
  }
  return { success: wire.success, meta: wire.meta, results }
}

class RemoteD1 {
  constructor(/** @type {Fetcher} */ remote) {
    this.remote = remote
  }

  /** One round trip; D1's error (message and cause) thrown here when the server reports one. */
  async call(/** @type {Record<string, unknown>} */ body) {
    const response = await this.remote.fetch('http://d1/', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) })
    /** @type {{ result?: any, error?: { message: string, cause?: string } }} */
    const answer = await response.json()
    if (answer.error) throw new Error(answer.error.message, answer.error.cause === undefined ? undefined : { cause: new Error(answer.error.cause) })
    return answer.result
  }

  prepare(/** @type {string} */ sql) {
    return new Statement(this, sql, [])
  }

  async batch(/** @type {Statement[]} */ statements) {
    const results = await this.call({ op: 'batch', statements: statements.map((s) => s.wire()) })
    return results.map(d1Result)
  }

  exec(/** @type {string} */ sql) {
    return this.call({ op: 'exec', sql })
  }

  /** Sessions (read replicas) are one database here: the same client, no bookmark. */
  withSession() {
    return { prepare: (/** @type {string} */ sql) => this.prepare(sql), batch: (/** @type {Statement[]} */ s) => this.batch(s), getBookmark: () => null }
  }

  dump() {
    return Promise.reject(d1Error('D1_DUMP_ERROR', 'dump() is not supported by the bench shim', 'not supported'))
  }
}

class Statement {
  constructor(/** @type {RemoteD1} */ db, /** @type {string} */ sql, /** @type {unknown[]} */ params) {
    this.db = db
    this.sql = sql
    this.params = params
  }

  bind(/** @type {unknown[]} */ ...values) {
    return new Statement(this.db, this.sql, values.map(sqlValue))
  }

  wire() {
    return { sql: this.sql, params: this.params }
  }

  async all() {
    return d1Result(await this.db.call({ op: 'all', statements: [this.wire()] }))
  }

  async run() {
    return d1Result(await this.db.call({ op: 'run', statements: [this.wire()] }))
  }

  /** The first row, or one column of it (D1 throws when the row has no such column). */
  async first(/** @type {string | undefined} */ column) {
    const { results } = await this.all()
    const row = results[0]
    if (row === undefined) return null
    if (column === undefined) return row
    if (!(column in row)) throw d1Error('D1_COLUMN_NOTFOUND', `Column not found (${column})`, 'Column not found')
    return row[column]
  }

  async raw(/** @type {{ columnNames?: boolean }} */ options = {}) {
    return this.db.call({ op: 'raw', statements: [this.wire()], columnNames: Boolean(options.columnNames) })
  }
}

/** The wrapped binding: REMOTE is the service binding to bench/d1-server.js. */
export default function (/** @type {{ REMOTE: Fetcher }} */ env) {
  return new RemoteD1(env.REMOTE)
}
