//! Revocations and the feed resource servers follow, and the user's grants.

use axum::http::StatusCode;
use mandate_core::token::{self, RevocationClaims};
use mandate_core::{Jwk, Link, TokenId};
use mandate_store::{RevocationRecord, RevokedGrant, Withdrawn};
use serde::Serialize;

use crate::error::{Code, on_conflict};
use crate::{ApiError, AppState, User, chains};

/// A revocation the broker accepted.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct RevocationAccepted {
    /// The revocation token's id.
    #[schema(value_type = String)]
    pub id: TokenId,
    /// The grants it names.
    #[schema(value_type = Vec<String>)]
    pub revoked: Vec<TokenId>,
}

/// Refuses a verified signer that has posted too many revocations lately.
fn slow_down(state: &AppState, signer: &mandate_core::Thumbprint) -> Result<(), ApiError> {
    if state.inner.limiters.revocations.allow(&signer.to_string()) {
        Ok(())
    } else {
        Err(crate::error::too_fast(Code::RateRevocations))
    }
}

/// Accepts a signed revocation.
///
/// A user revokes with a key bound, now, to the revocation's `sub`: every
/// grant it names must be a grant the broker holds for that principal, so
/// nobody can revoke another user's grants. An agent revokes what it
/// delegated: it sends `chain`, a chain that verifies here and passes
/// through each revoked grant, with `keys`, and must be an issuer at or
/// above each revoked link (`RevocationClaims::authorized`). Grants
/// delegated beneath a revoked one fall with it at every verifier,
/// because their chains pass through it. Each signer, once verified, has
/// its own rate (`rate.revocations`).
pub async fn revoke(
    state: &AppState,
    compact: &str,
    chain: &[String],
    keys: &[Jwk],
) -> Result<RevocationAccepted, ApiError> {
    let now = state.now();
    let s = &state.inner;
    let (kid, peeked) = token::peek::<RevocationClaims>(compact).map_err(ApiError::token)?;
    let forbidden = || {
        ApiError::rule(
            StatusCode::FORBIDDEN,
            &mandate_core::Error::RevocationNotAuthorized,
            "the signer may not revoke these grants",
        )
    };
    let binding = s
        .store
        .binding(&kid)
        .await?
        .filter(|b| b.principal == peeked.sub && b.expires_at > now);
    let verified = match binding {
        Some(binding) => {
            let verified = token::verify::<RevocationClaims>(compact, &binding.key, &s.policy, now)
                .map_err(ApiError::token)?;
            slow_down(state, &kid)?;
            if !chain.is_empty() {
                // The user revokes sub-delegations the broker has not seen.
                let checked = chains::check(state, chain, keys, Code::RevocationMalformed).await?;
                if *checked.chain.principal() != verified.claims().sub {
                    return Err(forbidden());
                }
                chains::record_links(state, &checked, chain).await?;
            }
            verified
        }
        None if chain.is_empty() => return Err(forbidden()),
        None => {
            let checked = chains::check(state, chain, keys, Code::RevocationMalformed).await?;
            let key = checked.keys.get(&kid).ok_or_else(forbidden)?;
            let verified = token::verify::<RevocationClaims>(compact, key, &s.policy, now)
                .map_err(ApiError::token)?;
            slow_down(state, &kid)?;
            let claims = verified.claims();
            if claims.sub != *checked.chain.principal() {
                return Err(forbidden());
            }
            let links: Vec<&Link> = checked.chain.links().collect();
            for id in &claims.revokes {
                claims
                    .authorized(&kid, id, &links, &checked.bindings, now)
                    .map_err(|_| forbidden())?;
            }
            chains::record_links(state, &checked, chain).await?;
            verified
        }
    };
    let claims = verified.claims();
    for id in &claims.revokes {
        match s.store.grant(id).await? {
            Some(g) if g.principal == claims.sub => {}
            _ => {
                return Err(ApiError::new(
                    Code::UnknownGrant,
                    "a revoked id is not one of this user's grants",
                ));
            }
        }
    }
    let record = RevocationRecord {
        id: verified.id(),
        principal: claims.sub.clone(),
        signer: kid,
        token: compact.to_owned(),
        created_at: now,
    };
    let withdrawn: Vec<Withdrawn> = claims
        .revokes
        .iter()
        .copied()
        .map(Withdrawn::Grant)
        .collect();
    s.store
        .insert_revocation(&record, &withdrawn)
        .await
        .map_err(on_conflict(
            Code::RevocationReplayed,
            "this revocation was posted before",
        ))?;
    state.inner.chain_state.changed();
    state.inner.hub.wake(state.store()).await;
    tracing::info!(revocation = %verified.id(), grants = claims.revokes.len(), "revoked");
    Ok(RevocationAccepted {
        id: verified.id(),
        revoked: claims.revokes.clone(),
    })
}

/// One entry of the revocation feed: a revoked grant, or a removed user
/// key (exactly one of `grant` and `key`).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct FeedEntry {
    /// Its position; pass the last one as `since` to resume.
    pub seq: i64,
    /// The revoked grant.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    pub grant: Option<TokenId>,
    /// The removed user key's thumbprint: every chain rooted in it falls.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    pub key: Option<String>,
    /// The revocation that revoked it.
    #[schema(value_type = String)]
    pub revocation: TokenId,
    /// When.
    pub revoked_at: i64,
}

/// The most entries one feed page holds.
pub const FEED_PAGE: i64 = 1000;

/// Revoked grants after position `since`, oldest first.
pub async fn feed(state: &AppState, since: i64) -> Result<Vec<FeedEntry>, ApiError> {
    let rows: Vec<RevokedGrant> = state.store().revoked_since(since, FEED_PAGE).await?;
    Ok(rows
        .into_iter()
        .map(|r| FeedEntry {
            seq: r.seq,
            grant: match r.withdrawn {
                Withdrawn::Grant(id) => Some(id),
                Withdrawn::Key(_) => None,
            },
            key: match r.withdrawn {
                Withdrawn::Key(jkt) => Some(jkt.to_string()),
                Withdrawn::Grant(_) => None,
            },
            revocation: r.revocation_id,
            revoked_at: r.revoked_at,
        })
        .collect())
}

/// The feed's latest signed checkpoint (`mandate-checkpoint+jwt`),
/// shared by every reader; waits for the first one.
pub async fn checkpoint(state: &AppState) -> Result<String, ApiError> {
    let latest = state.inner.checkpoints.latest(state).await?;
    Ok(latest.token.clone())
}

/// One of the user's grants.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct GrantItem {
    /// The grant's id.
    #[schema(value_type = String)]
    pub id: TokenId,
    /// The compact grant.
    pub grant: String,
    /// Its parent, for sub-delegations.
    #[schema(value_type = Option<String>)]
    pub parent: Option<TokenId>,
    /// When it expires.
    pub expires_at: i64,
    /// Whether it has been revoked.
    pub revoked: bool,
    /// When it was revoked.
    pub revoked_at: Option<i64>,
}

/// The signed-in user's grants, oldest first.
pub async fn grants(state: &AppState, user: &User) -> Result<Vec<GrantItem>, ApiError> {
    let revoked = state.store().revoked_grants_of(&user.principal).await?;
    let grants = state.store().grants_of(&user.principal).await?;
    Ok(grants
        .into_iter()
        .map(|g| GrantItem {
            revoked_at: revoked.get(&g.id).copied(),
            revoked: revoked.contains_key(&g.id),
            id: g.id,
            grant: g.token,
            parent: g.parent_id,
            expires_at: g.expires_at,
        })
        .collect())
}
