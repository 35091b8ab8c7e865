-- Grants the user re-issued narrower, in place of one of theirs they
-- revoked ("narrow to what was used"). Like decisions, each row is also the
-- outbox: written with its event, the revocation of the grant it replaces
-- (and that revocation's event) and the new head, in one transaction; sent
-- once the broker has accepted that revocation.
CREATE TABLE reissues (
    token_id      TEXT PRIMARY KEY,          -- the new grant's id
    principal     TEXT NOT NULL,
    request_id    TEXT NOT NULL,             -- the request both grants answer
    replaces      TEXT NOT NULL,             -- the id of the grant it replaces
    revocation_id TEXT NOT NULL REFERENCES revocations (token_id),
    token         TEXT NOT NULL,             -- the new grant
    reissued_at   INTEGER NOT NULL,
    attempts      INTEGER NOT NULL DEFAULT 0,
    delivered_at  INTEGER,                   -- the broker accepted it
    refused_code  TEXT,                      -- refused for good (or its revocation was)
    last_error    TEXT
);
CREATE INDEX reissues_outbox ON reissues (principal, reissued_at)
    WHERE delivered_at IS NULL AND refused_code IS NULL;
