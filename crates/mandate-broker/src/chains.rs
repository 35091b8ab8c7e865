//! Chains presented to the broker (with a receipt, or behind a sub-agent's
//! request), verified against the broker's own bindings and revocations.

use crate::error::Code;
use std::collections::HashSet;

use mandate_core::{BindingSet, Context, Jwk, KeySet, TokenId, VerifiedChain};

use mandate_store::{GrantRecord, StoreError};

use crate::{ApiError, AppState};

/// A chain that verified now, with the keys it was checked under.
pub struct Checked {
    /// The verified chain.
    pub chain: VerifiedChain,
    /// The agents' keys as presented, and the principal's bound user keys.
    pub keys: KeySet,
    /// The principal's bindings, as checked.
    pub bindings: BindingSet,
}

/// Verifies `chain` (root first) at the broker's time: rooted in a key
/// bound here to its principal, linked, attenuated, unexpired, and with no
/// link revoked here. `keys` carries the agents' public keys; the users'
/// keys come from the broker's bindings. `malformed` names the error for
/// a chain of the wrong length.
pub async fn check(
    state: &AppState,
    chain: &[String],
    keys: &[Jwk],
    malformed: Code,
) -> Result<Checked, ApiError> {
    let now = state.now();
    let s = &state.inner;
    if chain.is_empty()
        || chain.len() > mandate_core::MAX_CHAIN_LINKS
        || keys.len() > 2 * mandate_core::MAX_CHAIN_LINKS
    {
        return Err(ApiError::new(
            malformed,
            "a chain of 1 to 16 grants, root first, and at most 32 keys",
        ));
    }
    let (_, root) = mandate_core::token::peek::<mandate_core::token::GrantClaims>(&chain[0])
        .map_err(ApiError::token)?;
    let mut key_set = KeySet::new();
    for jwk in keys {
        key_set.insert_jwk(jwk).map_err(ApiError::token)?;
    }
    let mut bindings = BindingSet::new();
    let bound = s.chain_state.bindings_of(state, &root.sub).await?;
    for b in bound.iter().filter(|b| b.expires_at > now) {
        key_set.insert(b.key);
        bindings
            .insert(root.sub.clone(), b.jkt)
            .map_err(ApiError::token)?;
    }
    let ids: Vec<TokenId> = chain.iter().map(|t| TokenId::of(t)).collect();
    let revoked = s.chain_state.revoked_among(state, &ids).await?;
    let cx = Context {
        now,
        policy: s.policy,
        keys: &key_set,
        bindings: &bindings,
        revoked: &revoked,
    };
    let verified = s
        .verifier
        .verify_chain(chain, &cx)
        .map_err(ApiError::token)?;
    Ok(Checked {
        chain: verified,
        keys: key_set,
        bindings,
    })
}

/// Records the links of a verified chain that the broker did not hold
/// (sub-delegations agents signed), so that their user sees them and can
/// revoke them. The chain's root must be a grant the broker holds for the
/// chain's principal (`chain.unknown_root`, 422): a user's signature on a
/// root made elsewhere does not let an agent fill their Delegations view.
pub async fn record_links(
    state: &AppState,
    checked: &Checked,
    chain: &[String],
) -> Result<(), ApiError> {
    let now = state.now();
    let verified = &checked.chain;
    let root = TokenId::of(&chain[0]);
    match state.store().grant(&root).await? {
        Some(g) if g.principal == *verified.principal() => {}
        _ => {
            return Err(ApiError::new(
                Code::UnknownRoot,
                "the chain's root is not a grant this broker holds for its user",
            ));
        }
    }
    for (link, token) in verified.links().zip(chain) {
        let record = GrantRecord {
            id: link.id(),
            principal: verified.principal().clone(),
            request_id: link.claims().req,
            parent_id: link.claims().prf,
            issuer: link.issuer(),
            grantee: link.claims().cnf.jkt,
            token: token.clone(),
            expires_at: link.claims().exp,
            created_at: now,
        };
        match state.store().insert_grant(&record).await {
            Ok(_) | Err(StoreError::Conflict) => {}
            Err(e) => return Err(e.into()),
        }
        state
            .inner
            .known
            .granted(&record.principal, &record.grantee);
    }
    Ok(())
}

/// The JSON array of those of `keys` that a grant of `chain` names as its
/// grantee (`cnf.jkt`), once each: what a user's app needs to check each
/// link of the chain behind a request itself. Keys that name nothing are
/// dropped; the chain has been verified before this is called.
pub fn keys_named(chain: &[String], keys: &[Jwk]) -> Result<String, ApiError> {
    let named: HashSet<mandate_core::Thumbprint> = chain
        .iter()
        .filter_map(|g| mandate_core::token::peek::<mandate_core::token::GrantClaims>(g).ok())
        .map(|(_, claims)| claims.cnf.jkt)
        .collect();
    let mut seen = HashSet::new();
    let kept: Vec<&Jwk> = keys
        .iter()
        .filter(|jwk| {
            mandate_core::PublicKey::from_jwk(jwk)
                .is_ok_and(|k| named.contains(&k.thumbprint()) && seen.insert(k.thumbprint()))
        })
        .collect();
    serde_json::to_string(&kept).map_err(|_| ApiError::from(StoreError::Corrupt("request keys")))
}
