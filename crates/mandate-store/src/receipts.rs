//! Receipts agents reported, for their users to review.

use std::collections::HashMap;

use mandate_core::{Principal, Thumbprint, TokenId};

use crate::error::parse;
use crate::events::{append_events, lock_log};
use crate::{EventKind, Store, StoreError, on_pool};

/// A stored receipt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceiptRecord {
    /// Its place in the feed; assigned by the store, ignored on insert.
    pub seq: i64,
    /// The receipt token's id.
    pub id: TokenId,
    /// The grant the agent acted under.
    pub grant_id: TokenId,
    /// The agent.
    pub agent: Thumbprint,
    /// The user it acted for.
    pub principal: Principal,
    /// The compact token.
    pub token: String,
    /// The agents' public JWKs presented with it, as a JSON array, so that
    /// its reader can check the signatures too.
    pub keys: String,
    /// When the broker stored it.
    pub created_at: i64,
    /// When it says it was made: its own signed `iat`. With its id, what
    /// makes it unique (the same id is the same signed text, so the same
    /// `iat`), and what keeps the uniqueness index growing at its end.
    pub made_at: i64,
    /// For a witness receipt (docs/protocol.md 4.10), the thumbprint of
    /// the resource server's key that signed it; `None` for a receipt the
    /// agent signed.
    pub witness: Option<Thumbprint>,
}

#[derive(sqlx::FromRow)]
struct ReceiptRow {
    seq: i64,
    id: String,
    grant_id: String,
    agent_jkt: String,
    principal: String,
    token: String,
    keys: String,
    created_at: i64,
    made_at: i64,
    witness: Option<String>,
}

impl TryFrom<ReceiptRow> for ReceiptRecord {
    type Error = StoreError;
    fn try_from(r: ReceiptRow) -> Result<ReceiptRecord, StoreError> {
        Ok(ReceiptRecord {
            seq: r.seq,
            id: parse(&r.id, "receipt id")?,
            grant_id: parse(&r.grant_id, "receipt grant id")?,
            agent: parse(&r.agent_jkt, "receipt agent")?,
            principal: r
                .principal
                .try_into()
                .map_err(|_| StoreError::Corrupt("receipt principal"))?,
            token: r.token,
            keys: r.keys,
            created_at: r.created_at,
            made_at: r.made_at,
            witness: r
                .witness
                .map(|w| parse(&w, "receipt witness"))
                .transpose()?,
        })
    }
}

/// The most receipts [`Store::insert_receipts`] writes in one statement.
const CHUNK: usize = 500;

impl Store {
    /// Stores a receipt; the same receipt again is [`StoreError::Conflict`].
    /// Returns its feed position.
    pub async fn insert_receipt(&self, r: &ReceiptRecord) -> Result<i64, StoreError> {
        match self.insert_receipts(std::slice::from_ref(r)).await?[..] {
            [Some(seq)] => Ok(seq),
            _ => Err(StoreError::Conflict),
        }
    }

    /// Stores witness receipts (or any receipts) in one transaction. Each
    /// gets its feed position, or `None` if a receipt by its id was
    /// stored before (the others are stored all the same).
    pub async fn insert_receipts(
        &self,
        records: &[ReceiptRecord],
    ) -> Result<Vec<Option<i64>>, StoreError> {
        if records.is_empty() {
            return Ok(Vec::new());
        }
        on_pool!(self, pool => {
            let _writing = self.writing().await;
            let mut tx = pool.begin().await?;
            lock_log!(self, tx)?;
            // Two statements for a chunk of the batch, not two a receipt:
            // one inserts the receipts, one appends their events. Chunks
            // keep the statements within the databases' limits on bound
            // values (9 a receipt).
            let mut seqs: Vec<Option<i64>> = Vec::with_capacity(records.len());
            for chunk in records.chunks(CHUNK) {
                let mut insert = sqlx::QueryBuilder::new(
                    "INSERT INTO receipts (id, grant_id, agent_jkt, principal, token, keys, created_at, made_at, witness) ",
                );
                insert.push_values(chunk, |mut row, r| {
                    row.push_bind(r.id.to_string())
                        .push_bind(r.grant_id.to_string())
                        .push_bind(r.agent.to_string())
                        .push_bind(r.principal.as_str())
                        .push_bind(&r.token)
                        .push_bind(&r.keys)
                        .push_bind(r.created_at)
                        .push_bind(r.made_at)
                        .push_bind(r.witness.map(|w| w.to_string()));
                });
                insert.push(" ON CONFLICT (made_at, id) DO NOTHING RETURNING id, seq");
                let stored: Vec<(String, i64)> = insert.build_query_as().fetch_all(&mut *tx).await?;
                let mut stored: HashMap<String, i64> = stored.into_iter().collect();
                // The first of the same id in the chunk took the row.
                let chunk_seqs: Vec<Option<i64>> = chunk
                    .iter()
                    .map(|r| stored.remove(&r.id.to_string()))
                    .collect();
                let mut new: Vec<(i64, &ReceiptRecord)> = chunk_seqs
                    .iter()
                    .zip(chunk)
                    .filter_map(|(seq, r)| seq.map(|seq| (seq, r)))
                    .collect();
                new.sort_by_key(|(seq, _)| *seq);
                append_events!(self, tx, new.iter().map(|(_, r)| (
                    EventKind::ReceiptStored,
                    Some(r.principal.as_str()),
                    Some(r.agent.to_string()),
                    r.id.to_string(),
                    r.created_at,
                )))?;
                seqs.extend(chunk_seqs);
            }
            tx.commit().await?;
            Ok(seqs)
        })
    }

    /// A user's receipts after feed position `after`, oldest first, at most `limit`.
    pub async fn receipts_since(
        &self,
        principal: &Principal,
        after: i64,
        limit: i64,
    ) -> Result<Vec<ReceiptRecord>, StoreError> {
        let rows: Vec<ReceiptRow> = on_pool!(self, pool => {
            sqlx::query_as("SELECT seq, id, grant_id, agent_jkt, principal, token, keys, created_at, made_at, witness FROM receipts WHERE principal = $1 AND seq > $2 ORDER BY seq LIMIT $3")
                .bind(principal.as_str())
                .bind(after)
                .bind(limit)
                .fetch_all(pool)
                .await?
        });
        rows.into_iter().map(ReceiptRecord::try_from).collect()
    }
}
