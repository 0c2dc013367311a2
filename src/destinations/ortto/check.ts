// Ortto's part of the setup check (GET /health?check=ortto, `npm run doctor`): is the key
// accepted on this region's host, does every activity in ORTTO_ACTIVITIES exist, and which
// custom fields does the account have (traits of other names are not sent).
import { secretPut } from '../../settings'
import type { Check } from '../destination'
import { CallError, type CallOptions } from '../transport'
import { readAccount } from './account'
import { accountChecks } from './accounts-check'
import type { OrttoSettings } from './settings'

export async function checkOrtto(settings: OrttoSettings, options: CallOptions, deployEnv: string): Promise<{ checks: Check[]; details: Record<string, unknown> }> {
  const checks: Check[] = []
  const add = (check: string, ok: boolean, message: string) => checks.push({ check, ok, message })
  const { apiKey, baseUrl, timeoutMs } = settings
  if (!apiKey) {
    add('api key', false, `ORTTO_API_KEY is not set: ${secretPut(deployEnv, 'ORTTO_API_KEY')} (Ortto → Settings → Data sources → Custom API)`)
    return { checks, details: {} }
  }
  let account
  try {
    account = await readAccount({ baseUrl, apiKey, timeoutMs }, options, settings.accounts)
  } catch (error) {
    if (error instanceof CallError && error.kind === 'key_rejected') {
      add(
        'api key',
        false,
        `Ortto refused ORTTO_API_KEY on ${new URL(baseUrl).host}: copy it again (Ortto → Settings → Data sources → Custom API), check ORTTO_REGION (eu, au or unset, as your Ortto instance), and run ${secretPut(deployEnv, 'ORTTO_API_KEY')}`,
      )
    } else {
      add('api key', false, `Could not read the Ortto account: ${error instanceof Error ? error.message : 'unknown error'}`)
    }
    return { checks, details: {} }
  }
  add('api key', true, `Ortto accepts ORTTO_API_KEY on ${new URL(baseUrl).host}`)
  const known = new Map(account.activities.map(([id, attributes]) => [id, attributes]))
  const custom = account.activities.filter(([id]) => id.startsWith('act:cm:')).map(([id, , name]) => `${name ?? id} (${id})`)
  if (settings.create.activities)
    add('activities', true, `A track goes to the activity of its name; one that is missing is created (ORTTO_CREATE). Your account's activities: ${custom.join(', ') || 'none yet'}`)
  else
    add(
      'activities',
      true,
      `A track goes to the activity of its name, if your account has one (else only its person is updated; set ORTTO_CREATE=fields,activities to create them). Your account's activities: ${custom.join(', ') || 'none'}`,
    )
  for (const [event, id] of settings.activities) {
    if (known.has(id))
      add(
        'activities',
        true,
        `"${event}" creates activity ${id} (attributes: ${
          known
            .get(id)!
            .map((a) => a.name)
            .join(', ') || 'none'
        })`,
      )
    else
      add(
        'activities',
        false,
        `"${event}" is mapped to activity ${id}, which your Ortto account does not have (create it in Ortto, or fix ORTTO_ACTIVITIES); these tracks would be refused. Its custom activities: ${[...known.keys()].filter((a) => a.startsWith('act:cm:')).join(', ') || 'none'}`,
      )
  }
  add(
    'custom fields',
    true,
    `Your account has ${account.fields.length} custom fields (${account.fields.map((f) => f.name).join(', ') || 'none'}); ${settings.create.fields ? 'a trait of another name gets a new field (ORTTO_CREATE)' : 'a trait of another name is not sent, and each answer names it in "issues" (ORTTO_CREATE=fields creates them)'}`,
  )
  checks.push(...accountChecks(settings, account.accounts))
  return { checks, details: { activities: [...known.keys()], customFields: account.fields, ...(account.accounts && { accountFields: account.accounts.fields }) } }
}
