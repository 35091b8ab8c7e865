-- A witness receipt (mandate-witness+jwt) is stored beside agents' own
-- receipts: `witness` holds the thumbprint of the resource server's key
-- that signed it, and is NULL for a receipt an agent signed.
ALTER TABLE receipts ADD COLUMN witness TEXT;
