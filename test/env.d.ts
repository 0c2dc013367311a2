type WorkerEnv = import('../src/config').Env

declare namespace Cloudflare {
  interface Env extends WorkerEnv {
    TEST_MIGRATIONS: import('cloudflare:test').D1Migration[]
    /** Rows the ledger prune's test fills: 100,000 (npm test) or 1,000,000 (npm run test:prune). */
    TEST_PRUNE_ROWS: string
  }
}

declare module '*?raw' {
  const text: string
  export default text
}
