// @ts-check
// What both stand-ins share of a network: a round trip's time, a server that never answers,
// and a seeded random source for injected failures (the same run, the same failures).

/** A round trip's time; the caller may give up first (its AbortSignal), as with a real socket.
 * @param {number} ms @param {AbortSignal} signal @returns {Promise<void>} */
export function delay(ms, signal) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(resolve, ms)
    signal.addEventListener('abort', () => {
      clearTimeout(timer)
      reject(signal.reason)
    })
  })
}

/** Never answers; rejects when the caller gives up (its AbortSignal), or after 30 s as a safety net.
 * @param {Request} request @returns {Promise<Response>} */
export function hang(request) {
  return new Promise((_, reject) => {
    const stop = setTimeout(() => reject(new Error('stand-in hang without an abort signal')), 30_000)
    request.signal.addEventListener('abort', () => {
      clearTimeout(stop)
      reject(request.signal.reason)
    })
  })
}

/**
 * The answer to an injected fault, shared by both stand-ins: the first queued fault that matches
 * the call (taken off the queue) — a hang, a reset, a 3xx with a Location, a 2xx with its body —
 * or, for a 4xx/5xx, what the stand-in's own `refuse` makes of it (its error shape, its 429).
 * Undefined when no fault matches.
 * @template {{ status?: number, body?: unknown, location?: string, hang?: boolean, network?: boolean, match?: (call: any) => boolean }} F
 * @param {F[]} faults @param {unknown} call @param {Request} request @param {string} movedTo
 * @param {(fault: F, status: number) => Response} refuse
 * @returns {Promise<Response> | Response | undefined}
 */
export function injected(faults, call, request, movedTo, refuse) {
  const index = faults.findIndex((f) => !f.match || f.match(call))
  if (index < 0) return undefined
  const [fault] = faults.splice(index, 1)
  if (fault.hang) return hang(request)
  if (fault.network) throw new TypeError('Network connection lost.')
  const status = fault.status ?? 500
  if (status >= 300 && status < 400) return new Response(null, { status, headers: { Location: fault.location ?? movedTo } })
  if (status < 300) return Response.json(fault.body ?? {}, { status })
  return refuse(fault, status)
}

/** A small seeded PRNG (mulberry32). @param {number} seed */
export function mulberry32(seed) {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}
