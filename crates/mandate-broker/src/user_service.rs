//! What signed-in users do: read their inbox, enroll a signing key, and
//! decide requests.

use axum::http::StatusCode;
use mandate_core::scope::within;
use mandate_core::token::{
    self, BindingClaims, Claims as _, Confirmation, DenialClaims, GrantClaims, Jti, RequestClaims,
    chain_hash,
};
use mandate_core::{
    BindingSet, Context, HttpCall, Jwk, KeySet, PublicKey, TokenId, verify_chain, verify_proof,
};
use mandate_store::{Binding, BindingPut, GrantRecord, RequestRecord, RequestStatus};
use serde::Serialize;

use crate::error::on_conflict;
use crate::{ApiError, AppState, User};

/// How long a key binding lasts: 7 days. The app renews it while the user
/// is signed in on that device (at half its life), so a device that is
/// lost, wiped or simply abandoned stops vouching for new chains within a
/// week, even if nobody removes its key; a week covers a laptop closed
/// over a holiday, after which a sign-in enrolls it again. Removing a key
/// ends it at once.
pub const BINDING_LIFETIME: i64 = 7 * 24 * 3600;

/// How recent a sign-in must be to enroll a new key: 5 minutes, from the
/// ID token's `auth_time` (or `iat` when it has none). The app enrolls
/// right after the sign-in, so this is minutes of consent pages and
/// clock skew, not the hour an ID token stays valid.
pub const ENROLLMENT_MAX_AGE: i64 = 300;

/// The longest device name, in characters.
pub const MAX_DEVICE_CHARS: usize = 64;

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
}

/// The user's pending requests, oldest first.
pub async fn inbox(state: &AppState, user: &User) -> Result<Vec<InboxItem>, ApiError> {
    let pending = state
        .store()
        .pending_requests(&user.principal, state.now())
        .await?;
    pending
        .into_iter()
        .map(|r| {
            Ok(InboxItem {
                keys: serde_json::from_str(&r.parent_keys)
                    .map_err(|_| mandate_store::StoreError::Corrupt("request keys"))?,
                id: r.id,
                request: r.token,
                parent_chain: r.parent_chain,
                received_at: r.created_at,
                expires_at: r.expires_at,
            })
        })
        .collect()
}

/// A new binding.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Enrolled {
    /// The `mandate-binding+jwt` the broker signed.
    pub binding: String,
    /// The enrolled key's thumbprint.
    pub jkt: String,
    /// When the binding lapses.
    pub expires_at: i64,
}

/// What a client sends to enroll (or renew) a user key.
#[derive(Debug, Clone, Copy)]
pub struct Enrollment<'a> {
    /// The user key, as a public OKP JWK.
    pub jwk: &'a Jwk,
    /// A proof of possession by that key, for `POST` on `/v1/keys`, whose
    /// `ath` is the [`chain_hash`] of the bearer token.
    pub proof: &'a str,
    /// For a new key: the device's name, shown on the user's other devices.
    pub device: Option<&'a str>,
    /// For a new key: the sign-in's session key, whose thumbprint the ID
    /// token's `nonce` must be.
    pub session_jwk: Option<&'a Jwk>,
    /// For a new key: a proof by the session key, like `proof`.
    pub session_proof: Option<&'a str>,
}

