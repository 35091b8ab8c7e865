//! The receipt rows' hash chain: what each row's hash covers, and the walk
//! that checks the chain and its signed head.

use std::collections::HashSet;

use mandate_core::PublicKey;
use mandate_core::base64url as b64;
use sqlx::FromRow;

use super::{ID_KEY_LEN, ReceiptStatus};
use crate::ClientError;
use crate::history::{History, Verified};

/// What each receipt row's hash starts with.
const RECEIPT_DOMAIN: &[u8] = b"mandate-history-receipt/v1";
/// What signs the receipt chain's head: the detached-signature context.
pub(super) const RECEIPT_HEAD_CONTEXT: &str = "mandate-history-receipts-head/v1";

/// A receipt row's hashed columns: all but `reported_at` (which the event
/// log covers) and the chain's own.
#[derive(Debug, FromRow)]
pub(super) struct ReceiptFields<S, T> {
    pub(super) seq: i64,
    pub(super) principal: S,
    pub(super) id: S,
    pub(super) grant_id: T,
    pub(super) agent: S,
    pub(super) kind: S,
    pub(super) target: S,
    pub(super) summary: S,
    pub(super) rationale: Option<S>,
    pub(super) outcome: S,
    pub(super) cause: Option<T>,
    pub(super) at: i64,
    pub(super) received_at: i64,
    pub(super) status: ReceiptStatus,
    pub(super) error: Option<S>,
    pub(super) token: S,
    pub(super) witness: Option<S>,
    pub(super) trace: Option<S>,
}

impl<S: AsRef<str>, T: AsRef<str>> ReceiptFields<S, T> {
    /// SHA-256 over a domain tag, the previous row's hash, and each column
    /// (integers as 8 bytes big endian, text with a 4-byte length, optional
    /// text after a presence byte).
    pub(super) fn hash(&self, prev: &[u8; 32]) -> [u8; 32] {
        use sha2::Digest as _;
        let mut h = sha2::Sha256::new();
        h.update(RECEIPT_DOMAIN);
        h.update(prev);
        for n in [self.seq, self.at, self.received_at] {
            h.update(n.to_be_bytes());
        }
        let status = match self.status {
            ReceiptStatus::Verified => "verified",
            ReceiptStatus::Failed => "failed",
        };
        for field in [
            self.principal.as_ref(),
            self.id.as_ref(),
            self.grant_id.as_ref(),
            self.agent.as_ref(),
            self.kind.as_ref(),
            self.target.as_ref(),
            self.summary.as_ref(),
            self.outcome.as_ref(),
            status,
            self.token.as_ref(),
        ] {
            crate::history::field_into(&mut h, field);
        }
        let optional = [
            self.rationale.as_ref().map(AsRef::as_ref),
            self.cause.as_ref().map(AsRef::as_ref),
            self.error.as_ref().map(AsRef::as_ref),
        ];
        // A witness receipt's two columns (migration 0007) follow, only
        // when either is set: an agent's receipt hashes as it always did.
        let witnessed = [
            self.witness.as_ref().map(AsRef::as_ref),
            self.trace.as_ref().map(AsRef::as_ref),
        ];
        let extra: &[Option<&str>] = if witnessed.iter().any(Option::is_some) {
            &witnessed
        } else {
            &[]
        };
        for field in optional.iter().chain(extra) {
            match field {
                Some(f) => {
                    h.update([1]);
                    crate::history::field_into(&mut h, f);
                }
                None => h.update([0]),
            }
        }
        h.finalize().into()
    }
}

impl History {
    /// Checks the whole history of `principal`: the event chain, its
    /// signed head and the rows it speaks of (`History::verify_log`),
    /// then the receipts' chain ([`History::verify_receipts`]). The first
    /// break is an error naming it.
    pub async fn verify(
        &self,
        principal: &str,
        user_key: &PublicKey,
    ) -> Result<Verified, ClientError> {
        let reported: HashSet<String> = sqlx::query_scalar(
            "SELECT id FROM receipts WHERE principal = ? AND reported_at IS NOT NULL",
        )
        .bind(principal)
        .fetch_all(self.pool())
        .await?
        .into_iter()
        .collect();
        let (events, head) = self.verify_log(principal, user_key, reported).await?;
        Ok(Verified {
            events,
            head,
            receipts: self.verify_receipts(principal, user_key).await?,
        })
    }

