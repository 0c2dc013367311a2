// @ts-check
// `npm run simulate`: the whole-pipeline simulation (test/sim/, test/simulation.test.ts) at
// length, inside workerd like the suite. SIM_RUNS sequences per destination and mode
// (default 500), SIM_SEED to repeat a run (printed), SIM_ONLY=autopilot|ortto|direct|queued|
// autopilot-direct… for one part, SIM_KNOWN=1,5 (or empty) for the known defects of issue 36
// the model tolerates (default: test/sim/model.ts KNOWN_DEFECTS), SIM_BUDGET_SECONDS to bound
// each destination and mode's runs and shrinking (default 1800; what was reached is reported),
// SIM_DEBUG=1 for a line per sequence, SIM_DEBUG=calls for every call and answer (with SIM_RUNS=1),
// SIM_SCENARIO='<a minimal scenario as a report prints it>' with SIM_ONLY=<destination>-<mode> to
// replay one finding alone (add SIM_DEBUG=calls to read it).
import { spawnSync } from 'node:child_process'

const seed = process.env.SIM_SEED ?? String(Date.now() % 2 ** 31)
const runs = process.env.SIM_RUNS ?? '500'
console.log(`simulate: ${runs} sequences per destination and mode (SIM_RUNS), seed ${seed} (SIM_SEED)`)
const result = spawnSync('npx', ['vitest', 'run', 'test/simulation.test.ts'], {
  stdio: 'inherit',
  shell: process.platform === 'win32',
  env: { ...process.env, SIM_SEED: seed, SIM_RUNS: runs, SIM_BUDGET_SECONDS: process.env.SIM_BUDGET_SECONDS ?? '1800' },
})
console.log(`simulate: seed ${seed} — repeat with SIM_SEED=${seed} SIM_RUNS=${runs}`)
process.exit(result.status ?? 1)
