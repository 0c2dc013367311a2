// Reading settings: valibot schemas for the shapes settings come in, and one reader that
// records a problem naming the setting instead of throwing. Used by config.ts and by each
// destination's own settings.
import * as v from 'valibot'

/** A JSON object given as a string var, or as a TOML table in wrangler.toml. */
export const StringMap = <T extends v.GenericSchema<string>>(value: T) =>
  v.pipe(
    v.union([v.pipe(v.string(), v.parseJson()), v.unknown()]),
    v.check((input) => typeof input === 'object' && input !== null && !Array.isArray(input), 'must be an object'),
    v.record(v.pipe(v.string(), v.nonEmpty()), value),
  )
const Numeric = v.union([v.number(), v.pipe(v.string(), v.trim(), v.nonEmpty(), v.toNumber())])
export const PositiveInt = v.pipe(Numeric, v.integer(), v.minValue(1))
export const WholeNumber = v.pipe(Numeric, v.integer(), v.minValue(0))
export const Share = v.pipe(Numeric, v.minValue(0), v.maxValue(1))
export const BaseUrl = v.pipe(
  v.string(),
  v.trim(),
  v.url(),
  v.check((u) => /^https?:/.test(u), 'must be an http(s) URL'),
)

export type Vars = Record<string, unknown>

/** Reads settings from `vars`, adding to `problems` (each naming its setting) what does not parse. */
export function settingsReader(vars: Vars, problems: string[]) {
  return {
    read<S extends v.GenericSchema<unknown>>(name: string, schema: S, fallback: v.InferOutput<S>, hint: string): v.InferOutput<S> {
      const raw = vars[name]
      if (raw === undefined || raw === '') return fallback
      const result = v.safeParse(schema, raw)
      if (result.success) return result.output
      problems.push(`${name} ${hint}: ${result.issues[0].message}`)
      return fallback
    },
    secret(name: string): string | undefined {
      const value = vars[name]
      return typeof value === 'string' && value.length > 0 ? value : undefined
    },
  }
}

/** The command that sets a secret of a deployment (naming its environment). */
export const secretPut = (deployEnv: string, name: string) => `npx wrangler secret put ${name}${deployEnv ? ` --env ${deployEnv}` : ''}`
