// @ts-check
// Build the Worker the way `wrangler deploy` does, and run that bundle in Miniflare
// with the bindings wrangler.toml gives it (D1 migrated from migrations/) and every
// outbound fetch answered by a local handler (the Autopilot stand-in). Used by
// `npm run fuzz` and the benchmarks.
import { execFileSync } from 'node:child_process'
import { Miniflare, Response as MiniflareResponse } from 'miniflare'
import { unstable_getMiniflareWorkerOptions } from 'wrangler'
import { migrationStatements } from './migrations.js'

// (Here too for its earlier users; scripts/migrations.js loads without wrangler.)
export { migrationStatements }

/**
 * `wrangler deploy --dry-run --outdir`: the exact bundle deploy would upload (with its source
 * map). `minify: false` keeps names readable, for profiles (`npm run bench:profile`).
 */
export function buildWorker({ outdir = 'dist', env = '', minify = true } = {}) {
  const args = ['wrangler', 'deploy', '--dry-run', '--outdir', outdir, '--env', env, ...(minify ? [] : ['--minify=false'])]
  execFileSync('npx', args, { stdio: ['ignore', 'ignore', 'inherit'] })
  return `${outdir}/index.js`
}

/**
 * @param {{
 *   scriptPath: string,
 *   env?: string,
 *   bindings: Record<string, string>,
 *   outbound: (request: Request) => Promise<Response>,
 *   quiet?: boolean,
 *   onLog?: (line: Record<string, any>) => void,
 * }} options
 */
export async function startWorker({ scriptPath, env, bindings, outbound, quiet = true, onLog }) {
  const { workerOptions } = unstable_getMiniflareWorkerOptions('wrangler.toml', env)
  const mf = new Miniflare({
    modules: true,
    scriptPath,
    // What the script imports is an ES module too.
    modulesRules: [{ type: 'ESModule', include: ['**/*.js'] }],
    compatibilityDate: workerOptions.compatibilityDate,
    bindings: { ...workerOptions.bindings, ...bindings },
    d1Databases: workerOptions.d1Databases,
    queueProducers: workerOptions.queueProducers,
    queueConsumers: workerOptions.queueConsumers,
    // The stand-in answers with Node's Response; hand Miniflare its own kind.
    outboundService: async (request) => {
      const response = await outbound(/** @type {any} */ (request))
      return new MiniflareResponse(await response.arrayBuffer(), { status: response.status, headers: Object.fromEntries(response.headers) })
    },
    // The Worker logs a JSON line per request: handed to onLog, or dropped to keep the terminal for the report.
    ...((quiet || onLog) && {
      handleRuntimeStdio: (/** @type {NodeJS.ReadableStream} */ stdout, /** @type {NodeJS.ReadableStream} */ stderr) => {
        let pending = ''
        stdout.on('data', (/** @type {Buffer} */ chunk) => {
          if (!onLog) return
          const text = pending + chunk.toString('utf8')
          const complete = text.split('\n')
          pending = complete.pop() ?? ''
          for (const line of complete) {
            const start = line.indexOf('{')
            if (start < 0) continue
            try {
              onLog(JSON.parse(line.slice(start)))
            } catch {
              // not one of the Worker's JSON lines
            }
          }
        })
        stderr.resume()
      },
    }),
  })
  await mf.ready
  const db = await mf.getD1Database('DB')
  await db.batch(migrationStatements().map((sql) => db.prepare(sql)))
  return mf
}
