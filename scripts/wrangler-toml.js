// @ts-check
// Reading and editing wrangler.toml as text, a line at a time, so that its comments (which
// explain every setting) survive: wrangler's own config patching refuses a .toml with
// comments, and `d1 create --update-config` only edits JSON configs. Only the flat
// `KEY = "value"` lines setup needs are handled.

/**
 * The table headed `[name]` or `[[name]]`: where its lines start and end (the next header).
 * @param {string} toml @param {string} name
 * @returns {{ start: number, end: number } | undefined}
 */
function table(toml, name) {
  const lines = toml.split('\n')
  const start = lines.findIndex((line) => line.trim() === `[${name}]` || line.trim() === `[[${name}]]`)
  if (start < 0) return undefined
  const next = lines.findIndex((line, i) => i > start && /^\s*\[/.test(line))
  return { start: start + 1, end: next < 0 ? lines.length : next }
}

const keyLine = (/** @type {string} */ key) => new RegExp(`^\\s*${key}\\s*=\\s*"([^"]*)"`)
const commentedKeyLine = (/** @type {string} */ key) => new RegExp(`^\\s*#\\s*${key}\\s*=`)

/** Whether wrangler.toml has this table. */
export const hasTable = (/** @type {string} */ toml, /** @type {string} */ name) => table(toml, name) !== undefined

/** A `KEY = "value"` of a table; undefined when absent or commented out. */
export function readValue(/** @type {string} */ toml, /** @type {string} */ name, /** @type {string} */ key) {
  const range = table(toml, name)
  if (!range) return undefined
  const lines = toml.split('\n').slice(range.start, range.end)
  for (const line of lines) {
    const match = keyLine(key).exec(line)
    if (match) return match[1]
  }
  return undefined
}

/**
 * wrangler.toml with `KEY = "value"` set in a table: the line replaced where it is, else its
 * commented-out example (`# KEY = …`) turned into it, else added after the table's last setting.
 * value undefined: the line commented out (the default applies).
 * @param {string} toml @param {string} name @param {string} key @param {string | undefined} value
 */
export function writeValue(toml, name, key, value) {
  const range = table(toml, name)
  if (!range) throw new Error(`wrangler.toml has no [${name}] table`)
  const lines = toml.split('\n')
  const within = (/** @type {RegExp} */ pattern) => {
    for (let i = range.start; i < range.end; i++) if (pattern.test(lines[i])) return i
    return -1
  }
  const set = within(keyLine(key))
  if (value === undefined) {
    if (set >= 0) lines[set] = `# ${lines[set].trimStart()}`
    return lines.join('\n')
  }
  const line = `${key} = ${JSON.stringify(value)}`
  const at = set >= 0 ? set : within(commentedKeyLine(key))
  if (at >= 0) lines[at] = line
  else {
    let last = range.start - 1
    for (let i = range.start; i < range.end; i++) if (/^\s*[A-Za-z_]+\s*=/.test(lines[i])) last = i
    lines.splice(last + 1, 0, line)
  }
  return lines.join('\n')
}

/** The queues an environment's tables name (producers, consumers, dead-letter queues), each once. */
export function queueNames(/** @type {string} */ toml, /** @type {string} */ env) {
  const prefix = env ? `env.${env}.queues.` : 'queues.'
  const names = new Set()
  let inQueues = false
  for (const line of toml.split('\n')) {
    const header = /^\s*\[\[?([^\]]+)\]\]?/.exec(line)
    if (header) inQueues = header[1].trim().startsWith(prefix)
    const match = inQueues && /^\s*(?:queue|dead_letter_queue)\s*=\s*"([^"]+)"/.exec(line)
    if (match) names.add(match[1])
  }
  return [...names]
}

/** The tables of one environment's settings: `vars`, `d1_databases`, or `env.<name>.…`. */
export const tableOf = (/** @type {string} */ env, /** @type {string} */ name) => (env ? `env.${env}.${name}` : name)
