//! Requests from agents, and the users' decisions on them.

use mandate_core::{Principal, Thumbprint, TokenId};

use crate::error::parse;
use crate::events::{append_event, lock_log};
use crate::grants::insert_grant_in;
use crate::{EventKind, GrantRecord, Store, StoreError, on_pool};

/// Adds one to each of two pending counters (`$1`, `$2`) unless it has
/// reached its cap (`$3`, `$4`), in one statement; returns a row naming
/// each counter that was counted.
pub(crate) const COUNT_BOTH: &str = "INSERT INTO pending_counts (counter, n) VALUES ($1, 1), ($2, 1) \
     ON CONFLICT (counter) DO UPDATE SET n = pending_counts.n + 1 \
     WHERE pending_counts.n < CASE WHEN pending_counts.counter = $1 THEN $3 ELSE $4 END \
     RETURNING counter";

/// Takes `$1` off a pending counter.
pub(crate) const UNCOUNT: &str = "UPDATE pending_counts SET n = n - $1 WHERE counter = $2";

/// The two counters a pending request counts against: its lane's for its
/// user, and its sponsor's for its user.
pub(crate) fn counters(lane: &str, sponsor: &str, principal: &str) -> [String; 2] {
    [
        format!("lane/{lane}/{principal}"),
        format!("agent/{sponsor}/{principal}"),
    ]
}

/// Takes `$n` requests of lane `$lane` and sponsor `$sponsor` off
/// `$principal`'s pending counts, inside `$tx`.
macro_rules! uncount {
    ($tx:expr, $lane:expr, $sponsor:expr, $principal:expr, $n:expr) => {
        for counter in counters($lane, $sponsor, $principal) {
            sqlx::query(UNCOUNT)
                .bind($n)
                .bind(counter)
                .execute(&mut *$tx)
                .await?;
        }
    };
}

/// Which of a user's two queues a request waits in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lane {
    /// From an agent the user approved before, or from a sub-agent that
    /// such an agent endorsed.
    Known,
    /// From any other agent.
    New,
}

impl Lane {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Lane::Known => "known",
            Lane::New => "new",
        }
    }
}

/// Where a request stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestStatus {
    /// Waiting for the user.
    Pending,
    /// The user approved it; the decision is a grant.
    Approved,
    /// The user denied it; the decision is a denial.
    Denied,
    /// It lapsed undecided.
    Expired,
}

impl RequestStatus {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            RequestStatus::Pending => "pending",
            RequestStatus::Approved => "approved",
            RequestStatus::Denied => "denied",
            RequestStatus::Expired => "expired",
        }
    }

    fn parse(s: &str) -> Result<RequestStatus, StoreError> {
        Ok(match s {
            "pending" => RequestStatus::Pending,
            "approved" => RequestStatus::Approved,
            "denied" => RequestStatus::Denied,
            "expired" => RequestStatus::Expired,
            _ => return Err(StoreError::Corrupt("request status")),
        })
    }
}

/// A request to store, already verified by the caller.
#[derive(Debug, Clone, Copy)]
pub struct NewRequest<'a> {
    /// The request token's id.
    pub id: TokenId,
    /// The requesting agent's key.
    pub agent: Thumbprint,
    /// The user it is routed to.
    pub principal: &'a Principal,
    /// The compact request token.
    pub token: &'a str,
    /// For a sub-agent's request, the chain it extends, root first.
    pub parent_chain: &'a [String],
    /// The agents' public keys along that chain, as a JSON array of OKP
    /// JWKs (`[]` for none).
    pub parent_keys: &'a str,
    /// When the broker received it.
    pub created_at: i64,
    /// When it lapses.
    pub expires_at: i64,
    /// The queue it waits in.
    pub lane: Lane,
    /// The agent whose share it takes: the requesting agent, or for a
    /// sub-agent, the agent that endorsed it.
    pub sponsor: Thumbprint,
    /// The most pending requests the principal may have in `lane`.
    pub max_pending: i64,
    /// The most pending requests `sponsor` may have for the principal.
    /// Beyond either cap the insert is [`StoreError::Full`]. Lapsed
    /// requests count until [`Store::expire_requests`] marks them.
    pub max_pending_per_agent: i64,
}

