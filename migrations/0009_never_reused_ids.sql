-- Dead letters' ids never come back (AUTOINCREMENT): the sweep's alert covers the letters above
-- the last id it posted, and without AUTOINCREMENT SQLite hands the highest id out again once
-- that letter is deleted or re-driven (new letters then went unannounced). The table is copied
-- with its rows and ids; the alert's mark is brought down to the highest id kept, so letters
-- made after this migration are announced. (Its columns and index as 0006 left them.)
CREATE TABLE dead_letters_v2 (
  id         INTEGER PRIMARY KEY AUTOINCREMENT,
  reason     TEXT NOT NULL,
  attempts   INTEGER NOT NULL,
  first_seen INTEGER NOT NULL,
  last_seen  INTEGER NOT NULL,
  message_id TEXT,
  type       TEXT,
  event      TEXT NOT NULL,
  redriven_at INTEGER
);
INSERT INTO dead_letters_v2 (id, reason, attempts, first_seen, last_seen, message_id, type, event, redriven_at)
  SELECT id, reason, attempts, first_seen, last_seen, message_id, type, event, redriven_at FROM dead_letters;
DROP TABLE dead_letters;
ALTER TABLE dead_letters_v2 RENAME TO dead_letters;
CREATE INDEX dead_letters_by_message ON dead_letters (message_id, last_seen);
UPDATE account_cache
  SET value = json_set(value, '$.deadLetterMax', min(coalesce(value ->> '$.deadLetterMax', 0), (SELECT coalesce(max(id), 0) FROM dead_letters)))
  WHERE key = 'alerts:state' AND json_valid(value);

-- Work a destination began and must finish on the re-send (an Ortto person archived whose
-- delete failed: archived people are no longer found by person/get, so their ids are kept
-- here until the delete goes through). Keyed by a hash, never a person's email or userId.
CREATE TABLE checkpoints (
  key   TEXT PRIMARY KEY,
  value TEXT NOT NULL,
  at    INTEGER NOT NULL
) WITHOUT ROWID;
