//! Calls agents ask their users to confirm, one exact call at a time, for
//! a scope whose limits say `confirm` (docs/protocol.md 4.13, 5.8): the
//! agent files the call it will make (method, URI with query, body) under
//! its chain; the user sees it in the app and signs a
//! `mandate-confirmation+jwt` for it, or refuses; the agent collects the
//! answer and sends the call with it.

use std::time::Duration;

use mandate_core::token::{ConfirmationClaims, chain_hash};
use mandate_core::{
    Context, HttpCall, Jwk, MemoryReplayCache, Principal, PublicKey, Revoked, check_proof,
};
use mandate_store::{ConfirmationRecord, StoreError};
use serde::Serialize;

use crate::error::{Code, on_conflict, too_fast};
use crate::service::MAX_WAIT;
use crate::{ApiError, AppState, User, chains};

/// How long a call waits for the user: 5 minutes.
pub const CONFIRMATION_WAIT: i64 = 300;

/// The largest body a call to confirm may have: 64 KiB.
pub const MAX_CONFIRM_BODY: usize = 64 * 1024;

/// The longest summary: 1,000 bytes.
pub const MAX_SUMMARY: usize = 1000;

/// The most calls one agent may have waiting for one user.
pub const MAX_PENDING_PER_AGENT: i64 = 5;

/// A call an agent asks its user to confirm.
#[derive(Debug, Clone)]
pub struct Ask<'a> {
    /// The chain it runs under, root first.
    pub chain: &'a [String],
    /// The agents' public keys.
    pub keys: &'a [Jwk],
    /// A proof of possession by the chain's leaf agent, for `POST` on
    /// `/v1/confirmations`, bound to the chain (`ath`).
    pub proof: &'a str,
    /// The method.
    pub method: &'a str,
    /// The URI, with its query.
    pub uri: &'a str,
    /// The body, base64url (empty for none).
    pub body: &'a str,
    /// The agent's own account of the call, for the user.
    pub summary: &'a str,
}

/// A call filed for the user to confirm.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ConfirmationAsked {
    /// Its id: poll `GET /v1/confirmations/{id}`.
    pub id: String,
    /// `pending`.
    pub status: &'static str,
    /// When it lapses undecided.
    pub expires_at: i64,
}

/// Where a call to confirm stands, as its agent sees it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ConfirmationView {
    /// Its id.
    pub id: String,
    /// `pending`, `confirmed`, `refused` or `expired`.
    pub status: &'static str,
    /// When it lapses undecided.
    pub expires_at: i64,
    /// Once confirmed: the user's `mandate-confirmation+jwt`, to send with
    /// the call in `Mandate-Confirmation`.
    pub confirmation: Option<String>,
    /// Once refused: the user's reason, if they gave one.
    pub reason: Option<String>,
}

/// A call waiting for the user, as the app reads it: the app verifies the
/// chain and the body's hash itself before showing it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ConfirmationItem {
    /// Its id.
    pub id: String,
    /// The chain the call runs under, root first.
    pub chain: Vec<String>,
    /// The agents' public keys.
    #[schema(value_type = Vec<Object>)]
    pub keys: Vec<Jwk>,
    /// The method.
    pub method: String,
    /// The URI, with its query.
    pub uri: String,
    /// The body, base64url.
    pub body: String,
    /// The agent's own account of the call.
    pub summary: String,
    /// When it was asked.
    pub received_at: i64,
    /// When it lapses.
    pub expires_at: i64,
}

fn malformed(message: &'static str) -> ApiError {
    ApiError::new(Code::ConfirmationMalformed, message)
}

