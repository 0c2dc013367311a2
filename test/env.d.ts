declare namespace Cloudflare {
  interface Env extends import('../src/config').Env {}
}
