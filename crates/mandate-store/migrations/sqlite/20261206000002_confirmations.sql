-- Calls an agent asks its user to confirm, one by one, for a scope whose
-- limits say `confirm` (docs/protocol.md 4.13): the call as the agent will
-- send it (method, URI with query, body), the chain it runs under, and,
-- once the user decides, the user's signed confirmation or refusal.
CREATE TABLE confirmations (
    id          TEXT PRIMARY KEY,
    principal   TEXT NOT NULL,
    agent_jkt   TEXT NOT NULL,
    chain       TEXT NOT NULL,
    keys        TEXT NOT NULL,
    method      TEXT NOT NULL,
    uri         TEXT NOT NULL,
    body        TEXT NOT NULL,
    summary     TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    expires_at  BIGINT NOT NULL,
    status      TEXT NOT NULL CHECK (status IN ('pending', 'confirmed', 'refused')),
    token       TEXT,
    reason      TEXT,
    decided_at  BIGINT
);
CREATE INDEX confirmations_pending ON confirmations (principal, status, expires_at);
