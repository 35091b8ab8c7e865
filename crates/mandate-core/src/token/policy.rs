//! `mandate-policy+jwt`: a user's standing rule about one agent key.
//! "Always, within these bounds" lets the user's app approve, on its own,
//! a later request that fits inside the rule; "deny always" has the broker
//! refuse the key's requests at once.

use serde::{Deserialize, Serialize};

use super::{Claims, Jti, Policy, Principal, RequestClaims, UnixTime, Verified};
use crate::Error;
use crate::chain::{Context, escalation_error};
use crate::jws::{self, TokenKind};
use crate::key::Thumbprint;
use crate::scope::{self, AuthorizationDetail, Escalation};

/// The longest a rule may stand: 90 days, in seconds.
pub const MAX_POLICY_LIFETIME: i64 = 90 * 24 * 3600;

/// The longest `label`, in bytes.
pub const MAX_LABEL: usize = 256;

/// What a rule does with the requests it names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Effect {
    /// Approve a request that fits inside the rule's bounds.
    Approve,
    /// Refuse every request by the agent key.
    Deny,
}

/// The agent a rule is about.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyAgent {
    /// The agent key's RFC 7638 thumbprint.
    pub jkt: Thumbprint,
}

/// The claims of a policy (a standing rule).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyClaims {
    /// The user whose rule this is.
    pub sub: Principal,
    /// What the rule does.
    pub effect: Effect,
    /// The agent key it is about.
    pub agent: PolicyAgent,
    /// Approve: the most a request may ask for (its details must be within
    /// these, as a child's are within a parent's). Absent for deny.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authorization_details: Option<Vec<AuthorizationDetail>>,
    /// Approve: the longest `lifetime` a request may ask for, in seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_lifetime: Option<u32>,
    /// Approve: the deepest `max_depth` a request may ask for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_depth: Option<u8>,
    /// The user's name for the rule.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    /// Issued at.
    pub iat: UnixTime,
    /// The rule ends at this instant.
    pub exp: UnixTime,
    /// Unique id.
    pub jti: Jti,
}

impl Claims for PolicyClaims {
    const KIND: TokenKind = TokenKind::Policy;

    fn check(&self, policy: &Policy, now: UnixTime) -> Result<(), Error> {
        let bounds = (
            &self.authorization_details,
            self.max_lifetime,
            self.max_depth,
        );
        match (self.effect, bounds) {
            (Effect::Approve, (Some(details), Some(lifetime), Some(depth))) => {
                if details.is_empty() {
                    return Err(Error::BadScope(
                        "an approving rule names at least one scope",
                    ));
                }
                if lifetime == 0 || lifetime > super::MAX_LIFETIME_SECS {
                    return Err(Error::Malformed("max_lifetime must be 1 second to 30 days"));
                }
                if usize::from(depth) >= crate::MAX_CHAIN_LINKS {
                    return Err(Error::ChainTooLong);
                }
                if self.exp.saturating_sub(self.iat) > MAX_POLICY_LIFETIME {
                    return Err(Error::Malformed("an approving rule stands 90 days at most"));
                }
            }
            (Effect::Approve, _) => {
                return Err(Error::Malformed(
                    "an approving rule has authorization_details, max_lifetime and max_depth",
                ));
            }
            (Effect::Deny, (None, None, None)) => {}
            (Effect::Deny, _) => {
                return Err(Error::Malformed(
                    "a denying rule has no authorization_details, max_lifetime or max_depth",
                ));
            }
        }
        if self
            .label
            .as_deref()
            .is_some_and(|l| l.is_empty() || l.len() > MAX_LABEL || l.chars().any(char::is_control))
        {
            return Err(Error::Malformed(
                "label is empty, too long or has control characters",
            ));
        }
        policy.check_window(self.iat, self.iat, self.exp, now)
    }
}

