-- Each user's pending requests, counted as they are filed and decided, so
-- that the cap is checked in O(1) and atomically with the insert.
CREATE TABLE pending_counts (
    principal TEXT PRIMARY KEY,
    n         BIGINT NOT NULL CHECK (n >= 0)
);

INSERT INTO pending_counts (principal, n)
    SELECT principal, COUNT(*) FROM requests WHERE status = 'pending' GROUP BY principal;

CREATE INDEX requests_status_expiry ON requests (status, expires_at);
