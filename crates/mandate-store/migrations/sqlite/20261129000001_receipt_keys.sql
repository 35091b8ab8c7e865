-- The agents' public keys presented with each receipt (a JSON array of
-- OKP JWKs), served with the receipt so that the user's app can check its
-- signature itself.
ALTER TABLE receipts ADD COLUMN keys TEXT NOT NULL DEFAULT '[]';
