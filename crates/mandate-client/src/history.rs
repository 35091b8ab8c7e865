//! The local history, in SQLite: the requests the user was shown, the
//! decisions they signed (which double as the outbox), and an append-only
//! event log that is tamper-evident.
//!
//! Each event's hash covers the event and the hash of the one before it
//! (one chain per principal), and the head of the chain is signed with the
//! user key. [`History::verify`] walks a chain and checks every link and
//! the head's signature. Deleting, editing or reordering a row, or cutting
//! the tail off, breaks it.
//!
//! A decision is written in one transaction with its event and the new
//! head, so after a crash it was either made (and will be delivered) or
//! never made. Nothing here holds a secret.

use std::path::Path;
use std::str::FromStr as _;
use std::time::Duration;

use mandate_core::base64url as b64;
use mandate_core::token::RequestClaims;
use mandate_core::{Policy, PublicKey, SigningKey};
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{FromRow, Row as _, SqliteConnection};

use crate::ClientError;
use crate::broker::InboxItem;

/// What signs a chain's head: the detached-signature context.
const HEAD_CONTEXT: &str = "mandate-history-head/v1";
/// What each event hash starts with.
const EVENT_DOMAIN: &[u8] = b"mandate-history-event/v1";

/// Where a request stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, sqlx::Type, ts_rs::TS)]
#[serde(rename_all = "lowercase")]
#[sqlx(rename_all = "lowercase")]
pub enum RequestState {
    /// Waiting for the user.
    Pending,
    /// The user signed a grant.
    Approved,
    /// The user signed a denial.
    Denied,
    /// It lapsed, or was decided elsewhere, before the user decided here.
    Expired,
}

impl RequestState {
    /// Its name, as stored and shown.
    pub fn as_str(self) -> &'static str {
        match self {
            RequestState::Pending => "pending",
            RequestState::Approved => "approved",
            RequestState::Denied => "denied",
            RequestState::Expired => "expired",
        }
    }
}

/// What the user signed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, sqlx::Type, ts_rs::TS)]
#[serde(rename_all = "lowercase")]
#[sqlx(rename_all = "lowercase")]
pub enum DecisionKind {
    /// A grant: the request approved, as asked or narrowed.
    Grant,
    /// A denial.
    Denial,
}

/// How many ids `receipt_ids_recent` holds before they are moved to
/// `receipt_ids`: few enough that a batch's random inserts land on a few
/// hundred pages, enough that each move writes `receipt_ids` through once
/// for tens of thousands of receipts.
pub(crate) const RECENT_IDS: i64 = 65_536;

/// The local history database.
#[derive(Debug, Clone)]
pub struct History {
    pool: SqlitePool,
    /// How many new receipt ids are held apart before they join the rest
    /// ([`RECENT_IDS`]; tests lower it).
    pub(crate) recent_ids: i64,
}

/// Who signed in on this machine (no secrets).
#[derive(Debug, Clone, Serialize, PartialEq, Eq, FromRow)]
pub struct Profile {
    /// `issuer#subject`.
    pub principal: String,
    /// The OIDC issuer.
    pub issuer: String,
    /// The OIDC subject.
    pub subject: String,
    /// The display name, if the provider gave one.
    pub name: Option<String>,
    /// The email address, if the provider gave one.
    pub email: Option<String>,
    /// The user key's public JWK (JSON).
    pub user_jwk: String,
    /// The broker's binding of the user key.
    pub binding: String,
    /// The broker the user signed in to.
    pub broker_url: String,
    /// When (unix seconds).
    pub signed_in_at: i64,
}

/// A request as kept locally.
#[derive(Debug, Clone, Serialize)]
pub struct StoredRequest {
    /// The request's token id.
    pub id: String,
    /// The compact request.
    pub request: String,
    /// The chain behind a sub-agent's request, root first, as the broker
    /// served it: verify it before showing it.
    pub parent_chain: Vec<String>,
    /// The agents' public keys the broker served with that chain.
    pub parent_keys: Vec<mandate_core::Jwk>,
    /// When the broker received it.
    pub received_at: i64,
    /// When it lapses.
    pub expires_at: i64,
    /// Where it stands.
    pub state: RequestState,
}

/// A decision the user signed, and how its delivery went.
#[derive(Debug, Clone, Serialize, FromRow, ts_rs::TS)]
pub struct StoredDecision {
    /// The request it answers.
    pub request_id: String,
    /// What was signed.
    pub kind: DecisionKind,
    /// The signed token.
    pub token: String,
    /// The token's id: the idempotency key of its delivery.
    pub token_id: String,
    /// When it was signed.
    pub decided_at: i64,
    /// How many deliveries were tried.
    pub attempts: i64,
    /// When the broker accepted it.
    pub delivered_at: Option<i64>,
    /// The broker's code, if it refused the decision for good.
    pub refused_code: Option<String>,
}

