//! Checking a mandate against its broker, as a resource server would.

use std::collections::HashSet;

use mandate_core::scope::AuthorizationDetail;
use mandate_core::{AgentId, Context, Policy, Principal, TokenId, UnixTime, verify_chain};
use serde::Serialize;

use crate::mandate::bindings_of;
use crate::{AgentError, Broker, DEFAULT_MAX_STALENESS, Mandate, Revocations, unix_now};

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
/// feed read now, which must match one of the broker's signed checkpoints
/// (else `revocation.stale`). No proof of possession is involved.
pub async fn verify_online(
    broker: &Broker,
    mandate: &Mandate,
    revocation: bool,
) -> Result<Summary, AgentError> {
    let mut revoked = mandate_core::Revoked::default();
    if revocation {
        let metadata = broker.metadata().await?;
        let read = Revocations::read(broker, &metadata).await?;
        match read.age() {
            Some(age) if age <= DEFAULT_MAX_STALENESS => {}
            _ => {
                return Err(AgentError::Stale(
                    "the broker's latest checkpoint is too old".into(),
                ));
            }
        }
        revoked = mandate_core::Revoked {
            grants: read.snapshot(),
            keys: read.snapshot_keys(),
        };
    }
    let (verified, _) = verify_at(broker, mandate, &revoked, unix_now()).await?;
    Ok(summary(&verified))
}

/// A receipt that verified, with the mandate it was made under.
#[derive(Debug, Clone, Serialize)]
pub struct ReceiptSummary {
    /// The receipt's id.
    pub receipt: TokenId,
    /// What the agent did.
    pub action: mandate_core::token::Action,
    /// How it ended.
    pub outcome: mandate_core::token::Outcome,
    /// The mandate, as it stood at `at`.
    pub mandate: Summary,
    /// The time it was checked at.
    pub at: UnixTime,
}

/// Verifies a receipt made under `mandate` as it stood at `at` (when the
/// broker accepted it): the chain held then, rooted in a key the broker
/// bound to the user, and the chain's leaf agent signed the receipt.
/// Revocations after `at` do not undo what was done before.
pub async fn verify_receipt_online(
    broker: &Broker,
    mandate: &Mandate,
    receipt: &str,
    at: UnixTime,
) -> Result<ReceiptSummary, AgentError> {
    let (verified, keys) = verify_at(broker, mandate, &HashSet::<TokenId>::new(), at).await?;
    let r = mandate_core::Receipt::verify(receipt, verified.leaf(), &keys, &Policy::default(), at)?;
    Ok(ReceiptSummary {
        receipt: r.id(),
        action: r.claims().action.clone(),
        outcome: r.claims().outcome,
        mandate: summary(&verified),
        at,
    })
}

/// Verifies a witness receipt (docs/protocol.md 4.10) of a call made
/// under `mandate`, signed by the key of thumbprint `witness` among the
/// mandate's keys (the key the broker names as the witness), with the
/// chain as it stood at the earlier of the receipt's `iat` and `at`, but
/// no more than ten minutes before `at`. The
/// action is what the witness saw of the leaf agent's call.
pub async fn verify_witness_online(
    broker: &Broker,
    mandate: &Mandate,
    receipt: &str,
    witness: &str,
    at: UnixTime,
) -> Result<ReceiptSummary, AgentError> {
    let made = mandate_core::token::peek_witness(receipt)
        .map_or(at, |c| mandate_core::token::witness_made_at(c.iat, at));
    let (verified, keys) = verify_at(broker, mandate, &HashSet::<TokenId>::new(), made).await?;
    let jkt: mandate_core::Thumbprint = witness
        .parse()
        .map_err(|_| mandate_core::Error::UnknownKey)?;
    let key = keys.get(&jkt).ok_or(mandate_core::Error::UnknownKey)?;
    let (r, _) =
        mandate_core::Receipt::witnessed(receipt, verified.leaf(), key, &Policy::default(), made)?;
    Ok(ReceiptSummary {
        receipt: r.id(),
        action: r.claims().action.clone(),
        outcome: r.claims().outcome,
        mandate: summary(&verified),
        at: made,
    })
}

async fn verify_at(
    broker: &Broker,
    mandate: &Mandate,
    revoked: &dyn mandate_core::RevocationSet,
    now: UnixTime,
) -> Result<(mandate_core::VerifiedChain, mandate_core::KeySet), AgentError> {
    let metadata = broker.metadata().await?;
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
        revoked,
    };
    let verified = verify_chain(&mandate.chain, &cx)?;
    Ok((verified, keys))
}

fn summary(verified: &mandate_core::VerifiedChain) -> Summary {
    Summary {
        principal: verified.principal().clone(),
        agent: verified.leaf_agent(),
        grant: verified.leaf().id(),
        scopes: verified.scopes().to_vec(),
        expires_at: verified.expires_at(),
        depth_left: verified.depth_left(),
        links: verified.links().len(),
    }
}
