//! Checking a mandate against its broker, as a resource server would.

use std::collections::HashSet;

use mandate_core::scope::AuthorizationDetail;
use mandate_core::{AgentId, Context, Policy, Principal, TokenId, UnixTime, verify_chain};
use serde::Serialize;

use crate::mandate::bindings_of;
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
        revoked.extend(broker.revocations_after(0).await?.0);
    }
    let now = unix_now();
    let policy = Policy::default();
    let bindings = bindings_of(
        &mandate.binding,
        &metadata.keys()?,
        &metadata.issuer,
        &policy,
        now,
    )?;
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