/// Something the outbox delivers: a decision, named by the request it
/// answers, or a revocation or a re-issued grant, named by its token id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outgoing<'a> {
    /// The decision on this request.
    Decision(&'a str),
    /// The revocation with this token id.
    Revocation(&'a str),
    /// The re-issued grant with this token id.
    Reissue(&'a str),
}

impl Outgoing<'_> {
    fn id(&self) -> &str {
        match self {
            Outgoing::Decision(id) | Outgoing::Revocation(id) | Outgoing::Reissue(id) => id,
        }
    }
}

/// A revocation the user signed, and how its delivery went.
#[derive(Debug, Clone, Serialize, ts_rs::TS)]
pub struct StoredRevocation {
    /// The token's id: the idempotency key of its delivery.
    pub token_id: String,
    /// The signed revocation.
    pub token: String,
    /// The grants it revokes (their sub-delegations fall with them).
    pub grants: Vec<String>,
    /// When it was signed.
    pub revoked_at: i64,
    /// How many deliveries were tried.
    pub attempts: i64,
    /// When the broker accepted it.
    pub delivered_at: Option<i64>,
    /// The broker's code, if it refused the revocation for good.
    pub refused_code: Option<String>,
}

/// One event of the log.
#[derive(Debug, Clone, Serialize, FromRow, ts_rs::TS)]
#[ts(rename = "HistoryEvent")]
pub struct Event {
    /// Its position in the database.
    pub seq: i64,
    /// When (unix seconds).
    pub at: i64,
    /// What happened: `key.enrolled`, `request.seen`, `grant.signed`,
    /// `denial.signed`, `decision.delivered`, `decision.refused`,
    /// `revocation.signed`, `revocation.delivered`, `revocation.refused`,
    /// `grant.reissued`, `reissue.delivered`, `reissue.refused`,
    /// `receipt.reported`.
    pub kind: String,
    /// What it is about: a request or token id.
    pub subject: String,
    /// The signed token, if the event carries one.
    pub token: Option<String>,
    /// The base64url hash of the event before, or of 32 zero bytes.
    pub prev: String,
    /// The base64url hash of this event.
    pub hash: String,
}

/// The outcome of [`History::verify`].
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Verified {
    /// How many events the chain holds.
    pub events: i64,
    /// The head's hash.
    pub head: String,
    /// How many receipts the receipt chain holds.
    pub receipts: i64,
}

/// A decision to record: its kind, the signed token, and its id.
#[derive(Debug, Clone, Copy)]
pub struct NewDecision<'a> {
    /// What was signed.
    pub kind: DecisionKind,
    /// The signed token.
    pub token: &'a str,
    /// Its id.
    pub token_id: &'a str,
}

impl From<sqlx::Error> for ClientError {
    fn from(e: sqlx::Error) -> ClientError {
        ClientError::History(e.to_string())
    }
}

