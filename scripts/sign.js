// @ts-check
// Segment's X-Signature: lowercase hex HMAC-SHA1 of the text with the shared secret. WebCrypto,
// so the same function signs in Node (npm run send, cost, bench) and in workerd (the tests).
const encoder = new TextEncoder()

/** @param {string} text @param {string} secret @returns {Promise<string>} */
export async function segmentSignature(text, secret) {
  const key = await crypto.subtle.importKey('raw', encoder.encode(secret), { name: 'HMAC', hash: 'SHA-1' }, false, ['sign'])
  const mac = await crypto.subtle.sign('HMAC', key, encoder.encode(text))
  return [...new Uint8Array(mac)].map((byte) => byte.toString(16).padStart(2, '0')).join('')
}
