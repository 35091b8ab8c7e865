-- Approval tiers (docs/app.md, "Approval tiers"): the tier each decision
-- was signed for, and the rule that approved it when the app approved it
-- on its own; when the user last denied the requesting agent (as the
-- broker said); and the user's standing rules, each a signed
-- mandate-policy+jwt (docs/protocol.md 4.12) that requests are matched
-- against.
ALTER TABLE decisions ADD COLUMN tier TEXT NOT NULL DEFAULT 'standard'
    CHECK (tier IN ('standard', 'once', 'lease', 'rule', 'auto', 'block'));
ALTER TABLE decisions ADD COLUMN rule_id TEXT;
ALTER TABLE requests ADD COLUMN denied_before INTEGER;

CREATE TABLE rules (
    id              TEXT PRIMARY KEY,        -- the policy token's id
    principal       TEXT NOT NULL,
    token           TEXT NOT NULL,           -- the signed policy
    agent_jkt       TEXT NOT NULL,           -- the agent key it is about
    label           TEXT,
    created_at      INTEGER NOT NULL,
    expires_at      INTEGER NOT NULL,
    ended_at        INTEGER,                 -- the user ended it
    matched         INTEGER NOT NULL DEFAULT 0,
    last_matched_at INTEGER
);
CREATE INDEX rules_by_agent ON rules (principal, agent_jkt);

-- Number matching for a high-risk request: the user types the code the
-- agent shows. Wrong three times, the request is denied and flagged.
ALTER TABLE requests ADD COLUMN code_misses INTEGER NOT NULL DEFAULT 0;
ALTER TABLE requests ADD COLUMN code_matched INTEGER NOT NULL DEFAULT 0;
ALTER TABLE requests ADD COLUMN flagged INTEGER NOT NULL DEFAULT 0;
