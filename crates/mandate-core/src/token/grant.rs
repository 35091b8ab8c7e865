//! `mandate-grant+jwt`: authority handed from a user (at the root) or a
//! delegating agent (at each later hop) to a grantee agent.

use serde::{Deserialize, Serialize};

use super::{Claims, Jti, Policy, Principal, UnixTime};
use crate::Error;
use crate::jws::{TokenId, TokenKind};
use crate::key::{AgentId, Thumbprint};
use crate::scope::AuthorizationDetail;

/// The RFC 8693 `act` claim: who acts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Actor {
    /// The grantee agent.
    pub sub: AgentId,
}

/// The RFC 7800 `cnf` claim: the key the grantee must prove it holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Confirmation {
    /// The grantee key's RFC 7638 thumbprint.
    pub jkt: Thumbprint,
}

/// The claims of a grant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GrantClaims {
    /// The user principal, the same on every link of a chain.
    pub sub: Principal,
    /// The grantee agent.
    pub act: Actor,
    /// The grantee's key.
    pub cnf: Confirmation,
    /// What the grantee may do.
    pub authorization_details: Vec<AuthorizationDetail>,
    /// The grantee's interpretation of its task, as it asked and as signed here.
    pub purpose: String,
    /// The user's instruction, as the agent received it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub intent: Option<String>,
    /// Issued at.
    pub iat: UnixTime,
    /// Not valid before.
    pub nbf: UnixTime,
    /// Not valid from this instant on.
    pub exp: UnixTime,
    /// Unique id chosen by the issuer.
    pub jti: Jti,
    /// How many further hops the grantee may delegate.
    pub max_depth: u8,
    /// The parent grant's id; absent at the root.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prf: Option<TokenId>,
    /// The id of the request this grant answers, when it answers one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub req: Option<TokenId>,
}

impl Claims for GrantClaims {
    const KIND: TokenKind = TokenKind::Grant;

    fn check(&self, policy: &Policy, now: UnixTime) -> Result<(), Error> {
        if self.authorization_details.is_empty() {
            return Err(Error::BadScope("a grant grants at least one scope"));
        }
        policy.check_window(self.iat, self.nbf, self.exp, now)
    }
}

impl GrantClaims {
    /// Whether `act.sub` names the key in `cnf.jkt`.
    pub fn actor_matches_key(&self) -> bool {
        self.act.sub.thumbprint() == self.cnf.jkt
    }
}
