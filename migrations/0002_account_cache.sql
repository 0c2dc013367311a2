-- What the Worker learned about the Autopilot account (its custom field definitions),
-- shared by every isolate and refreshed every AUTOPILOT_FIELDS_REFRESH_SECONDS.
CREATE TABLE account_cache (
  key        TEXT PRIMARY KEY,
  value      TEXT NOT NULL,
  fetched_at INTEGER NOT NULL
) WITHOUT ROWID;