/// A stored request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestRecord {
    /// The request token's id.
    pub id: TokenId,
    /// The requesting agent's key.
    pub agent: Thumbprint,
    /// The user it is routed to.
    pub principal: Principal,
    /// The compact request token.
    pub token: String,
    /// The chain it extends, root first; empty for a first-hop request.
    pub parent_chain: Vec<String>,
    /// The agents' public keys along that chain, as a JSON array of JWKs.
    pub parent_keys: String,
    /// Where it stands.
    pub status: RequestStatus,
    /// When the broker received it.
    pub created_at: i64,
    /// When it lapses.
    pub expires_at: i64,
    /// The signed grant or denial, once decided.
    pub decision: Option<String>,
    /// When it was decided.
    pub decided_at: Option<i64>,
}

/// The columns a [`RequestRow`] is read from, for every query that reads
/// one (a macro, so that `concat!` makes each query a literal).
macro_rules! request_columns {
    () => {
        "id, agent_jkt, principal, token, parent_chain, parent_keys, status, created_at, expires_at, decision, decided_at"
    };
}

#[derive(sqlx::FromRow)]
struct RequestRow {
    id: String,
    agent_jkt: String,
    principal: String,
    token: String,
    parent_chain: String,
    parent_keys: String,
    status: String,
    created_at: i64,
    expires_at: i64,
    decision: Option<String>,
    decided_at: Option<i64>,
}

impl TryFrom<RequestRow> for RequestRecord {
    type Error = StoreError;
    fn try_from(r: RequestRow) -> Result<RequestRecord, StoreError> {
        Ok(RequestRecord {
            id: parse(&r.id, "request id")?,
            agent: parse(&r.agent_jkt, "request agent")?,
            principal: r
                .principal
                .try_into()
                .map_err(|_| StoreError::Corrupt("request principal"))?,
            token: r.token,
            // Compact tokens never contain a newline, so it separates them.
            parent_chain: r
                .parent_chain
                .split('\n')
                .filter(|t| !t.is_empty())
                .map(str::to_owned)
                .collect(),
            parent_keys: r.parent_keys,
            status: RequestStatus::parse(&r.status)?,
            created_at: r.created_at,
            expires_at: r.expires_at,
            decision: r.decision,
            decided_at: r.decided_at,
        })
    }
}

/// Why a decision found no pending request `$id`: it does not exist
/// ([`StoreError::NotFound`]) or was decided or lapsed ([`StoreError::Conflict`]).
macro_rules! not_pending {
    ($tx:expr, $id:expr) => {{
        let exists = sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM requests WHERE id = $1")
            .bind($id.to_string())
            .fetch_one(&mut *$tx)
            .await?;
        if exists == 0 {
            StoreError::NotFound
        } else {
            StoreError::Conflict
        }
    }};
}

impl Store {
    /// Stores a pending request. The same id again is [`StoreError::Conflict`]:
    /// a replayed request is refused, not stored twice.
    pub async fn insert_request(&self, r: &NewRequest<'_>) -> Result<i64, StoreError> {
        // Stored with whatever else was filed at the moment (crate::batch).
        let (job, answer) = crate::batch::Job::new(r);
        self.batch.send(job).await.map_err(|_| StoreError::Closed)?;
        answer.await.map_err(|_| StoreError::Closed)?
    }

    /// One request.
    pub async fn request(&self, id: &TokenId) -> Result<Option<RequestRecord>, StoreError> {
        let row: Option<RequestRow> = on_pool!(self, pool => {
            sqlx::query_as(concat!("SELECT ", request_columns!(), " FROM requests WHERE id = $1"))
                .bind(id.to_string())
                .fetch_optional(pool)
                .await?
        });
        row.map(RequestRecord::try_from).transpose()
    }

