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
//!
//! The parts: this module opens the database and holds the types;
//! `log` is the event chain and its verification; `profiles`, `requests`
//! and `decisions` (with the outbox, revocations and re-issued grants)
//! each write their tables with an event in the log. The receipts' tables are
//! [`crate::activity`]'s, which also checks the whole history
//! ([`History::verify`]) on top of this module's log.

use std::path::Path;
use std::str::FromStr as _;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use sqlx::FromRow;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};

use crate::ClientError;

mod decisions;
mod log;
mod profiles;
mod requests;
mod rules;

pub(crate) use log::{append, decode_hash, field_into, head_message};
pub(crate) use requests::agent_name_sql;
pub use rules::{NewRule, StoredRule};

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
    /// What the servers behind its `mcp` scopes say of their tools, as the
    /// broker served it: verify it before showing it.
    pub tools: Vec<crate::tool_claims::ToolsStatement>,
    /// When the broker received it.
    pub received_at: i64,
    /// When it lapses.
    pub expires_at: i64,
    /// Where it stands.
    pub state: RequestState,
    /// When the user last denied the requesting agent, within a day of
    /// the request, as the broker said.
    pub denied_before: Option<i64>,
    /// How many times a wrong binding code was typed for it.
    pub code_misses: i64,
    /// Whether the user typed its binding code right.
    pub code_matched: bool,
    /// Whether it was flagged (wrong codes three times).
    pub flagged: bool,
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
    /// The tier it was signed for: `standard`, `once`, `lease`, `rule`
    /// (the user made a rule with it), `auto` (a rule approved it) or
    /// `block` (a denial, with "deny always").
    pub tier: String,
    /// The rule that approved it, for `auto`.
    pub rule_id: Option<String>,
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
    /// `receipt.reported`, `rule.created`, `rule.matched`, `rule.ended`,
    /// `block.stored`, `request.flagged`.
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

/// A re-issued grant, and how its delivery went.
#[derive(Debug, Clone, Serialize, FromRow, ts_rs::TS)]
pub struct StoredReissue {
    /// The new grant's id.
    pub token_id: String,
    /// The request it answers.
    pub request_id: String,
    /// The grant it replaces.
    pub replaces: String,
    /// The revocation of that grant.
    pub revocation_id: String,
    /// The new grant.
    pub token: String,
    /// When it was signed.
    pub reissued_at: i64,
    /// How many deliveries were tried.
    pub attempts: i64,
    /// When the broker accepted it.
    pub delivered_at: Option<i64>,
    /// The broker's code, if it refused the grant (or its revocation) for
    /// good.
    pub refused_code: Option<String>,
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
    /// The tier, as [`StoredDecision::tier`] names it.
    pub tier: &'a str,
    /// The rule that approved it, for tier `auto`.
    pub rule_id: Option<&'a str>,
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
}
