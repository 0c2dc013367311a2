// @ts-check
// Child processes that stop with the script that started them. `npx wrangler dev` is a tree
// (wrangler's launcher → its node → workerd, esbuild), and signalling only the first leaves
// workerd holding the ports. So each child runs in a process group of its own (detached)
// and stopping it signals the whole group: on SIGINT/SIGTERM/SIGHUP (the caller's
// stopGroups) and, as a last resort, on any exit of this process (SIGKILL to what is left).
import { spawn } from 'node:child_process'

/** The process groups started here and not yet known to be gone (group id = leader's pid). */
const groups = new Set()
const grouped = process.platform !== 'win32'

/**
 * spawn() in a process group of its own.
 * @param {string} command @param {string[]} args @param {import('node:child_process').SpawnOptions} options
 */
export function spawnGroup(command, args, options) {
  const child = spawn(command, args, { ...options, detached: grouped })
  if (child.pid) groups.add(child.pid)
  return child
}

/** @param {number} pid @param {NodeJS.Signals | 0} signal @returns {boolean} whether any process of the group got it */
function signalGroup(pid, signal) {
  try {
    process.kill(grouped ? -pid : pid, signal)
    return true
  } catch (error) {
    return /** @type {NodeJS.ErrnoException} */ (error).code === 'EPERM'
  }
}

/**
 * Signals every group, waits up to graceMs for all of their processes to end, then SIGKILLs
 * what is left. Resolves when none is left.
 * @param {{ signal?: NodeJS.Signals, graceMs?: number }} [options]
 */
export async function stopGroups({ signal = 'SIGTERM', graceMs = 5000 } = {}) {
  for (const pid of groups) signalGroup(pid, signal)
  const deadline = Date.now() + graceMs
  for (;;) {
    for (const pid of groups) if (!signalGroup(pid, 0)) groups.delete(pid)
    if (!groups.size) return
    if (Date.now() >= deadline) break
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
  for (const pid of groups) signalGroup(pid, 'SIGKILL')
  groups.clear()
}

// Any exit, planned or not (an uncaught error, process.exit): nothing may outlive us.
process.on('exit', () => {
  for (const pid of groups) signalGroup(pid, 'SIGKILL')
})
