//! `mandate-confirmation+jwt`: the user's signed yes to one exact call,
//! for a scope whose limits say `confirm`: this method, this URI with its
//! query, this body, by this agent, under this chain, once.

use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use super::{Claims, Confirmation, Jti, Policy, Principal, UnixTime};
use crate::chain::{Context, VerifiedChain};
use crate::jws::TokenKind;
use crate::replay::{ReplayCache, SpentProof};
use crate::verifier::HttpCall;
use crate::{Error, b64};

/// The longest a confirmation may live: 10 minutes, in seconds.
pub const MAX_CONFIRMATION_LIFETIME: i64 = 600;

/// The claims of a confirmation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfirmationClaims {
    /// The user who confirms: the chain's principal.
    pub sub: Principal,
    /// The agent that may make the call: the chain's leaf key.
    pub cnf: Confirmation,
    /// The chain the call runs under ([`super::chain_hash`]).
    pub ath: String,
    /// The HTTP method, compared exactly.
    pub htm: String,
    /// The call's URI with its query, compared as [`same_request`] says.
    pub htu: String,
    /// base64url SHA-256 of the body's bytes, as sent ([`body_hash`]).
    pub bdh: String,
    /// Issued at.
    pub iat: UnixTime,
    /// Not valid from this instant on; at most 10 minutes after `iat`.
    pub exp: UnixTime,
    /// Unique id; a verifier accepts each once.
    pub jti: Jti,
}

impl Claims for ConfirmationClaims {
    const KIND: TokenKind = TokenKind::Confirmation;

    fn check(&self, policy: &Policy, now: UnixTime) -> Result<(), Error> {
        if self.exp.saturating_sub(self.iat) > MAX_CONFIRMATION_LIFETIME {
            return Err(Error::Malformed("a confirmation lives 10 minutes at most"));
        }
        policy.check_window(self.iat, self.iat, self.exp, now)
    }
}

/// base64url SHA-256 of a body's exact bytes (an empty body included).
pub fn body_hash(body: &[u8]) -> String {
    b64::encode(Sha256::digest(body))
}

/// Whether two URIs name the same request: the same target as a proof's
/// `htu` ([`super::same_htu`]) and the same query, byte for byte (none
/// differs from an empty one). A fragment is never part of a request, so
/// a URI with one names none.
pub fn same_request(a: &str, b: &str) -> bool {
    let query = |u: &str| u.split_once('?').map(|(_, q)| q.to_owned());
    !a.contains('#') && !b.contains('#') && super::same_htu(a, b) && query(a) == query(b)
}

impl ConfirmationClaims {
    /// Verifies a confirmation for one call under a verified chain, and
    /// spends it: each is accepted once while it can be valid. The order
    /// of the checks is docs/protocol.md 6.8's.
    pub fn verify(
        compact: &str,
        chain: &VerifiedChain,
        call: &HttpCall<'_>,
        body: &[u8],
        cx: &Context<'_>,
        replay: &dyn ReplayCache,
    ) -> Result<ConfirmationClaims, Error> {
        let token = super::policy::verify_by_user(compact, cx, |c: &ConfirmationClaims| &c.sub)?;
        let signer = token.signer().thumbprint();
        let claims = token.into_claims();
        if claims.sub != *chain.principal()
            || claims.cnf.jkt != chain.leaf_key()
            || claims.ath != chain.ath()
        {
            return Err(Error::ConfirmationMismatch);
        }
        if claims.htm != call.method || !same_request(&claims.htu, call.uri) {
            return Err(Error::ConfirmationMismatch);
        }
        if claims.bdh != body_hash(body) {
            return Err(Error::ConfirmationBody);
        }
        let keep_until = claims.exp.saturating_add(cx.policy.clock_skew);
        let spent = SpentProof::new(&signer, &claims.ath, claims.jti.as_str(), keep_until);
        replay.first_use(&spent, cx.now).map_err(|e| match e {
            Error::PopReplayed => Error::ConfirmationReplayed,
            other => other,
        })?;
        Ok(claims)
    }
}
