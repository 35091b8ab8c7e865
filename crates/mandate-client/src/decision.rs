//! What a user signs: a grant answering a request (as asked, or
//! narrowed, for one of the approval tiers), a denial, a revocation, a
//! standing rule. Pure functions: the time and the key are parameters, and
//! nothing is sent.

use mandate_core::scope::{self, AuthorizationDetail};
use mandate_core::token::{
    Actor, Confirmation, DenialClaims, Effect, GrantClaims, Jti, PolicyAgent, PolicyClaims,
    RequestClaims, RevocationClaims,
};
use mandate_core::{Claims as _, Policy, Principal, SigningKey, Thumbprint, TokenId, UnixTime};
use rand_core::CryptoRngCore;
use serde::{Deserialize, Serialize};

use crate::ClientError;

/// The longest a "just this once" grant lives: 10 minutes, if the agent
/// asked for that long.
pub const ONCE_LIFETIME: u32 = 600;

/// The longest lease the app offers: a day, in minutes.
pub const MAX_LEASE_MINUTES: u32 = 24 * 60;

/// The longest a rule may stand, in days (docs/protocol.md 4.12).
pub const MAX_RULE_DAYS: u32 = 90;

/// How long "deny always" stands: until the user lifts it, in practice
/// (ten years), in seconds.
pub const BLOCK_LIFETIME: i64 = 10 * 365 * 24 * 3600;

/// How the user approves: the tier, chosen when approving.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ts_rs::TS)]
#[serde(tag = "tier", rename_all = "snake_case")]
pub enum Tier {
    /// As asked, or as narrowed: the lifetime the user chose.
    #[default]
    Standard,
    /// Just this once: one call (`max_calls: 1` on every scope), for at
    /// most [`ONCE_LIFETIME`].
    Once,
    /// For this task: a lease of `minutes`, which the user can stop.
    Lease {
        /// How long, 1 to [`MAX_LEASE_MINUTES`] (and at most what was asked).
        minutes: u32,
    },
    /// Always, within these bounds: the grant, and a rule, signed by the
    /// user's key, that approves later requests by this agent that fit
    /// inside what is granted now, for `days`.
    Rule {
        /// How long the rule stands, 1 to [`MAX_RULE_DAYS`].
        days: u32,
    },
}

impl Tier {
    /// Its name, as the history records it.
    pub fn as_str(self) -> &'static str {
        match self {
            Tier::Standard => "standard",
            Tier::Once => "once",
            Tier::Lease { .. } => "lease",
            Tier::Rule { .. } => "rule",
        }
    }
}

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
    /// The tier, which may shorten the lifetime and limit the calls.
    pub tier: Tier,
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
    let (scopes, lifetime) = tiered(narrowing.tier, scopes, lifetime)?;
    Ok(sign_grant(
        &asked, principal, key, scopes, lifetime, max_depth, None, now, rng,
    ))
}

/// The scopes and lifetime of a grant of `tier`, from those the user chose.
fn tiered(
    tier: Tier,
    mut scopes: Vec<AuthorizationDetail>,
    lifetime: u32,
) -> Result<(Vec<AuthorizationDetail>, u32), ClientError> {
    match tier {
        Tier::Standard => Ok((scopes, lifetime)),
        Tier::Once => {
            for d in &mut scopes {
                d.limits.max_calls = Some(d.limits.max_calls.map_or(1, |n| n.min(1)));
            }
            Ok((scopes, lifetime.min(ONCE_LIFETIME)))
        }
        Tier::Lease { minutes } if (1..=MAX_LEASE_MINUTES).contains(&minutes) => {
            Ok((scopes, lifetime.min(minutes.saturating_mul(60))))
        }
        Tier::Lease { .. } => Err(ClientError::Invalid(format!(
            "a lease lasts 1 to {MAX_LEASE_MINUTES} minutes"
        ))),
        Tier::Rule { days } if (1..=MAX_RULE_DAYS).contains(&days) => Ok((scopes, lifetime)),
        Tier::Rule { .. } => Err(ClientError::Invalid(format!(
            "a rule stands 1 to {MAX_RULE_DAYS} days"
        ))),
    }
}

