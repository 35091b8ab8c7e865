-- A receipt is unique by (made_at, id): its own signed `iat` and its id,
-- the SHA-256 of what was signed. The same id is the same signed text, so
-- the same `iat`: this refuses what UNIQUE (id) refused. But a receipt's
-- `iat` is about now, so the index grows at its end, where an index keyed
-- by a hash alone takes each new receipt on a page of its own.
-- Rows from before take their arrival as `made_at`: the same receipt sent
-- again after this migration is stored once more (the app keeps one by id).
ALTER TABLE receipts ADD COLUMN made_at BIGINT;
UPDATE receipts SET made_at = created_at;
ALTER TABLE receipts ALTER COLUMN made_at SET NOT NULL;
ALTER TABLE receipts DROP CONSTRAINT receipts_id_key;
CREATE UNIQUE INDEX receipts_made_id ON receipts (made_at, id);
