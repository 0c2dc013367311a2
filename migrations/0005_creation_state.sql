-- What became of each creation, so that a name is asked of Ortto at most once a day (issue 35):
-- state 'held' (a run is creating it: the slot is held until `until`, the holding run's last
-- possible answer, so a hold left behind by a failure frees itself), 'created' (made: `id`,
-- or NULL when Ortto's answer did not say it and the account did not list it yet), 'refused'
-- (refused for good today, `note` the reason; the name '*' stands for every name of the kind:
-- the plan's cap) and 'left' (left out, `note` why: today's cap; holds no slot).
ALTER TABLE created ADD COLUMN state TEXT NOT NULL DEFAULT 'held';
ALTER TABLE created ADD COLUMN until INTEGER NOT NULL DEFAULT 0;
-- Rows from before: made, left out, or a hold whose run is long over (until 0: expired).
UPDATE created SET state = CASE WHEN id IS NOT NULL THEN 'created' WHEN note IS NOT NULL THEN 'left' ELSE 'held' END;
