import { describe, expect, it } from 'vitest'
import fc from 'fast-check'
import { sha256Hex } from '../src/pipeline/sha256'

const subtle = async (text: string) => {
  const digest = new Uint8Array(await crypto.subtle.digest('SHA-256', new TextEncoder().encode(text)))
  return [...digest].map((byte) => byte.toString(16).padStart(2, '0')).join('')
}

describe('sha256Hex', () => {
  it('is the known digest of "" and "abc"', () => {
    expect(sha256Hex('')).toBe('e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855')
    expect(sha256Hex('abc')).toBe('ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad')
  })

  it('matches crypto.subtle at every length around the block edges, and on long texts', async () => {
    for (const length of [1, 54, 55, 56, 57, 63, 64, 65, 118, 119, 120, 127, 128, 129, 1000, 40_000]) {
      const text = 'u'.repeat(length)
      expect(sha256Hex(text), `length ${length}`).toBe(await subtle(text))
    }
  })

  it('matches crypto.subtle on non-ASCII text, lone surrogates included', async () => {
    for (const text of ['Zoë@exämple.com', '用户-42', '😀'.repeat(30), 'a\uD800b', '\uDC00', 'x'.repeat(20) + 'é'.repeat(20)]) {
      expect(sha256Hex(text), text).toBe(await subtle(text))
    }
    await fc.assert(fc.asyncProperty(fc.string({ unit: 'binary', maxLength: 200 }), async (text) => sha256Hex(text) === (await subtle(text))))
  })
})
