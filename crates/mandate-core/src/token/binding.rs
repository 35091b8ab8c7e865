//! `mandate-binding+jwt`: the broker's statement that a user key belongs to
//! a principal, so that verifiers can trust a root grant's signer.

use serde::{Deserialize, Serialize};

use super::{Claims, Confirmation, Jti, Policy, Principal, UnixTime};
use crate::Error;
use crate::jws::TokenKind;

/// The claims of a key binding.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BindingClaims {
    /// The broker that checked the user's OIDC identity.
    pub iss: String,
    /// The principal.
    pub sub: Principal,
    /// The user key bound to the principal.
    pub cnf: Confirmation,
    /// Issued at.
    pub iat: UnixTime,
    /// Not valid from this instant on.
    pub exp: UnixTime,
    /// Unique id.
    pub jti: Jti,
}

impl Claims for BindingClaims {
    const KIND: TokenKind = TokenKind::Binding;

    fn check(&self, policy: &Policy, now: UnixTime) -> Result<(), Error> {
        policy.check_window(self.iat, self.iat, self.exp, now)
    }
}
