//! What signed-in users do: read their inbox and decide requests. Their
//! keys are in [`crate::keys`].

use mandate_core::scope::within;
use mandate_core::token::{self, DenialClaims, GrantClaims, RequestClaims};
use mandate_core::{BindingSet, Context, Jwk, KeySet, Principal, TokenId, verify_chain};
use mandate_store::{GrantRecord, RequestRecord, RequestStatus};
use serde::Serialize;

use crate::error::{Code, on_conflict};
use crate::{ApiError, AppState, User};

/// One pending request, as the user's inbox shows it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct InboxItem {
    /// The request's id.
    #[schema(value_type = String)]
    pub id: TokenId,
    /// The compact request token; the app verifies and renders it itself.
    pub request: String,
    /// For a sub-agent's request, the chain it extends.
    pub parent_chain: Vec<String>,
    /// The public OKP JWKs of the agents that chain names, so that the app
    /// checks each of its links itself.
    #[schema(value_type = Vec<Object>)]
    pub keys: Vec<Jwk>,
    /// When the broker received it.
    pub received_at: i64,
    /// When it lapses.
    pub expires_at: i64,
    /// For a request for `mcp` scopes, what the MCP servers behind them
    /// say of their tools, as their gateways relayed it (signed with
    /// their witness keys): the server's claim, to show as such.
    pub tools: Vec<crate::witness_service::ToolsStatement>,
    /// When the user last denied this agent a request, if within the last
    /// day: the app shows "you denied this agent 2 minutes ago".
    pub denied_before: Option<i64>,
}

/// The user's pending requests, oldest first.
pub async fn inbox(
    state: &AppState,
    user: &User,
    among: Option<&[TokenId]>,
) -> Result<Vec<InboxItem>, ApiError> {
    let now = state.now();
    let pending = match among {
        None => state.store().pending_requests(&user.principal, now).await?,
        Some(ids) => {
            state
                .store()
                .pending_requests_among(&user.principal, ids, now)
                .await?
        }
    };
    let mut items = Vec::with_capacity(pending.len());
    for r in pending {
        let denied_before =
            crate::rules::denied_before(state, &user.principal, &r.agent, now).await?;
        items.push(InboxItem {
            keys: serde_json::from_str(&r.parent_keys)
                .map_err(|_| mandate_store::StoreError::Corrupt("request keys"))?,
            tools: state.described.for_request(&r.token),
            id: r.id,
            request: r.token,
            parent_chain: r.parent_chain,
            received_at: r.created_at,
            expires_at: r.expires_at,
            denied_before,
        });
    }
    Ok(items)
}

