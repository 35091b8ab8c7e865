//! What a user signs: a grant answering a request (as asked, or
//! narrowed), a denial, a revocation. Pure functions: the time and the key
//! are parameters, and nothing is sent.

use mandate_core::scope::{self, AuthorizationDetail};
use mandate_core::token::{
    Actor, Confirmation, DenialClaims, GrantClaims, Jti, RequestClaims, RevocationClaims,
};
use mandate_core::{Claims as _, Policy, Principal, SigningKey, TokenId, UnixTime};
use rand_core::CryptoRngCore;

use crate::ClientError;

/// How the user narrows a request when approving it. `None` keeps what
/// the agent asked for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Narrowing {
    /// The scopes granted; each within what was asked.
    pub scopes: Option<Vec<AuthorizationDetail>>,
    /// The lifetime in seconds; at most what was asked.
    pub lifetime: Option<u32>,
    /// The delegation depth; at most what was asked.
    pub max_depth: Option<u8>,
}

/// Signs, with the user's `key`, a root grant answering `request` (a
/// compact `mandate-request+jwt`, which is verified first), narrowed as
/// the user chose. A narrowing that asks for more than the request is
/// refused, never widened.
pub fn grant_for(
    request: &str,
    principal: &Principal,
    key: &SigningKey,
    narrowing: &Narrowing,
    now: UnixTime,
    rng: &mut impl CryptoRngCore,
) -> Result<String, ClientError> {
    let asked = RequestClaims::verify(request, &Policy::default(), now)?;
    let claims = asked.claims();
    let scopes = narrowing
        .scopes
        .clone()
        .unwrap_or_else(|| claims.authorization_details.clone());
    if scopes.is_empty() {
        return Err(ClientError::Invalid(
            "approve at least one scope, or deny".into(),
        ));
    }
    scope::within(&scopes, &claims.authorization_details)
        .map_err(|e| ClientError::Invalid(format!("more than the agent asked for ({e:?})")))?;
    let lifetime = narrowing.lifetime.unwrap_or(claims.lifetime);
    let max_depth = narrowing.max_depth.unwrap_or(claims.max_depth);
    if lifetime == 0 || lifetime > claims.lifetime || max_depth > claims.max_depth {
        return Err(ClientError::Invalid(
            "a lifetime or depth beyond what the agent asked for".into(),
        ));
    }
    Ok(GrantClaims {
        sub: principal.clone(),
        act: Actor {
            sub: asked.signer().agent_id(),
        },
        cnf: Confirmation {
            jkt: asked.signer().thumbprint(),
        },
        authorization_details: scopes,
        purpose: claims.purpose.clone(),
        intent: claims.intent.clone(),
        iat: now,
        nbf: now,
        exp: now.saturating_add(i64::from(lifetime)),
        jti: Jti::random(rng),
        max_depth,
        prf: None,
        req: Some(asked.id()),
    }
    .sign(key))
}

/// Signs a denial of the request `request_id`, with an optional reason.
pub fn denial_for(
    request_id: TokenId,
    principal: &Principal,
    key: &SigningKey,
    reason: Option<&str>,
    now: UnixTime,
    rng: &mut impl CryptoRngCore,
) -> String {
    DenialClaims {
        sub: principal.clone(),
        req: request_id,
        reason: reason.map(str::to_owned),
        iat: now,
        jti: Jti::random(rng),
    }
    .sign(key)
}

/// Signs a revocation of `grants`.
pub fn revocation_for(
    grants: &[TokenId],
    principal: &Principal,
    key: &SigningKey,
    reason: Option<&str>,
    now: UnixTime,
    rng: &mut impl CryptoRngCore,
) -> String {
    RevocationClaims {
        sub: principal.clone(),
        revokes: grants.to_vec(),
        reason: reason.map(str::to_owned),
        iat: now,
        jti: Jti::random(rng),
    }
    .sign(key)
}
