//! `mandate-revocation+jwt`: an issuer withdraws grants, and with them
//! everything delegated beneath them.

use serde::{Deserialize, Serialize};

use super::{Claims, Jti, Policy, Principal, UnixTime};
use crate::Error;
use crate::chain::{Bindings, Link};
use crate::jws::{TokenId, TokenKind};
use crate::key::Thumbprint;

/// The claims of a revocation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RevocationClaims {
    /// The principal whose grants these are.
    pub sub: Principal,
    /// The ids of the grants revoked; at least one.
    pub revokes: Vec<TokenId>,
    /// Why, if the issuer said.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Issued at.
    pub iat: UnixTime,
    /// Unique id.
    pub jti: Jti,
}

/// The most grant ids one revocation may name.
pub const MAX_REVOKES: usize = 256;

impl Claims for RevocationClaims {
    const KIND: TokenKind = TokenKind::Revocation;

    fn check(&self, policy: &Policy, now: UnixTime) -> Result<(), Error> {
        if self.revokes.is_empty() || self.revokes.len() > MAX_REVOKES {
            return Err(Error::Malformed("revokes must name 1 to 256 grants"));
        }
        if self.iat > now.saturating_add(policy.clock_skew) {
            return Err(Error::NotYetValid);
        }
        Ok(())
    }
}

impl RevocationClaims {
    /// Checks that `signer` may revoke `revoked`, given the verified links
    /// that lead to it, root first and ending at or below the revoked link.
    ///
    /// Any key bound to the principal may revoke any of its grants; an agent
    /// may revoke what it issued and everything beneath. The revoked link's
    /// own grantee may not revoke it.
    pub fn authorized(
        &self,
        signer: &Thumbprint,
        revoked: &TokenId,
        chain: &[&Link],
        bindings: &dyn Bindings,
        now: UnixTime,
    ) -> Result<(), Error> {
        let Some(pos) = chain.iter().position(|l| l.id == *revoked) else {
            return Err(Error::RevocationNotAuthorized);
        };
        let Some(root) = chain.first() else {
            return Err(Error::RevocationNotAuthorized);
        };
        if !self.revokes.contains(revoked)
            || root.claims.sub != self.sub
            || root.claims.prf.is_some()
        {
            return Err(Error::RevocationNotAuthorized);
        }
        // The links must form one chain: each signed by its parent's grantee
        // and naming its parent.
        let linked = chain
            .windows(2)
            .all(|w| w[1].claims.prf == Some(w[0].id) && w[1].issuer == w[0].claims.cnf.jkt);
        if !linked {
            return Err(Error::RevocationNotAuthorized);
        }
        // The user: any key bound to the principal, or the key that signed
        // the root even after its binding lapsed.
        let by_user = root.issuer == *signer || bindings.is_bound(&self.sub, signer, now);
        if by_user || chain[1..=pos].iter().any(|l| l.issuer == *signer) {
            Ok(())
        } else {
            Err(Error::RevocationNotAuthorized)
        }
    }
}
