-- Delivery history for the operator page and GET /admin/history.json: counters per hour,
-- added to in the write each request or queue batch already makes, kept 14 days (the sweep
-- prunes). kind: 'event' (key "<type>:<outcome>"), 'test' (the same, for the page's test
-- events), 'call' (key the answer's class), 'ms' (key a call's duration bucket, its upper
-- bound in ms), 'reason' (key a rejection's reason, emails taken out).
CREATE TABLE history (
  hour  INTEGER NOT NULL,   -- whole hours since the epoch (UTC)
  kind  TEXT NOT NULL,
  key   TEXT NOT NULL,
  n     INTEGER NOT NULL,
  PRIMARY KEY (hour, kind, key)
) WITHOUT ROWID;
