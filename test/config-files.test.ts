import { expect, it } from 'vitest'
import wranglerToml from '../wrangler.toml?raw'
import { DEAD_LETTER_QUEUE, EVENTS_QUEUE, MAX_ATTEMPTS } from '../src/queue/queue'

// The code and wrangler.toml must agree, or messages would be dead-lettered by
// Queues (without a reason) before the Worker gives up on them itself.
it('dead-letters with a reason before Queues would: MAX_ATTEMPTS <= max_retries', () => {
  const maxRetries = Number(/max_retries\s*=\s*(\d+)/.exec(wranglerToml)?.[1])
  expect(MAX_ATTEMPTS).toBeLessThanOrEqual(maxRetries)
})

it('names the queues the code expects', () => {
  expect(wranglerToml).toContain(`queue = "${EVENTS_QUEUE}"`)
  expect(wranglerToml).toContain(`dead_letter_queue = "${DEAD_LETTER_QUEUE}"`)
})
