//! The chain behind a sub-agent's request, verified before anything of it
//! is shown. The broker serves the chain's grants and its agents' keys
//! beside the request, and a broker may lie. So the app holds them to what
//! the request itself signed, and verifies them as a resource server
//! would: each link's signature under the key its parent names, the
//! linkage, attenuation, times, and a root signed by this user's own key
//! for this user. Only a chain that passes gives hops, names and counts;
//! anything else is a warning, never a chain.

use mandate_core::token::RequestClaims;
use mandate_core::{Principal, PublicKey, TokenId, VerifiedChain};

use crate::activity::Checker;
use crate::history::StoredRequest;

/// What the chain behind a request turned out to be.
#[derive(Debug)]
pub enum Parent {
    /// The request names no chain: the agent asks for itself.
    None,
    /// Every link verified.
    Verified(VerifiedChain),
    /// The chain cannot be shown; the text says why, for the user.
    Refused(String),
}

/// Verifies the chain behind `request` (whose claims are `claims`, already
/// verified) for `principal`, whose key is `user_key`, as it stood when the
/// broker received the request.
pub fn verify(
    request: &StoredRequest,
    claims: &RequestClaims,
    principal: &str,
    user_key: &PublicKey,
) -> Parent {
    let named = &claims.parent_chain;
    let served = &request.parent_chain;
    if named.is_empty() && served.is_empty() {
        return Parent::None;
    }
    let same = named.len() == served.len()
        && named
            .iter()
            .zip(served)
            .all(|(id, token)| *id == TokenId::of(token));
    if !same {
        return Parent::Refused(
            "The broker sent a chain of agents that is not the one this request names. \
             Who stands behind this agent is unknown: treat the request as its own."
                .into(),
        );
    }
    match check(served, request, principal, user_key) {
        Ok(chain) => Parent::Verified(chain),
        Err(code) => Parent::Refused(format!(
            "The chain of agents behind this request does not verify ({code}). \
             Who stands behind this agent is unknown: treat the request as its own."
        )),
    }
}

/// The chain verified with the receipts' [`Checker`]: this user's key
/// bound to `principal`, the served keys each under its own thumbprint (a
/// wrong one can only fail to match, never stand in for another), at
/// `received_at`.
fn check(
    chain: &[String],
    request: &StoredRequest,
    principal: &str,
    user_key: &PublicKey,
) -> Result<VerifiedChain, String> {
    let principal: Principal = principal
        .to_owned()
        .try_into()
        .map_err(|_| crate::EngineCode::PrincipalMalformed.as_str().to_owned())?;
    let mut checker = Checker::new(principal, user_key).map_err(|e| e.code().to_owned())?;
    for jwk in &request.parent_keys {
        checker.add_key(jwk).map_err(|e| e.code().to_owned())?;
    }
    checker
        .chain(chain, request.received_at)
        .cloned()
        .map_err(|e| e.code().to_owned())
}
