-- The agents' public keys the broker served with a sub-agent's request (a
-- JSON array of OKP JWKs). The chain behind the request is verified with
-- them, link by link, each time it is shown; a key stands only for its own
-- thumbprint, so a wrong one can make a link fail, never pass.
ALTER TABLE requests ADD COLUMN parent_keys TEXT NOT NULL DEFAULT '[]';
