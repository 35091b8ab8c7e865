-- A receipt is unique by (made_at, id): its own signed `iat` and its id,
-- the SHA-256 of what was signed. The same id is the same signed text, so
-- the same `iat`: this refuses what UNIQUE (id) refused. But a receipt's
-- `iat` is about now, so the index grows at its end, where an index keyed
-- by a hash alone takes each new receipt on a page of its own: a report
-- of 100 receipts wrote some 100 index pages to the log, then to the file.
-- Rows from before take their arrival as `made_at`: the same receipt sent
-- again after this migration is stored once more (the app keeps one by id).
CREATE TABLE receipts_new (
    seq        INTEGER PRIMARY KEY AUTOINCREMENT,
    id         TEXT NOT NULL,
    grant_id   TEXT NOT NULL,
    agent_jkt  TEXT NOT NULL,
    principal  TEXT NOT NULL,
    token      TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    keys       TEXT NOT NULL DEFAULT '[]',
    witness    TEXT,
    made_at    INTEGER NOT NULL
);
INSERT INTO receipts_new (seq, id, grant_id, agent_jkt, principal, token, created_at, keys, witness, made_at)
    SELECT seq, id, grant_id, agent_jkt, principal, token, created_at, keys, witness, created_at
    FROM receipts;
DROP TABLE receipts;
ALTER TABLE receipts_new RENAME TO receipts;
CREATE INDEX receipts_principal ON receipts (principal, seq);
CREATE UNIQUE INDEX receipts_made_id ON receipts (made_at, id);
