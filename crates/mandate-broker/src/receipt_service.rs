//! Receipts: agents report what they did under a chain; users read them.

use mandate_core::{Jwk, Receipt, TokenId};
use mandate_store::ReceiptRecord;
use serde::Serialize;

use crate::error::on_conflict;
use crate::{ApiError, AppState, User, chains};

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
    let checked = chains::check(state, chain, keys, "receipt.malformed").await?;
    let receipt_v = Receipt::verify(receipt, checked.chain.leaf(), &checked.keys, &s.policy, now)
        .map_err(ApiError::token)?;
    let verified = &checked.chain;
    chains::record_links(state, &checked, chain).await?;
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
