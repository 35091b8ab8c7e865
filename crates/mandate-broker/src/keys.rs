//! Users' keys, one per device: enrollment under a fresh sign-in made
//! for it, renewal, the list, and removal (a signed key revocation on the
//! feed). See docs/broker.md, "Keys and devices".

use axum::http::StatusCode;
use mandate_core::token::{BindingClaims, Confirmation, Jti, KeyRevocationClaims, chain_hash};
use mandate_core::{Claims as _, HttpCall, Jwk, PublicKey, TokenId, check_proof};
use mandate_store::{Binding, BindingPut, RevocationRecord, Withdrawn};
use serde::Serialize;

use crate::error::{Code, on_conflict};
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
    let unauthorized = ApiError::proof;
    if s.store.is_key_revoked(&key.thumbprint()).await? {
        return Err(ApiError::new(
            Code::KeyRevoked,
            "this key was removed and is never bound again; make a new one",
        ));
    }
    let bound_elsewhere =
        || ApiError::new(Code::KeyBoundElsewhere, "the key belongs to another user");
    let current = s.store.binding(&key.thumbprint()).await?;
    // The cheap checks first: a proof is recorded (spent) only after them.
    let device = match &current {
        Some(b) if b.principal != user.principal => return Err(bound_elsewhere()),
        Some(b) if b.expires_at > now => {
            let proof =
                check_proof(e.proof, &key, &ath, &call, &s.policy, now).map_err(unauthorized)?;
            state.spend(proof).await?;
            b.device.clone()
        }
        _ => {
            let fresh = user
                .authenticated_at
                .is_some_and(|at| now.saturating_sub(at) <= ENROLLMENT_MAX_AGE);
            if !fresh {
                return Err(ApiError::new(
                    Code::SignInStale,
                    "enrolling a new key needs a sign-in from the last 5 minutes",
                ));
            }
            let device = device_name(e.device)?;
            let (Some(session_jwk), Some(session_proof)) = (e.session_jwk, e.session_proof) else {
                return Err(ApiError::new(
                    Code::SessionMissing,
                    "a new key needs the sign-in's session key and its proof",
                ));
            };
            let session = PublicKey::from_jwk(session_jwk).map_err(ApiError::token)?;
            if user.nonce.as_deref() != Some(session.thumbprint().to_string().as_str()) {
                return Err(ApiError::new(
                    Code::NonceMismatch,
                    "the sign-in was not made for this enrollment",
                ));
            }
            let proof =
                check_proof(e.proof, &key, &ath, &call, &s.policy, now).map_err(unauthorized)?;
            let session_proof = check_proof(session_proof, &session, &ath, &call, &s.policy, now)
                .map_err(unauthorized)?;
            state.spend(proof).await?;
            state.spend(session_proof).await?;
            s.store
                .spend_id_token(
                    &TokenId::of(user.token.expose()).to_string(),
                    user.expires_at,
                    now,
                )
                .await
                .map_err(on_conflict(
                    Code::TokenSpent,
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
        Code::KeyBoundElsewhere,
        "the key belongs to another user",
    ))?;
    state.inner.chain_state.changed();
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
        _ => Err(ApiError::new(
            Code::DeviceMalformed,
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

/// A removal the broker accepted.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Removed {
    /// The key revocation's id.
    #[schema(value_type = String)]
    pub id: TokenId,
    /// The keys it removed.
    pub keys: Vec<String>,
}

/// Removes user keys of the signed-in user: `compact` is a
/// `mandate-key-revocation+jwt` signed by one of the user's bound keys
/// (another device's, or the removed key itself), for this user, naming
/// only this user's keys. The keys' bindings go, they are never bound
/// again (`key.revoked`), and each is an entry of the revocation feed, so
/// that every verifier refuses the chains rooted in them. Posting the same
/// removal again succeeds and changes nothing.
pub async fn remove(state: &AppState, user: &User, compact: &str) -> Result<Removed, ApiError> {
    let now = state.now();
    let s = &state.inner;
    let not_authorized = || {
        ApiError::rule(
            StatusCode::FORBIDDEN,
            &mandate_core::Error::RevocationNotAuthorized,
            "the key revocation is not the signed-in user's, or names another user's key",
        )
    };
    let (kid, _) =
        mandate_core::token::peek::<KeyRevocationClaims>(compact).map_err(ApiError::token)?;
    let signer = match s.store.binding(&kid).await? {
        Some(b) if b.principal == user.principal && b.expires_at > now => b,
        _ => return Err(not_authorized()),
    };
    let verified =
        mandate_core::token::verify::<KeyRevocationClaims>(compact, &signer.key, &s.policy, now)
            .map_err(ApiError::token)?;
    let claims = verified.claims();
    if claims.sub != user.principal {
        return Err(not_authorized());
    }
    for jkt in &claims.keys {
        let mine = match s.store.binding(jkt).await? {
            Some(b) => b.principal == user.principal,
            None => s.store.is_key_revoked(jkt).await?,
        };
        if !mine {
            return Err(not_authorized());
        }
    }
    let id = TokenId::of(compact);
    let record = RevocationRecord {
        id,
        principal: user.principal.clone(),
        signer: kid,
        token: compact.to_owned(),
        created_at: now,
    };
    let withdrawn: Vec<Withdrawn> = claims.keys.iter().copied().map(Withdrawn::Key).collect();
    match s.store.insert_revocation(&record, &withdrawn).await {
        Ok(_) | Err(mandate_store::StoreError::Conflict) => {}
        Err(e) => return Err(e.into()),
    }
    state.inner.chain_state.changed();
    state.inner.hub.wake(state.store()).await;
    tracing::info!(revocation = %id, keys = claims.keys.len(), "user keys removed");
    Ok(Removed {
        id,
        keys: claims.keys.iter().map(ToString::to_string).collect(),
    })
}