/// Files a call for the chain's user to confirm.
pub async fn ask(state: &AppState, ask: Ask<'_>) -> Result<ConfirmationAsked, ApiError> {
    let now = state.now();
    let s = &state.inner;
    let method_ok = !ask.method.is_empty()
        && ask.method.len() <= 16
        && ask.method.bytes().all(|b| b.is_ascii_uppercase());
    if !method_ok {
        return Err(malformed("method must be 1 to 16 uppercase letters"));
    }
    if ask.uri.contains('#') || mandate_core::uri::split_http_uri(ask.uri).is_none() {
        return Err(malformed(
            "uri must be an http(s) URI as the resource server sees it, without a fragment",
        ));
    }
    let body = mandate_core::base64url::decode(ask.body)
        .ok_or_else(|| malformed("body must be base64url (no padding)"))?;
    if body.len() > MAX_CONFIRM_BODY {
        return Err(malformed("body is over 64 KiB"));
    }
    if ask.summary.trim().is_empty()
        || ask.summary.len() > MAX_SUMMARY
        || ask.summary.chars().any(|c| c.is_control() && c != '\n')
    {
        return Err(malformed(
            "summary must be 1 to 1,000 bytes, with no control characters but newlines",
        ));
    }
    let checked = chains::check(state, ask.chain, ask.keys, Code::ConfirmationMalformed).await?;
    let leaf = *checked
        .keys
        .get(&checked.chain.leaf_key())
        .ok_or_else(|| ApiError::token(mandate_core::Error::UnknownKey))?;
    let uri = format!("{}/v1/confirmations", s.public_url);
    let call = HttpCall {
        method: "POST",
        uri: &uri,
    };
    let proof = check_proof(ask.proof, &leaf, checked.chain.ath(), &call, &s.policy, now)
        .map_err(ApiError::proof)?;
    let agent = checked.chain.leaf_key();
    if !s.limiters.agent_requests.allow(&agent.to_string()) {
        return Err(too_fast(Code::RateAgent));
    }
    let principal = checked.chain.principal().clone();
    if s.store
        .count_pending_confirmations(&principal, &agent, now)
        .await?
        >= MAX_PENDING_PER_AGENT
    {
        return Err(ApiError::new(
            Code::TooManyConfirmations,
            "too many of this agent's calls wait for the user",
        ));
    }
    state.spend(proof).await?;
    let mut id = [0u8; 16];
    rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut id);
    let record = ConfirmationRecord {
        id: mandate_core::base64url::encode(id),
        principal: principal.to_string(),
        agent: agent.to_string(),
        chain: serde_json::to_string(ask.chain).map_err(|_| StoreError::Corrupt("chain"))?,
        keys: serde_json::to_string(ask.keys).map_err(|_| StoreError::Corrupt("keys"))?,
        method: ask.method.to_owned(),
        uri: ask.uri.to_owned(),
        body: ask.body.to_owned(),
        summary: ask.summary.to_owned(),
        created_at: now,
        expires_at: now + CONFIRMATION_WAIT,
        status: "pending".into(),
        token: None,
        reason: None,
    };
    s.store.insert_confirmation(&record).await?;
    state.inner.hub.wake(state.store()).await;
    tracing::info!(confirmation = %record.id, agent = %agent, "call to confirm filed");
    Ok(ConfirmationAsked {
        id: record.id,
        status: "pending",
        expires_at: record.expires_at,
    })
}

/// Answers the agent polling call `id`: `pop` must be a proof by the
/// chain's leaf agent for `GET` on the call's URL, bound to the chain.
/// With `wait` (at most 30 s), a pending call is held open until the user
/// decides or the wait ends.
pub async fn poll(
    state: &AppState,
    id: &str,
    pop: Option<&str>,
    wait: Duration,
) -> Result<ConfirmationView, ApiError> {
    let s = &state.inner;
    let record = s
        .store
        .confirmation(id)
        .await?
        .ok_or_else(|| ApiError::new(Code::ConfirmationNotFound, "no such call to confirm"))?;
    let pop =
        pop.ok_or_else(|| ApiError::new(Code::PopMissing, "a Mandate-PoP header is required"))?;
    let chain: Vec<String> =
        serde_json::from_str(&record.chain).map_err(|_| StoreError::Corrupt("chain"))?;
    let keys: Vec<Jwk> =
        serde_json::from_str(&record.keys).map_err(|_| StoreError::Corrupt("keys"))?;
    let agent = keys
        .iter()
        .filter_map(|k| PublicKey::from_jwk(k).ok())
        .find(|k| k.thumbprint().to_string() == record.agent)
        .ok_or(StoreError::Corrupt("confirmation agent key"))?;
    let uri = format!("{}/v1/confirmations/{id}", s.public_url);
    let call = HttpCall {
        method: "GET",
        uri: &uri,
    };
    let proof = check_proof(
        pop,
        &agent,
        &chain_hash(&chain),
        &call,
        &s.policy,
        state.now(),
    )
    .map_err(|e| match e {
        mandate_core::Error::PopWrongKey => ApiError::new(
            Code::NotYourConfirmation,
            "the call is another agent's to make",
        ),
        other => ApiError::proof(other),
    })?;
    if !s.limiters.agent_calls.allow(&record.agent) {
        return Err(too_fast(Code::RateAgent));
    }
    state.spend(proof).await?;
    let record = if record.status == "pending" && !wait.is_zero() {
        wait_for_answer(state, id, wait).await?.unwrap_or(record)
    } else {
        record
    };
    let status = match record.status.as_str() {
        "pending" if record.expires_at <= state.now() => "expired",
        "pending" => "pending",
        "confirmed" => "confirmed",
        _ => "refused",
    };
    Ok(ConfirmationView {
        id: record.id,
        status,
        expires_at: record.expires_at,
        confirmation: record.token,
        reason: record.reason,
    })
}

