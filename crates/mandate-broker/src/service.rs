//! The broker's rules, one function per operation. Handlers call these;
//! these call mandate-core to verify and mandate-store to persist.

use std::time::Duration;

use mandate_core::token::{GrantClaims, RequestClaims, chain_hash};
use mandate_core::{
    CheckedProof, Error as TokenError, HttpCall, Jwk, Principal, Thumbprint, TokenId, check_proof,
};
use mandate_store::{Lane, NewRequest, RequestStatus};
use serde::Serialize;

use crate::error::{Code, on_conflict, too_fast};
use crate::{ApiError, AppState};

/// The answer to a filed request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Submitted {
    /// The request's id, for polling.
    #[schema(value_type = String)]
    pub id: TokenId,
    /// Always `pending` for a new request.
    pub status: &'static str,
    /// The code the agent shows its user, as the app will show it.
    pub binding_code: String,
    /// When the request lapses undecided.
    pub expires_at: i64,
}

/// A request as its agent sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct RequestView {
    /// The request's id.
    #[schema(value_type = String)]
    pub id: TokenId,
    /// `pending`, `approved`, `denied` or `expired`.
    pub status: &'static str,
    /// When it lapses (or lapsed) undecided.
    pub expires_at: i64,
    /// The grant, once approved.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub grant: Option<String>,
    /// The broker's `mandate-binding+jwt` for the key that signed the
    /// grant, once approved, so that resource servers can trust the root.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub binding: Option<String>,
    /// That user key, as an OKP JWK, once approved.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub user_key: Option<mandate_core::Jwk>,
    /// The denial, once denied.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub denial: Option<String>,
}

/// What travels beside a sub-agent's request: the chain it extends and
/// the delegating agent's endorsement.
#[derive(Debug, Clone, Copy, Default)]
pub struct Parent<'a> {
    /// The parent chain's grants, root first; their ids are the request's
    /// `parent_chain`.
    pub chain: &'a [String],
    /// The agents' public keys along that chain.
    pub keys: &'a [Jwk],
    /// A `mandate-pop+jwt` by the parent chain's leaf agent, for `POST` on
    /// `/v1/requests`, whose `ath` is the chain hash of the parent chain
    /// followed by the request: the delegating agent asks for this exact
    /// request on its sub-agent's behalf.
    pub endorsement: Option<&'a str>,
}

/// Files an agent's signed request in its user's inbox.
///
/// The request must verify (signature under the key in its header, times,
/// scopes) and name a principal in `principal_hint`. Whether that
/// principal has an enrolled key is not checked, and not told: a request
/// for nobody is filed like any other, and lapses unseen. The same
/// request twice is refused as a replay.
///
/// The inbox is fair (docs/broker.md, "A fair inbox"): a request from an
/// agent the user approved before, or from a sub-agent such an agent
/// endorsed, waits in the user's *known* lane; any other in the *new*
/// lane. Each lane has its own cap on pending requests and its own rate,
/// and each agent (for a sub-agent, the endorsing agent) its own cap and
/// rate, so that throwaway keys can fill only the new lane, and cannot
/// keep the agents the user already trusts from reaching them.
///
/// A sub-agent's request names the grants of the chain it extends in
/// `parent_chain`; `parent` carries them, and they must verify here, for
/// the same principal, with the chain's leaf agent endorsing the request.
pub async fn submit_request(
    state: &AppState,
    compact: &str,
    parent: Parent<'_>,
) -> Result<Submitted, ApiError> {
    file_request(state, compact, parent, false).await
}

/// Files a request the broker made and signed itself, with the key it
/// holds for an OAuth client ([`crate::oauth::authorize`]): the only kind
/// that may carry `oauth_client`.
pub(crate) async fn file_for_oauth_client(
    state: &AppState,
    compact: &str,
) -> Result<Submitted, ApiError> {
    file_request(state, compact, Parent::default(), true).await
}

