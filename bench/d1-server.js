// The bench's D1, in a workerd process of its own (`npm run bench`): the real D1 of
// Miniflare with migrations/ applied, answering what bench/d1-shim.js sends from the
// measured Worker's process. In production D1 runs outside the Worker too, and the Worker
// only builds its queries and reads the answers; here the SQLite work lands in this
// process, whose CPU is not counted. Not shipped.
//
// Wire format (POST, JSON): { op: 'all' | 'run' | 'raw' | 'batch' | 'exec', statements: [{ sql, params }],
// columnNames?, sql? }. Rows travel as columns + arrays of values (as D1's own wire format
// does); D1 gives BLOBs as arrays of bytes, which JSON carries. Errors come back as
// { error: { message, cause } }.

/** @param {any} db @param {{ sql: string, params: unknown[] }} s */
const statement = (db, s) => (s.params.length ? db.prepare(s.sql).bind(...s.params) : db.prepare(s.sql))

/** A D1Result with object rows -> { columns, rows, meta, success }. */
function wireResult(/** @type {any} */ result) {
  const objects = result.results ?? []
  const columns = objects.length ? Object.keys(objects[0]) : []
  const rows = objects.map((/** @type {Record<string, unknown>} */ row) => columns.map((column) => row[column]))
  return { success: result.success, meta: result.meta, columns, rows }
}

export default {
  async fetch(/** @type {Request} */ request, /** @type {{ DB: any }} */ env) {
    /** @type {{ op: string, statements?: { sql: string, params: unknown[] }[], columnNames?: boolean, sql?: string }} */
    const call = await request.json()
    try {
      const statements = (call.statements ?? []).map((s) => statement(env.DB, s))
      let result
      if (call.op === 'all') result = wireResult(await statements[0].all())
      else if (call.op === 'run') result = wireResult(await statements[0].run())
      else if (call.op === 'raw') result = await statements[0].raw({ columnNames: Boolean(call.columnNames) })
      else if (call.op === 'batch') result = (await env.DB.batch(statements)).map(wireResult)
      else if (call.op === 'exec') result = await env.DB.exec(call.sql)
      else throw new Error(`d1-server: unknown op ${call.op}`)
      return Response.json({ result })
    } catch (error) {
      const e = /** @type {Error} */ (error)
      const cause = e.cause instanceof Error ? e.cause.message : undefined
      return Response.json({ error: { name: e.name, message: e.message, ...(cause !== undefined && { cause }) } })
    }
  },
}
