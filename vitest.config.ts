import { cloudflareTest, readD1Migrations } from '@cloudflare/vitest-pool-workers'
import { defineConfig } from 'vitest/config'

// Tests run inside workerd with the `queued` environment's bindings (queue, D1), so the
// end-to-end queue test exercises the real wrangler.toml consumer settings. The D1
// migrations are applied in every test file (test/apply-migrations.ts). Unit tests build
// their own env per test (see test/helpers.ts); these vars serve the Worker when
// Miniflare itself invokes it (the queue consumer in the e2e test).
export default defineConfig(async () => ({
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
        },
      },
    }),
  ],
  test: {
    include: ['test/**/*.test.ts'],
    setupFiles: ['./test/apply-migrations.ts'],
    restoreMocks: true,
  },
}))