    /// Walks `principal`'s receipt chain, oldest first: each row must
    /// follow the one before and match its hash, and the last must be the
    /// head the user key signed. Returns how many rows it holds; a
    /// [`ClientError::Tampered`] names the first bad row.
    pub async fn verify_receipts(
        &self,
        principal: &str,
        user: &PublicKey,
    ) -> Result<i64, ClientError> {
        use futures_util::TryStreamExt as _;
        #[derive(FromRow)]
        struct Linked {
            #[sqlx(flatten)]
            fields: ReceiptFields<String, String>,
            prev: String,
            hash: String,
        }
        let mut rows = sqlx::query_as::<_, Linked>(
            "SELECT seq, principal, id, grant_id, agent, kind, target, summary, rationale, outcome,
                    cause, at, received_at, status, error, token, witness, trace, prev, hash
             FROM receipts WHERE principal = ? ORDER BY seq",
        )
        .bind(principal)
        .fetch(self.pool());
        let mut prev = [0u8; 32];
        let (mut count, mut last) = (0i64, 0i64);
        while let Some(row) = rows.try_next().await? {
            let seq = row.fields.seq;
            let broken = |what: &str| ClientError::Tampered(format!("receipt row {seq}: {what}"));
            if crate::history::decode_hash(&row.prev) != Some(prev) {
                return Err(broken("does not follow the receipt before it"));
            }
            let hash = row.fields.hash(&prev);
            if crate::history::decode_hash(&row.hash) != Some(hash) {
                return Err(broken("its content does not match its hash"));
            }
            prev = hash;
            count += 1;
            last = seq;
        }
        drop(rows);
        let head: Option<(i64, String, String)> =
            sqlx::query_as("SELECT seq, hash, signature FROM receipt_heads WHERE principal = ?")
                .bind(principal)
                .fetch_optional(self.pool())
                .await?;
        let Some((seq, hash, signature)) = head else {
            return if count == 0 {
                Ok(0)
            } else {
                Err(ClientError::Tampered(
                    "the receipts' signed head is missing".into(),
                ))
            };
        };
        if seq != last || crate::history::decode_hash(&hash) != Some(prev) {
            return Err(ClientError::Tampered(
                "the receipts' signed head is not the last receipt (receipts were added or cut off)"
                    .into(),
            ));
        }
        let signature: [u8; 64] = b64::decode(&signature)
            .and_then(|s| s.try_into().ok())
            .ok_or_else(|| {
                ClientError::Tampered("the receipts' head signature is malformed".into())
            })?;
        user.verify_detached(
            RECEIPT_HEAD_CONTEXT,
            &crate::history::head_message(principal, seq, &prev),
            &signature,
        )
        .map_err(|_| {
            ClientError::Tampered("the receipts' head signature does not verify".into())
        })?;
        // The tables of ids are derived, not signed, but a receipt missing
        // from them would be missed by every lookup by id, and a repeat of
        // it written again. Each must be held once under its id's key. (A
        // history from before migration 0005, read without migrating, has
        // no such tables.)
        let has_ids: bool = sqlx::query_scalar(
            "SELECT count(*) = 2 FROM sqlite_master
             WHERE type = 'table' AND name IN ('receipt_ids', 'receipt_ids_recent')",
        )
        .fetch_one(self.pool())
        .await?;
        if has_ids {
            let unheld: Option<i64> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
                "SELECT r.seq FROM receipts r WHERE r.principal = ?
                   AND (SELECT count(*) FROM receipt_ids i
                        WHERE i.key = substr(r.id, 1, {ID_KEY_LEN}) AND i.seq = r.seq)
                     + (SELECT count(*) FROM receipt_ids_recent i
                        WHERE i.key = substr(r.id, 1, {ID_KEY_LEN}) AND i.seq = r.seq) != 1
                 ORDER BY r.seq LIMIT 1",
            )))
            .bind(principal)
            .fetch_optional(self.pool())
            .await?;
            if let Some(seq) = unheld {
                return Err(ClientError::Tampered(format!(
                    "receipt row {seq}: not held once under its id in the tables of ids"
                )));
            }
        }
        Ok(count)
    }
}
