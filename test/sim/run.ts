// One scenario through the whole pipeline: its steps with faults on, then the faults stop,
// Segment re-sends what it was told to retry, the queue drains, the sweep runs, parked
// events age past PARK_DAYS on a fake Date (the pipeline reads Date.now; timers stay real, so
// D1 and call timeouts still fire) and the sweep expires them; then the model checks.
import fc from 'fast-check'
import { vi } from 'vitest'
import { rows, type Loose } from '../helpers'
import { Faults } from './faults'
import { segmentEvent, type Scenario } from './events'
import { check, type Ending, type Sent, type Violation } from './model'
import { world, type Destination, type Mode, type World } from './world'

const DAY_MS = 24 * 3600 * 1000
const ROUND_MS = 16 * 60_000
/** Segment's attempts at a batch while the faults are on (it retries for hours; the rest come after). */
const ATTEMPTS_DURING_FAULTS = 2

export async function runScenario(s: Scenario, destination: Destination, mode: Mode, known: ReadonlySet<number>): Promise<{ violations: Violation[]; tolerated: Violation[] }> {
  const faults = new Faults(s.seed, s.rate)
  const w = await world(destination, mode, faults)
  const sent: Sent[] = []
  const batches: Loose[][] = []
  const unfinished = new Set<Loose[]>()
  const redriven = new Set<string>()
  let seq = 0
  let parkedBeforeExpiry: string[]

  let requests = 0
  const byId = new Map<string, Sent>()
  w.observed.onCrashedConsume = (ids) => {
    for (const id of ids) byId.get(id)?.requeued?.push(requests + 0.5)
  }
  const deliver = async (batch: Loose[], attempts: number) => {
    for (let i = 0; i < attempts; i++) {
      requests++
      for (const event of batch) byId.get(event.messageId)?.arrivals.push(requests)
      if (await w.send(batch)) return unfinished.delete(batch)
    }
    unfinished.add(batch)
  }
  for (const step of s.steps) {
    switch (step.step) {
      case 'send': {
        const batch = step.events.map((spec) => {
          const event = segmentEvent(spec, ++seq, s.emailOf)
          const one: Sent = { spec, seq, messageId: event.messageId as string, arrivals: [], requeued: [] }
          sent.push(one)
          byId.set(one.messageId, one)
          return event
        })
        batches.push(batch)
        await deliver(batch, ATTEMPTS_DURING_FAULTS)
        break
      }
      case 'resend':
        // Segment sends a batch again (a timeout on its side, an overlapping retry).
        if (batches.length) await deliver(batches[step.which % batches.length], 1)
        break
      case 'drain':
        if (mode === 'queued') await w.consumeSome(2)
        break
      case 'redeliver':
        if (mode === 'queued') w.redeliver(step.which)
        break
      case 'redrive':
        for (const row of await rows<{ message_id: string | null }>('SELECT message_id FROM dead_letters')) if (row.message_id) redriven.add(row.message_id)
        await w.redrive()
        break
      case 'sweep':
        await w.runSweep()
        if (mode === 'queued') await w.drain(4)
        break
    }
  }

  // The faults stop, and the clock moves on (Date only; timers stay real): each round is a
  // quarter of an hour later, past every lease (a consumer's 5 min + 10), pause and retry wait.
  faults.on = false
  vi.useFakeTimers({ toFake: ['Date'], shouldAdvanceTime: true })
  try {
    for (let round = 0; round < 6 && (unfinished.size || w.pending.length || w.deadQueue.length || round === 0); round++) {
      vi.setSystemTime(Date.now() + ROUND_MS)
      for (const batch of [...unfinished]) await deliver(batch, 1)
      await w.drain()
      await w.runSweep()
      await w.drain()
    }
    parkedBeforeExpiry = (await rows<{ message_id: string | null }>('SELECT message_id FROM parked')).flatMap((r) => (r.message_id ? [r.message_id] : []))
    // Past PARK_DAYS: the sweep expires what is still parked.
    vi.setSystemTime(Date.now() + 8 * DAY_MS)
    await w.runSweep()
    await w.drain()
  } finally {
    vi.useRealTimers()
  }

  const ending = await endingOf(w, destination, redriven, parkedBeforeExpiry)
  const all = check(sent, s.emailOf, ending, destination, mode)
  if (unfinished.size) all.push({ what: `${unfinished.size} batches still answered retry after the faults stopped` })
  return { violations: all.filter((v) => v.defect === undefined || !known.has(v.defect)), tolerated: all.filter((v) => v.defect !== undefined && known.has(v.defect)) }
}

