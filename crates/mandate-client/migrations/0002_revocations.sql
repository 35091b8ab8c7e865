-- Revocations the user signed. Like decisions, each row is also the outbox:
-- written with its event and the new head in one transaction, delivered
-- afterwards, retried until the broker accepts or refuses it for good.
CREATE TABLE revocations (
    token_id      TEXT PRIMARY KEY,          -- the idempotency key of its delivery
    principal     TEXT NOT NULL,
    token         TEXT NOT NULL,             -- the signed revocation
    grants        TEXT NOT NULL,             -- JSON array of the grant ids it revokes
    revoked_at    INTEGER NOT NULL,
    attempts      INTEGER NOT NULL DEFAULT 0,
    delivered_at  INTEGER,                   -- the broker accepted it
    refused_code  TEXT,                      -- the broker refused it for good
    last_error    TEXT
);
CREATE INDEX revocations_outbox ON revocations (principal, revoked_at)
    WHERE delivered_at IS NULL AND refused_code IS NULL;
