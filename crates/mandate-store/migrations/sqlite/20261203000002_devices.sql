-- A user's keys as devices: the name the device gave when its key was
-- enrolled, when that was (renewals keep it), and when the broker last
-- accepted something the key signed.
ALTER TABLE bindings ADD COLUMN device TEXT NOT NULL DEFAULT '';
ALTER TABLE bindings ADD COLUMN enrolled_at BIGINT NOT NULL DEFAULT 0;
ALTER TABLE bindings ADD COLUMN last_used_at BIGINT;
UPDATE bindings SET enrolled_at = issued_at;

-- ID tokens that enrolled a key: each enrolls one, once. Kept until the
-- token expires.
CREATE TABLE spent_id_tokens (
    hash       TEXT PRIMARY KEY,
    expires_at BIGINT NOT NULL
);
