// @ts-check
// `npm test`: the type check and the suite side by side (the suite waits on real time much of
// its run, so on a 2-core machine the two together take about the suite's time alone), and once
// the type check is done, the scripts' own tests (scripts/tests: setup and deploy against a
// stand-in wrangler, on node's test runner, a few seconds). Their output is held and printed
// after the suite's; any of them failing fails the run. Arguments go to vitest
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
let scripts
// Stopped (a CI timeout, Ctrl-C): all stop with it.
for (const signal of /** @type {const} */ (['SIGINT', 'SIGTERM', 'SIGHUP'])) {
  process.on(signal, () => {
    typecheck.kill(signal)
    suite.kill(signal)
    scripts?.kill(signal)
  })
}
const types = await typecheckDone
// After the type check (CPU-bound), while the suite mostly waits.
const scriptTests = readdirSync(new URL('tests', import.meta.url)).filter((name) => name.endsWith('.test.js'))
scripts = spawn(process.execPath, ['--test', '--test-concurrency=2', '--test-reporter=tap', ...scriptTests.map((name) => `scripts/tests/${name}`)], { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] })
let scriptOutput = ''
scripts.stdout?.on('data', (chunk) => (scriptOutput += chunk))
scripts.stderr?.on('data', (chunk) => (scriptOutput += chunk))
const [tests, scriptsCode] = await Promise.all([suiteDone, exited(scripts, 'node --test')])
process.stdout.write(types === 0 ? 'type check (tsc --noEmit): no errors\n' : `type check (tsc --noEmit) failed:\n${typeOutput}`)
const count = (/** @type {string} */ word) => /** @type {RegExpExecArray | null} */ (new RegExp(`^# ${word} (\\d+)$`, 'm').exec(scriptOutput))?.[1] ?? '?'
process.stdout.write(
  scriptsCode === 0
    ? `script tests (node --test scripts/tests): ${count('pass')} passed\n`
    : `script tests (node --test scripts/tests) failed (${count('fail')} of ${count('tests')}):\n${scriptOutput}`,
)
// Set, not exit(): the reports are written out in full before the process ends.
process.exitCode = types !== 0 ? Number(types) : tests !== 0 ? Number(tests) : Number(scriptsCode)
