//! The approval tiers the broker enforces before a request reaches the
//! user: "deny always" blocks, signed by the user as policy tokens with
//! effect `deny` (docs/protocol.md 4.12), and the cooldown after a denial.
//! Approving rules stay in the user's app, which signs the grants.

use mandate_core::token::{Effect, PolicyClaims, RequestClaims};
use mandate_core::{Context, Principal, Revoked, Thumbprint};
use mandate_store::NewBlock;
use serde::Serialize;

use crate::error::Code;
use crate::{ApiError, AppState, User};

/// How far back the inbox looks for the user's last denial of an agent,
/// to show beside its new requests: a day.
pub const DENIED_BEFORE_WINDOW: i64 = 24 * 3600;

/// The most recent denials the cooldown compares a request with.
const COOLDOWN_LOOKBACK: i64 = 50;

/// A block, as the user sees it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct BlockView {
    /// The agent key blocked (RFC 7638 thumbprint).
    pub agent: String,
    /// The id of the policy token that asked for it.
    pub policy_id: String,
    /// The compact `mandate-policy+jwt`, for the app to show and check.
    pub policy: String,
    /// The user's name for it.
    pub label: Option<String>,
    /// When the broker stored it.
    pub created_at: i64,
    /// When it ends.
    pub expires_at: i64,
    /// How many requests it refused.
    pub refusals: i64,
}

/// Stores the user's block: a policy with effect `deny`, signed by one of
/// the user's keys, about the agent key it names. A newer block of the
/// same agent replaces the older.
pub async fn put_block(state: &AppState, user: &User, policy: &str) -> Result<BlockView, ApiError> {
    let now = state.now();
    let (keys, bindings) = crate::user_service::user_keys(state, &user.principal, now).await?;
    // The context does not cross an await: it is not `Send`.
    let verified = {
        let revoked = Revoked::default();
        let cx = Context {
            now,
            policy: state.inner.policy,
            keys: &keys,
            bindings: &bindings,
            revoked: &revoked,
        };
        PolicyClaims::verify(policy, &cx).map_err(ApiError::token)?
    };
    // Only the user's own keys verify it, so its `sub` is the user.
    let claims = verified.claims();
    if claims.effect != Effect::Deny {
        return Err(ApiError::new(
            Code::BlockNotDeny,
            "the rule approves; only denying rules go to the broker",
        ));
    }
    let id = verified.id();
    state
        .store()
        .put_block(&NewBlock {
            principal: &user.principal,
            agent: &claims.agent.jkt,
            policy_id: &id,
            policy,
            label: claims.label.as_deref(),
            created_at: now,
            expires_at: claims.exp,
        })
        .await?;
    tracing::info!(agent = %claims.agent.jkt, policy = %id, "agent blocked");
    Ok(BlockView {
        agent: claims.agent.jkt.to_string(),
        policy_id: id.to_string(),
        policy: policy.to_owned(),
        label: claims.label.clone(),
        created_at: now,
        expires_at: claims.exp,
        refusals: 0,
    })
}

/// The user's blocks in force, newest first.
pub async fn blocks(state: &AppState, user: &User) -> Result<Vec<BlockView>, ApiError> {
    let rows = state.store().blocks(&user.principal, state.now()).await?;
    Ok(rows
        .into_iter()
        .map(|b| BlockView {
            agent: b.agent,
            policy_id: b.policy_id,
            policy: b.policy,
            label: b.label,
            created_at: b.created_at,
            expires_at: b.expires_at,
            refusals: b.refusals,
        })
        .collect())
}

/// Lifts the user's block of `agent`.
pub async fn lift_block(state: &AppState, user: &User, agent: &Thumbprint) -> Result<(), ApiError> {
    if state.store().lift_block(&user.principal, agent).await? {
        tracing::info!(agent = %agent, "block lifted");
        Ok(())
    } else {
        Err(ApiError::new(Code::BlockNotFound, "no such block"))
    }
}

/// Refuses a request before it reaches the user: when the user blocks
/// its agent or the agent that endorsed it (`request.blocked`), or denied
/// the same agent the same scopes within the cooldown (`request.cooldown`,
/// with when asking again is allowed).
pub(crate) async fn screen(
    state: &AppState,
    principal: &Principal,
    request: &RequestClaims,
    agent: &Thumbprint,
    sponsor: &Thumbprint,
    now: i64,
) -> Result<(), ApiError> {
    let store = state.store();
    let agents: Vec<&Thumbprint> = if agent == sponsor {
        vec![agent]
    } else {
        vec![agent, sponsor]
    };
    if store.refuse_if_blocked(principal, &agents, now).await? {
        tracing::info!(%agent, "request refused: the user blocks this agent");
        return Err(ApiError::new(
            Code::RequestBlocked,
            "the user denies this agent always",
        ));
    }
    let cooldown = state.inner.limits.denial_cooldown;
    if cooldown <= 0 {
        return Ok(());
    }
    // A denial at `t` holds the same ask back for `[t, t + cooldown)`.
    let since = now.saturating_sub(cooldown).saturating_add(1);
    let denied = store
        .recent_denials(principal, agent, since, COOLDOWN_LOOKBACK)
        .await?;
    let asked = scope_key(request);
    for (token, at) in denied {
        // The broker verified it when it was filed.
        let Ok((_, before)) = mandate_core::token::peek::<RequestClaims>(&token) else {
            continue;
        };
        if scope_key(&before) == asked {
            let wait = at.saturating_add(cooldown).saturating_sub(now).max(1);
            return Err(ApiError::new(
                Code::RequestCooldown,
                format!("the user denied these scopes to this agent; ask again in {wait} s at the earliest"),
            )
            .retry_after(u64::try_from(wait).unwrap_or(1)));
        }
    }
    Ok(())
}

/// When the user last denied `agent` a request, within the last day.
pub(crate) async fn denied_before(
    state: &AppState,
    principal: &Principal,
    agent: &Thumbprint,
    now: i64,
) -> Result<Option<i64>, ApiError> {
    let last = state
        .store()
        .recent_denials(
            principal,
            agent,
            now.saturating_sub(DENIED_BEFORE_WINDOW),
            1,
        )
        .await?;
    Ok(last.first().map(|(_, at)| *at))
}

/// What makes two requests the same ask: their scopes, as a set of
/// details in canonical form. Purpose, intent, lifetime and depth do
/// not: rewording the purpose does not make a denied ask new.
fn scope_key(request: &RequestClaims) -> Vec<String> {
    let mut details: Vec<String> = request
        .authorization_details
        .iter()
        .map(|d| serde_json::to_string(d).unwrap_or_default())
        .collect();
    details.sort();
    details.dedup();
    details
}
