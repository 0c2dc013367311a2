// @ts-check
// A throwaway project for the setup and deploy tests: a copy of wrangler.toml in a temporary
// directory, with its own HOME and TMPDIR (so that anything written anywhere can be searched),
// and the stand-in wrangler (fake-wrangler.js) first on PATH.
import { spawn } from 'node:child_process'
import { chmodSync, copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { delimiter, join } from 'node:path'
import { fileURLToPath } from 'node:url'

const repo = fileURLToPath(new URL('../..', import.meta.url))
const fake = fileURLToPath(new URL('fake-wrangler.js', import.meta.url))

/** @typedef {{ args: string[], stdin: string, secretInEnv: string[], env: { CI?: string, WRANGLER_LOG_SANITIZE?: string } }} Call */

export function project() {
  const root = mkdtempSync(join(tmpdir(), 'setup-test-'))
  const [work, home, tmp, bin, state] = ['project', 'home', 'tmp', 'bin', 'state'].map((name) => join(root, name))
  for (const dir of [work, home, tmp, bin, state]) mkdirSync(dir)
  copyFileSync(join(repo, 'wrangler.toml'), join(work, 'wrangler.toml'))
  writeFileSync(join(bin, 'wrangler'), `#!/bin/sh\nexec "${process.execPath}" "${fake}" "$@"\n`)
  chmodSync(join(bin, 'wrangler'), 0o755)
  writeFileSync(join(bin, 'wrangler.cmd'), `@"${process.execPath}" "${fake}" %*\r\n`)
  const toml = () => readFileSync(join(work, 'wrangler.toml'), 'utf8')
  return {
    toml,
    writeToml: (/** @type {string} */ text) => writeFileSync(join(work, 'wrangler.toml'), text),
    /** Changes the stand-in's account (what exists, what fails). */
    account(/** @type {Record<string, unknown>} */ patch) {
      const file = join(state, 'account.json')
      const current = existsSync(file) ? JSON.parse(readFileSync(file, 'utf8')) : {}
      writeFileSync(file, JSON.stringify({ ...current, ...patch }))
    },
    /** @returns {Call[]} every wrangler invocation so far */
    calls: () =>
      existsSync(join(state, 'calls.jsonl'))
        ? readFileSync(join(state, 'calls.jsonl'), 'utf8')
            .split('\n')
            .filter(Boolean)
            .map((line) => JSON.parse(line))
        : [],
    clearCalls: () => rmSync(join(state, 'calls.jsonl'), { force: true }),
    /** Every file written in the project, HOME or TMPDIR, with its text. */
    files() {
      /** @type {[string, string][]} */
      const found = []
      const walk = (/** @type {string} */ dir) => {
        for (const name of readdirSync(dir)) {
          const path = join(dir, name)
          if (statSync(path).isDirectory()) walk(path)
          else found.push([path, readFileSync(path, 'latin1')])
        }
      }
      for (const dir of [work, home, tmp]) walk(dir)
      return found
    },
    /**
     * Runs scripts/<script> as `npm run` would (cwd: the project), wrangler being the stand-in.
     * @param {string} script @param {string[]} [args] @param {{ env?: Record<string, string>, input?: string }} [options]
     * @returns {Promise<{ code: number, output: string }>}
     */
    run(script, args = [], { env = {}, input } = {}) {
      const child = spawn(process.execPath, [join(repo, 'scripts', script), ...args], {
        cwd: work,
        env: { PATH: `${bin}${delimiter}${process.env.PATH}`, HOME: home, USERPROFILE: home, TMPDIR: tmp, TEMP: tmp, TMP: tmp, FAKE_WRANGLER_DIR: state, ...env },
        stdio: [input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'],
      })
      child.stdin?.end(input)
      let output = ''
      child.stdout?.on('data', (chunk) => (output += chunk))
      child.stderr?.on('data', (chunk) => (output += chunk))
      return new Promise((resolve) => child.on('close', (code) => resolve({ code: code ?? 1, output })))
    },
    cleanup: () => rmSync(root, { recursive: true, force: true }),
  }
}

/** The first argument words of each call, e.g. "d1 create". */
export const commands = (/** @type {Call[]} */ calls) =>
  calls.map((c) =>
    c.args
      .filter((a) => !a.startsWith('-'))
      .slice(0, c.args[1] === 'migrations' ? 3 : 2)
      .join(' '),
  )