    /// A user's pending requests that have not lapsed at `now`, oldest first.
    pub async fn pending_requests(
        &self,
        principal: &Principal,
        now: i64,
    ) -> Result<Vec<RequestRecord>, StoreError> {
        let rows: Vec<RequestRow> = on_pool!(self, pool => {
            sqlx::query_as(concat!("SELECT ", request_columns!(), " FROM requests WHERE principal = $1 AND status = 'pending' AND expires_at > $2 ORDER BY created_at, id"))
                .bind(principal.as_str())
                .bind(now)
                .fetch_all(pool)
                .await?
        });
        rows.into_iter().map(RequestRecord::try_from).collect()
    }

    /// The requests among `ids` that wait for `principal` at `now`,
    /// oldest first: [`Store::pending_requests`], for these ids only. What
    /// is not pending, or not the principal's, or unknown, is left out.
    pub async fn pending_requests_among(
        &self,
        principal: &Principal,
        ids: &[TokenId],
        now: i64,
    ) -> Result<Vec<RequestRecord>, StoreError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let rows: Vec<RequestRow> = on_pool!(self, pool => {
            let mut query = sqlx::QueryBuilder::new(
                concat!("SELECT ", request_columns!(), " FROM requests WHERE principal = "),
            );
            query.push_bind(principal.as_str());
            query.push(" AND status = 'pending' AND expires_at > ");
            query.push_bind(now);
            query.push(" AND id IN (");
            let mut list = query.separated(", ");
            for id in ids {
                list.push_bind(id.to_string());
            }
            query.push(") ORDER BY created_at, id");
            query.build_query_as().fetch_all(pool).await?
        });
        rows.into_iter().map(RequestRecord::try_from).collect()
    }

    /// How many requests wait for a user at `now`.
    pub async fn count_pending(&self, principal: &Principal, now: i64) -> Result<i64, StoreError> {
        Ok(on_pool!(self, pool => {
            sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM requests WHERE principal = $1 AND status = 'pending' AND expires_at > $2")
                .bind(principal.as_str())
                .bind(now)
                .fetch_one(pool)
                .await?
        }))
    }

    /// Approves a pending request: stores the grant and marks the request
    /// approved, in one transaction. A request that is not pending at
    /// `now` (decided, lapsed or unknown) is [`StoreError::Conflict`] or
    /// [`StoreError::NotFound`], and nothing is stored.
    pub async fn approve_request(
        &self,
        id: &TokenId,
        grant: &GrantRecord,
        now: i64,
    ) -> Result<i64, StoreError> {
        on_pool!(self, pool => {
            let _writing = self.writing().await;
            let mut tx = pool.begin().await?;
            lock_log!(self, tx)?;
            let row: Option<(String, String, String)> = sqlx::query_as(
                "UPDATE requests SET status = 'approved', decision = $1, decided_at = $2 \
                 WHERE id = $3 AND status = 'pending' AND expires_at > $2 RETURNING principal, lane, sponsor_jkt",
            )
            .bind(&grant.token)
            .bind(now)
            .bind(id.to_string())
            .fetch_optional(&mut *tx)
            .await?;
            let Some((principal, lane, sponsor)) = row else {
                return Err(not_pending!(tx, id));
            };
            uncount!(tx, &lane, &sponsor, &principal, 1_i64);
            insert_grant_in!(self, tx, grant);
            let seq = append_event!(self, tx, EventKind::RequestDecided, Some(grant.principal.as_str()), Some(grant.grantee.to_string()), id.to_string(), now)?;
            tx.commit().await?;
            Ok(seq)
        })
    }

    /// Answers an approved request with a new grant in place of
    /// `replaces` (the compact grant it answers with now), as when the
    /// user narrows a grant to what was used: the request's decision
    /// becomes `grant`, and `grant` is stored, in one transaction.
    /// [`StoreError::Conflict`] if the request is not approved or its
    /// grant is no longer `replaces`. The caller checks that `replaces` is
    /// revoked and that `grant` is within it.
    pub async fn reissue_grant(
        &self,
        id: &TokenId,
        replaces: &str,
        grant: &GrantRecord,
        now: i64,
    ) -> Result<i64, StoreError> {
        on_pool!(self, pool => {
            let _writing = self.writing().await;
            let mut tx = pool.begin().await?;
            lock_log!(self, tx)?;
            let principal: Option<String> = sqlx::query_scalar(
                "UPDATE requests SET decision = $1, decided_at = $2 \
                 WHERE id = $3 AND status = 'approved' AND decision = $4 RETURNING principal",
            )
            .bind(&grant.token)
            .bind(now)
            .bind(id.to_string())
            .bind(replaces)
            .fetch_optional(&mut *tx)
            .await?;
            if principal.is_none() {
                return Err(not_pending!(tx, id));
            }
            insert_grant_in!(self, tx, grant);
            let seq = append_event!(self, tx, EventKind::RequestDecided, Some(grant.principal.as_str()), Some(grant.grantee.to_string()), id.to_string(), now)?;
            tx.commit().await?;
            Ok(seq)
        })
    }

    /// Denies a pending request with a signed denial; the same rules as
    /// [`Store::approve_request`].
    pub async fn deny_request(
        &self,
        id: &TokenId,
        denial: &str,
        now: i64,
    ) -> Result<i64, StoreError> {
        on_pool!(self, pool => {
            let _writing = self.writing().await;
            let mut tx = pool.begin().await?;
            lock_log!(self, tx)?;
            let row: Option<(String, String, String, String)> = sqlx::query_as(
                "UPDATE requests SET status = 'denied', decision = $1, decided_at = $2 \
                 WHERE id = $3 AND status = 'pending' AND expires_at > $2 RETURNING principal, agent_jkt, lane, sponsor_jkt",
            )
            .bind(denial)
            .bind(now)
            .bind(id.to_string())
            .fetch_optional(&mut *tx)
            .await?;
            let Some((principal, agent, lane, sponsor)) = row else {
                return Err(not_pending!(tx, id));
            };
            uncount!(tx, &lane, &sponsor, &principal, 1_i64);
            let seq = append_event!(self, tx, EventKind::RequestDecided, Some(principal), Some(agent), id.to_string(), now)?;
            tx.commit().await?;
            Ok(seq)
        })
    }

    /// Marks every pending request that lapsed by `now` as expired, with
    /// one event each; returns how many.
    pub async fn expire_requests(&self, now: i64) -> Result<u64, StoreError> {
        on_pool!(self, pool => {
            let _writing = self.writing().await;
            let mut tx = pool.begin().await?;
            lock_log!(self, tx)?;
            let lapsed: Vec<(String, String, String, String, String)> = sqlx::query_as(
                "UPDATE requests SET status = 'expired', decided_at = $1 \
                 WHERE status = 'pending' AND expires_at <= $1 RETURNING id, principal, agent_jkt, lane, sponsor_jkt",
            )
            .bind(now)
            .fetch_all(&mut *tx)
            .await?;
            let mut per_counter = std::collections::BTreeMap::<String, i64>::new();
            for (id, principal, agent, lane, sponsor) in &lapsed {
                append_event!(self, tx, EventKind::RequestExpired, Some(principal.as_str()), Some(agent.as_str()), id.as_str(), now)?;
                for counter in counters(lane, sponsor, principal) {
                    *per_counter.entry(counter).or_default() += 1;
                }
            }
            for (counter, n) in per_counter {
                sqlx::query(UNCOUNT).bind(n).bind(counter).execute(&mut *tx).await?;
            }
            tx.commit().await?;
            Ok(lapsed.len() as u64)
        })
    }
}
