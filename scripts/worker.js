// @ts-check
// Build the Worker the way `wrangler deploy` does, and run the bundle in Miniflare
// with every outbound fetch answered by a local handler (the Autopilot stand-in).
import { execFileSync } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { Miniflare, Response as MiniflareResponse } from 'miniflare'

/** `wrangler deploy --dry-run --outdir`: the exact bundle deploy would upload. */
export function buildWorker(outdir = 'dist', config = 'wrangler.toml') {
  execFileSync('npx', ['wrangler', 'deploy', '--dry-run', '--outdir', outdir, '--config', config], { stdio: ['ignore', 'ignore', 'inherit'] })
  return `${outdir}/index.js`
}

/**
 * @param {{ scriptPath: string, bindings: Record<string, string>, outbound: (request: Request) => Promise<Response> } & Record<string, unknown>} options
 */
export function startWorker({ scriptPath, bindings, outbound, ...rest }) {
  const compatibilityDate = /compatibility_date\s*=\s*"([^"]+)"/.exec(readFileSync('wrangler.toml', 'utf8'))?.[1]
  return new Miniflare({
    modules: true,
    scriptPath,
    compatibilityDate,
    bindings,
    // The stand-in answers with Node's Response; hand Miniflare its own kind.
    outboundService: async (request) => {
      const response = await outbound(/** @type {any} */ (request))
      return new MiniflareResponse(await response.arrayBuffer(), { status: response.status, headers: Object.fromEntries(response.headers) })
    },
    ...rest,
  })
}
