-- Proofs of possession the broker accepted, shared by every instance on
-- this database, so that a proof one instance accepted is refused by all.
-- `id` is the hex SHA-256 of the proof's partition (signing key and `ath`)
-- and its `jti`; a row may go once `keep_until` has passed.
CREATE TABLE spent_proofs (
    id         TEXT PRIMARY KEY,
    keep_until BIGINT NOT NULL
);
CREATE INDEX spent_proofs_keep_until ON spent_proofs (keep_until);
