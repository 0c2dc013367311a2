// @ts-check
// The Autopilot sandbox as a local HTTP server (Node), for `npm start`.
import { createServer } from 'node:http'
import { pathToFileURL } from 'node:url'
import { createAutopilot } from './autopilot.js'

/**
 * @param {{ port?: number, host?: string } & import('./autopilot.js').AutopilotOptions} [options]
 * @returns {Promise<{ url: string, autopilot: ReturnType<typeof createAutopilot>, close: () => Promise<void> }>}
 */
export async function startSandbox({ port = 8788, host = '127.0.0.1', ...options } = {}) {
  const autopilot = createAutopilot(options)
  const server = createServer(async (req, res) => {
    const chunks = []
    for await (const chunk of req) chunks.push(chunk)
    const body = chunks.length ? Buffer.concat(chunks) : undefined
    const headers = new Headers()
    for (const [name, value] of Object.entries(req.headers)) if (typeof value === 'string') headers.set(name, value)
    try {
      const response = await autopilot.fetch(
        new Request(`http://${host}:${port}${req.url}`, { method: req.method, headers, body: req.method === 'GET' ? undefined : body }),
      )
      res.writeHead(response.status, Object.fromEntries(response.headers))
      res.end(Buffer.from(await response.arrayBuffer()))
    } catch {
      res.destroy() // an injected network failure
    }
  })
  await new Promise((resolve) => server.listen(port, host, () => resolve(undefined)))
  return {
    url: `http://${host}:${port}/v1`,
    autopilot,
    close: () => new Promise((resolve) => server.close(() => resolve(undefined))),
  }
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const sandbox = await startSandbox({
    port: Number(process.env.SANDBOX_PORT ?? 8788),
    apiKey: process.env.SANDBOX_API_KEY ?? 'sandbox-key',
    rateLimit: Number(process.env.SANDBOX_RATE_LIMIT ?? 0),
    log: (line) => console.log(`[autopilot sandbox] ${line}`),
  })
  console.log(`[autopilot sandbox] listening on ${sandbox.url}`)
}
