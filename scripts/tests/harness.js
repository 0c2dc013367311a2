// @ts-check
// A throwaway project for the setup and deploy tests: a copy of wrangler.toml in a temporary
// directory, with its own HOME and TMPDIR (so that anything written anywhere can be searched),
// and the stand-in wrangler first on PATH: a bash client that hands its arguments, stdin and
// environment to fake-wrangler.js, served from this process (on Windows, a .cmd running it).
import { spawn } from 'node:child_process'
import { chmodSync, copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { delimiter, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { answer, SECRET_NAMES } from './fake-wrangler.js'

const repo = fileURLToPath(new URL('../..', import.meta.url))
const fake = fileURLToPath(new URL('fake-wrangler.js', import.meta.url))

/** @typedef {import('./fake-wrangler.js').Invocation} Call */

/** The client: its request is NUL-separated fields (output file, CI, log sanitizing, secrets held, argc, args, stdin's length) and stdin. */
const client = (/** @type {number} */ port) => `#!/usr/bin/env bash
export LC_ALL=C
input=$(cat; printf .); input=\${input%.}
held=''
for name in ${SECRET_NAMES.join(' ')}; do [ -n "\${!name+x}" ] && held="$held$name "; done
exec 3<>/dev/tcp/127.0.0.1/${port}
printf '%s\\0' "\${WRANGLER_OUTPUT_FILE_PATH-}" "\${CI-}" "\${WRANGLER_LOG_SANITIZE-}" "$held" "$#" "$@" "\${#input}" >&3
printf '%s' "$input" >&3
IFS= read -r code <&3
IFS= read -r length <&3
head -c "$length" <&3
cat <&3 >&2
exit "$code"
`

/** Serves fake-wrangler.js to the bash client. */
function serve(/** @type {string} */ state) {
  const server = createServer((socket) => {
    let buffer = Buffer.alloc(0)
    socket.on('data', (chunk) => {
      buffer = Buffer.concat([buffer, chunk])
      /** @type {string[]} */
      const fields = []
      let at = 0
      const field = () => {
        const end = buffer.indexOf(0, at)
        if (end < 0) return false
        fields.push(buffer.subarray(at, end).toString('utf8'))
        at = end + 1
        return true
      }
      for (let i = 0; i < 5; i++) if (!field()) return
      for (let i = 0; i < Number(fields[4]) + 1; i++) if (!field()) return
      const length = Number(fields.at(-1))
      if (buffer.length - at < length) return
      const [outputFile, CI, sanitize, held] = fields
      const call = {
        args: fields.slice(5, -1),
        stdin: buffer.subarray(at, at + length).toString('utf8'),
        secretInEnv: held.split(' ').filter(Boolean),
        env: { CI: CI || undefined, WRANGLER_LOG_SANITIZE: sanitize || undefined, WRANGLER_OUTPUT_FILE_PATH: outputFile || undefined },
      }
      const result = answer(call, state)
      socket.end(`${result.code}\n${Buffer.byteLength(result.stdout)}\n${result.stdout}${result.stderr}`)
    })
  })
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(server)))
}

export async function project() {
  const root = mkdtempSync(join(tmpdir(), 'setup-test-'))
  const [work, home, tmp, bin, state] = ['project', 'home', 'tmp', 'bin', 'state'].map((name) => join(root, name))
  for (const dir of [work, home, tmp, bin, state]) mkdirSync(dir)
  copyFileSync(join(repo, 'wrangler.toml'), join(work, 'wrangler.toml'))
  /** @type {import('node:net').Server} */
  const server = await serve(state)
  const address = server.address()
  writeFileSync(join(bin, 'wrangler'), client(typeof address === 'object' && address ? address.port : 0))
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
    cleanup: () => (server.close(), rmSync(root, { recursive: true, force: true })),
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
