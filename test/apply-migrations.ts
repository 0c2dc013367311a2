import { env } from 'cloudflare:workers'

// Storage is isolated per test file: every file starts with a migrated database. Through
// cloudflare:workers' env, not cloudflare:test: importing that loads the whole Worker (about
// 1.4 s a file), which the unit tests that never touch it need not pay. (freshDb in helpers.ts
// resets and migrates again with cloudflare:test's applyD1Migrations.)
for (const { queries } of env.TEST_MIGRATIONS) await env.DB!.batch(queries.map((query) => env.DB!.prepare(query)))
