-- What agents did on the user's behalf: their signed receipts, checked here
-- against the user's own key, never trusted on the broker's word.

-- Agents' public keys, learned with receipts. A key is stored under its own
-- RFC 7638 thumbprint, so a wrong key cannot be stored under a grantee's.
CREATE TABLE agent_keys (
    jkt           TEXT PRIMARY KEY,
    jwk           TEXT NOT NULL
);

-- The user's grants and the sub-delegations beneath them, as the broker
-- and the receipts' chains show them.
CREATE TABLE grants (
    id            TEXT PRIMARY KEY,          -- the grant's token id
    principal     TEXT NOT NULL,
    token         TEXT NOT NULL,             -- the compact grant
    parent        TEXT,                      -- its parent grant's id (prf)
    grantee       TEXT NOT NULL,             -- the agent's key thumbprint
    issued_at     INTEGER NOT NULL,
    expires_at    INTEGER NOT NULL,
    revoked_at    INTEGER                    -- when the broker revoked it
);
CREATE INDEX grants_by_principal ON grants (principal, expires_at);
CREATE INDEX grants_by_parent ON grants (parent);

-- Every receipt the broker served, verified or not: a receipt that fails
-- verification is kept and shown as failed, never dropped. Like the event
-- log, the rows are hash-chained (one chain per principal, `prev` and
-- `hash` covering every column but `reported_at`, which the event log
-- covers) and the head is signed with the user key (`receipt_heads`).
CREATE TABLE receipts (
    seq           INTEGER PRIMARY KEY,       -- the order they arrived in
    id            TEXT NOT NULL UNIQUE,      -- the receipt's token id
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
CREATE TRIGGER receipts_append_only_delete BEFORE DELETE ON receipts
BEGIN
    SELECT RAISE(ABORT, 'receipts are append-only');
END;

-- The head of each principal's receipt chain, signed with the user key.
CREATE TABLE receipt_heads (
    principal     TEXT PRIMARY KEY,
    seq           INTEGER NOT NULL,
    hash          TEXT NOT NULL,
    signature     TEXT NOT NULL
);
-- The timeline is newest first by arrival (`seq`, which each index carries
-- as the rowid), so every filter's index is read backwards and stops at a
-- page; a time range filters along the way (arrival follows time).
CREATE INDEX receipts_by_principal ON receipts (principal);
CREATE INDEX receipts_by_agent ON receipts (principal, agent);
CREATE INDEX receipts_by_grant ON receipts (principal, grant_id);
CREATE INDEX receipts_by_kind ON receipts (principal, kind);

-- Full-text search over what agents said they did and why. Contentless:
-- it holds only the index, and each row's `seq` as its rowid. The `agent`
-- column holds a search token made of the agent's id (its letters and
-- digits), so that a search by agent and words is one walk of the index;
-- the exact agent is then checked on the row.
CREATE VIRTUAL TABLE receipts_text USING fts5(summary, rationale, agent, content = '');
CREATE TRIGGER receipts_text_insert AFTER INSERT ON receipts
BEGIN
    INSERT INTO receipts_text (rowid, summary, rationale, agent)
    VALUES (new.seq, new.summary, coalesce(new.rationale, ''),
            'a' || substr(replace(replace(replace(new.agent, '-', ''), '_', ''), ':', ''), -24));
END;

-- What each grant was used for: its verified receipts by action type, kept
-- as receipts are written, so that the delegations screen reads a few rows,
-- not every receipt. Derived from `receipts`, which it can be rebuilt from.
CREATE TABLE grant_usage (
    principal     TEXT NOT NULL,
    grant_id      TEXT NOT NULL,
    kind          TEXT NOT NULL,
    actions       INTEGER NOT NULL,
    last_at       INTEGER NOT NULL,
    PRIMARY KEY (principal, grant_id, kind)
);

-- How far each user's receipt feed has been read.
CREATE TABLE feed_cursors (
    principal     TEXT PRIMARY KEY,
    receipts_after INTEGER NOT NULL
);