/// How a request goes past a rule; a request that fits has none. The app
/// shows each beside the request, so that the user sees what is new.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Excess {
    /// The rule is about another agent key.
    Agent,
    /// The request is for another principal.
    Principal,
    /// The rule denies; it approves nothing.
    Denies,
    /// The broker filed the request for an OAuth client; rules cover
    /// agents' own requests only.
    OAuthClient,
    /// Request detail `detail` (index) is not within the rule's details,
    /// for this reason (the closest rule detail's, as in attenuation).
    Scope {
        /// The first request detail that fits no rule detail.
        detail: usize,
        /// Why, by rule.
        why: Escalation,
    },
    /// The request asks for a longer lifetime than the rule allows.
    Lifetime {
        /// Seconds asked.
        asked: u32,
        /// The rule's `max_lifetime`.
        max: u32,
    },
    /// The request asks to delegate deeper than the rule allows.
    Depth {
        /// Depth asked.
        asked: u8,
        /// The rule's `max_depth`.
        max: u8,
    },
}

impl Excess {
    /// The stable code of this mismatch (docs/protocol.md 4.12).
    pub fn error(&self) -> Error {
        match self {
            Excess::Agent | Excess::Principal | Excess::Denies | Excess::OAuthClient => {
                Error::PolicyMismatch
            }
            Excess::Scope { why, .. } => escalation_error(*why, 0),
            Excess::Lifetime { .. } | Excess::Depth { .. } => Error::PolicyExceeded,
        }
    }
}

impl PolicyClaims {
    /// Verifies a policy: signed by a key in `cx.keys` that is bound to
    /// its `sub` at `cx.now` and not removed, well formed, and standing.
    pub fn verify(compact: &str, cx: &Context<'_>) -> Result<Verified<PolicyClaims>, Error> {
        verify_by_user(compact, cx, |c: &PolicyClaims| &c.sub)
    }

    /// Every way the request goes past this rule, in the order of
    /// docs/protocol.md 4.12; empty when the rule approves it. `agent` is
    /// the request's signer (its `jwk`). The rule's own validity is the
    /// caller's, through [`PolicyClaims::verify`].
    pub fn excesses(&self, request: &RequestClaims, agent: &Thumbprint) -> Vec<Excess> {
        let mut out = Vec::new();
        if *agent != self.agent.jkt {
            out.push(Excess::Agent);
        }
        if request.principal_hint.as_deref() != Some(self.sub.as_str()) {
            out.push(Excess::Principal);
        }
        if self.effect == Effect::Deny {
            out.push(Excess::Denies);
            return out;
        }
        if request.oauth_client.is_some() {
            out.push(Excess::OAuthClient);
        }
        let details = self.authorization_details.as_deref().unwrap_or_default();
        if let Err((detail, why)) = scope::placement(&request.authorization_details, details) {
            out.push(Excess::Scope { detail, why });
        }
        let max = self.max_lifetime.unwrap_or_default();
        if request.lifetime > max {
            out.push(Excess::Lifetime {
                asked: request.lifetime,
                max,
            });
        }
        let max = self.max_depth.unwrap_or_default();
        if request.max_depth > max {
            out.push(Excess::Depth {
                asked: request.max_depth,
                max,
            });
        }
        out
    }

    /// Whether this rule approves the request: `Ok` when it fits, else the
    /// first excess's code.
    pub fn admits(&self, request: &RequestClaims, agent: &Thumbprint) -> Result<(), Error> {
        match self.excesses(request, agent).first() {
            None => Ok(()),
            Some(e) => Err(e.error()),
        }
    }
}

/// Verifies a token a user signs about their own principal: the `kid` key
/// must be in the context's keys, bound to the principal `sub_of` reads from the
/// claims (read only after the signature holds), and not removed. So the same
/// checks, in the same order, for policies and confirmations.
pub(crate) fn verify_by_user<C: Claims>(
    compact: &str,
    cx: &Context<'_>,
    sub_of: impl Fn(&C) -> &Principal,
) -> Result<Verified<C>, Error> {
    let token = jws::parse(compact, C::KIND)?;
    let key = *cx.keys.get(&token.kid).ok_or(Error::UnknownKey)?;
    token.verify(&key)?;
    let claims: C = token.claims()?;
    if !cx.bindings.is_bound(sub_of(&claims), &token.kid, cx.now)
        || cx.revoked.is_key_revoked(&token.kid)
    {
        return Err(Error::SignerNotBound);
    }
    claims.check(&cx.policy, cx.now)?;
    Ok(Verified {
        id: token.id,
        signer: key,
        claims,
    })
}
