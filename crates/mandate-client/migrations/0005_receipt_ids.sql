-- Receipts are found by id through two small tables rather than a unique
-- index on `receipts.id`. A receipt's id is the hash of its token, so each
-- new id fell on a random page of that index: with 5,000 receipts to a
-- transaction, nearly every one of its pages was written again each time,
-- about 3.4 KiB of log per receipt at 1,000,000 receipts, and ingestion
-- spent a third of its time there (docs/benchmarks.md).
--
-- New ids go to `receipt_ids_recent`, which stays small (a few hundred
-- pages), and are moved to `receipt_ids` in key order some 65,000 at a
-- time, in the transaction that writes the receipts that fill it. Each id
-- is keyed by its first 10 characters (60 bits); a key is not unique, so
-- whoever looks an id up compares the whole id on the receipt's row.
--
-- `receipts` is rebuilt without the unique index (SQLite cannot drop the
-- index of a column constraint); rows, `seq` and the hash chain are copied
-- as they are.
DROP TRIGGER receipts_append_only_delete;
DROP TRIGGER receipts_text_insert;

CREATE TABLE receipts_rebuilt (
    seq           INTEGER PRIMARY KEY,       -- the order they arrived in
    id            TEXT NOT NULL,             -- the receipt's token id (receipt_ids)
    principal     TEXT NOT NULL,
    grant_id      TEXT NOT NULL,             -- the grant it names
    agent         TEXT NOT NULL,             -- the key that signed it (kid)
    kind          TEXT NOT NULL,             -- the action's type
    target        TEXT NOT NULL,
    summary       TEXT NOT NULL,
    rationale     TEXT,
    outcome       TEXT NOT NULL,
    cause         TEXT,                      -- the receipt or request behind it
    at            INTEGER NOT NULL,          -- the agent's iat
    received_at   INTEGER NOT NULL,          -- when the broker accepted it
    status        TEXT NOT NULL CHECK (status IN ('verified', 'failed')),
    error         TEXT,                      -- the stable code of the failure
    token         TEXT NOT NULL,             -- the compact receipt
    reported_at   INTEGER,                   -- the user reported it
    prev          TEXT NOT NULL,             -- the hash of the row before
    hash          TEXT NOT NULL
);
INSERT INTO receipts_rebuilt SELECT seq, id, principal, grant_id, agent, kind, target, summary,
    rationale, outcome, cause, at, received_at, status, error, token, reported_at, prev, hash
    FROM receipts ORDER BY seq;
DROP TABLE receipts;
ALTER TABLE receipts_rebuilt RENAME TO receipts;

CREATE TRIGGER receipts_append_only_delete BEFORE DELETE ON receipts
BEGIN
    SELECT RAISE(ABORT, 'receipts are append-only');
END;
CREATE INDEX receipts_by_principal ON receipts (principal);
CREATE INDEX receipts_by_agent ON receipts (principal, agent);
CREATE INDEX receipts_by_grant ON receipts (principal, grant_id);
CREATE INDEX receipts_by_kind ON receipts (principal, kind);
CREATE TRIGGER receipts_text_insert AFTER INSERT ON receipts
BEGIN
    INSERT INTO receipts_text (rowid, summary, rationale, agent)
    VALUES (new.seq, new.summary, coalesce(new.rationale, ''),
            'a' || substr(replace(replace(replace(new.agent, '-', ''), '_', ''), ':', ''), -24));
END;

CREATE TABLE receipt_ids (
    key           TEXT NOT NULL,             -- substr(id, 1, 10)
    seq           INTEGER NOT NULL,          -- the receipt's row
    PRIMARY KEY (key, seq)
) WITHOUT ROWID;
CREATE TABLE receipt_ids_recent (
    key           TEXT NOT NULL,
    seq           INTEGER NOT NULL,
    PRIMARY KEY (key, seq)
) WITHOUT ROWID;
INSERT INTO receipt_ids (key, seq) SELECT substr(id, 1, 10), seq FROM receipts ORDER BY 1, 2;
