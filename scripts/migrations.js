// @ts-check
// The D1 schema's statements, for a Miniflare database made outside wrangler (benchmarks, the
// libraries' test). Without wrangler's import, which costs seconds.
import { readdirSync, readFileSync } from 'node:fs'

/** The statements of migrations/, in order (comments removed). */
export function migrationStatements(dir = 'migrations') {
  return readdirSync(dir)
    .filter((name) => name.endsWith('.sql'))
    .sort()
    .flatMap((name) =>
      readFileSync(`${dir}/${name}`, 'utf8')
        .split('\n')
        .map((line) => line.replace(/--.*$/, ''))
        .join('\n')
        .split(';')
        .map((statement) => statement.trim())
        .filter(Boolean),
    )
}
