// A Worker that puts its `DB` through what our code relies on (bench/d1-parity.js runs it
// against Miniflare's real D1 and against bench/d1-shim.js, and compares the transcripts):
// results and meta (rows_read, rows_written, changes, last_row_id), first/all/run/raw,
// bind conversions and refusals, batch results and atomicity, D1's errors. Not shipped.

/** What a step returned or threw, comparable as JSON (timings left out, blobs as byte lists). */
async function outcome(/** @type {() => unknown} */ step) {
  try {
    return { ok: plain(await step()) }
  } catch (error) {
    const e = /** @type {Error} */ (error)
    return { error: e.message, ...(e.cause instanceof Error && { cause: e.cause.message }) }
  }
}

const KEPT_META = ['changes', 'changed_db', 'last_row_id', 'rows_read', 'rows_written']

/** @returns {unknown} */
function plain(/** @type {any} */ value) {
  if (value instanceof ArrayBuffer) return { blob: Array.from(new Uint8Array(value)) }
  if (Array.isArray(value)) return value.map(plain)
  if (value && typeof value === 'object') {
    /** @type {Record<string, unknown>} */
    const out = {}
    for (const [key, inner] of Object.entries(value)) {
      if (key === 'meta') out.meta = Object.fromEntries(KEPT_META.filter((k) => k in inner).map((k) => [k, inner[k]]))
      else out[key] = plain(inner)
    }
    return out
  }
  return value
}

export default {
  async fetch(/** @type {Request} */ _request, /** @type {{ DB: D1Database }} */ env) {
    const db = env.DB
    const insert = 'INSERT INTO probe (name, n, b) VALUES (?1, ?2, ?3)'
    /** @type {[string, () => unknown][]} */
    const steps = [
      ['exec', () => db.exec('CREATE TABLE probe (id INTEGER PRIMARY KEY, name TEXT UNIQUE, n REAL, b BLOB); CREATE TABLE probe_kv (k TEXT PRIMARY KEY, v TEXT) WITHOUT ROWID').then((r) => r.count)],
      [
        'run insert',
        () =>
          db
            .prepare(insert)
            .bind('a', 1.5, new Uint8Array([1, 2, 3]))
            .run(),
      ],
      ['all insert returning', () => db.prepare(`${insert} RETURNING id, name`).bind('b', 2, null).all()],
      [
        'bind boolean',
        () =>
          db
            .prepare(insert)
            .bind('c', true, new Uint8Array([0, 255]).buffer)
            .run(),
      ],
      ['all rows', () => db.prepare('SELECT * FROM probe ORDER BY id').all()],
      ['first', () => db.prepare('SELECT * FROM probe ORDER BY id').first()],
      ['first column', () => db.prepare('SELECT name FROM probe WHERE id = ?1').bind(2).first('name')],
      ['first missing column', () => db.prepare('SELECT name FROM probe WHERE id = ?1').bind(2).first('nope')],
      ['first no row', () => db.prepare('SELECT name FROM probe WHERE id = ?1').bind(99).first()],
      ['all no rows', () => db.prepare('SELECT * FROM probe WHERE id > 99').all()],
      ['raw', () => db.prepare('SELECT id, name FROM probe ORDER BY id').raw()],
      ['raw column names', () => db.prepare('SELECT id, name FROM probe ORDER BY id').raw({ columnNames: true })],
      [
        'json_each',
        () =>
          db
            .prepare('SELECT j.key AS i, p.name AS a FROM json_each(?1) j JOIN probe p ON p.name = j.value')
            .bind(JSON.stringify(['c', 'x', 'a']))
            .all(),
      ],
      ['bind undefined', () => db.prepare(insert).bind('d', undefined, null)],
      ['bind bigint', () => db.prepare(insert).bind('d', 1n, null)],
      ['syntax error', () => db.prepare('SELEC 1').all()],
      ['constraint error', () => db.prepare(insert).bind('a', 0, null).run()],
      [
        'batch',
        () =>
          db.batch([
            db.prepare(insert).bind('e', 5, null),
            db.prepare('INSERT INTO probe_kv (k, v) SELECT value, value FROM json_each(?1)').bind('["x","y"]'),
            db.prepare('SELECT count(*) AS n FROM probe'),
          ]),
      ],
      ['batch failing in its second statement', () => db.batch([db.prepare(insert).bind('f', 6, null), db.prepare(insert).bind('a', 7, null)])],
      ['after the failed batch (rolled back)', () => db.prepare("SELECT count(*) AS n FROM probe WHERE name = 'f'").first('n')],
      ['upsert', () => db.prepare("INSERT INTO probe_kv (k, v) VALUES ('x', 'z') ON CONFLICT (k) DO UPDATE SET v = excluded.v WHERE probe_kv.v <> excluded.v RETURNING k").all()],
      ['delete', () => db.prepare('DELETE FROM probe WHERE n > ?1').bind(1).run()],
      ['empty batch', () => db.batch([])],
      ['exec error', () => db.exec('DROP TABLE nothing_here')],
      ['session', () => db.withSession('first-unconstrained').prepare('SELECT count(*) AS n FROM probe').first('n')],
    ]
    const transcript = []
    for (const [name, step] of steps) transcript.push({ step: name, ...(await outcome(step)) })
    return Response.json(transcript)
  },
}