async function endingOf(w: World, destination: Destination, redriven: Set<string>, parkedBeforeExpiry: string[]): Promise<Ending> {
  const lastAnswer = new Map([...w.observed.answers].map(([id, list]) => [id, list.at(-1)!]))
  const deadLetters = new Map<string, string[]>()
  for (const { message_id, reason } of await rows<{ message_id: string | null; reason: string }>('SELECT message_id, reason FROM dead_letters')) {
    if (message_id) deadLetters.set(message_id, [...(deadLetters.get(message_id) ?? []), reason])
  }
  const expired = new Set<string>()
  const loggedRejected = new Set<string>()
  for (const line of w.base.logLines()) {
    if (line.event === 'parked-event-expired' && line.messageId) expired.add(line.messageId)
    for (const n of line.notDelivered ?? []) if (line.kind === 'queue' && n.outcome === 'rejected') loggedRejected.add(n.messageId)
  }
  const entries = w.entries()
  let person: Ending['person']
  let archived: Ending['archived'] = () => false
  if (destination === 'autopilot') {
    const { autopilot } = w.base
    person = (email) => {
      const contact = autopilot.contacts.get(email)
      return contact && { first: contact.FirstName, last: contact.LastName }
    }
  } else {
    const ortto = w.standIn as unknown as { person: (field: string, value: string) => { fields: Record<string, unknown>; archived: boolean } | undefined }
    // By userId first; a track from another id carrying the same email may have merged into it and taken its external id.
    person = (email, userId) => {
      const found = ortto.person('str::ei', userId) ?? ortto.person('str::email', email)
      return found && !found.archived ? { first: found.fields['str::first'], last: found.fields['str::last'] } : undefined
    }
    archived = (email, userId) => Boolean((ortto.person('str::ei', userId) ?? ortto.person('str::email', email))?.archived)
  }
  const parkedAfter = (await rows('SELECT id FROM parked')).length
  return {
    answers: w.observed.answers,
    lastAnswer,
    deadLetters,
    expired,
    parkedBeforeExpiry,
    parkedAfter,
    loggedRejected,
    redriven,
    entries,
    enteredBeforeCrash: w.observed.enteredBeforeCrash,
    unrecorded: w.observed.unrecorded,
    person,
    archived,
  }
}

export interface SimulationResult {
  runs: number
  failed: boolean
  seed: number
  report: string
  tolerated: Map<number, number>
}

/** Runs the property: `runs` scenarios from `seed`; a failure is shrunk and reported with its seed and path. */
export async function simulate(
  destination: Destination,
  mode: Mode,
  { runs, seed, known, debug = false, budgetMs = 0 }: { runs: number; seed: number; known: ReadonlySet<number>; debug?: boolean; budgetMs?: number },
): Promise<SimulationResult> {
  const tolerated = new Map<number, number>()
  const examples = new Map<number, string>()
  let first: string | undefined
  const property = fc.asyncProperty(fc.context(), (await import('./events')).scenario, async (ctx, s) => {
    const started = Date.now()
    const result = await runScenario(s, destination, mode, known).catch((error: unknown) => {
      first ??= `${error instanceof Error ? error.message : String(error)} in ${fc.stringify(s)}`
      throw error
    })
    if (debug) console.warn(`${destination} ${mode} run: ${Date.now() - started} ms, ${result.violations.length} violations`)
    for (const v of result.tolerated) {
      tolerated.set(v.defect!, (tolerated.get(v.defect!) ?? 0) + 1)
      if (!examples.has(v.defect!)) examples.set(v.defect!, `${v.what} in ${fc.stringify(s)}`)
    }
    if (result.violations.length) {
      first ??= `${result.violations.map((v) => v.what).join('; ')} in ${fc.stringify(s)}`
      ctx.log(result.violations.map((v) => v.what).join('; '))
      throw new Error(result.violations.map((v) => `${v.what}${v.defect ? ` (defect ${v.defect})` : ''}`).join('\n'))
    }
  })
  // Shrinking re-runs whole scenarios (about a second each): off in the suite; in a long run the
  // whole check (runs and shrinking) is bounded by `budgetMs`, and what was reached is reported.
  const out = await fc.check(property, { numRuns: runs, seed, endOnFailure: budgetMs === 0, ...(budgetMs > 0 && { interruptAfterTimeLimit: budgetMs, markInterruptAsFailure: false }) })
  const lines = [`${destination} ${mode}: ${out.numRuns} runs, seed ${seed}${out.failed ? `, FAILED (path ${out.counterexamplePath})` : ', held'}`]
  if (out.failed) {
    lines.push(`  first failure, before shrinking: ${first?.slice(0, 1500)}`)
    lines.push(`  minimal scenario: ${fc.stringify(out.counterexample?.[1])}`)
    lines.push(`  ${String((out.errorInstance as Error)?.message ?? out.errorInstance).slice(0, 1500)}`)
  }
  for (const [defect, n] of [...tolerated].sort((a, b) => a[0] - b[0])) lines.push(`  known defect ${defect} shown ${n}×, e.g. ${examples.get(defect)!.slice(0, 600)}`)
  return { runs: out.numRuns, failed: out.failed, seed, report: lines.join('\n'), tolerated }
}
