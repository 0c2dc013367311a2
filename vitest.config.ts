import { cloudflareTest, readD1Migrations } from '@cloudflare/vitest-pool-workers'
import { defineConfig } from 'vitest/config'

// Tests run inside workerd with the `queued` environment's bindings (queue, D1), so the
// end-to-end queue test exercises the real wrangler.toml consumer settings. The D1
// migrations are applied in every test file (test/apply-migrations.ts). Unit tests build
// their own env per test (see test/helpers.ts); these vars serve the Worker when
// Miniflare itself invokes it (the queue consumer in the e2e test).
// The pool (0.15, the last on Node 20) prints workerd's benign teardown warning
// "WebSocket peer disconnected" once per test file; 0.16 filters it itself
// (cloudflare/workers-sdk#13833). Drop exactly that line, nothing else.
const TEARDOWN_NOISE = /^exception = workerd\/api\/web-socket\.c\+\+:\d+: disconnected: WebSocket peer disconnected\n?$/
type Writer = { write: (chunk: string | Uint8Array, ...rest: unknown[]) => boolean }
const { stdout, stderr, env: shellEnv } = (globalThis as unknown as { process: { stdout: Writer; stderr: Writer; env: Record<string, string | undefined> } }).process
for (const stream of [stdout, stderr]) {
  const write = stream.write.bind(stream)
  stream.write = (chunk, ...rest) => TEARDOWN_NOISE.test(String(chunk)) || write(chunk, ...rest)
}

export default defineConfig(async ({ mode }) => ({
  plugins: [
    cloudflareTest({
      wrangler: { configPath: './wrangler.toml', environment: 'queued' },
      miniflare: {
        bindings: {
          TEST_MIGRATIONS: await readD1Migrations('./migrations'),
          AUTOPILOT_API_KEY: 'ap-test-key-5f2c9d1e',
          AUTOPILOT_BASE_URL: 'https://autopilot.test/v1',
          SEGMENT_SHARED_SECRET: 'segment-shared-secret-7a1b',
          AUTOPILOT_TRIGGERS: JSON.stringify({ 'Step Activated': '0001', 'Order Completed': '0002' }),
          QUEUE_RETRY_BASE_SECONDS: '1',
          // The ledger prune's test: 20,000 rows in npm test, a million with `npm run test:prune`.
          TEST_PRUNE_ROWS: mode === 'million' ? '1000000' : '20000',
          // `npm run simulate` (scripts/simulate.js): the simulation's length, seed and tolerated known defects.
          ...Object.fromEntries(
            ['SIM_RUNS', 'SIM_SEED', 'SIM_KNOWN', 'SIM_ONLY', 'SIM_DEBUG', 'SIM_BUDGET_SECONDS', 'SIM_SCENARIO'].flatMap((name) => (shellEnv[name] === undefined ? [] : [[name, shellEnv[name]]])),
          ),
        },
      },
    }),
  ],
  test: {
    include: ['test/**/*.test.ts'],
    setupFiles: ['./test/apply-migrations.ts'],
    restoreMocks: true,
    // Much of the suite's time is waiting (real latency, 5 r/s pacing), not CPU: files run five
    // at a time even on 2-core machines, where the default would run them one by one (there:
    // 3 at a time 70 s, 4 62 s, 5 57 s, 6 56 s).
    maxWorkers: 5,
  },
}))
