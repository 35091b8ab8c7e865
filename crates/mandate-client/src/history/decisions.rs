//! The decisions the user signed, which double as the outbox, the
//! revocations, and the grants re-issued narrower (see [`crate::narrow`]),
//! each with its event in the log.

use mandate_core::{SigningKey, TokenId};
use sqlx::{FromRow, Row as _, SqliteConnection};

use super::log::append;
use super::{
    DecisionKind, History, NewDecision, Outgoing, RequestState, StoredDecision, StoredReissue,
    StoredRevocation,
};
use crate::ClientError;

impl History {
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
            "INSERT INTO decisions (request_id, principal, kind, token, token_id, decided_at, tier,
               rule_id)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(request_id)
        .bind(principal)
        .bind(decision.kind)
        .bind(decision.token)
        .bind(decision.token_id)
        .bind(now)
        .bind(decision.tier)
        .bind(decision.rule_id)
        .execute(&mut *tx)
        .await?;
        if let Some(rule) = decision.rule_id {
            let counted = sqlx::query(
                "UPDATE rules SET matched = matched + 1, last_matched_at = ?
                 WHERE id = ? AND principal = ? AND ended_at IS NULL",
            )
            .bind(now)
            .bind(rule)
            .bind(principal)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if counted != 1 {
                return Err(ClientError::Invalid("the rule was ended".into()));
            }
            append(&mut tx, key, principal, now, "rule.matched", rule, None).await?;
        }
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
}

/// Records a revocation and its event in `tx` (see
/// [`History::record_revocation`]).
async fn insert_revocation(
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

impl History {
    /// Records the revocation of grant `replaces` and the `grant`
    /// re-issued in its place in answer to request `request_id`, with their
    /// events and the new head, in one transaction. From then on both are
    /// in the outbox.
    pub(crate) async fn record_reissue(
        &self,
        key: &SigningKey,
        principal: &str,
        (replaces, request_id): (&str, &str),
        (revocation, grant): (&str, &str),
        now: i64,
    ) -> Result<(StoredRevocation, StoredReissue), ClientError> {
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        let revocation = insert_revocation(
            &mut tx,
            key,
            principal,
            revocation,
            &[replaces.to_owned()],
            now,
        )
        .await?;
        let reissue = StoredReissue {
            token_id: TokenId::of(grant).to_string(),
            request_id: request_id.to_owned(),
            replaces: replaces.to_owned(),
            revocation_id: revocation.token_id.clone(),
            token: grant.to_owned(),
            reissued_at: now,
            attempts: 0,
            delivered_at: None,
            refused_code: None,
        };
        sqlx::query(
            "INSERT INTO reissues (token_id, principal, request_id, replaces, revocation_id, token, reissued_at)
             VALUES (?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(&reissue.token_id)
        .bind(principal)
        .bind(&reissue.request_id)
        .bind(&reissue.replaces)
        .bind(&reissue.revocation_id)
        .bind(grant)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        append(
            &mut tx,
            key,
            principal,
            now,
            "grant.reissued",
            &reissue.token_id,
            Some(grant),
        )
        .await?;
        tx.commit().await?;
        Ok((revocation, reissue))
    }

    /// The re-issued grant with `token_id`, if one was recorded.
    pub async fn reissue(&self, token_id: &str) -> Result<Option<StoredReissue>, ClientError> {
        Ok(sqlx::query_as("SELECT token_id, request_id, replaces, revocation_id, token, reissued_at, attempts, delivered_at, refused_code FROM reissues WHERE token_id = ?")
            .bind(token_id)
            .fetch_optional(&self.pool)
            .await?)
    }

    /// The re-issued grants of `principal` not yet delivered nor refused,
    /// oldest first, each with how its revocation's delivery went: the
    /// broker's code if it refused the revocation for good, and whether it
    /// accepted it.
    pub(crate) async fn reissue_outbox(
        &self,
        principal: &str,
    ) -> Result<Vec<(StoredReissue, Option<String>, bool)>, ClientError> {
        #[derive(FromRow)]
        struct Row {
            #[sqlx(flatten)]
            reissue: StoredReissue,
            revocation_refused: Option<String>,
            revocation_delivered: Option<i64>,
        }
        let rows: Vec<Row> = sqlx::query_as(
            "SELECT r.token_id, r.request_id, r.replaces, r.revocation_id, r.token, r.reissued_at,
                    r.attempts, r.delivered_at, r.refused_code,
                    v.refused_code AS revocation_refused, v.delivered_at AS revocation_delivered
             FROM reissues r JOIN revocations v ON v.token_id = r.revocation_id
             WHERE r.principal = ? AND r.delivered_at IS NULL AND r.refused_code IS NULL
             ORDER BY r.reissued_at, r.token_id",
        )
        .bind(principal)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(|r| {
                (
                    r.reissue,
                    r.revocation_refused,
                    r.revocation_delivered.is_some(),
                )
            })
            .collect())
    }

    /// The grants of `principal`'s re-issued narrower: each replaced
    /// grant's id, with the id of the grant that replaces it.
    pub(crate) async fn replacements(
        &self,
        principal: &str,
    ) -> Result<std::collections::HashMap<String, String>, ClientError> {
        let rows: Vec<(String, String)> =
            sqlx::query_as("SELECT replaces, token_id FROM reissues WHERE principal = ?")
                .bind(principal)
                .fetch_all(&self.pool)
                .await?;
        Ok(rows.into_iter().collect())
    }
}
