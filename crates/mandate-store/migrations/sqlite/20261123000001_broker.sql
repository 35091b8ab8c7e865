-- The broker's tables. Ids and thumbprints are base64url text; times are
-- Unix seconds. Every change the broker makes also appends to `events`,
-- in the same transaction, so followers can resume from a sequence number.
--
-- Every writing transaction first locks the one row of `log_clock` and
-- draws event numbers from it, so transactions commit in the order of
-- their numbers (and of the receipt and revocation feeds' numbers): a
-- follower reading "everything after N" can never skip a late commit.
CREATE TABLE log_clock (
    id  INTEGER PRIMARY KEY CHECK (id = 1),
    seq BIGINT NOT NULL
);
INSERT INTO log_clock (id, seq) VALUES (1, 0);

CREATE TABLE bindings (
    jkt        TEXT PRIMARY KEY,
    public_key TEXT NOT NULL,
    principal  TEXT NOT NULL,
    token      TEXT NOT NULL,
    issued_at  INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
);
CREATE INDEX bindings_principal ON bindings (principal);

CREATE TABLE requests (
    id           TEXT PRIMARY KEY,
    agent_jkt    TEXT NOT NULL,
    principal    TEXT NOT NULL,
    token        TEXT NOT NULL,
    parent_chain TEXT NOT NULL DEFAULT '',
    status       TEXT NOT NULL CHECK (status IN ('pending', 'approved', 'denied', 'expired')),
    created_at   INTEGER NOT NULL,
    expires_at   INTEGER NOT NULL,
    decision     TEXT,
    decided_at   INTEGER
);
CREATE INDEX requests_principal_status ON requests (principal, status);
CREATE INDEX requests_agent ON requests (agent_jkt);

CREATE TABLE grants (
    id          TEXT PRIMARY KEY,
    principal   TEXT NOT NULL,
    request_id  TEXT,
    parent_id   TEXT,
    issuer_jkt  TEXT NOT NULL,
    grantee_jkt TEXT NOT NULL,
    token       TEXT NOT NULL,
    expires_at  INTEGER NOT NULL,
    created_at  INTEGER NOT NULL
);
CREATE INDEX grants_principal ON grants (principal);
CREATE INDEX grants_parent ON grants (parent_id);

CREATE TABLE revocations (
    id         TEXT PRIMARY KEY,
    principal  TEXT NOT NULL,
    signer_jkt TEXT NOT NULL,
    token      TEXT NOT NULL,
    created_at INTEGER NOT NULL
);

CREATE TABLE revoked_grants (
    seq           INTEGER PRIMARY KEY AUTOINCREMENT,
    grant_id      TEXT NOT NULL UNIQUE,
    revocation_id TEXT NOT NULL REFERENCES revocations (id),
    revoked_at    INTEGER NOT NULL
);

CREATE TABLE receipts (
    seq        INTEGER PRIMARY KEY AUTOINCREMENT,
    id         TEXT NOT NULL UNIQUE,
    grant_id   TEXT NOT NULL,
    agent_jkt  TEXT NOT NULL,
    principal  TEXT NOT NULL,
    token      TEXT NOT NULL,
    created_at INTEGER NOT NULL
);
CREATE INDEX receipts_principal ON receipts (principal, seq);

CREATE TABLE idempotency (
    principal  TEXT NOT NULL,
    key        TEXT NOT NULL,
    body_hash  TEXT NOT NULL,
    response   TEXT,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (principal, key)
);

CREATE TABLE events (
    seq        BIGINT PRIMARY KEY,
    kind       TEXT NOT NULL,
    principal  TEXT,
    agent_jkt  TEXT,
    subject    TEXT NOT NULL,
    created_at INTEGER NOT NULL
);
