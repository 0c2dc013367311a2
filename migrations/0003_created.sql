-- What the Worker created in the destination's account when it was missing (Ortto's
-- ORTTO_CREATE: custom fields and activity definitions), and what it left out because the
-- day's cap (ORTTO_CREATE_MAX) was used up. One row per kind, name and UTC day; a row with
-- no id and no note is a creation in progress (it holds one of the day's slots).
CREATE TABLE created (
  kind  TEXT NOT NULL,          -- 'field' | 'activity'
  name  TEXT NOT NULL,
  day   TEXT NOT NULL,          -- YYYY-MM-DD (UTC): the day whose cap it counts against
  id    TEXT,                   -- the destination's id, once created
  at    INTEGER NOT NULL,
  note  TEXT,                   -- why it was left out (then it holds no slot)
  PRIMARY KEY (kind, name, day)
) WITHOUT ROWID;
CREATE INDEX created_by_day ON created (day);
