// @ts-check
// A sandbox as a local HTTP server (Node): Autopilot's (the default, for `npm start`) or
// Ortto's (`destination: 'ortto'`; from the shell `SANDBOX_DESTINATION=ortto node sandbox/server.js`).
import { createServer } from 'node:http'
import { pathToFileURL } from 'node:url'
import { createAutopilot } from './autopilot.js'
import { createOrtto } from './ortto.js'

/**
 * @overload
 * @param {{ port?: number, host?: string, destination?: 'autopilot' } & import('./autopilot.js').AutopilotOptions} [options]
 * @returns {Promise<{ url: string, autopilot: ReturnType<typeof createAutopilot>, close: () => Promise<void> }>}
 */
/**
 * @overload
 * @param {{ port?: number, host?: string, destination: 'ortto' } & import('./ortto.js').OrttoOptions} options
 * @returns {Promise<{ url: string, ortto: ReturnType<typeof createOrtto>, close: () => Promise<void> }>}
 */
/**
 * @param {{ port?: number, host?: string, destination?: 'autopilot' | 'ortto' } & Record<string, any>} [options]
 * @returns {Promise<{ url: string, autopilot?: ReturnType<typeof createAutopilot>, ortto?: ReturnType<typeof createOrtto>, close: () => Promise<void> }>}
 */
export async function startSandbox({ port = 8788, host = '127.0.0.1', destination = 'autopilot', ...options } = {}) {
  const standIn = destination === 'ortto' ? { ortto: createOrtto(options) } : { autopilot: createAutopilot(options) }
  const target = standIn.ortto ?? standIn.autopilot
  const server = createServer(async (req, res) => {
    const chunks = []
    for await (const chunk of req) chunks.push(chunk)
    const body = chunks.length ? Buffer.concat(chunks) : undefined
    const headers = new Headers()
    for (const [name, value] of Object.entries(req.headers)) if (typeof value === 'string') headers.set(name, value)
    try {
      const response = await target.fetch(new Request(`http://${host}:${port}${req.url}`, { method: req.method, headers, body: req.method === 'GET' ? undefined : body }))
      res.writeHead(response.status, Object.fromEntries(response.headers))
      res.end(Buffer.from(await response.arrayBuffer()))
    } catch {
      res.destroy() // an injected network failure
    }
  })
  await new Promise((resolve) => server.listen(port, host, () => resolve(undefined)))
  return {
    url: `http://${host}:${port}/v1`,
    ...standIn,
    close: () => new Promise((resolve) => server.close(() => resolve(undefined))),
  }
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const ortto = process.env.SANDBOX_DESTINATION === 'ortto'
  const name = ortto ? 'ortto' : 'autopilot'
  const common = {
    port: Number(process.env.SANDBOX_PORT ?? 8788),
    apiKey: process.env.SANDBOX_API_KEY ?? 'sandbox-key',
    rateLimit: Number(process.env.SANDBOX_RATE_LIMIT ?? 0),
    log: (/** @type {string} */ line) => console.log(`[${name} sandbox] ${line}`),
  }
  const sandbox = ortto
    ? await startSandbox({
        ...common,
        destination: 'ortto',
        // The instance's custom fields (id -> name) and activities, as if made in Ortto's UI.
        customFields: JSON.parse(process.env.SANDBOX_ORTTO_FIELDS ?? '{"int:cm:age": "Age", "str:cm:plan": "Plan", "bol:cm:vip": "VIP", "dec:cm:lifetime-value": "Lifetime Value"}'),
        activities: JSON.parse(
          process.env.SANDBOX_ORTTO_ACTIVITIES ??
            '{"act:cm:order-completed": {"name": "Order Completed", "attributes": {"str:cm:product": "Product", "int:cm:quantity": "Quantity"}}, "act:cm:step-activated": {"name": "Step Activated", "attributes": {}}}',
        ),
        invalidMode: process.env.SANDBOX_INVALID_MODE === 'call' ? 'call' : 'item',
      })
    : await startSandbox(common)
  console.log(`[${name} sandbox] listening on ${sandbox.url}`)
}
