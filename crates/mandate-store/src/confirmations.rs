//! Calls agents ask their users to confirm, and the users' answers.

use mandate_core::{Principal, Thumbprint};

use crate::events::{append_event, lock_log};
use crate::{EventKind, Store, StoreError, on_pool};

/// A call to confirm, as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfirmationRecord {
    /// Its id.
    pub id: String,
    /// The user asked.
    pub principal: String,
    /// The agent that will make the call (the chain's leaf key).
    pub agent: String,
    /// The chain, as a JSON array of compact grants.
    pub chain: String,
    /// The agents' keys, as a JSON array of JWKs.
    pub keys: String,
    /// The HTTP method.
    pub method: String,
    /// The URI, with its query.
    pub uri: String,
    /// The body, base64url.
    pub body: String,
    /// The agent's own account of the call.
    pub summary: String,
    /// When it was asked.
    pub created_at: i64,
    /// When it lapses undecided.
    pub expires_at: i64,
    /// `pending`, `confirmed` or `refused`.
    pub status: String,
    /// The user's confirmation, once confirmed.
    pub token: Option<String>,
    /// The user's reason, once refused.
    pub reason: Option<String>,
}

type Row = (
    String,
    String,
    String,
    String,
    String,
    String,
    String,
    String,
    String,
    i64,
    i64,
    String,
    Option<String>,
    Option<String>,
);

/// The columns of [`Row`], in order.
macro_rules! columns {
    () => {
        "id, principal, agent_jkt, chain, keys, method, uri, body, summary, created_at, \
         expires_at, status, token, reason"
    };
}

fn record(r: Row) -> ConfirmationRecord {
    ConfirmationRecord {
        id: r.0,
        principal: r.1,
        agent: r.2,
        chain: r.3,
        keys: r.4,
        method: r.5,
        uri: r.6,
        body: r.7,
        summary: r.8,
        created_at: r.9,
        expires_at: r.10,
        status: r.11,
        token: r.12,
        reason: r.13,
    }
}

impl Store {
    /// Stores a call to confirm (status `pending`), with its event.
    pub async fn insert_confirmation(&self, c: &ConfirmationRecord) -> Result<i64, StoreError> {
        on_pool!(self, pool => {
            let _writing = self.writing().await;
            let mut tx = pool.begin().await?;
            lock_log!(self, tx)?;
            sqlx::query(
                "INSERT INTO confirmations (id, principal, agent_jkt, chain, keys, method, uri, body, \
                 summary, created_at, expires_at, status) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, 'pending')",
            )
            .bind(&c.id)
            .bind(&c.principal)
            .bind(&c.agent)
            .bind(&c.chain)
            .bind(&c.keys)
            .bind(&c.method)
            .bind(&c.uri)
            .bind(&c.body)
            .bind(&c.summary)
            .bind(c.created_at)
            .bind(c.expires_at)
            .execute(&mut *tx)
            .await?;
            let seq = append_event!(self, tx, EventKind::ConfirmationCreated, Some(c.principal.as_str()), Some(c.agent.as_str()), c.id.as_str(), c.created_at)?;
            tx.commit().await?;
            Ok(seq)
        })
    }

    /// The call to confirm `id`.
    pub async fn confirmation(&self, id: &str) -> Result<Option<ConfirmationRecord>, StoreError> {
        let row: Option<Row> = on_pool!(self, pool => {
            sqlx::query_as(concat!("SELECT ", columns!(), " FROM confirmations WHERE id = $1"))
                .bind(id)
                .fetch_optional(pool)
                .await?
        });
        Ok(row.map(record))
    }

    /// The user's calls waiting to be confirmed at `now`, oldest first.
    pub async fn pending_confirmations(
        &self,
        principal: &Principal,
        now: i64,
    ) -> Result<Vec<ConfirmationRecord>, StoreError> {
        let rows: Vec<Row> = on_pool!(self, pool => {
            sqlx::query_as(concat!(
                "SELECT ",
                columns!(),
                " FROM confirmations WHERE principal = $1 AND status = 'pending' \
                 AND expires_at > $2 ORDER BY created_at, id LIMIT 200"
            ))
            .bind(principal.as_str())
            .bind(now)
            .fetch_all(pool)
            .await?
        });
        Ok(rows.into_iter().map(record).collect())
    }

    /// How many calls `agent` has waiting for the user at `now`.
    pub async fn count_pending_confirmations(
        &self,
        principal: &Principal,
        agent: &Thumbprint,
        now: i64,
    ) -> Result<i64, StoreError> {
        Ok(on_pool!(self, pool => {
            sqlx::query_scalar(
                "SELECT COUNT(*) FROM confirmations WHERE principal = $1 AND agent_jkt = $2 \
                 AND status = 'pending' AND expires_at > $3",
            )
            .bind(principal.as_str())
            .bind(agent.to_string())
            .bind(now)
            .fetch_one(pool)
            .await?
        }))
    }

    /// Records the user's answer to the pending, unexpired call `id`:
    /// `token` confirms it, `None` refuses it (with `reason`). Anything
    /// else is [`StoreError::Conflict`].
    pub async fn decide_confirmation(
        &self,
        id: &str,
        token: Option<&str>,
        reason: Option<&str>,
        now: i64,
    ) -> Result<i64, StoreError> {
        let status = if token.is_some() {
            "confirmed"
        } else {
            "refused"
        };
        on_pool!(self, pool => {
            let _writing = self.writing().await;
            let mut tx = pool.begin().await?;
            lock_log!(self, tx)?;
            let row: Option<(String, String)> = sqlx::query_as(
                "UPDATE confirmations SET status = $1, token = $2, reason = $3, decided_at = $4 \
                 WHERE id = $5 AND status = 'pending' AND expires_at > $4 RETURNING principal, agent_jkt",
            )
            .bind(status)
            .bind(token)
            .bind(reason)
            .bind(now)
            .bind(id)
            .fetch_optional(&mut *tx)
            .await?;
            let Some((principal, agent)) = row else {
                return Err(StoreError::Conflict);
            };
            let seq = append_event!(self, tx, EventKind::ConfirmationDecided, Some(principal), Some(agent), id, now)?;
            tx.commit().await?;
            Ok(seq)
        })
    }
}
