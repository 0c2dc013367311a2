// The one place that picks the destination, by DESTINATION (default: autopilot, so every
// existing deployment keeps working unchanged).
import type { Vars } from '../settings'
import { autopilot } from './autopilot'
import { ortto } from './ortto'
import type { AnyDestination } from './destination'

const DESTINATIONS: Record<string, (env: Vars, deployEnv: string) => AnyDestination> = { autopilot, ortto }

export function destinationFor(env: Vars & { DESTINATION?: string }, deployEnv: string): AnyDestination {
  const name = (env.DESTINATION ?? '').trim().toLowerCase() || 'autopilot'
  const make = Object.hasOwn(DESTINATIONS, name) ? DESTINATIONS[name] : undefined
  if (make) return make(env, deployEnv)
  const fallback = autopilot(env, deployEnv)
  fallback.problems.unshift(`DESTINATION must be one of ${Object.keys(DESTINATIONS).join(', ')} (it is "${name.slice(0, 40)}")`)
  return fallback
}
