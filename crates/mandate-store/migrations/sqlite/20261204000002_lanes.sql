-- A fair inbox. Each pending request counts against two counters, both
-- capped: its lane's for its user ('known' for an agent the user approved
-- before, or a sub-agent that such an agent endorsed; 'new' otherwise),
-- and its sponsor's for that user (the agent's key, or for a sub-agent,
-- the delegating agent's). Counter names: 'lane/LANE/PRINCIPAL' and
-- 'agent/THUMBPRINT/PRINCIPAL'.
ALTER TABLE requests ADD COLUMN lane TEXT NOT NULL DEFAULT 'new' CHECK (lane IN ('new', 'known'));
ALTER TABLE requests ADD COLUMN sponsor_jkt TEXT NOT NULL DEFAULT '';
UPDATE requests SET sponsor_jkt = agent_jkt;

ALTER TABLE pending_counts RENAME COLUMN principal TO counter;
DELETE FROM pending_counts;
INSERT INTO pending_counts (counter, n)
    SELECT 'lane/' || lane || '/' || principal, COUNT(*) FROM requests
    WHERE status = 'pending' GROUP BY lane, principal;
INSERT INTO pending_counts (counter, n)
    SELECT 'agent/' || sponsor_jkt || '/' || principal, COUNT(*) FROM requests
    WHERE status = 'pending' GROUP BY sponsor_jkt, principal;

-- Whether a user approved an agent before.
CREATE INDEX grants_grantee ON grants (grantee_jkt, principal);