async fn file_request(
    state: &AppState,
    compact: &str,
    parent: Parent<'_>,
    by_broker: bool,
) -> Result<Submitted, ApiError> {
    let now = state.now();
    let s = &state.inner;
    let request = RequestClaims::verify(compact, &s.policy, now).map_err(ApiError::token)?;
    let claims = request.claims();
    if claims.oauth_client.is_some() != by_broker {
        return Err(ApiError::new(
            Code::OAuthClientClaim,
            "only the broker files requests for OAuth clients",
        ));
    }
    let principal = principal_of(state, claims.principal_hint.as_deref())?;
    let agent = request.signer().thumbprint();
    if !s.limiters.agent_requests.allow(&agent.to_string()) {
        return Err(too_fast(Code::RateAgent));
    }
    let endorsement =
        check_parent(state, compact, &claims.parent_chain, &principal, parent).await?;
    let (lane, sponsor) = match &endorsement {
        Some((_, endorser)) => (Lane::Known, *endorser),
        None if s.known.is_known(&s.store, &principal, &agent).await? => (Lane::Known, agent),
        None => (Lane::New, agent),
    };
    crate::rules::screen(state, &principal, claims, &agent, &sponsor, now).await?;
    let (max_pending, prompts) = match lane {
        Lane::Known => (s.limits.max_pending_known, &s.limiters.known_prompts),
        Lane::New => (s.limits.max_pending_new, &s.limiters.new_prompts),
    };
    if !prompts.allow(principal.as_str()) {
        return Err(too_fast(Code::RateUserPrompts));
    }
    if let Some((proof, _)) = endorsement {
        state.spend(proof).await?;
    }
    let expires_at = claims
        .exp
        .min(now.saturating_add(s.limits.max_request_wait));
    // Only the keys the chain's links name; the app checks them itself.
    let parent_keys = crate::chains::keys_named(parent.chain, parent.keys)?;
    let new = NewRequest {
        id: request.id(),
        agent,
        principal: &principal,
        token: compact,
        parent_chain: parent.chain,
        parent_keys: &parent_keys,
        created_at: now,
        expires_at,
        lane,
        sponsor,
        max_pending,
        max_pending_per_agent: s.limits.max_pending_per_agent,
    };
    s.store.insert_request(&new).await.map_err(|e| match e {
        mandate_store::StoreError::Full => ApiError::new(
            Code::TooManyPending,
            "too many requests wait for this user, from this agent or from agents like it",
        ),
        other => on_conflict(Code::RequestReplayed, "this request was filed before")(other),
    })?;
    state.inner.hub.wake(state.store()).await;
    tracing::info!(request = %request.id(), agent = %agent, lane = lane.as_str(), "request filed");
    Ok(Submitted {
        id: request.id(),
        status: "pending",
        binding_code: claims.binding_code.to_string(),
        expires_at,
    })
}

/// Checks what a sub-agent's request stands on: for a sub-agent's
/// request, the endorsement (to be spent once the cheap checks pass) and
/// the endorsing agent's key; nothing for a plain request.
async fn check_parent(
    state: &AppState,
    compact: &str,
    ids: &[TokenId],
    principal: &Principal,
    parent: Parent<'_>,
) -> Result<Option<(CheckedProof, Thumbprint)>, ApiError> {
    let mismatch = |message| ApiError::new(Code::ParentChainMismatch, message);
    if ids.is_empty() {
        if !parent.chain.is_empty() || parent.endorsement.is_some() {
            return Err(mismatch(
                "a parent chain came with a request that names none",
            ));
        }
        return Ok(None);
    }
    if parent.chain.len() != ids.len()
        || parent
            .chain
            .iter()
            .zip(ids)
            .any(|(t, id)| TokenId::of(t) != *id)
    {
        return Err(mismatch(
            "the parent chain sent is not the one the request names",
        ));
    }
    let checked =
        crate::chains::check(state, parent.chain, parent.keys, Code::ParentChainMismatch).await?;
    if checked.chain.principal() != principal {
        return Err(mismatch("the parent chain is another user's"));
    }
    let endorsement = parent.endorsement.ok_or_else(|| {
        ApiError::new(
            Code::EndorsementMissing,
            "a sub-agent's request needs its delegating agent's endorsement",
        )
    })?;
    let leaf = checked
        .keys
        .get(&checked.chain.leaf_key())
        .ok_or_else(|| ApiError::token(TokenError::UnknownKey))?;
    let mut covered: Vec<&str> = parent.chain.iter().map(String::as_str).collect();
    covered.push(compact);
    let uri = format!("{}/v1/requests", state.inner.public_url);
    let call = HttpCall {
        method: "POST",
        uri: &uri,
    };
    let s = &state.inner;
    let proof = check_proof(
        endorsement,
        leaf,
        &chain_hash(&covered),
        &call,
        &s.policy,
        state.now(),
    )
    .map_err(ApiError::proof)?;
    Ok(Some((proof, checked.chain.leaf_key())))
}