/// Binds a user key to the signed-in user, or renews its binding.
///
/// Every call proves possession of the key in this sign-in (`proof`). A
/// key already bound to this user, and not lapsed, is renewed: a new
/// binding for the broker's binding lifetime ([`BINDING_LIFETIME`] by
/// default). Anything else is a new enrollment,
/// and then the sign-in must be:
/// - fresh: authenticated at most [`ENROLLMENT_MAX_AGE`] ago
///   (`key.sign_in_stale`);
/// - committed to this enrollment: the ID token's `nonce` is the
///   thumbprint of a session key the app made for this sign-in, and
///   `session_proof` proves possession of it (`key.nonce_mismatch`), so a
///   copied ID token cannot enroll a key of the copier's;
/// - spent once: an ID token enrolls one key (`key.token_spent`).
///
/// A new enrollment is a `key.enrolled` event on the user's stream.
pub async fn enroll(
    state: &AppState,
    user: &User,
    e: Enrollment<'_>,
) -> Result<Enrolled, ApiError> {
    let now = state.now();
    let s = &state.inner;
    let key = PublicKey::from_jwk(e.jwk).map_err(ApiError::token)?;
    let uri = format!("{}/v1/keys", s.public_url);
    let call = HttpCall {
        method: "POST",
        uri: &uri,
    };
    let ath = chain_hash(&[user.token.expose()]);
    let unauthorized =
        |e: mandate_core::Error| ApiError::new(StatusCode::UNAUTHORIZED, e.code(), e.to_string());
    let bound_elsewhere = || conflict("key.bound_elsewhere", "the key belongs to another user");
    let current = s.store.binding(&key.thumbprint()).await?;
    // The cheap checks first: a proof is recorded (spent) only after them.
    let device = match &current {
        Some(b) if b.principal != user.principal => return Err(bound_elsewhere()),
        Some(b) if b.expires_at > now => {
            verify_proof(e.proof, &key, &ath, &call, &s.policy, now, &s.replay)
                .map_err(unauthorized)?;
            b.device.clone()
        }
        _ => {
            let fresh = user
                .authenticated_at
                .is_some_and(|at| now.saturating_sub(at) <= ENROLLMENT_MAX_AGE);
            if !fresh {
                return Err(ApiError::new(
                    StatusCode::UNAUTHORIZED,
                    "key.sign_in_stale",
                    "enrolling a new key needs a sign-in from the last 5 minutes",
                ));
            }
            let device = device_name(e.device)?;
            let (Some(session_jwk), Some(session_proof)) = (e.session_jwk, e.session_proof) else {
                return Err(ApiError::bad_request(
                    "key.session_missing",
                    "a new key needs the sign-in's session key and its proof",
                ));
            };
            let session = PublicKey::from_jwk(session_jwk).map_err(ApiError::token)?;
            if user.nonce.as_deref() != Some(session.thumbprint().to_string().as_str()) {
                return Err(ApiError::new(
                    StatusCode::UNAUTHORIZED,
                    "key.nonce_mismatch",
                    "the sign-in was not made for this enrollment",
                ));
            }
            verify_proof(e.proof, &key, &ath, &call, &s.policy, now, &s.replay)
                .map_err(unauthorized)?;
            verify_proof(
                session_proof,
                &session,
                &ath,
                &call,
                &s.policy,
                now,
                &s.replay,
            )
            .map_err(unauthorized)?;
            s.store
                .spend_id_token(
                    &TokenId::of(user.token.expose()).to_string(),
                    user.expires_at,
                    now,
                )
                .await
                .map_err(on_conflict(
                    "key.token_spent",
                    "this sign-in has enrolled a key already; sign in again",
                ))?;
            device
        }
    };
    let expires_at = now.saturating_add(s.limits.binding_lifetime);
    let claims = BindingClaims {
        iss: s.public_url.clone(),
        sub: user.principal.clone(),
        cnf: Confirmation {
            jkt: key.thumbprint(),
        },
        iat: now,
        exp: expires_at,
        jti: Jti::random(&mut rand_core::OsRng),
    };
    let binding = claims.sign(&s.key);
    let record = Binding {
        jkt: key.thumbprint(),
        key,
        principal: user.principal.clone(),
        token: binding.clone(),
        issued_at: now,
        expires_at,
        device,
        enrolled_at: now,
        last_used_at: None,
    };
    let put = s.store.put_binding(&record).await.map_err(on_conflict(
        "key.bound_elsewhere",
        "the key belongs to another user",
    ))?;
    state.inner.hub.wake(state.store()).await;
    match put {
        BindingPut::Enrolled(_) => tracing::info!(jkt = %key.thumbprint(), "user key enrolled"),
        BindingPut::Renewed(_) => {
            tracing::info!(jkt = %key.thumbprint(), "user key binding renewed")
        }
    }
    Ok(Enrolled {
        binding,
        jkt: key.thumbprint().to_string(),
        expires_at,
    })
}

/// A device name: 1 to [`MAX_DEVICE_CHARS`] characters, none of them a
/// control character, not blank.
fn device_name(name: Option<&str>) -> Result<String, ApiError> {
    match name {
        Some(n)
            if !n.trim().is_empty()
                && n.chars().count() <= MAX_DEVICE_CHARS
                && !n.chars().any(char::is_control) =>
        {
            Ok(n.to_owned())
        }
        _ => Err(ApiError::bad_request(
            "key.device_malformed",
            "a new key needs a device name of 1 to 64 characters, without control characters",
        )),
    }
}

