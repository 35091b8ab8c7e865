//! Receipts: agents report what they did under a chain; users read them.

use mandate_core::{Jwk, Receipt, TokenId};
use std::collections::HashMap;

use mandate_store::{GrantRecord, ReceiptRecord, StoreError};
use serde::Serialize;

use crate::error::{Code, on_conflict};
use crate::{ApiError, AppState, User, chains};

/// A receipt the broker accepted.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ReceiptAccepted {
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
/// agents made) are recorded, so that the user can see them, but only
/// beneath a root grant the broker holds for that user
/// ([`chains::record_links`]). Each leaf agent, once verified, has its
/// own rate (`rate.receipts`).
pub async fn report(
    state: &AppState,
    receipt: &str,
    chain: &[String],
    keys: &[Jwk],
) -> Result<ReceiptAccepted, ApiError> {
    let now = state.now();
    let s = &state.inner;
    let checked = chains::check(state, chain, keys, Code::ReceiptMalformed).await?;
    let receipt_v = Receipt::verify(receipt, checked.chain.leaf(), &checked.keys, &s.policy, now)
        .map_err(ApiError::token)?;
    let verified = &checked.chain;
    if !s.limiters.receipts.allow(&verified.leaf_key().to_string()) {
        return Err(crate::error::too_fast(Code::RateReceipts));
    }
    chains::record_links(state, &checked, chain).await?;
    let record = ReceiptRecord {
        seq: 0,
        id: receipt_v.id(),
        grant_id: verified.leaf().id(),
        agent: verified.leaf_key(),
        principal: verified.principal().clone(),
        token: receipt.to_owned(),
        keys: serde_json::to_string(keys).map_err(|_| StoreError::Corrupt("receipt keys"))?,
        created_at: now,
        made_at: receipt_v.claims().iat,
        witness: None,
    };
    let seq = s.store.insert_receipt(&record).await.map_err(on_conflict(
        Code::ReceiptReplayed,
        "this receipt was reported before",
    ))?;
    state.inner.hub.wake(state.store()).await;
    Ok(ReceiptAccepted {
        id: receipt_v.id(),
        seq,
    })
}

/// One receipt, as the user's feed shows it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ReceiptItem {
    /// Its position; pass the last as `since` to resume.
    pub seq: i64,
    /// The receipt's id: the SHA-256 of the compact token, or, for a
    /// witness receipt of a report, of its `PAYLOAD`.
    #[schema(value_type = String)]
    pub id: TokenId,
    /// The receipt: a compact token (`mandate-receipt+jwt`, or
    /// `mandate-witness+jwt`), or a witness receipt of a report,
    /// `REPORT~INDEX~PATH~PAYLOAD` (docs/protocol.md 4.10).
    pub receipt: String,
    /// The grant the agent acted under.
    #[schema(value_type = String)]
    pub grant: TokenId,
    /// When the broker received it.
    pub received_at: i64,
    /// The chain it was made under, root first, as the broker holds it.
    pub chain: Vec<String>,
    /// The agents' public keys presented with it; for a witness receipt,
    /// the witness's key.
    #[schema(value_type = Vec<Object>)]
    pub keys: Vec<Jwk>,
    /// For a witness receipt (docs/protocol.md 4.10), the thumbprint of
    /// the key that signed it, which the broker trusts as the witness of
    /// the resource the receipt names; absent for an agent's receipt.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    pub witness: Option<mandate_core::Thumbprint>,
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
    if rows.is_empty() {
        return Ok(Vec::new());
    }
    let grants: HashMap<TokenId, GrantRecord> = state
        .store()
        .grants_of(&user.principal)
        .await?
        .into_iter()
        .map(|g| (g.id, g))
        .collect();
    rows.into_iter()
        .map(|r| {
            let keys =
                serde_json::from_str(&r.keys).map_err(|_| StoreError::Corrupt("receipt keys"))?;
            Ok(ReceiptItem {
                seq: r.seq,
                id: r.id,
                chain: chain_to(&grants, r.grant_id),
                receipt: r.token,
                grant: r.grant_id,
                received_at: r.created_at,
                keys,
                witness: r.witness,
            })
        })
        .collect::<Result<_, StoreError>>()
        .map_err(ApiError::from)
}

/// The chain from the root down to `leaf`, as far as `grants` holds it.
fn chain_to(grants: &HashMap<TokenId, GrantRecord>, leaf: TokenId) -> Vec<String> {
    let mut chain = Vec::new();
    let mut next = Some(leaf);
    while let Some(g) = next.and_then(|id| grants.get(&id)) {
        if chain.len() == mandate_core::MAX_CHAIN_LINKS {
            break;
        }
        chain.push(g.token.clone());
        next = g.parent_id;
    }
    chain.reverse();
    chain
}
