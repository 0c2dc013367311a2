// @ts-check
// Reads a source map (v3) far enough to say where a position of the bundle came from:
// for `npm run bench:profile`, which names functions by their place in src/.

const BASE64 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/'
const DIGIT = new Map([...BASE64].map((c, i) => [c, i]))

/** The numbers of one segment ("base64 VLQ": 5 bits per digit, continuation bit 32, sign in the lowest bit). */
function vlq(/** @type {string} */ text) {
  const values = []
  let value = 0
  let shift = 0
  for (const char of text) {
    const digit = /** @type {number} */ (DIGIT.get(char))
    value += (digit & 31) << shift
    if (digit & 32) {
      shift += 5
      continue
    }
    values.push(value & 1 ? -(value >>> 1) : value >>> 1)
    value = 0
    shift = 0
  }
  return values
}

/**
 * @param {{ sources: string[], mappings: string }} map
 * @returns {(line: number, column: number) => { source: string, line: number } | undefined} zero-based in, one-based line out
 */
export function originalPositions(map) {
  // Per generated line: [generated column, source index, original line] segments, in column order.
  /** @type {number[][][]} */
  const lines = []
  let source = 0
  let originalLine = 0
  for (const text of map.mappings.split(';')) {
    const segments = []
    let column = 0
    for (const segment of text ? text.split(',') : []) {
      // The fourth field (the original column) is not needed: positions are reported by line.
      const [dColumn, dSource, dLine] = vlq(segment)
      column += dColumn
      if (dSource === undefined) continue
      source += dSource
      originalLine += dLine
      segments.push([column, source, originalLine])
    }
    lines.push(segments)
  }
  return (line, column) => {
    const segments = lines[line] ?? []
    let found
    for (const segment of segments) {
      if (segment[0] > column) break
      found = segment
    }
    found ??= segments[0]
    return found && { source: map.sources[found[1]].replace(/^(\.\.\/)+/, '').replace(/^.*?\/(src|node_modules|bench)\//, '$1/'), line: found[2] + 1 }
  }
}
