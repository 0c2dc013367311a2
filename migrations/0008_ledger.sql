-- The journey ledger, compact (issue 39): at Ortto's full rate (86 million activities a day) it
-- must fit one D1 beside the identities. A row is keyed by the first 16 bytes of the SHA-256 of
-- its messageId (a blob, not the id's text), its state a small integer (SQLite stores 0 and 1
-- in no bytes at all), and it is kept LEDGER_DAYS (default 1) rather than 7 days.
--   state 0  claimed   a journey entry is being made (note = who; another attempt may take
--                      over once lease_until has passed)
--   state 1  done      the journey was entered — or, written only when a request stopped
--                      early, the event was delivered
--   state 2  rejected  written only when a request stopped early (note = why)
CREATE TABLE ledger (
  key         BLOB PRIMARY KEY,
  state       INTEGER NOT NULL,
  at          INTEGER NOT NULL,
  lease_until INTEGER NOT NULL DEFAULT 0,
  note        TEXT
) WITHOUT ROWID;

-- The rows written before this migration stay in `messages` (text keys): SQL has no SHA-256 to
-- re-key them here, and copying them could outlast a migration's time at volume. The Worker
-- reads them beside the new table (a messageId seen before the upgrade is still entered once)
-- and the sweep empties `messages` as its rows age out; nothing new is written there.
