// The setup check's part for Segment `group` (npm run doctor, /admin): do Accounts answer,
// is the account's key field there (or may it be created), and did links take in this isolate.
import type { Check } from '../destination'
import type { StoredAccountFields } from './accounts-read'
import { linkNotices } from './accounts'
import { KEY_FIELD } from './group'
import type { OrttoSettings } from './settings'

export function accountChecks(settings: OrttoSettings, read: StoredAccountFields | undefined): Check[] {
  const check = (ok: boolean, message: string): Check => ({ check: 'accounts', ok, message })
  if (!settings.accounts) return [check(true, 'ORTTO_ACCOUNTS=false: group calls are answered skipped')]
  if (!read) return [check(false, 'The custom account fields were not read')]
  if (read.refused)
    return [check(false, `Ortto refused its Accounts API (${read.refused}): switch Accounts on in Ortto (Settings → General → Accounts), or set ORTTO_ACCOUNTS=false to skip group calls`)]
  const custom = read.fields.filter((f) => f.id.includes(':oc:'))
  const listed = `Your account's custom account fields (${custom.length} of 25): ${custom.map((f) => f.name).join(', ') || 'none'}`
  if (settings.accountMergeBy !== 'segment-group-id')
    return [check(true, `Accounts answer; a group's account is found by ${settings.accountMergeBy} (ORTTO_ACCOUNT_MERGE_BY). ${listed}`), ...linkNotices()]
  const key = read.fields.find((f) => f.name.trim().toLowerCase() === KEY_FIELD.toLowerCase())
  if (key)
    return [
      check(
        key.id.startsWith('str:'),
        `Accounts answer; a group's account is found by its groupId in "${KEY_FIELD}" (${key.id}${key.id.startsWith('str:') ? '' : ', which is not a text field: make it one'}). ${listed}`,
      ),
      ...linkNotices(),
    ]
  if (settings.create.fields && custom.length < 25)
    return [check(true, `Accounts answer; the account field "${KEY_FIELD}" is created with the first group (ORTTO_CREATE=fields). ${listed}`), ...linkNotices()]
  return [
    check(
      false,
      `Your Ortto account has no custom account field "${KEY_FIELD}", which groups are found by: create it in Ortto (a text account field), set ORTTO_CREATE=fields, or set ORTTO_ACCOUNT_MERGE_BY to str:o:name or str:o:website; until then groups are rejected. ${listed}`,
    ),
    ...linkNotices(),
  ]
}
