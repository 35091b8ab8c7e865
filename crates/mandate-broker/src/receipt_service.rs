//! Receipts: agents report what they did under a chain; users read them.

use std::collections::HashSet;

use mandate_core::{BindingSet, Context, Jwk, KeySet, Receipt, TokenId, verify_chain};
use mandate_store::{GrantRecord, ReceiptRecord, StoreError};
use serde::Serialize;

use crate::error::on_conflict;
use crate::{ApiError, AppState, User};

/// A receipt the broker accepted.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Accepted {
    /// The receipt's id.
    #[schema(value_type = String)]
    pub id: TokenId,
    /// Its position in the user's receipt feed.
    pub seq: i64,
}

/// Accepts a receipt signed by the leaf agent of `chain`.
///
/// The chain must verify now: rooted in a key bound to its principal,
/// linked, attenuated, and with no link in the broker's revocation set.
/// `keys` carries the agents' public keys; the users' keys come from the
/// broker's own bindings. Links the broker did not know (sub-delegations
/// agents made) are recorded, so that the user can see them.
pub async fn report(
    state: &AppState,
    receipt: &str,
    chain: &[String],
    keys: &[Jwk],
) -> Result<Accepted, ApiError> {
    let now = state.now();
    let s = &state.inner;
    if chain.is_empty()
        || chain.len() > mandate_core::MAX_CHAIN_LINKS
        || keys.len() > 2 * mandate_core::MAX_CHAIN_LINKS
    {
        return Err(ApiError::bad_request(
            "receipt.malformed",
            "a receipt comes with its chain, root first",
        ));
    }
    let (_, root) = mandate_core::token::peek::<mandate_core::token::GrantClaims>(&chain[0])
        .map_err(ApiError::token)?;
    let mut key_set = KeySet::new();
    for jwk in keys {
        key_set.insert_jwk(jwk).map_err(ApiError::token)?;
    }
    let mut bindings = BindingSet::new();
    for b in s
        .store
        .bindings_of(&root.sub)
        .await?
        .into_iter()
        .filter(|b| b.expires_at > now)
    {
        key_set.insert(b.key);
        bindings
            .insert(root.sub.clone(), b.jkt)
            .map_err(ApiError::token)?;
    }
    let mut revoked = HashSet::new();
    for token in chain {
        let id = TokenId::of(token);
        if s.store.is_revoked(&id).await? {
            revoked.insert(id);
        }
    }
    // Verification is synchronous and borrows non-Send trait objects: keep
    // it out of the awaits.
    let (verified, receipt_v) = {
        let cx = Context {
            now,
            policy: s.policy,
            keys: &key_set,
            bindings: &bindings,
            revoked: &revoked,
        };
        let verified = verify_chain(chain, &cx).map_err(ApiError::token)?;
        let receipt_v = Receipt::verify(receipt, verified.leaf(), &key_set, &s.policy, now)
            .map_err(ApiError::token)?;
        (verified, receipt_v)
    };
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
        match s.store.insert_grant(&record).await {
            Ok(_) | Err(StoreError::Conflict) => {}
            Err(e) => return Err(e.into()),
        }
    }
    let record = ReceiptRecord {
        seq: 0,
        id: receipt_v.id(),
        grant_id: verified.leaf().id(),
        agent: verified.leaf_key(),
        principal: verified.principal().clone(),
        token: receipt.to_owned(),
        created_at: now,
    };
    let seq = s.store.insert_receipt(&record).await.map_err(on_conflict(
        "receipt.replayed",
        "this receipt was reported before",
    ))?;
    state.inner.hub.wake(state.store()).await;
    Ok(Accepted {
        id: receipt_v.id(),
        seq,
    })
}

/// One receipt, as the user's feed shows it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ReceiptItem {
    /// Its position; pass the last as `since` to resume.
    pub seq: i64,
    /// The receipt's id.
    #[schema(value_type = String)]
    pub id: TokenId,
    /// The compact receipt.
    pub receipt: String,
    /// The grant the agent acted under.
    #[schema(value_type = String)]
    pub grant: TokenId,
    /// When the broker received it.
    pub received_at: i64,
}

/// The most receipts one page holds.
pub const RECEIPT_PAGE: i64 = 500;

/// The signed-in user's receipts after position `since`.
pub async fn receipts(
    state: &AppState,
    user: &User,
    since: i64,
) -> Result<Vec<ReceiptItem>, ApiError> {
    let rows = state
        .store()
        .receipts_since(&user.principal, since, RECEIPT_PAGE)
        .await?;
    Ok(rows
        .into_iter()
        .map(|r| ReceiptItem {
            seq: r.seq,
            id: r.id,
            receipt: r.token,
            grant: r.grant_id,
            received_at: r.created_at,
        })
        .collect())
}
