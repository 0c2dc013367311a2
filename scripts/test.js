// @ts-check
// `npm test`: the type check and the suite side by side (the suite waits on real time much of
// its run, so on a 2-core machine the two together take about the suite's time alone). The type
// check's output is held and printed after the suite's; either failing fails the run. Arguments
// go to vitest (`npm test -- test/pacer.test.ts`). The Node-side tests (setup and deploy against a
// stand-in wrangler, the server libraries against the built Worker) are `npm run test:node`;
// CI runs both.
import { spawn } from 'node:child_process'
import { fileURLToPath } from 'node:url'

const root = fileURLToPath(new URL('..', import.meta.url))
const bin = (/** @type {string} */ name) => fileURLToPath(new URL(`../node_modules/.bin/${name}`, import.meta.url))
/** Resolves with the child's exit code; 1 when it could not start or was killed. */
const exited = (/** @type {import('node:child_process').ChildProcess} */ child, /** @type {string} */ name) =>
  new Promise((resolve) => {
    child.on('error', (error) => {
      process.stderr.write(`${name} did not start (${error.message}): run npm ci first\n`)
      resolve(1)
    })
    child.on('close', (code) => resolve(code ?? 1))
  })

// (On Windows the .bin entries are .cmd files, which only a shell runs.)
const shell = process.platform === 'win32'
const typecheck = spawn(bin('tsc'), ['--noEmit'], { cwd: root, shell, stdio: ['ignore', 'pipe', 'pipe'] })
let typeOutput = ''
typecheck.stdout?.on('data', (chunk) => (typeOutput += chunk))
typecheck.stderr?.on('data', (chunk) => (typeOutput += chunk))
const suite = spawn(bin('vitest'), ['run', ...process.argv.slice(2)], { cwd: root, shell, stdio: 'inherit' })
// Stopped (a CI timeout, Ctrl-C): both stop with it.
for (const signal of /** @type {const} */ (['SIGINT', 'SIGTERM', 'SIGHUP'])) {
  process.on(signal, () => {
    typecheck.kill(signal)
    suite.kill(signal)
  })
}
// Listened to from the start: either may end before the other.
const [types, tests] = await Promise.all([exited(typecheck, 'tsc'), exited(suite, 'vitest')])
process.stdout.write(types === 0 ? 'type check (tsc --noEmit): no errors\n' : `type check (tsc --noEmit) failed:\n${typeOutput}`)
// Set, not exit(): the type check's report is written out in full before the process ends.
process.exitCode = types !== 0 ? Number(types) : Number(tests)
