// SHA-256 of a text, synchronously, with @noble/hashes (audited, no dependencies): userIds and
// emails are short, and crypto.subtle.digest costs a promise and a trip through the runtime per
// text, several times the hashing itself. Checked against crypto.subtle in test/sha256.test.ts.
import { sha256 } from '@noble/hashes/sha2.js'

const HEX = Array.from({ length: 256 }, (_, byte) => byte.toString(16).padStart(2, '0'))
const encoder = new TextEncoder()

/** SHA-256 of the text's UTF-8 (lone surrogates as U+FFFD, as TextEncoder encodes them), hex. */
export function sha256Hex(text: string): string {
  const digest = sha256(encoder.encode(text))
  let hex = ''
  for (let i = 0; i < digest.length; i++) hex += HEX[digest[i]]
  return hex
}
