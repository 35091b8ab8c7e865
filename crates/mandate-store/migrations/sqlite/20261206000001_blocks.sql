-- "Deny always": a user's signed rule (a `mandate-policy+jwt` with effect
-- `deny`) that the broker refuse an agent key's requests at once. One per
-- user and agent; a newer rule replaces the older. `refusals` counts the
-- requests refused under it, for the user to see.
CREATE TABLE blocks (
    principal   TEXT NOT NULL,
    agent_jkt   TEXT NOT NULL,
    policy_id   TEXT NOT NULL,
    policy      TEXT NOT NULL,
    label       TEXT,
    created_at  BIGINT NOT NULL,
    expires_at  BIGINT NOT NULL,
    refusals    BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (principal, agent_jkt)
);

-- The cooldown after a denial looks up a user's recent denials of one agent.
CREATE INDEX requests_denied ON requests (principal, agent_jkt, decided_at)
    WHERE status = 'denied';