/// Answers an agent polling its request. `pop` must be a proof of
/// possession by the agent that filed it, for `GET` on the request's URL,
/// with `ath` the hash of the request token.
pub async fn poll_request(
    state: &AppState,
    id: &TokenId,
    pop: Option<&str>,
    wait: Duration,
) -> Result<RequestView, ApiError> {
    let now = state.now();
    let s = &state.inner;
    let record = s
        .store
        .request(id)
        .await?
        .ok_or_else(|| ApiError::new(Code::RequestNotFound, "no such request"))?;
    let pop =
        pop.ok_or_else(|| ApiError::new(Code::PopMissing, "a Mandate-PoP header is required"))?;
    let key = RequestClaims::agent_key(&record.token).map_err(|e| {
        tracing::error!(request = %id, error = %e, "stored request no longer verifies");
        ApiError::new(Code::StoreCorrupt, "stored request is unreadable")
    })?;
    let uri = format!("{}/v1/requests/{id}", s.public_url);
    let ath = chain_hash(&[record.token.as_str()]);
    let call = HttpCall {
        method: "GET",
        uri: &uri,
    };
    let proof = check_proof(pop, &key, &ath, &call, &s.policy, now).map_err(|e| match e {
        TokenError::PopWrongKey => {
            ApiError::new(Code::NotYourRequest, "the request belongs to another agent")
        }
        other => ApiError::proof(other),
    })?;
    if !s.limiters.agent_calls.allow(&key.thumbprint().to_string()) {
        return Err(too_fast(Code::RateAgent));
    }
    state.spend(proof).await?;
    let record = if record.status == RequestStatus::Pending && !wait.is_zero() {
        wait_for_decision(state, id, wait).await?.unwrap_or(record)
    } else {
        record
    };
    let now = state.now();
    let status = match record.status {
        RequestStatus::Pending if record.expires_at <= now => RequestStatus::Expired,
        other => other,
    };
    let decision = |wanted| {
        (record.status == wanted)
            .then(|| record.decision.clone())
            .flatten()
    };
    let grant = decision(RequestStatus::Approved);
    let signer = match &grant {
        Some(grant) => match mandate_core::token::peek::<GrantClaims>(grant) {
            Ok((kid, _)) => s.store.binding(&kid).await?,
            Err(e) => {
                tracing::error!(request = %id, error = %e, "stored grant no longer parses");
                None
            }
        },
        None => None,
    };
    Ok(RequestView {
        id: record.id,
        status: status.as_str(),
        expires_at: record.expires_at,
        grant,
        binding: signer.as_ref().map(|b| b.token.clone()),
        user_key: signer.map(|b| b.key.to_jwk()),
        denial: decision(RequestStatus::Denied),
    })
}

/// The longest an agent may hold a poll open.
pub const MAX_WAIT: Duration = Duration::from_secs(30);

/// Waits up to `wait` for the request to leave `pending`, woken by the
/// event hub; returns the request as it then stands.
async fn wait_for_decision(
    state: &AppState,
    id: &TokenId,
    wait: Duration,
) -> Result<Option<mandate_store::RequestRecord>, ApiError> {
    let mut events = state.inner.hub.subscribe(state.store()).await?;
    let subject = id.to_string();
    let deadline = tokio::time::Instant::now() + wait.min(MAX_WAIT);
    loop {
        // Re-read after subscribing, so that a decision in between is not missed.
        let record = state.store().request(id).await?;
        if record
            .as_ref()
            .is_none_or(|r| r.status != RequestStatus::Pending || r.expires_at <= state.now())
        {
            return Ok(record);
        }
        let changed = async {
            loop {
                match events.recv().await {
                    Ok(p) if p.event.subject == subject => return,
                    Ok(_) => {}
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => return,
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => {
                        std::future::pending().await
                    }
                }
            }
        };
        if tokio::time::timeout_at(deadline, changed).await.is_err() {
            return Ok(state.store().request(id).await?);
        }
    }
}

/// The user a request is for: its `principal_hint`, which must be
/// `ISSUER#SUBJECT` with ISSUER one of this broker's issuers (as its
/// metadata lists them) and SUBJECT not empty. Any such principal is
/// filed alike, enrolled or not, so that nobody learns who is.
fn principal_of(state: &AppState, hint: Option<&str>) -> Result<Principal, ApiError> {
    let hint = hint
        .ok_or_else(|| ApiError::new(Code::NoPrincipal, "the request names no principal_hint"))?;
    let malformed = || {
        ApiError::new(
            Code::NoPrincipal,
            "principal_hint must be the user as ISSUER#SUBJECT",
        )
    };
    let (issuer, subject) = hint.split_once('#').ok_or_else(malformed)?;
    if issuer.is_empty() || subject.is_empty() {
        return Err(malformed());
    }
    if !state
        .inner
        .oidc
        .issuers()
        .iter()
        .any(|i| i.issuer == issuer)
    {
        return Err(ApiError::new(
            Code::UnknownIssuer,
            "principal_hint names an issuer this broker does not take",
        ));
    }
    Principal::try_from(hint.to_owned()).map_err(|_| malformed())
}
