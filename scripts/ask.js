// @ts-check
// Asking the person at the terminal: a visible answer, or a hidden one (an API key: not echoed,
// so not on the screen, in a scrollback or a screen share). Without a terminal, a hidden answer
// is the first line piped in (`pass show ortto | npm run setup`).
import { createInterface } from 'node:readline'

/** Whether there is a person to ask. */
export const interactive = () => Boolean(process.stdin.isTTY && process.stdout.isTTY)

/** A visible answer, trimmed ('' for Enter). */
export async function ask(/** @type {string} */ question) {
  const rl = createInterface({ input: process.stdin, output: process.stdout })
  try {
    return (await new Promise((resolve) => rl.question(question, resolve))).trim()
  } finally {
    rl.close()
  }
}

/** A hidden answer, trimmed: typed with nothing echoed, or the first line of piped input. */
export async function askHidden(/** @type {string} */ question) {
  if (!process.stdin.isTTY) {
    let text = ''
    for await (const chunk of process.stdin) text += chunk
    return text.split(/\r?\n/)[0].trim()
  }
  process.stdout.write(question)
  const stdin = process.stdin
  stdin.setRawMode(true)
  stdin.resume()
  stdin.setEncoding('utf8')
  try {
    return await new Promise((resolve) => {
      let typed = ''
      const onData = (/** @type {string} */ chunk) => {
        for (const char of chunk) {
          if (char === '\r' || char === '\n' || char === '\u0004') {
            stdin.off('data', onData)
            return resolve(typed.trim())
          }
          if (char === '\u0003') {
            process.stdout.write('\n')
            process.exit(130)
          }
          if (char === '\u007f' || char === '\b') typed = typed.slice(0, -1)
          else if (char >= ' ') typed += char
        }
      }
      stdin.on('data', onData)
    })
  } finally {
    stdin.setRawMode(false)
    stdin.pause()
    process.stdout.write('\n')
  }
}