impl History {
    /// Opens (creating if needed) the history at `path`, and migrates it.
    pub async fn open(path: &Path) -> Result<History, ClientError> {
        let options = SqliteConnectOptions::from_str("sqlite://")?
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            // A decision is durable once recorded, even across power loss.
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(5))
            // Up to 32 MiB of pages cached on the connection that writes
            // receipts, whose indexes take random inserts (SQLite's default
            // is 2 MiB); memory is taken only as pages are read.
            .pragma("cache_size", "-32768")
            // Fold the write-ahead log into the file every 256 MiB rather
            // than every 4 MiB: a page that many transactions touch (an
            // index's inner pages, the full-text index's segments) is then
            // copied once per checkpoint, not once per transaction. A large
            // backlog is ingested about 1.4 times as fast (docs/benchmarks.md).
            // Cutting the log file back after each checkpoint cost a sixth
            // of that, so it is cut back once, after a large backlog
            // (`Ingest::finish`).
            .pragma("wal_autocheckpoint", "65536");
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(options)
            .await?;
        sqlx::migrate!("./migrations")
            .run(&pool)
            .await
            .map_err(|e| ClientError::History(e.to_string()))?;
        Ok(History {
            pool,
            recent_ids: RECENT_IDS,
        })
    }

    pub(crate) fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    /// Moves new receipt ids to the main table of ids once there are `n`
    /// of them, rather than 65,536, so that tests see ids on both sides.
    #[doc(hidden)]
    pub fn with_recent_ids(mut self, n: i64) -> History {
        self.recent_ids = n.max(1);
        self
    }

    /// Closes the database.
    pub async fn close(&self) {
        self.pool.close().await;
    }

    /// Saves (or replaces) the profile of a signed-in user, and logs the
    /// key's enrollment when the key is new.
    pub async fn save_profile(
        &self,
        profile: &Profile,
        key: &SigningKey,
    ) -> Result<(), ClientError> {
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        let before: Option<String> =
            sqlx::query_scalar("SELECT user_jwk FROM profiles WHERE principal = ?")
                .bind(&profile.principal)
                .fetch_optional(&mut *tx)
                .await?;
        sqlx::query(
            "INSERT INTO profiles (principal, issuer, subject, name, email, user_jwk, binding, broker_url, signed_in_at)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
             ON CONFLICT (principal) DO UPDATE SET name = excluded.name, email = excluded.email,
               user_jwk = excluded.user_jwk, binding = excluded.binding,
               broker_url = excluded.broker_url, signed_in_at = excluded.signed_in_at",
        )
        .bind(&profile.principal)
        .bind(&profile.issuer)
        .bind(&profile.subject)
        .bind(&profile.name)
        .bind(&profile.email)
        .bind(&profile.user_jwk)
        .bind(&profile.binding)
        .bind(&profile.broker_url)
        .bind(profile.signed_in_at)
        .execute(&mut *tx)
        .await
        ?;
        if before.as_deref() != Some(profile.user_jwk.as_str()) {
            let jkt = key.thumbprint().to_string();
            append(
                &mut tx,
                key,
                &profile.principal,
                profile.signed_in_at,
                "key.enrolled",
                &jkt,
                Some(&profile.binding),
            )
            .await?;
        }
        tx.commit().await.map_err(ClientError::from)
    }

    /// Records in `principal`'s history that they removed the user key
    /// `removed` with the signed key revocation `token`.
    pub async fn record_key_removal(
        &self,
        key: &SigningKey,
        principal: &str,
        removed: &str,
        token: &str,
        now: i64,
    ) -> Result<(), ClientError> {
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        append(
            &mut tx,
            key,
            principal,
            now,
            "key.removed",
            removed,
            Some(token),
        )
        .await?;
        tx.commit().await.map_err(ClientError::from)
    }

    /// The profile of `principal`.
    pub async fn profile(&self, principal: &str) -> Result<Option<Profile>, ClientError> {
        Ok(sqlx::query_as("SELECT * FROM profiles WHERE principal = ?")
            .bind(principal)
            .fetch_optional(&self.pool)
            .await?)
    }

    /// The user who signed in last, if anyone has.
    pub async fn last_profile(&self) -> Result<Option<Profile>, ClientError> {
        Ok(
            sqlx::query_as("SELECT * FROM profiles ORDER BY signed_in_at DESC LIMIT 1")
                .fetch_optional(&self.pool)
                .await?,
        )
    }

    /// Records a request from the inbox, once. Returns whether it was new.
    pub async fn record_request(
        &self,
        key: &SigningKey,
        principal: &str,
        item: &InboxItem,
        now: i64,
    ) -> Result<bool, ClientError> {
        // Only a request that verifies is kept (and ever shown).
        let asked = RequestClaims::verify(&item.request, &Policy::default(), item.received_at)?;
        let agent_id = asked.signer().agent_id().to_string();
        let agent_name = asked.claims().agent.name.clone();
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        let chain = serde_json::to_string(&item.parent_chain)
            .map_err(|e| ClientError::History(e.to_string()))?;
        let keys =
            serde_json::to_string(&item.keys).map_err(|e| ClientError::History(e.to_string()))?;
        let id = item.id.to_string();
        let inserted = sqlx::query(
            "INSERT INTO requests (id, principal, request, agent_id, agent_name, agent_skeleton,
               parent_chain, parent_keys, received_at, expires_at, state)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'pending') ON CONFLICT (id) DO NOTHING",
        )
        .bind(&id)
        .bind(principal)
        .bind(&item.request)
        .bind(&agent_id)
        .bind(&agent_name)
        .bind(crate::names::skeleton(&agent_name))
        .bind(&chain)
        .bind(&keys)
        .bind(item.received_at)
        .bind(item.expires_at)
        .execute(&mut *tx)
        .await?
        .rows_affected()
            == 1;
        if inserted {
            append(
                &mut tx,
                key,
                principal,
                now,
                "request.seen",
                &id,
                Some(&item.request),
            )
            .await?;
        }
        tx.commit().await?;
        Ok(inserted)
    }

    /// The ids of every request of `principal` the history holds.
    pub async fn request_ids(
        &self,
        principal: &str,
    ) -> Result<std::collections::HashSet<String>, ClientError> {
        let ids: Vec<String> = sqlx::query_scalar("SELECT id FROM requests WHERE principal = ?")
            .bind(principal)
            .fetch_all(&self.pool)
            .await?;
        Ok(ids.into_iter().collect())
    }

    /// The requests of `principal`, newest first; only those in `state`
    /// if given.
    pub async fn requests(
        &self,
        principal: &str,
        state: Option<RequestState>,
    ) -> Result<Vec<StoredRequest>, ClientError> {
        let rows = sqlx::query(
            "SELECT * FROM requests WHERE principal = ? AND (? IS NULL OR state = ?)
             ORDER BY received_at DESC, id",
        )
        .bind(principal)
        .bind(state)
        .bind(state)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(request_of).collect()
    }

    /// One request of `principal`.
    pub async fn request(
        &self,
        principal: &str,
        id: &str,
    ) -> Result<Option<StoredRequest>, ClientError> {
        let row = sqlx::query("SELECT * FROM requests WHERE principal = ? AND id = ?")
            .bind(principal)
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(request_of).transpose()
    }

    /// What the history knows of the agent behind request `id`: whether
    /// its key asked before, and, for a key that did not, whether another
    /// key used a look-alike name before (a known name with a new key).
    pub async fn agent_record(
        &self,
        principal: &str,
        id: &str,
    ) -> Result<(bool, bool), ClientError> {
        let row = sqlx::query(
            "SELECT
               EXISTS (SELECT 1 FROM requests o WHERE o.principal = r.principal
                       AND o.agent_id = r.agent_id AND o.received_at <= r.received_at AND o.id <> r.id),
               EXISTS (SELECT 1 FROM requests o WHERE o.principal = r.principal
                       AND o.agent_skeleton = r.agent_skeleton AND o.agent_id <> r.agent_id
                       AND o.received_at <= r.received_at)
             FROM requests r WHERE r.principal = ? AND r.id = ?",
        )
        .bind(principal)
        .bind(id)
        .fetch_optional(&self.pool)
        .await
        ?
        .ok_or(ClientError::NotFound)?;
        let known = row.try_get::<bool, _>(0)?;
        let name_taken = row.try_get::<bool, _>(1)?;
        Ok((known, name_taken && !known))
    }

    /// The names agents gave themselves, by agent id (the latest name of
    /// each).
    pub async fn agent_names(
        &self,
        principal: &str,
    ) -> Result<std::collections::BTreeMap<String, String>, ClientError> {
        let rows = sqlx::query(
            "SELECT agent_id, agent_name FROM requests WHERE principal = ? ORDER BY received_at",
        )
        .bind(principal)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| Ok((r.try_get("agent_id")?, r.try_get("agent_name")?)))
            .collect()
    }

    /// Marks the pending requests of `principal` that the broker no longer
    /// lists as pending (they lapsed, or were decided on another device)
    /// expired, keeping those in `still_pending`. Returns how many.
    pub async fn expire_missing(
        &self,
        principal: &str,
        still_pending: &[String],
    ) -> Result<usize, ClientError> {
        let mut expired = 0;
        for r in self
            .requests(principal, Some(RequestState::Pending))
            .await?
        {
            if !still_pending.contains(&r.id) {
                expired += sqlx::query(
                    "UPDATE requests SET state = 'expired' WHERE id = ? AND state = 'pending'",
                )
                .bind(&r.id)
                .execute(&self.pool)
                .await?
                .rows_affected() as usize;
            }
        }
        Ok(expired)
    }

    /// Records a signed decision on the pending request `request_id`, with
    /// its event and the new head, in one transaction. From then on it is
    /// in the outbox. A request already decided, or not pending, is
    /// refused.
    pub async fn record_decision(
        &self,
        key: &SigningKey,
        principal: &str,
        request_id: &str,
        decision: NewDecision<'_>,
        now: i64,
    ) -> Result<(), ClientError> {
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        let state = match decision.kind {
            DecisionKind::Grant => RequestState::Approved,
            DecisionKind::Denial => RequestState::Denied,
        };
        let updated = sqlx::query(
            "UPDATE requests SET state = ? WHERE id = ? AND principal = ? AND state = 'pending'",
        )
        .bind(state)
        .bind(request_id)
        .bind(principal)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if updated != 1 {
            return Err(ClientError::Invalid(
                "this request is no longer pending".into(),
            ));
        }
        sqlx::query(
            "INSERT INTO decisions (request_id, principal, kind, token, token_id, decided_at)
             VALUES (?, ?, ?, ?, ?, ?)",
        )
        .bind(request_id)
        .bind(principal)
        .bind(decision.kind)
        .bind(decision.token)
        .bind(decision.token_id)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        let kind = match decision.kind {
            DecisionKind::Grant => "grant.signed",
            DecisionKind::Denial => "denial.signed",
        };
        append(
            &mut tx,
            key,
            principal,
            now,
            kind,
            request_id,
            Some(decision.token),
        )
        .await?;
        tx.commit().await.map_err(ClientError::from)
    }

    /// The decision on `request_id`, if one was made.
    pub async fn decision(&self, request_id: &str) -> Result<Option<StoredDecision>, ClientError> {
        Ok(
            sqlx::query_as("SELECT * FROM decisions WHERE request_id = ?")
                .bind(request_id)
                .fetch_optional(&self.pool)
                .await?,
        )
    }

    /// The decisions of `principal` not yet delivered nor refused: the
    /// outbox, oldest first.
    pub async fn outbox(&self, principal: &str) -> Result<Vec<StoredDecision>, ClientError> {
        Ok(sqlx::query_as(
            "SELECT * FROM decisions WHERE principal = ? AND delivered_at IS NULL
             AND refused_code IS NULL ORDER BY decided_at, request_id",
        )
        .bind(principal)
        .fetch_all(&self.pool)
        .await?)
    }

    /// Counts one delivery attempt of `sent`, and what went wrong if it
    /// failed.
    pub async fn note_attempt(
        &self,
        sent: Outgoing<'_>,
        error: Option<&str>,
    ) -> Result<(), ClientError> {
        let sql = match sent {
            Outgoing::Decision(_) => {
                "UPDATE decisions SET attempts = attempts + 1, last_error = ? WHERE request_id = ?"
            }
            Outgoing::Revocation(_) => {
                "UPDATE revocations SET attempts = attempts + 1, last_error = ? WHERE token_id = ?"
            }
            Outgoing::Reissue(_) => {
                "UPDATE reissues SET attempts = attempts + 1, last_error = ? WHERE token_id = ?"
            }
        };
        sqlx::query(sql)
            .bind(error)
            .bind(sent.id())
            .execute(&self.pool)
            .await
            .map_err(ClientError::from)
            .map(drop)
    }

    /// Marks `sent` delivered (the broker accepted it), or refused for good
    /// with the broker's `code`, and logs it.
    pub async fn settle(
        &self,
        key: &SigningKey,
        principal: &str,
        sent: Outgoing<'_>,
        refused: Option<&str>,
        now: i64,
    ) -> Result<(), ClientError> {
        let (sql, delivered, refused_kind) = match sent {
            Outgoing::Decision(_) => (
                "UPDATE decisions SET delivered_at = CASE WHEN ? IS NULL THEN ? END, refused_code = ?
                 WHERE request_id = ? AND principal = ? AND delivered_at IS NULL AND refused_code IS NULL",
                "decision.delivered",
                "decision.refused",
            ),
            Outgoing::Revocation(_) => (
                "UPDATE revocations SET delivered_at = CASE WHEN ? IS NULL THEN ? END, refused_code = ?
                 WHERE token_id = ? AND principal = ? AND delivered_at IS NULL AND refused_code IS NULL",
                "revocation.delivered",
                "revocation.refused",
            ),
            Outgoing::Reissue(_) => (
                "UPDATE reissues SET delivered_at = CASE WHEN ? IS NULL THEN ? END, refused_code = ?
                 WHERE token_id = ? AND principal = ? AND delivered_at IS NULL AND refused_code IS NULL",
                "reissue.delivered",
                "reissue.refused",
            ),
        };
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        let updated = sqlx::query(sql)
            .bind(refused)
            .bind(now)
            .bind(refused)
            .bind(sent.id())
            .bind(principal)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if updated == 1 {
            let kind = if refused.is_some() {
                refused_kind
            } else {
                delivered
            };
            append(&mut tx, key, principal, now, kind, sent.id(), None).await?;
        }
        tx.commit().await.map_err(ClientError::from)
    }

    /// Records a revocation the user signed, of `grants`, with its event
    /// and the new head, in one transaction. From then on it is in the
    /// outbox.
    pub async fn record_revocation(
        &self,
        key: &SigningKey,
        principal: &str,
        revocation: &str,
        grants: &[String],
        now: i64,
    ) -> Result<StoredRevocation, ClientError> {
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        let stored = insert_revocation(&mut tx, key, principal, revocation, grants, now).await?;
        tx.commit().await?;
        Ok(stored)
    }

    /// The revocation with `token_id`, if one was recorded.
    pub async fn revocation(
        &self,
        token_id: &str,
    ) -> Result<Option<StoredRevocation>, ClientError> {
        sqlx::query("SELECT * FROM revocations WHERE token_id = ?")
            .bind(token_id)
            .fetch_optional(&self.pool)
            .await?
            .as_ref()
            .map(revocation_of)
            .transpose()
    }

    /// The revocations of `principal` not yet delivered nor refused: the
    /// outbox, oldest first.
    pub async fn revocation_outbox(
        &self,
        principal: &str,
    ) -> Result<Vec<StoredRevocation>, ClientError> {
        let rows = sqlx::query(
            "SELECT * FROM revocations WHERE principal = ? AND delivered_at IS NULL
             AND refused_code IS NULL ORDER BY revoked_at, token_id",
        )
        .bind(principal)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(revocation_of).collect()
    }

    /// The decisions of `principal`, newest first.
    pub async fn decisions(&self, principal: &str) -> Result<Vec<StoredDecision>, ClientError> {
        Ok(sqlx::query_as(
            "SELECT * FROM decisions WHERE principal = ? ORDER BY decided_at DESC, request_id",
        )
        .bind(principal)
        .fetch_all(&self.pool)
        .await?)
    }

    /// The event log of `principal`, oldest first.
    pub async fn events(&self, principal: &str) -> Result<Vec<Event>, ClientError> {
        Ok(sqlx::query_as(
            "SELECT seq, at, kind, subject, token, prev, hash FROM events WHERE principal = ? ORDER BY seq",
        )
        .bind(principal)
        .fetch_all(&self.pool)
        .await?)
    }

    /// Checks the whole chain of `principal`: every event's hash and link,
    /// and the head's signature under `user_key`. The first break is an
    /// error naming the event.
    pub async fn verify(
        &self,
        principal: &str,
        user_key: &PublicKey,
    ) -> Result<Verified, ClientError> {
        let events = self.events(principal).await?;
        let mut prev = [0u8; 32];
        for e in &events {
            let broken = |what: &str| ClientError::Tampered(format!("event {}: {what}", e.seq));
            if decode_hash(&e.prev) != Some(prev) {
                return Err(broken("does not follow the event before it"));
            }
            let hash = event_hash(
                &prev,
                e.seq,
                principal,
                e.at,
                &e.kind,
                &e.subject,
                e.token.as_deref(),
            );
            if decode_hash(&e.hash) != Some(hash) {
                return Err(broken("its content does not match its hash"));
            }
            prev = hash;
        }
        let head = sqlx::query("SELECT seq, hash, signature FROM heads WHERE principal = ?")
            .bind(principal)
            .fetch_optional(&self.pool)
            .await?;
        let Some(head) = head else {
            return if events.is_empty() {
                Ok(Verified {
                    events: 0,
                    head: b64::encode(prev),
                    receipts: self.verify_receipts(principal, user_key).await?,
                })
            } else {
                Err(ClientError::Tampered("the signed head is missing".into()))
            };
        };
        let seq: i64 = head.try_get("seq")?;
        let hash: String = head.try_get("hash")?;
        let signature: String = head.try_get("signature")?;
        let last = events.last().map_or(0, |e| e.seq);
        if seq != last || decode_hash(&hash) != Some(prev) {
            return Err(ClientError::Tampered(
                "the signed head is not the last event (events were added or cut off)".into(),
            ));
        }
        let signature: [u8; 64] = b64::decode(&signature)
            .and_then(|s| s.try_into().ok())
            .ok_or_else(|| ClientError::Tampered("the head's signature is malformed".into()))?;
        user_key
            .verify_detached(
                HEAD_CONTEXT,
                &head_message(principal, seq, &prev),
                &signature,
            )
            .map_err(|_| ClientError::Tampered("the head's signature does not verify".into()))?;
        self.check_rows(principal, &events).await?;
        let receipts = self.verify_receipts(principal, user_key).await?;
        Ok(Verified {
            events: events.len() as i64,
            head: hash,
            receipts,
        })
    }

    /// Checks the rows the screens read against the verified event log,
    /// both ways: each event that records a request, decision, revocation
    /// or report must find its row holding the very token it recorded (in
    /// log order, so the first mismatch named is the earliest), and no
    /// such row may exist without its event.
    async fn check_rows(&self, principal: &str, events: &[Event]) -> Result<(), ClientError> {
        let table = |sql: &'static str| async move {
            let rows: Vec<(String, String)> = sqlx::query_as(sql)
                .bind(principal)
                .fetch_all(&self.pool)
                .await?;
            Ok::<_, ClientError>(
                rows.into_iter()
                    .collect::<std::collections::HashMap<_, _>>(),
            )
        };
        let mut requests = table("SELECT id, request FROM requests WHERE principal = ?").await?;
        let mut decisions =
            table("SELECT request_id, token FROM decisions WHERE principal = ?").await?;
        let mut revocations =
            table("SELECT token_id, token FROM revocations WHERE principal = ?").await?;
        let mut reissues =
            table("SELECT token_id, token FROM reissues WHERE principal = ?").await?;
        let mut reported =
            table("SELECT id, '' FROM receipts WHERE principal = ? AND reported_at IS NOT NULL")
                .await?;
        for e in events {
            let (rows, what) = match e.kind.as_str() {
                "request.seen" => (&mut requests, "request"),
                "grant.signed" | "denial.signed" => (&mut decisions, "decision"),
                "revocation.signed" => (&mut revocations, "revocation"),
                "grant.reissued" => (&mut reissues, "re-issued grant"),
                "receipt.reported" => {
                    if reported.remove(&e.subject).is_none() {
                        return Err(ClientError::Tampered(format!(
                            "event {} reports receipt {}, which is not marked reported",
                            e.seq, e.subject
                        )));
                    }
                    continue;
                }
                _ => continue,
            };
            match rows.remove(&e.subject) {
                Some(token) if Some(token.as_str()) == e.token.as_deref() => {}
                Some(_) => {
                    return Err(ClientError::Tampered(format!(
                        "{what} {}: its row was altered (event {} recorded another token)",
                        e.subject, e.seq
                    )));
                }
                None => {
                    return Err(ClientError::Tampered(format!(
                        "{what} {}: its row is missing (event {} recorded it)",
                        e.subject, e.seq
                    )));
                }
            }
        }
        for (rows, what) in [
            (requests, "request"),
            (decisions, "decision"),
            (revocations, "revocation"),
            (reissues, "re-issued grant"),
        ] {
            if let Some(id) = rows.keys().min() {
                return Err(ClientError::Tampered(format!(
                    "{what} {id}: a row no event recorded"
                )));
            }
        }
        if let Some(id) = reported.keys().min() {
            return Err(ClientError::Tampered(format!(
                "receipt {id}: marked reported, but no report was recorded"
            )));
        }
        Ok(())
    }

    /// Opens an existing history to read it only: no migration, no write.
    pub async fn open_read_only(path: &Path) -> Result<History, ClientError> {
        if !path.is_file() {
            return Err(ClientError::History(format!(
                "{} is not a file",
                path.display()
            )));
        }
        let options = SqliteConnectOptions::from_str("sqlite://")?
            .filename(path)
            .read_only(true);
        let pool = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(options)
            .await?;
        Ok(History {
            pool,
            recent_ids: RECENT_IDS,
        })
    }

    /// Every profile the history holds.
    pub async fn profiles(&self) -> Result<Vec<Profile>, ClientError> {
        Ok(
            sqlx::query_as("SELECT * FROM profiles ORDER BY signed_in_at")
                .fetch_all(&self.pool)
                .await?,
        )
    }
}

