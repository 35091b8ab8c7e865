-- Witness receipts (mandate-witness+jwt): a resource server's own signed
-- account of a call an agent made to it, kept beside the agents' receipts.
-- `witness` is the thumbprint of the key that signed it (NULL for a receipt
-- the agent signed), `trace` the W3C trace id the call carried. Both are
-- covered by the row's hash when either is set (activity/chain.rs).
ALTER TABLE receipts ADD COLUMN witness TEXT;
ALTER TABLE receipts ADD COLUMN trace TEXT;
