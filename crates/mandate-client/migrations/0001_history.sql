-- The desktop app's local history. No secret is ever stored here: the user
-- key and the sign-in tokens live in the OS keyring.

-- Who signed in on this machine, and with which public key.
CREATE TABLE profiles (
    principal     TEXT PRIMARY KEY,          -- issuer#subject
    issuer        TEXT NOT NULL,
    subject       TEXT NOT NULL,
    name          TEXT,
    email         TEXT,
    user_jwk      TEXT NOT NULL,             -- the user key's public JWK
    binding       TEXT NOT NULL,             -- the broker's binding of that key
    broker_url    TEXT NOT NULL,
    signed_in_at  INTEGER NOT NULL
);

-- Every request the user was shown.
CREATE TABLE requests (
    id            TEXT PRIMARY KEY,          -- the request's token id
    principal     TEXT NOT NULL REFERENCES profiles (principal),
    request       TEXT NOT NULL,             -- the compact request
    agent_id      TEXT NOT NULL,             -- the requesting agent's key
    agent_name    TEXT NOT NULL,             -- the name it gives itself
    agent_skeleton TEXT NOT NULL,            -- that name folded for look-alikes
    parent_chain  TEXT NOT NULL,             -- JSON array of compact grants, root first
    received_at   INTEGER NOT NULL,
    expires_at    INTEGER NOT NULL,
    state         TEXT NOT NULL CHECK (state IN ('pending', 'approved', 'denied', 'expired'))
);
CREATE INDEX requests_by_state ON requests (principal, state, received_at);
CREATE INDEX requests_by_agent ON requests (principal, agent_id);
CREATE INDEX requests_by_name ON requests (principal, agent_skeleton);

-- The decisions the user signed. This is also the outbox: a row is written
-- in the same transaction as the decision itself, and is delivered to the
-- broker afterwards, under the token's id as its idempotency key, until the
-- broker answers.
CREATE TABLE decisions (
    request_id    TEXT PRIMARY KEY REFERENCES requests (id),
    principal     TEXT NOT NULL,
    kind          TEXT NOT NULL CHECK (kind IN ('grant', 'denial')),
    token         TEXT NOT NULL,
    token_id      TEXT NOT NULL UNIQUE,
    decided_at    INTEGER NOT NULL,
    attempts      INTEGER NOT NULL DEFAULT 0,
    delivered_at  INTEGER,                   -- the broker accepted it
    refused_code  TEXT,                      -- the broker refused it for good
    last_error    TEXT
);
CREATE INDEX decisions_undelivered ON decisions (principal)
    WHERE delivered_at IS NULL AND refused_code IS NULL;

-- The append-only event log, one hash chain per principal: each row's hash
-- covers the row and the hash of the row before it.
CREATE TABLE events (
    seq           INTEGER PRIMARY KEY,
    principal     TEXT NOT NULL,
    at            INTEGER NOT NULL,
    kind          TEXT NOT NULL,
    subject       TEXT NOT NULL,
    token         TEXT,
    prev          TEXT NOT NULL,
    hash          TEXT NOT NULL
);
CREATE INDEX events_by_principal ON events (principal, seq);
CREATE TRIGGER events_append_only_update BEFORE UPDATE ON events
BEGIN
    SELECT RAISE(ABORT, 'the event log is append-only');
END;
CREATE TRIGGER events_append_only_delete BEFORE DELETE ON events
BEGIN
    SELECT RAISE(ABORT, 'the event log is append-only');
END;

-- The head of each principal's chain, signed with the user key.
CREATE TABLE heads (
    principal     TEXT PRIMARY KEY,
    seq           INTEGER NOT NULL,
    hash          TEXT NOT NULL,
    signature     TEXT NOT NULL
);
