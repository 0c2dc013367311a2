import { env } from 'cloudflare:test'
import { describe, expect, it } from 'vitest'
import { KNOWN_DEFECTS } from './sim/model'
import { runScenario, simulate } from './sim/run'
import { setDebug } from './sim/world'

// The whole pipeline under random event sequences and faults at every step (test/sim/):
// a short run here; `npm run simulate` runs it long (SIM_RUNS, SIM_SEED, SIM_KNOWN, SIM_ONLY).
const bindings = env as unknown as { SIM_RUNS?: string; SIM_SEED?: string; SIM_KNOWN?: string; SIM_ONLY?: string; SIM_DEBUG?: string; SIM_BUDGET_SECONDS?: string; SIM_SCENARIO?: string }
const runs = Number(bindings.SIM_RUNS || 2)
// A fixed seed in the suite (the same sequences every time); `npm run simulate` draws a new one.
const seed = bindings.SIM_SEED ? Number(bindings.SIM_SEED) : 20_261_207
const known = bindings.SIM_KNOWN === undefined || bindings.SIM_KNOWN === 'default' ? KNOWN_DEFECTS : new Set(bindings.SIM_KNOWN.split(',').filter(Boolean).map(Number))
const only = bindings.SIM_ONLY
// SIM_DEBUG=calls: every destination call (its fault, its answer) and every answer to Segment, to read one seed's sequence.
setDebug(bindings.SIM_DEBUG === 'calls')
const combinations = (
  [
    ['autopilot', 'direct'],
    ['autopilot', 'queued'],
    ['ortto', 'direct'],
    ['ortto', 'queued'],
  ] as const
).filter(([destination, mode]) => !only || [destination, mode, `${destination}-${mode}`].includes(only))

describe.each(combinations)('simulation: %s, %s mode', (destination, mode) => {
  it(
    `every event ends delivered once, rejected, dead-lettered or expired; newest wins; deletes stay (${runs} sequences)`,
    { timeout: 60_000 + runs * 5_000 + Number(bindings.SIM_BUDGET_SECONDS || 0) * 1000 },
    async () => {
      // SIM_SCENARIO: one sequence, as a report prints it (its JSON), replayed alone to read a finding.
      if (bindings.SIM_SCENARIO) {
        const replayed = await runScenario(JSON.parse(bindings.SIM_SCENARIO.replace(/__proto__:null,?/g, '')), destination, mode, known)
        console.warn(JSON.stringify(replayed, null, 1))
        expect(replayed.violations).toEqual([])
        return
      }
      const result = await simulate(destination, mode, { runs, seed, known, debug: Boolean(bindings.SIM_DEBUG), budgetMs: Number(bindings.SIM_BUDGET_SECONDS || 0) * 1000 })
      console.warn(result.report)
      expect(result.failed, result.report).toBe(false)
    },
  )
})
