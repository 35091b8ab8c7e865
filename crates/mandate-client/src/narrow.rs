//! "Narrow to what was used": the user revokes a grant they signed and
//! re-issues it to the same agent, for the same request, keeping only the
//! actions the agent's receipts show it used (its sub-agents' included).
//! The expiry and the depth stay as they were; sub-delegations beneath the
//! old grant fall with it, and the agent delegates again under the new one.
//!
//! The revocation and the new grant are signed and recorded together, with
//! their events, in one transaction. The outbox sends the revocation, then
//! the new grant once the broker has accepted the revocation (the broker
//! takes a re-issue only in place of a revoked grant). The agent collects
//! the new grant by polling its request again.

use mandate_core::scope::AuthorizationDetail;
use mandate_core::token::{GrantClaims, Jti, peek};
use mandate_core::{Claims as _, SigningKey, Thumbprint, TokenId};
use serde::Serialize;
use sqlx::FromRow;

use crate::ClientError;
use crate::delegations::{GrantState, RevokePreview};
use crate::history::{History, StoredRevocation, append, insert_revocation};
use crate::view::ScopeView;

/// What narrowing a grant to what was used keeps, drops and takes down.
#[derive(Debug, Clone, Serialize, ts_rs::TS)]
pub struct NarrowPreview {
    /// The grant, and what falls with it (its sub-delegations) once it is
    /// revoked.
    pub revoke: RevokePreview,
    /// The scopes the new grant keeps: each with only its used actions.
    pub keeps: Vec<ScopeView>,
    /// The actions dropped, in the catalog's words (else `type: action`).
    pub drops: Vec<String>,
}

/// A plan to narrow one grant, checked against the history.
pub(crate) struct Plan {
    /// What the user is shown.
    pub preview: NarrowPreview,
    /// The grant's claims.
    pub claims: GrantClaims,
    /// The grant's id.
    pub id: TokenId,
    /// The request both grants answer.
    pub request: TokenId,
    /// The scopes the new grant keeps.
    pub scopes: Vec<AuthorizationDetail>,
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

/// A re-issue, with the revocation it comes after.
#[derive(Debug, Clone, Serialize, ts_rs::TS)]
pub struct Narrowed {
    /// The revocation of the old grant.
    pub revocation: StoredRevocation,
    /// The new grant.
    pub reissue: StoredReissue,
}

impl History {
    /// Plans narrowing grant `id` of `principal`'s to what was used. `user`
    /// is the user key's thumbprint: only a grant it signed can be
    /// re-issued.
    pub(crate) async fn narrow_plan(
        &self,
        principal: &str,
        user: &Thumbprint,
        id: &str,
        now: i64,
    ) -> Result<Plan, ClientError> {
        let revoke = self.revoke_preview(principal, user, id, now).await?;
        let token: String =
            sqlx::query_scalar("SELECT token FROM grants WHERE principal = ? AND id = ?")
                .bind(principal)
                .bind(id)
                .fetch_optional(self.pool())
                .await?
                .ok_or(ClientError::NotFound)?;
        let (kid, claims) = peek::<GrantClaims>(&token)?;
        if revoke.grant.state != GrantState::Active {
            return Err(ClientError::Invalid(
                "this grant is no longer in force".into(),
            ));
        }
        let (true, Some(request)) = (kid == *user, claims.req) else {
            return Err(ClientError::Invalid(
                "only a grant you signed in answer to a request can be narrowed; revoke it instead"
                    .into(),
            ));
        };
        let mut scopes = Vec::new();
        let mut keeps = Vec::new();
        let mut drops = Vec::new();
        // The view's scopes are the claims' details, in order.
        for (detail, usage) in claims
            .authorization_details
            .iter()
            .zip(&revoke.grant.scopes)
        {
            let kind = usage.scope.label.as_deref().unwrap_or(&detail.kind);
            drops.extend(usage.unused.iter().map(|a| {
                // The catalog's words for it, else the type's and the raw action.
                usage
                    .scope
                    .actions
                    .iter()
                    .find(|v| v.name == *a)
                    .and_then(|v| v.label.clone())
                    .unwrap_or_else(|| format!("{kind}: {a}"))
            }));
            if usage.used.is_empty() {
                continue;
            }
            let mut kept = detail.clone();
            kept.actions = usage.used.iter().cloned().collect();
            keeps.push(crate::view::scope_view(&kept));
            scopes.push(kept);
        }
        if scopes.is_empty() {
            return Err(ClientError::Invalid(
                "this grant was never used: revoke it instead".into(),
            ));
        }
        if drops.is_empty() {
            return Err(ClientError::Invalid(
                "every action of this grant was used: there is nothing to narrow".into(),
            ));
        }
        Ok(Plan {
            preview: NarrowPreview {
                revoke,
                keeps,
                drops,
            },
            id: TokenId::of(&token),
            claims,
            request,
            scopes,
        })
    }

    /// Records the revocation of the grant `plan` narrows and the grant
    /// re-issued in its place, with their events and the new head, in one
    /// transaction. From then on both are in the outbox.
    pub(crate) async fn record_reissue(
        &self,
        key: &SigningKey,
        principal: &str,
        plan: &Plan,
        (revocation, grant): (&str, &str),
        now: i64,
    ) -> Result<Narrowed, ClientError> {
        let mut tx = self.pool().begin_with("BEGIN IMMEDIATE").await?;
        let revocation = insert_revocation(
            &mut tx,
            key,
            principal,
            revocation,
            &[plan.id.to_string()],
            now,
        )
        .await?;
        let reissue = StoredReissue {
            token_id: TokenId::of(grant).to_string(),
            request_id: plan.request.to_string(),
            replaces: plan.id.to_string(),
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
        Ok(Narrowed {
            revocation,
            reissue,
        })
    }

    /// The re-issued grant with `token_id`, if one was recorded.
    pub async fn reissue(&self, token_id: &str) -> Result<Option<StoredReissue>, ClientError> {
        Ok(sqlx::query_as("SELECT token_id, request_id, replaces, revocation_id, token, reissued_at, attempts, delivered_at, refused_code FROM reissues WHERE token_id = ?")
            .bind(token_id)
            .fetch_optional(self.pool())
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
        .fetch_all(self.pool())
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
}

/// Signs, with the user's `key`, the grant that replaces `plan`'s: the same
/// agent, request, purpose, instruction, expiry and depth, with only the
/// scopes used.
pub(crate) fn reissued_grant(
    plan: &Plan,
    key: &SigningKey,
    now: i64,
    rng: &mut impl rand_core::CryptoRngCore,
) -> String {
    let old = &plan.claims;
    GrantClaims {
        sub: old.sub.clone(),
        act: old.act.clone(),
        cnf: old.cnf.clone(),
        authorization_details: plan.scopes.clone(),
        purpose: old.purpose.clone(),
        intent: old.intent.clone(),
        iat: now,
        nbf: now,
        exp: old.exp,
        jti: Jti::random(rng),
        max_depth: old.max_depth,
        prf: None,
        req: Some(plan.request),
    }
    .sign(key)
}
