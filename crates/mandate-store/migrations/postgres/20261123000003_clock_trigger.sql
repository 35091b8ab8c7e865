-- SQLite advances the log clock with a trigger (its migration of the same
-- name); Postgres advances it in the appending statement's CTE, so there
-- is nothing to change here. Kept so that both histories have the same
-- versions.
SELECT 1;