/// One of the user's keys, as the Devices screen shows it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct KeyItem {
    /// The key's thumbprint.
    pub jkt: String,
    /// The device's name, as given at enrollment.
    pub device: String,
    /// When the key was first enrolled.
    pub enrolled_at: i64,
    /// When the broker last accepted something the key signed.
    pub last_used_at: Option<i64>,
    /// When its current binding lapses.
    pub expires_at: i64,
}

/// The signed-in user's keys, oldest first.
pub async fn keys(state: &AppState, user: &User) -> Result<Vec<KeyItem>, ApiError> {
    Ok(state
        .store()
        .bindings_of(&user.principal)
        .await?
        .into_iter()
        .map(|b| KeyItem {
            jkt: b.jkt.to_string(),
            device: b.device,
            enrolled_at: b.enrolled_at,
            last_used_at: b.last_used_at,
            expires_at: b.expires_at,
        })
        .collect())
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

/// The user's own request, or 404: other users' requests do not exist for them.
async fn own_request(
    state: &AppState,
    user: &User,
    id: &TokenId,
) -> Result<RequestRecord, ApiError> {
    match state.store().request(id).await? {
        Some(r) if r.principal == user.principal => Ok(r),
        _ => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "request.not_found",
            "no such request",
        )),
    }
}

fn unprocessable(code: &'static str, message: &str) -> ApiError {
    ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, code, message)
}

fn conflict(code: &'static str, message: &str) -> ApiError {
    ApiError::new(StatusCode::CONFLICT, code, message)
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
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "store.corrupt",
                "stored request is unreadable",
            )
        })?;
    // The user's keys in force now: the only keys a root grant or a
    // denial may be signed with.
    let mut keys = KeySet::new();
    let mut bindings = BindingSet::new();
    for b in s
        .store
        .bindings_of(&user.principal)
        .await?
        .into_iter()
        .filter(|b| b.expires_at > now)
    {
        keys.insert(b.key);
        bindings
            .insert(user.principal.clone(), b.jkt)
            .map_err(ApiError::token)?;
    }
    let already = on_conflict(
        "request.already_decided",
        "the request was decided or has lapsed",
    );
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
            return Err(unprocessable(
                "decision.wrong_request",
                "the grant answers another request",
            ));
        }
        if g.cnf.jkt != request.agent {
            return Err(unprocessable(
                "decision.wrong_agent",
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
                return Err(unprocessable(
                    "decision.exceeds_request",
                    "the grant gives more than the agent asked for",
                ));
            }
            s.store
                .approve_request(id, &record, now)
                .await
                .map_err(already)?;
            s.store.touch_binding(&record.issuer, now).await?;
            state.inner.hub.wake(state.store()).await;
            Ok("approved")
        }
        Decision::Reissue { grant, replaces } => {
            let current = match (&request.status, &request.decision) {
                (RequestStatus::Approved, Some(current)) => current,
                _ => {
                    return Err(conflict(
                        "request.not_approved",
                        "only an approved request's grant can be re-issued",
                    ));
                }
            };
            if TokenId::of(current) != replaces {
                return Err(conflict(
                    "decision.stale",
                    "the request's grant is not the one this replaces",
                ));
            }
            if !s.store.is_revoked(&replaces).await? {
                return Err(conflict(
                    "decision.not_revoked",
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
                return Err(unprocessable(
                    "decision.exceeds_grant",
                    "a re-issued grant must stay within the grant it replaces",
                ));
            }
            s.store
                .reissue_grant(id, current, &record, now)
                .await
                .map_err(on_conflict(
                    "decision.stale",
                    "the request's grant changed meanwhile",
                ))?;
            state.inner.hub.wake(state.store()).await;
            Ok("approved")
        }
        Decision::Deny(denial) => {
            let (kid, _) = token::peek::<DenialClaims>(denial).map_err(ApiError::token)?;
            let key = keys.get(&kid).ok_or_else(|| {
                ApiError::new(
                    StatusCode::FORBIDDEN,
                    "decision.key_not_enrolled",
                    "the signing key is not enrolled for this user",
                )
            })?;
            let verified = token::verify::<DenialClaims>(denial, key, &s.policy, now)
                .map_err(ApiError::token)?;
            if verified.claims().req != *id || verified.claims().sub != user.principal {
                return Err(unprocessable(
                    "decision.wrong_request",
                    "the denial names another request or user",
                ));
            }
            s.store
                .deny_request(id, denial, now)
                .await
                .map_err(already)?;
            state.inner.hub.wake(state.store()).await;
            Ok("denied")
        }
    }
}
