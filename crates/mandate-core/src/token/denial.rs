//! `mandate-denial+jwt`: a user's signed refusal of a request.

use serde::{Deserialize, Serialize};

use super::{Claims, Jti, Policy, Principal, UnixTime};
use crate::Error;
use crate::jws::{TokenId, TokenKind};

/// The claims of a denial.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DenialClaims {
    /// The user who denies.
    pub sub: Principal,
    /// The id of the request denied.
    pub req: TokenId,
    /// The user's reason, if they gave one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Issued at.
    pub iat: UnixTime,
    /// Unique id.
    pub jti: Jti,
}

impl Claims for DenialClaims {
    const KIND: TokenKind = TokenKind::Denial;

    fn check(&self, policy: &Policy, now: UnixTime) -> Result<(), Error> {
        if self.iat > now.saturating_add(policy.clock_skew) {
            return Err(Error::NotYetValid);
        }
        Ok(())
    }
}