/// Appends an event to `principal`'s chain and signs the new head, inside
/// the caller's transaction.
pub(crate) async fn append(
    tx: &mut SqliteConnection,
    key: &SigningKey,
    principal: &str,
    at: i64,
    kind: &str,
    subject: &str,
    token: Option<&str>,
) -> Result<(), ClientError> {
    let last: Option<String> =
        sqlx::query_scalar("SELECT hash FROM events WHERE principal = ? ORDER BY seq DESC LIMIT 1")
            .bind(principal)
            .fetch_optional(&mut *tx)
            .await?;
    let prev = match last {
        Some(h) => decode_hash(&h)
            .ok_or_else(|| ClientError::Tampered("the last event's hash is malformed".into()))?,
        None => [0u8; 32],
    };
    let seq: i64 = sqlx::query_scalar("SELECT coalesce(max(seq), 0) + 1 FROM events")
        .fetch_one(&mut *tx)
        .await?;
    let hash = event_hash(&prev, seq, principal, at, kind, subject, token);
    let hash_text = b64::encode(hash);
    sqlx::query(
        "INSERT INTO events (seq, principal, at, kind, subject, token, prev, hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(seq)
    .bind(principal)
    .bind(at)
    .bind(kind)
    .bind(subject)
    .bind(token)
    .bind(b64::encode(prev))
    .bind(&hash_text)
    .execute(&mut *tx)
    .await
    ?;
    let signature = key.sign_detached(HEAD_CONTEXT, &head_message(principal, seq, &hash));
    sqlx::query(
        "INSERT INTO heads (principal, seq, hash, signature) VALUES (?, ?, ?, ?)
         ON CONFLICT (principal) DO UPDATE SET seq = excluded.seq, hash = excluded.hash, signature = excluded.signature",
    )
    .bind(principal)
    .bind(seq)
    .bind(&hash_text)
    .bind(b64::encode(signature))
    .execute(&mut *tx)
    .await
    .map_err(ClientError::from)
    .map(drop)
}

/// The hash of one event: SHA-256 over a domain tag, the previous hash,
/// the sequence number and time (8 bytes each, big endian), and each text
/// field with a 4-byte length (the token with a presence byte first).
fn event_hash(
    prev: &[u8; 32],
    seq: i64,
    principal: &str,
    at: i64,
    kind: &str,
    subject: &str,
    token: Option<&str>,
) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(EVENT_DOMAIN);
    h.update(prev);
    h.update(seq.to_be_bytes());
    h.update(at.to_be_bytes());
    for field in [principal, kind, subject] {
        field_into(&mut h, field);
    }
    match token {
        Some(t) => {
            h.update([1]);
            field_into(&mut h, t);
        }
        None => h.update([0]),
    }
    h.finalize().into()
}

