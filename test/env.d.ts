type WorkerEnv = import('../src/config').Env

declare namespace Cloudflare {
  interface Env extends WorkerEnv {}
}

declare module '*?raw' {
  const text: string
  export default text
}
