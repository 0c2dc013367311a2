// @ts-check
// `npm test`: the type check and the suite side by side (the suite waits on real time much of
// its run, so on a 2-core machine the two together take about the suite's time alone), and on a
// full run the server libraries' test from Node. Their output is held and printed after the
// suite's; any failing fails the run. Arguments go to vitest (`npm test -- test/pacer.test.ts`).
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
// The server libraries from Node against the built Worker (scripts/libraries-test.js), on a full
// run only (arguments pick vitest files); its report is held like the type check's.
const libraries = process.argv.length > 2 ? undefined : spawn(process.execPath, ['scripts/libraries-test.js'], { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] })
let librariesOutput = ''
libraries?.stdout?.on('data', (chunk) => (librariesOutput += chunk))
libraries?.stderr?.on('data', (chunk) => (librariesOutput += chunk))
// Stopped (a CI timeout, Ctrl-C): all stop with it.
for (const signal of /** @type {const} */ (['SIGINT', 'SIGTERM', 'SIGHUP'])) {
  process.on(signal, () => {
    typecheck.kill(signal)
    suite.kill(signal)
    libraries?.kill(signal)
  })
}
const [types, tests, library] = await Promise.all([exited(typecheck, 'tsc'), exited(suite, 'vitest'), libraries ? exited(libraries, 'node') : 0])
process.stdout.write(types === 0 ? 'type check (tsc --noEmit): no errors\n' : `type check (tsc --noEmit) failed:\n${typeOutput}`)
if (libraries) {
  const passed = /^# pass (\d+)/m.exec(librariesOutput)?.[1]
  process.stdout.write(
    library === 0 ? `server libraries against the built Worker (scripts/libraries-test.js): ${passed} passed\n` : `server libraries (scripts/libraries-test.js) failed:\n${librariesOutput}`,
  )
}
// Set, not exit(): the reports are written out in full before the process ends.
process.exitCode = types !== 0 ? Number(types) : tests !== 0 ? Number(tests) : Number(library)
