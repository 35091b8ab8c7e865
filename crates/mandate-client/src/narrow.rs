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

use crate::ClientError;
use crate::delegations::{GrantState, RevokePreview};
pub use crate::history::StoredReissue;
use crate::history::{History, StoredRevocation};
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
        let token = self
            .grant_token(principal, id)
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