pub(crate) fn field_into(h: &mut Sha256, field: &str) {
    h.update(u32::try_from(field.len()).unwrap_or(u32::MAX).to_be_bytes());
    h.update(field.as_bytes());
}

/// What the head's signature covers: the principal, the head's sequence
/// number and its hash.
pub(crate) fn head_message(principal: &str, seq: i64, hash: &[u8; 32]) -> Vec<u8> {
    let mut m = Vec::with_capacity(principal.len() + 44);
    m.extend_from_slice(
        &u32::try_from(principal.len())
            .unwrap_or(u32::MAX)
            .to_be_bytes(),
    );
    m.extend_from_slice(principal.as_bytes());
    m.extend_from_slice(&seq.to_be_bytes());
    m.extend_from_slice(hash);
    m
}

pub(crate) fn decode_hash(text: &str) -> Option<[u8; 32]> {
    b64::decode(text)?.try_into().ok()
}

/// Records a revocation and its event in `tx` (see
/// [`History::record_revocation`]).
pub(crate) async fn insert_revocation(
    tx: &mut SqliteConnection,
    key: &SigningKey,
    principal: &str,
    revocation: &str,
    grants: &[String],
    now: i64,
) -> Result<StoredRevocation, ClientError> {
    let token_id = mandate_core::TokenId::of(revocation).to_string();
    let grants_json =
        serde_json::to_string(grants).map_err(|e| ClientError::History(e.to_string()))?;
    sqlx::query(
        "INSERT INTO revocations (token_id, principal, token, grants, revoked_at)
         VALUES (?, ?, ?, ?, ?)",
    )
    .bind(&token_id)
    .bind(principal)
    .bind(revocation)
    .bind(&grants_json)
    .bind(now)
    .execute(&mut *tx)
    .await?;
    append(
        tx,
        key,
        principal,
        now,
        "revocation.signed",
        &token_id,
        Some(revocation),
    )
    .await?;
    Ok(StoredRevocation {
        token_id,
        token: revocation.to_owned(),
        grants: grants.to_vec(),
        revoked_at: now,
        attempts: 0,
        delivered_at: None,
        refused_code: None,
    })
}

