//! The user's standing rules ("always, within these bounds"): each a
//! policy token signed by the user's key, recorded with an event, matched
//! against new requests, counted when it approves one, and ended by the
//! user.

use mandate_core::SigningKey;
use serde::Serialize;
use sqlx::FromRow;

use super::{History, append};
use crate::ClientError;

/// A rule, as recorded.
#[derive(Debug, Clone, Serialize, FromRow, ts_rs::TS)]
pub struct StoredRule {
    /// The policy token's id.
    pub id: String,
    /// The signed `mandate-policy+jwt`.
    pub token: String,
    /// The agent key it is about.
    pub agent_jkt: String,
    /// The user's name for it.
    pub label: Option<String>,
    /// When the user made it.
    pub created_at: i64,
    /// When it ends by itself.
    pub expires_at: i64,
    /// When the user ended it.
    pub ended_at: Option<i64>,
    /// How many requests it approved.
    pub matched: i64,
    /// When it last approved one.
    pub last_matched_at: Option<i64>,
}

/// A rule to record.
#[derive(Debug, Clone, Copy)]
pub struct NewRule<'a> {
    /// The policy token's id.
    pub id: &'a str,
    /// The signed policy.
    pub token: &'a str,
    /// The agent key it is about.
    pub agent_jkt: &'a str,
    /// Its label.
    pub label: Option<&'a str>,
    /// Its `exp`.
    pub expires_at: i64,
}

impl History {
    /// Records a rule the user made, with its event.
    pub async fn record_rule(
        &self,
        key: &SigningKey,
        principal: &str,
        rule: NewRule<'_>,
        now: i64,
    ) -> Result<(), ClientError> {
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        sqlx::query(
            "INSERT INTO rules (id, principal, token, agent_jkt, label, created_at, expires_at)
             VALUES (?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(rule.id)
        .bind(principal)
        .bind(rule.token)
        .bind(rule.agent_jkt)
        .bind(rule.label)
        .bind(now)
        .bind(rule.expires_at)
        .execute(&mut *tx)
        .await?;
        append(
            &mut tx,
            key,
            principal,
            now,
            "rule.created",
            rule.id,
            Some(rule.token),
        )
        .await?;
        tx.commit().await.map_err(ClientError::from)
    }

    /// Logs what the user signed that lives at the broker alone ("deny
    /// always", `block.stored`; a call confirmed, `confirmation.signed`,
    /// or refused, `confirmation.refused`): an event about `subject`, with
    /// the signed token if there is one.
    pub async fn log(
        &self,
        key: &SigningKey,
        principal: &str,
        kind: &str,
        subject: &str,
        token: Option<&str>,
        now: i64,
    ) -> Result<(), ClientError> {
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        append(&mut tx, key, principal, now, kind, subject, token).await?;
        tx.commit().await.map_err(ClientError::from)
    }

    /// The user's rules, newest first, ended and lapsed ones included.
    pub async fn rules(&self, principal: &str) -> Result<Vec<StoredRule>, ClientError> {
        Ok(sqlx::query_as(
            "SELECT id, token, agent_jkt, label, created_at, expires_at, ended_at, matched,
               last_matched_at FROM rules WHERE principal = ? ORDER BY created_at DESC, id",
        )
        .bind(principal)
        .fetch_all(&self.pool)
        .await?)
    }

    /// The requests rule `id` approved, newest first, at most `limit`:
    /// each compact request and when it was approved.
    pub async fn rule_matches(
        &self,
        principal: &str,
        id: &str,
        limit: i64,
    ) -> Result<Vec<(String, i64)>, ClientError> {
        Ok(sqlx::query_as(
            "SELECT r.request, d.decided_at FROM decisions d
               JOIN requests r ON r.id = d.request_id
             WHERE d.principal = ? AND d.rule_id = ?
             ORDER BY d.decided_at DESC, d.request_id LIMIT ?",
        )
        .bind(principal)
        .bind(id)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?)
    }

    /// The rules about `agent_jkt` that stand at `now`, oldest first.
    pub async fn standing_rules(
        &self,
        principal: &str,
        agent_jkt: &str,
        now: i64,
    ) -> Result<Vec<StoredRule>, ClientError> {
        Ok(sqlx::query_as(
            "SELECT id, token, agent_jkt, label, created_at, expires_at, ended_at, matched,
               last_matched_at FROM rules
             WHERE principal = ? AND agent_jkt = ? AND ended_at IS NULL AND expires_at > ?
             ORDER BY created_at, id",
        )
        .bind(principal)
        .bind(agent_jkt)
        .bind(now)
        .fetch_all(&self.pool)
        .await?)
    }

    /// Ends a standing rule, with its event; a rule already ended, or
    /// another user's, is not found.
    pub async fn end_rule(
        &self,
        key: &SigningKey,
        principal: &str,
        id: &str,
        now: i64,
    ) -> Result<(), ClientError> {
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        let ended = sqlx::query(
            "UPDATE rules SET ended_at = ? WHERE id = ? AND principal = ? AND ended_at IS NULL",
        )
        .bind(now)
        .bind(id)
        .bind(principal)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if ended != 1 {
            return Err(ClientError::NotFound);
        }
        append(&mut tx, key, principal, now, "rule.ended", id, None).await?;
        tx.commit().await.map_err(ClientError::from)
    }
}
