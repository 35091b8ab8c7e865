//! Checking a mandate against its broker, as a resource server would.

use std::collections::HashSet;

use mandate_core::scope::AuthorizationDetail;
use mandate_core::{
    AgentId, BindingSet, Context, Policy, Principal, PublicKey, TokenId, UnixTime, verify_chain,
};
use serde::Serialize;

use crate::{AgentError, Broker, Mandate, unix_now};

/// What a verified mandate grants.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    /// The user.
    pub principal: Principal,
    /// The leaf agent.
    pub agent: AgentId,
    /// The leaf grant's id.
    pub grant: TokenId,
    /// The effective scopes.
    pub scopes: Vec<AuthorizationDetail>,
    /// When the first link lapses.
    pub expires_at: UnixTime,
    /// Hops still allowed below the leaf.
    pub depth_left: u8,
    /// The grants in the chain.
    pub links: usize,
}

/// Verifies `mandate` against `broker`'s published keys, as a resource
/// server would, and, when `revocation` is set, against its revocation
/// feed read now. No proof of possession is involved.
pub async fn verify_online(
    broker: &Broker,
    mandate: &Mandate,
    revocation: bool,
) -> Result<Summary, AgentError> {
    let metadata = broker.metadata().await?;
    let mut revoked = HashSet::new();
    if revocation {
        let mut since = 0;
        loop {
            let (page, next) = broker.revocations(since).await?;
            if page.is_empty() {
                break;
            }
            revoked.extend(page.into_iter().map(|r| r.grant));
            since = next;
        }
    }
    let now = unix_now();
    let policy = Policy::default();
    let mut bindings = BindingSet::new();
    let mut bound = Err(mandate_core::Error::BindingRejected(
        "the broker has no key",
    ));
    for jwk in &metadata.jwks.keys {
        let broker_key = PublicKey::from_jwk(jwk)?;
        bound = bindings.insert_token(
            &mandate.binding,
            &broker_key,
            &metadata.issuer,
            &policy,
            now,
        );
        if bound.is_ok() {
            break;
        }
    }
    bound?;
    let keys = mandate.key_set()?;
    let cx = Context {
        now,
        policy,
        keys: &keys,
        bindings: &bindings,
        revoked: &revoked,
    };
    let verified = verify_chain(&mandate.chain, &cx)?;
    Ok(Summary {
        principal: verified.principal().clone(),
        agent: verified.leaf_agent(),
        grant: verified.leaf().id(),
        scopes: verified.scopes().to_vec(),
        expires_at: verified.expires_at(),
        depth_left: verified.depth_left(),
        links: verified.links().len(),
    })
}
