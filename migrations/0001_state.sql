-- Everything the Worker remembers. Never edit a migration that has shipped: add the next file.
-- Times are milliseconds since the epoch. Tables keyed by text are WITHOUT ROWID, so a
-- new row costs one written row (a rowid table with a text key writes two).

-- userId -> email. user_hash is the SHA-256 of the userId (hex): no raw ids at rest.
-- A Segment delete leaves a tombstone: email NULL, deleted_at = the delete's timestamp.
CREATE TABLE identities (
  user_hash  TEXT PRIMARY KEY,
  email      TEXT,
  email_hash TEXT,              -- SHA-256 of the lowercased email: joins to contacts
  taught_at  INTEGER NOT NULL,  -- Segment timestamp of the event that set email: newest wins
  deleted_at INTEGER
) WITHOUT ROWID;

-- userId-only events waiting for their email (7 days, at most 100 per userId).
CREATE TABLE parked (
  id         INTEGER PRIMARY KEY,
  user_hash  TEXT NOT NULL,
  message_id TEXT,
  type       TEXT NOT NULL,
  parked_at  INTEGER NOT NULL,
  event      TEXT NOT NULL      -- the Segment event, JSON
);
CREATE INDEX parked_by_user ON parked (user_hash, id);
-- A re-sent event is parked once.
CREATE UNIQUE INDEX parked_by_message ON parked (message_id) WHERE message_id IS NOT NULL;

-- What happened to a messageId, where it matters across attempts:
--   claimed  a journey trigger is being called (note = who; another attempt may take
--            over once lease_until has passed)
--   done     the journey was entered — or, written only when a request stopped early,
--            the event was delivered
--   rejected written only when a request stopped early: Autopilot refused it (note = why)
CREATE TABLE messages (
  message_id  TEXT PRIMARY KEY,
  state       TEXT NOT NULL,
  at          INTEGER NOT NULL,
  lease_until INTEGER NOT NULL DEFAULT 0,
  note        TEXT
) WITHOUT ROWID;

-- Per contact, only once an event for it failed (and will be retried) or it was deleted:
-- which fields newer events set (field -> Segment timestamp), so that a retried older
-- event cannot overwrite them; deleted_at so that an older event cannot re-create it.
CREATE TABLE contacts (
  email_hash TEXT PRIMARY KEY,
  fields     TEXT NOT NULL DEFAULT '{}',
  deleted_at INTEGER,
  updated_at INTEGER NOT NULL
) WITHOUT ROWID;

-- Events that will not be delivered without someone's help, with the reason.
CREATE TABLE dead_letters (
  id         INTEGER PRIMARY KEY,
  reason     TEXT NOT NULL,
  attempts   INTEGER NOT NULL,
  first_seen INTEGER NOT NULL,
  last_seen  INTEGER NOT NULL,
  message_id TEXT,
  type       TEXT,
  event      TEXT NOT NULL
);
