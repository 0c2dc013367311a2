-- One dead letter per event. The insert (src/store/store.ts) looks for a letter of the same
-- messageId first: a write D1 applied but whose answer was lost is tried again, and a queue
-- message retried whole refuses its events again. A letter being re-driven (redriven_at set)
-- does not count: the event may fail again before the letter is removed.
ALTER TABLE dead_letters ADD COLUMN redriven_at INTEGER;
CREATE INDEX dead_letters_by_message ON dead_letters (message_id, last_seen);