/// Signs the root grant answering `asked`: the request's id, its purpose
/// and intent, and what the user decided. `not_after` caps its `exp` (a
/// rule's end).
#[allow(clippy::too_many_arguments)]
fn sign_grant(
    asked: &mandate_core::Verified<RequestClaims>,
    principal: &Principal,
    key: &SigningKey,
    scopes: Vec<AuthorizationDetail>,
    lifetime: u32,
    max_depth: u8,
    not_after: Option<UnixTime>,
    now: UnixTime,
    rng: &mut impl CryptoRngCore,
) -> String {
    let claims = asked.claims();
    let exp = now.saturating_add(i64::from(lifetime));
    GrantClaims {
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
        exp: not_after.map_or(exp, |end| exp.min(end)),
        jti: Jti::random(rng),
        max_depth,
        prf: None,
        req: Some(asked.id()),
    }
    .sign(key)
}

/// Signs, with the user's `key`, the rule of "always, within these
/// bounds": later requests by the agent that signed `grant`'s request
/// that fit inside `grant` (its scopes, at most its lifetime and depth)
/// are approved by the app, for `days`. `grant` is the grant just signed
/// for that request.
pub fn rule_for(
    grant: &GrantClaims,
    principal: &Principal,
    key: &SigningKey,
    days: u32,
    label: Option<&str>,
    now: UnixTime,
    rng: &mut impl CryptoRngCore,
) -> Result<String, ClientError> {
    if !(1..=MAX_RULE_DAYS).contains(&days) {
        return Err(ClientError::Invalid(format!(
            "a rule stands 1 to {MAX_RULE_DAYS} days"
        )));
    }
    let lifetime = u32::try_from(grant.exp.saturating_sub(grant.iat).max(1)).unwrap_or(u32::MAX);
    Ok(PolicyClaims {
        sub: principal.clone(),
        effect: Effect::Approve,
        agent: PolicyAgent { jkt: grant.cnf.jkt },
        authorization_details: Some(grant.authorization_details.clone()),
        max_lifetime: Some(lifetime.min(mandate_core::token::MAX_LIFETIME_SECS)),
        max_depth: Some(grant.max_depth.min(15)),
        label: label.map(|l| l.chars().take(80).collect()),
        iat: now,
        exp: now.saturating_add(i64::from(days) * 86_400),
        jti: Jti::random(rng),
    }
    .sign(key))
}

/// Signs, with the user's `key`, "deny always" for `agent`: the broker
/// refuses its requests to this user at once, until the user lifts it.
pub fn block_for(
    agent: &Thumbprint,
    principal: &Principal,
    key: &SigningKey,
    label: Option<&str>,
    now: UnixTime,
    rng: &mut impl CryptoRngCore,
) -> String {
    PolicyClaims {
        sub: principal.clone(),
        effect: Effect::Deny,
        agent: PolicyAgent { jkt: *agent },
        authorization_details: None,
        max_lifetime: None,
        max_depth: None,
        label: label.map(|l| l.chars().take(80).collect()),
        iat: now,
        exp: now.saturating_add(BLOCK_LIFETIME),
        jti: Jti::random(rng),
    }
    .sign(key)
}

/// Signs, with the user's `key`, the grant a standing rule approves for
/// `request`: what the request asks for, as asked, ending no later than
/// the rule. Refused unless the rule (already verified: signed by a key of
/// the user's, and standing) admits the request, by the subset rules.
pub fn grant_by_rule(
    rule: &PolicyClaims,
    request: &str,
    principal: &Principal,
    key: &SigningKey,
    now: UnixTime,
    rng: &mut impl CryptoRngCore,
) -> Result<String, ClientError> {
    let asked = RequestClaims::verify(request, &Policy::default(), now)?;
    if rule.sub != *principal {
        return Err(ClientError::Invalid("the rule is another user's".into()));
    }
    rule.admits(asked.claims(), &asked.signer().thumbprint())?;
    if rule.exp <= now {
        return Err(ClientError::Invalid("the rule has ended".into()));
    }
    let claims = asked.claims();
    Ok(sign_grant(
        &asked,
        principal,
        key,
        claims.authorization_details.clone(),
        claims.lifetime,
        claims.max_depth,
        Some(rule.exp),
        now,
        rng,
    ))
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