/// Waits up to `wait` for call `id` to be decided, woken by the hub.
async fn wait_for_answer(
    state: &AppState,
    id: &str,
    wait: Duration,
) -> Result<Option<ConfirmationRecord>, ApiError> {
    let mut events = state.inner.hub.subscribe(state.store()).await?;
    let deadline = tokio::time::Instant::now() + wait.min(MAX_WAIT);
    loop {
        // Re-read after subscribing, so that an answer in between is not missed.
        let record = state.store().confirmation(id).await?;
        if record
            .as_ref()
            .is_none_or(|r| r.status != "pending" || r.expires_at <= state.now())
        {
            return Ok(record);
        }
        let changed = async {
            loop {
                match events.recv().await {
                    Ok(p) if p.event.subject == id => return,
                    Ok(_) => {}
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => return,
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => {
                        std::future::pending().await
                    }
                }
            }
        };
        if tokio::time::timeout_at(deadline, changed).await.is_err() {
            return Ok(state.store().confirmation(id).await?);
        }
    }
}

/// The user's calls waiting to be confirmed, oldest first.
pub async fn pending(state: &AppState, user: &User) -> Result<Vec<ConfirmationItem>, ApiError> {
    let rows = state
        .store()
        .pending_confirmations(&user.principal, state.now())
        .await?;
    rows.into_iter()
        .map(|r| {
            Ok(ConfirmationItem {
                chain: serde_json::from_str(&r.chain).map_err(|_| StoreError::Corrupt("chain"))?,
                keys: serde_json::from_str(&r.keys).map_err(|_| StoreError::Corrupt("keys"))?,
                id: r.id,
                method: r.method,
                uri: r.uri,
                body: r.body,
                summary: r.summary,
                received_at: r.created_at,
                expires_at: r.expires_at,
            })
        })
        .collect()
}

/// The user's answer to call `id`: their signed confirmation of exactly
/// that call (checked as a resource server would, 6.8, against the call
/// as filed), or a refusal with an optional reason.
pub async fn decide(
    state: &AppState,
    user: &User,
    id: &str,
    confirmation: Option<&str>,
    reason: Option<&str>,
) -> Result<&'static str, ApiError> {
    let record = match state.store().confirmation(id).await? {
        Some(r) if r.principal == user.principal.as_str() => r,
        _ => {
            return Err(ApiError::new(
                Code::ConfirmationNotFound,
                "no such call to confirm",
            ));
        }
    };
    if reason.is_some_and(|r| r.len() > MAX_SUMMARY || r.chars().any(char::is_control)) {
        return Err(ApiError::new(
            Code::DecisionMalformed,
            "a reason is at most 1,000 bytes, with no control characters",
        ));
    }
    if let Some(token) = confirmation {
        check_answer(state, &user.principal, &record, token).await?;
    }
    state
        .store()
        .decide_confirmation(id, confirmation, reason, state.now())
        .await
        .map_err(on_conflict(
            Code::ConfirmationDecided,
            "the call was confirmed, refused or lapsed before",
        ))?;
    state.inner.hub.wake(state.store()).await;
    Ok(if confirmation.is_some() {
        "confirmed"
    } else {
        "refused"
    })
}

/// Checks a confirmation against the call as filed, with a throwaway
/// replay cache (the resource server spends it).
async fn check_answer(
    state: &AppState,
    principal: &Principal,
    record: &ConfirmationRecord,
    token: &str,
) -> Result<(), ApiError> {
    let chain: Vec<String> =
        serde_json::from_str(&record.chain).map_err(|_| StoreError::Corrupt("chain"))?;
    let keys: Vec<Jwk> =
        serde_json::from_str(&record.keys).map_err(|_| StoreError::Corrupt("keys"))?;
    let checked = chains::check(state, &chain, &keys, Code::ConfirmationMalformed).await?;
    if checked.chain.principal() != principal {
        return Err(ApiError::new(
            Code::ConfirmationNotFound,
            "no such call to confirm",
        ));
    }
    let body = mandate_core::base64url::decode(&record.body)
        .ok_or(StoreError::Corrupt("confirmation body"))?;
    let call = HttpCall {
        method: &record.method,
        uri: &record.uri,
    };
    let revoked = Revoked::default();
    let cx = Context {
        now: state.now(),
        policy: state.inner.policy,
        keys: &checked.keys,
        bindings: &checked.bindings,
        revoked: &revoked,
    };
    let replay = MemoryReplayCache::new(16);
    ConfirmationClaims::verify(token, &checked.chain, &call, &body, &cx, &replay)
        .map(drop)
        .map_err(ApiError::token)?;
    Ok(())
}
