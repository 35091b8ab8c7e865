-- What the MCP servers behind a request's `mcp` scopes say of their tools:
-- a JSON array of tools statements ({key, statement}, docs/protocol.md
-- 4.11), as the broker served them. Each is verified each time it is
-- shown, and shown as the server's claim.
ALTER TABLE requests ADD COLUMN tools TEXT NOT NULL DEFAULT '[]';
