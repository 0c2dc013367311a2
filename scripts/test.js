// @ts-check
// `npm test`: the type check and the suite side by side (the suite waits on real time much of
// its run, so on a 2-core machine the two together take about the suite's time alone). The type
// check's output is held and printed after the suite's; either failing fails the run. Arguments
// go to vitest (`npm test -- test/pacer.test.ts`).
import { spawn } from 'node:child_process'

const bin = (/** @type {string} */ name) => `node_modules/.bin/${name}`
const typecheck = spawn(bin('tsc'), ['--noEmit'], { stdio: ['ignore', 'pipe', 'pipe'] })
let typeOutput = ''
typecheck.stdout.on('data', (chunk) => (typeOutput += chunk))
typecheck.stderr.on('data', (chunk) => (typeOutput += chunk))
const exited = (/** @type {import('node:child_process').ChildProcess} */ child) => new Promise((resolve) => child.on('close', (code) => resolve(code ?? 1)))
const typesDone = exited(typecheck)
const suite = spawn(bin('vitest'), ['run', ...process.argv.slice(2)], { stdio: 'inherit' })
const [types, tests] = await Promise.all([typesDone, exited(suite)])
process.stdout.write(types === 0 ? 'type check (tsc --noEmit): no errors\n' : `type check (tsc --noEmit) failed:\n${typeOutput}`)
process.exit(types !== 0 ? Number(types) : Number(tests))
