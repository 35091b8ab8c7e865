-- The revocation feed also removes user keys. A row of kind 'key' holds the
-- removed key's thumbprint in grant_id; its position (seq) is in the same
-- order as the grants', so that one feed head covers both.
ALTER TABLE revoked_grants ADD COLUMN kind TEXT NOT NULL DEFAULT 'grant';
