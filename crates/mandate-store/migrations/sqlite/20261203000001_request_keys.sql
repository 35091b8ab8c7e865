-- The agents' public keys presented with a sub-agent's request (a JSON
-- array of OKP JWKs), served in the user's inbox with its parent chain so
-- that the app verifies every link it shows itself.
ALTER TABLE requests ADD COLUMN parent_keys TEXT NOT NULL DEFAULT '[]';
