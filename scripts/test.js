// @ts-check
// `npm test`: the type check and the suite side by side (the suite waits on real time much of
// its run, so on a 2-core machine the two together take about the suite's time alone), and once
// the type check is done, the Node-side tests on node's test runner: the scripts' own
// (scripts/tests: setup and deploy against a stand-in wrangler) and, on a full run, the server
// libraries against the built Worker (scripts/libraries-test.js). Their output is held and
// printed after the suite's; any of them failing fails the run. Arguments go to vitest
// (`npm test -- test/pacer.test.ts`).
import { spawn } from 'node:child_process'
import { readdirSync } from 'node:fs'
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
// Listened to from the start: either may end before the other.
const typecheckDone = exited(typecheck, 'tsc')
const suiteDone = exited(suite, 'vitest')
/** @type {import('node:child_process').ChildProcess | undefined} */
let nodeTests
// Stopped (a CI timeout, Ctrl-C): all stop with it.
for (const signal of /** @type {const} */ (['SIGINT', 'SIGTERM', 'SIGHUP'])) {
  process.on(signal, () => {
    typecheck.kill(signal)
    suite.kill(signal)
    nodeTests?.kill(signal)
  })
}
const types = await typecheckDone
// After the type check (CPU-bound), while the suite mostly waits.
const files = readdirSync(new URL('tests', import.meta.url))
  .filter((name) => name.endsWith('.test.js'))
  .map((name) => `scripts/tests/${name}`)
if (process.argv.length <= 2) files.push('scripts/libraries-test.js')
nodeTests = spawn(process.execPath, ['--test', '--test-concurrency=2', '--test-reporter=tap', ...files], { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] })
let nodeOutput = ''
nodeTests.stdout?.on('data', (chunk) => (nodeOutput += chunk))
nodeTests.stderr?.on('data', (chunk) => (nodeOutput += chunk))
const [tests, nodeCode] = await Promise.all([suiteDone, exited(nodeTests, 'node --test')])
process.stdout.write(types === 0 ? 'type check (tsc --noEmit): no errors\n' : `type check (tsc --noEmit) failed:\n${typeOutput}`)
const count = (/** @type {string} */ word) => /** @type {RegExpExecArray | null} */ (new RegExp(`^# ${word} (\\d+)$`, 'm').exec(nodeOutput))?.[1] ?? '?'
const which = `node --test ${files.join(' ')}`
process.stdout.write(nodeCode === 0 ? `node-side tests (${which}): ${count('pass')} passed\n` : `node-side tests (${which}) failed (${count('fail')} of ${count('tests')}):\n${nodeOutput}`)
// Set, not exit(): the reports are written out in full before the process ends.
process.exitCode = types !== 0 ? Number(types) : tests !== 0 ? Number(tests) : Number(nodeCode)