fn revocation_of(r: &sqlx::sqlite::SqliteRow) -> Result<StoredRevocation, ClientError> {
    let grants: String = r.try_get("grants")?;
    Ok(StoredRevocation {
        token_id: r.try_get("token_id")?,
        token: r.try_get("token")?,
        grants: serde_json::from_str(&grants).map_err(|e| ClientError::History(e.to_string()))?,
        revoked_at: r.try_get("revoked_at")?,
        attempts: r.try_get("attempts")?,
        delivered_at: r.try_get("delivered_at")?,
        refused_code: r.try_get("refused_code")?,
    })
}

fn request_of(r: &sqlx::sqlite::SqliteRow) -> Result<StoredRequest, ClientError> {
    let chain: String = r.try_get("parent_chain")?;
    let keys: String = r.try_get("parent_keys")?;
    Ok(StoredRequest {
        id: r.try_get("id")?,
        request: r.try_get("request")?,
        parent_chain: serde_json::from_str(&chain)
            .map_err(|e| ClientError::History(e.to_string()))?,
        parent_keys: serde_json::from_str(&keys)
            .map_err(|e| ClientError::History(e.to_string()))?,
        received_at: r.try_get("received_at")?,
        expires_at: r.try_get("expires_at")?,
        state: r.try_get("state")?,
    })
}
