// Dead letters: events that will not be delivered without someone's help, with the
// reason. Inspect, re-drive (after fixing the cause), delete. ADMIN_TOKEN only.
import { Hono } from 'hono/tiny'
import type { Context } from 'hono'
import { HTTPException } from 'hono/http-exception'
import * as v from 'valibot'
import { adminOnly, type App } from './context'
import { deliverEvents } from '../pipeline/pipeline'
import { enqueue, EVENTS_QUEUE } from '../queue/queue'
import { deliveryRun } from '../pipeline/run'
import { checkEvent } from '../segment/schema'
import type { Sql } from '../store/sql'
import { Store } from '../store/store'
import { StoreAdmin, type DeadLetterRow } from '../store/store-admin'

const MAX_PAGE = 1000
export const REDRIVE_AT_ONCE = 100

export const deadLetters = new Hono<App>()
deadLetters.use('/dead-letters', adminOnly)
deadLetters.use('/dead-letters/*', adminOnly)

deadLetters.get('/dead-letters', async (c) => {
  const limit = Math.min(MAX_PAGE, Math.max(1, Number(c.req.query('limit')) || 100))
  const after = Math.max(0, Number(c.req.query('after')) || 0)
  const list = await new StoreAdmin(sqlOf(c)).listDeadLetters(limit, after, c.req.query('reason') || undefined)
  return c.json({
    message: 'dead letters, oldest first',
    deadLetters: list,
    ...(list.length === limit && { next: `?after=${list.at(-1)!.id}&limit=${limit}` }),
  })
})

deadLetters.post('/dead-letters/redrive', async (c) => {
  const { ids, reason } = await choice(c)
  const letters = await new StoreAdmin(sqlOf(c)).deadLettersFor({ ids, reason, limit: REDRIVE_AT_ONCE })
  if (!letters.length) return c.json({ message: 'no dead letters to re-drive', redriven: 0 })
  return c.json(await redrive(c, letters))
})

/**
 * Re-drives these dead letters (at most REDRIVE_AT_ONCE) and removes those it passed on:
 * queued mode sends them to the events queue; direct mode delivers them now, within this
 * request's call budget, and what is not delivered stays. Also the operator page's redrive.
 */
export async function redrive(c: Context<App>, letters: (DeadLetterRow & { event: unknown })[]): Promise<{ message: string; redriven: number }> {
  const sql = sqlOf(c)
  const storeAdmin = new StoreAdmin(sql)
  if (c.env.EVENTS) {
    // Sent first, then removed: a crash in between repeats a send, never loses a letter. Marked
    // before: an event that fails again before its letter is removed gets a letter of its own.
    await storeAdmin.markRedriven(
      letters.map((letter) => letter.id),
      Date.now(),
    )
    await enqueue(
      c.env.EVENTS,
      letters.map((letter) => ({ event: letter.event, at: letter.firstSeen })),
    )
    const removed = await storeAdmin.deleteDeadLetters(letters.map((letter) => letter.id))
    return { message: `re-drove ${removed} dead letters to ${EVENTS_QUEUE}`, redriven: removed }
  }
  // Direct mode: delivered now, within this request's call budget; what is not stays.
  const { config, log } = c.var
  const valid = letters.flatMap((letter) => {
    const checked = checkEvent(letter.event)
    return checked.ok ? [{ letter, event: checked.event }] : []
  })
  const outcomes = await deliverEvents(
    valid.map(({ event, letter }) => ({ event, at: letter.firstSeen })),
    deliveryRun('redrive', { config, store: new Store(sql), log }),
  )
  const done = valid.filter((_, i) => outcomes[i].status === 'delivered' || outcomes[i].status === 'skipped' || outcomes[i].status === 'deferred')
  const removed = await storeAdmin.deleteDeadLetters(done.map(({ letter }) => letter.id))
  const failed = outcomes.filter((outcome) => outcome.status === 'rejected' || outcome.status === 'retry')
  return {
    message: `delivered ${removed} of ${letters.length} dead letters${failed.length ? `; the rest stay (${failed[0].message})` : ''}`,
    redriven: removed,
  }
}

deadLetters.delete('/dead-letters', async (c) => {
  const { ids } = await choice(c)
  if (!ids) return c.json({ message: 'Give the ids to delete: {"ids": [...]}' }, 400)
  return c.json({ message: 'deleted', deleted: await new StoreAdmin(sqlOf(c)).deleteDeadLetters(ids) })
})

deadLetters.get('/dead-letters/:id', async (c) => {
  const id = Number(c.req.param('id'))
  const letter = Number.isSafeInteger(id) ? await new StoreAdmin(sqlOf(c)).deadLetter(id) : undefined
  return letter ? c.json({ message: letter.reason, ...letter }) : c.json({ message: 'No such dead letter' }, 404)
})

function sqlOf(c: Context<App>): Sql {
  if (!c.var.sql) throw new HTTPException(503, { message: 'DB (the D1 database) is not bound: see wrangler.toml' })
  return c.var.sql
}

const Choice = v.optional(
  v.object(
    {
      ids: v.optional(v.array(v.pipe(v.number('must be a number'), v.integer('must be a whole number')), 'must be an array of dead letter ids')),
      reason: v.optional(v.pipe(v.string('must be a string'), v.maxLength(300))),
    },
    'must be an object',
  ),
)

/** `{"ids": [...]}`, `{"reason": "..."}`, or nothing (the oldest). */
async function choice(c: Context<App>): Promise<{ ids?: number[]; reason?: string }> {
  const text = await c.req.text()
  let body: unknown
  try {
    body = text ? JSON.parse(text) : undefined
  } catch {
    throw new HTTPException(400, { message: 'Body is not valid JSON' })
  }
  const result = v.safeParse(Choice, body)
  if (!result.success) {
    const issue = result.issues[0]
    throw new HTTPException(400, { message: `${v.getDotPath(issue) ?? 'body'} ${issue.message}` })
  }
  return result.output ?? {}
}