/// A user's signed decision.
#[derive(Debug, Clone)]
pub enum Decision<'a> {
    /// A root grant answering the request.
    Approve(&'a str),
    /// A denial of the request.
    Deny(&'a str),
    /// A root grant answering an approved request in place of its grant,
    /// which must be revoked first, and within which it must stay (the
    /// user narrowing a grant to what was used).
    Reissue {
        /// The new grant.
        grant: &'a str,
        /// The id of the grant it replaces.
        replaces: TokenId,
    },
}

/// The user's keys in force at `now`, and their bindings: the only keys a
/// user's decision, rule or block may be signed with.
pub(crate) async fn user_keys(
    state: &AppState,
    principal: &Principal,
    now: i64,
) -> Result<(KeySet, BindingSet), ApiError> {
    let mut keys = KeySet::new();
    let mut bindings = BindingSet::new();
    for b in state
        .store()
        .bindings_of(principal)
        .await?
        .into_iter()
        .filter(|b| b.expires_at > now)
    {
        keys.insert(b.key);
        bindings
            .insert(principal.clone(), b.jkt)
            .map_err(ApiError::token)?;
    }
    Ok((keys, bindings))
}

/// The user's own request, or 404: other users' requests do not exist for them.
async fn own_request(
    state: &AppState,
    user: &User,
    id: &TokenId,
) -> Result<RequestRecord, ApiError> {
    match state.store().request(id).await? {
        Some(r) if r.principal == user.principal => Ok(r),
        _ => Err(ApiError::new(Code::RequestNotFound, "no such request")),
    }
}

/// Whether a decision the store refused as a conflict stands anyway: an
/// earlier attempt of this very decision (a retry that raced it, on this
/// instance or another) committed it meanwhile. Any other conflict is
/// `request.already_decided`.
async fn stands(
    state: &AppState,
    id: &TokenId,
    kind: RequestStatus,
    posted: &str,
    e: mandate_store::StoreError,
) -> Result<(), ApiError> {
    if matches!(e, mandate_store::StoreError::Conflict) {
        let current = state.store().request(id).await?;
        if let Some(r) = &current
            && r.status == kind
            && r.decision.as_deref() == Some(posted)
        {
            return Ok(());
        }
        tracing::info!(
            request = %id,
            status = ?current.as_ref().map(|r| r.status),
            same = current.as_ref().is_some_and(|r| r.decision.as_deref() == Some(posted)),
            "a decision was refused: the request is no longer pending"
        );
    }
    Err(on_conflict(
        Code::AlreadyDecided,
        "the request was decided or has lapsed",
    )(e))
}

/// Records the user's decision on a pending request.
///
/// A grant must verify as a root signed by one of the user's bound keys,
/// answer this request (`req`), go to the requesting agent's key, and stay
/// within what was asked: scopes, depth and lifetime. A denial must be
/// signed by one of the user's bound keys and name this request. Posting
/// the decision already recorded again succeeds and changes nothing, so a
/// client may retry until it hears back; any other decision on a decided
/// request is `request.already_decided`. A re-issued grant answers an
/// approved request in place of its grant: the grant it replaces must be
/// the request's and revoked, and the new one must stay within it.
pub async fn decide(
    state: &AppState,
    user: &User,
    id: &TokenId,
    decision: Decision<'_>,
) -> Result<&'static str, ApiError> {
    let now = state.now();
    let s = &state.inner;
    let request = own_request(state, user, id).await?;
    // The very decision already recorded, sent again (an outbox retrying
    // after a crash or a lost answer): accepted, and nothing changes. The
    // signed token is its own idempotency key.
    let (posted, kind, status) = match decision {
        Decision::Approve(grant) | Decision::Reissue { grant, .. } => {
            (grant, RequestStatus::Approved, "approved")
        }
        Decision::Deny(denial) => (denial, RequestStatus::Denied, "denied"),
    };
    if request.status == kind && request.decision.as_deref() == Some(posted) {
        return Ok(status);
    }
    let asked =
        RequestClaims::verify(&request.token, &s.policy, request.created_at).map_err(|e| {
            tracing::error!(request = %id, error = %e, "stored request no longer verifies");
            ApiError::new(Code::StoreCorrupt, "stored request is unreadable")
        })?;
    // The user's keys in force now: the only keys a root grant or a
    // denial may be signed with.
    let (keys, bindings) = user_keys(state, &user.principal, now).await?;
    // A root grant signed by one of those keys, answering this request,
    // to its agent: its verified chain, and its record to store.
    let root = |grant: &str| -> Result<_, ApiError> {
        let revoked = std::collections::HashSet::new();
        let cx = Context {
            now,
            policy: s.policy,
            keys: &keys,
            bindings: &bindings,
            revoked: &revoked,
        };
        let chain = verify_chain(&[grant], &cx).map_err(ApiError::token)?;
        let g = chain.root().claims();
        if g.req != Some(*id) {
            return Err(ApiError::new(
                Code::DecisionWrongRequest,
                "the grant answers another request",
            ));
        }
        if g.cnf.jkt != request.agent {
            return Err(ApiError::new(
                Code::DecisionWrongAgent,
                "the grant goes to another agent",
            ));
        }
        let record = GrantRecord {
            id: chain.root().id(),
            principal: user.principal.clone(),
            request_id: Some(*id),
            parent_id: None,
            issuer: chain.root().issuer(),
            grantee: g.cnf.jkt,
            token: grant.to_owned(),
            expires_at: g.exp,
            created_at: now,
        };
        Ok((chain, record))
    };
    match decision {
        Decision::Approve(grant) => {
            let (chain, record) = root(grant)?;
            let g = chain.root().claims();
            let a = asked.claims();
            if within(&g.authorization_details, &a.authorization_details).is_err()
                || g.max_depth > a.max_depth
                || g.exp
                    > now
                        .saturating_add(i64::from(a.lifetime))
                        .saturating_add(s.policy.clock_skew)
            {
                return Err(ApiError::new(
                    Code::DecisionExceedsRequest,
                    "the grant gives more than the agent asked for",
                ));
            }
            if let Err(e) = s.store.approve_request(id, &record, now).await {
                stands(state, id, kind, posted, e).await?;
            }
            s.known.granted(&record.principal, &record.grantee);
            s.store.touch_binding(&record.issuer, now).await?;
            state.inner.hub.wake(state.store()).await;
            Ok("approved")
        }
        Decision::Reissue { grant, replaces } => {
            let current = match (&request.status, &request.decision) {
                (RequestStatus::Approved, Some(current)) => current,
                _ => {
                    return Err(ApiError::new(
                        Code::NotApproved,
                        "only an approved request's grant can be re-issued",
                    ));
                }
            };
            if TokenId::of(current) != replaces {
                return Err(ApiError::new(
                    Code::DecisionStale,
                    "the request's grant is not the one this replaces",
                ));
            }
            if !s.store.is_revoked(&replaces).await? {
                return Err(ApiError::new(
                    Code::DecisionNotRevoked,
                    "revoke the grant this replaces first",
                ));
            }
            let (chain, record) = root(grant)?;
            let g = chain.root().claims();
            // The stored grant verified when it was accepted.
            let (_, old) = token::peek::<GrantClaims>(current).map_err(ApiError::token)?;
            if within(&g.authorization_details, &old.authorization_details).is_err()
                || g.max_depth > old.max_depth
                || g.exp > old.exp
            {
                return Err(ApiError::new(
                    Code::DecisionExceedsGrant,
                    "a re-issued grant must stay within the grant it replaces",
                ));
            }
            s.store
                .reissue_grant(id, current, &record, now)
                .await
                .map_err(on_conflict(
                    Code::DecisionStale,
                    "the request's grant changed meanwhile",
                ))?;
            state.inner.hub.wake(state.store()).await;
            Ok("approved")
        }
        Decision::Deny(denial) => {
            let (kid, _) = token::peek::<DenialClaims>(denial).map_err(ApiError::token)?;
            let key = keys.get(&kid).ok_or_else(|| {
                ApiError::new(
                    Code::DecisionKeyNotEnrolled,
                    "the signing key is not enrolled for this user",
                )
            })?;
            let verified = token::verify::<DenialClaims>(denial, key, &s.policy, now)
                .map_err(ApiError::token)?;
            if verified.claims().req != *id || verified.claims().sub != user.principal {
                return Err(ApiError::new(
                    Code::DecisionWrongRequest,
                    "the denial names another request or user",
                ));
            }
            if let Err(e) = s.store.deny_request(id, denial, now).await {
                stands(state, id, kind, posted, e).await?;
            }
            state.inner.hub.wake(state.store()).await;
            Ok("denied")
        }
    }
}
