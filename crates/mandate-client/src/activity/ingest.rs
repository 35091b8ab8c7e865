//! Writing the receipt feed into the history: one page at a time, or a
//! backlog with checking and writing overlapped.

use std::collections::{BTreeSet, HashMap, HashSet};

use mandate_core::base64url as b64;
use mandate_core::token::{GrantClaims, peek};
use mandate_core::{Jwk, Principal, PublicKey, TokenId};
use sqlx::{QueryBuilder, Sqlite};

use super::chain::{RECEIPT_HEAD_CONTEXT, ReceiptFields};
use super::check::{Checker, Gate, OpenOnDrop, Verdict};
use super::{Ingested, ReceiptStatus, id_key, outcome_str};
use crate::ClientError;
use crate::broker::{GrantItem, ReceiptItem};
use crate::history::History;

/// Writes a backlog of the receipt feed, batch after batch, checking each
/// batch on the blocking pool while the batch before it is written: the
/// signature checks and SQLite's writing and syncing overlap instead of
/// taking turns, and neither runs on the async runtime's threads. Batches
/// are written in the order they are pushed, each in its own transaction,
/// exactly as [`History::ingest`] would write them one after the other.
pub struct Ingest<'h> {
    history: &'h History,
    principal: &'h str,
    key: &'h mandate_core::SigningKey,
    /// Away on the blocking pool while a batch is checked.
    checker: Option<Checker>,
    /// The batch checked last, not written yet.
    pending: Option<(Vec<ReceiptItem>, Vec<Verdict>)>,
    total: Ingested,
}

impl<'h> Ingest<'h> {
    /// Starts a backlog for `principal`, whose user key signs the receipt
    /// chain's heads.
    pub fn new(
        history: &'h History,
        principal: &'h str,
        key: &'h mandate_core::SigningKey,
        checker: Checker,
    ) -> Ingest<'h> {
        Ingest {
            history,
            principal,
            key,
            checker: Some(checker),
            pending: None,
            total: Ingested::default(),
        }
    }

    /// Checks `batch` while the batch pushed before it is written. Returns
    /// once both are done; an error from either leaves the batches not yet
    /// written unwritten (the feed's position stays before them).
    pub async fn push(&mut self, batch: Vec<ReceiptItem>) -> Result<(), ClientError> {
        let mut checker = self
            .checker
            .take()
            .ok_or_else(|| ClientError::History("an earlier batch failed to be checked".into()))?;
        let gate = OpenOnDrop(Gate::closed());
        let behind = gate.0.clone();
        let check = tokio::task::spawn_blocking(move || {
            let verdicts = checker.verdicts_behind(&batch, &behind);
            (checker, batch, verdicts)
        });
        let written = self.write_pending().await;
        drop(gate);
        let (checker, batch, verdicts) = check.await.map_err(|e| match e.try_into_panic() {
            Ok(panic) => std::panic::resume_unwind(panic),
            Err(_) => ClientError::History("checking receipts was cancelled".into()),
        })?;
        self.checker = Some(checker);
        written?;
        self.pending = Some((batch, verdicts));
        Ok(())
    }

    /// Writes the last batch. Returns what the whole backlog brought.
    ///
    /// After a large backlog the write-ahead log is folded into the file
    /// and cut back to nothing: it is checkpointed only every 256 MiB while
    /// receipts are written, and would otherwise keep its largest size on
    /// disk until the history closes.
    pub async fn finish(mut self) -> Result<Ingested, ClientError> {
        self.write_pending().await?;
        if self.total.new >= LARGE_BACKLOG {
            // Busy (a reader still in the log) is not an error: the log is
            // then cut back at a later checkpoint or when the history closes.
            sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
                .execute(self.history.pool())
                .await?;
        }
        Ok(self.total)
    }

    async fn write_pending(&mut self) -> Result<(), ClientError> {
        let Some((batch, verdicts)) = self.pending.take() else {
            return Ok(());
        };
        let got = self
            .history
            .write_checked(self.principal, self.key, &batch, &verdicts)
            .await?;
        self.total.new += got.new;
        self.total.failed += got.failed;
        Ok(())
    }
}

/// A receipt made ready for the history.
struct Checked<'a> {
    item: &'a ReceiptItem,
    verdict: &'a Verdict,
}

impl History {
    /// How far `principal`'s receipt feed has been read.
    pub async fn receipts_cursor(&self, principal: &str) -> Result<i64, ClientError> {
        let after: Option<i64> =
            sqlx::query_scalar("SELECT receipts_after FROM feed_cursors WHERE principal = ?")
                .bind(principal)
                .fetch_optional(self.pool())
                .await?;
        Ok(after.unwrap_or(0))
    }

    /// A checker for `principal` that knows every agent key and revocation
    /// the history holds.
    pub async fn checker(&self, principal: &str, user: &PublicKey) -> Result<Checker, ClientError> {
        let p = Principal::try_from(principal.to_owned())
            .map_err(|_| ClientError::Invalid("the principal is malformed".into()))?;
        let mut checker = Checker::new(p, user)?;
        let keys: Vec<String> = sqlx::query_scalar("SELECT jwk FROM agent_keys")
            .fetch_all(self.pool())
            .await?;
        for jwk in keys {
            if let Ok(jwk) = serde_json::from_str::<Jwk>(&jwk) {
                let _ = checker.add_key(&jwk);
            }
        }
        let revoked: Vec<(String, i64)> = sqlx::query_as(
            "SELECT id, revoked_at FROM grants WHERE principal = ? AND revoked_at IS NOT NULL",
        )
        .bind(principal)
        .fetch_all(self.pool())
        .await?;
        for (id, at) in revoked {
            if let Ok(id) = id.parse() {
                checker.revoked(id, at);
            }
        }
        Ok(checker)
    }

    /// Records grants as the broker lists them (with their revocations).
    pub async fn save_grants(
        &self,
        principal: &str,
        grants: &[GrantItem],
    ) -> Result<(), ClientError> {
        let mut tx = self.pool().begin().await?;
        for g in grants {
            upsert_grant(&mut tx, principal, &g.grant, g.revoked_at).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Checks one page of the receipt feed and records it, with the keys
    /// and grants it carries, the feed's new position and the receipt
    /// chain's new signed head, in one transaction. Receipts already held
    /// are skipped. For a backlog of many pages, [`Ingest`] overlaps the
    /// checking of one batch with the writing of the one before.
    pub async fn ingest(
        &self,
        principal: &str,
        key: &mandate_core::SigningKey,
        checker: &mut Checker,
        page: &[ReceiptItem],
    ) -> Result<Ingested, ClientError> {
        let verdicts = checker.verdicts(page);
        self.write_checked(principal, key, page, &verdicts).await
    }

    /// Writes a page and the verdicts [`Checker::verdicts`] gave it.
    async fn write_checked(
        &self,
        principal: &str,
        key: &mandate_core::SigningKey,
        page: &[ReceiptItem],
        verdicts: &[Verdict],
    ) -> Result<Ingested, ClientError> {
        let Some(last) = page.last() else {
            return Ok(Ingested::default());
        };
        let checked: Vec<Checked<'_>> = page
            .iter()
            .zip(verdicts)
            .map(|(item, verdict)| Checked { item, verdict })
            .collect();
        let mut conn = self.pool().acquire().await?;
        self.write_page(principal, key, &checked, last.seq, &mut conn)
            .await
    }

    /// Writes checked receipts, with the keys and grants they carry, the
    /// receipt chain's new signed head and the feed's position, in one
    /// transaction.
    async fn write_page(
        &self,
        principal: &str,
        key: &mandate_core::SigningKey,
        checked: &[Checked<'_>],
        last_seq: i64,
        conn: &mut sqlx::SqliteConnection,
    ) -> Result<Ingested, ClientError> {
        let page = checked.iter().map(|c| c.item);
        let mut tx = sqlx::Connection::begin_with(&mut *conn, "BEGIN IMMEDIATE").await?;
        let mut seen_keys = BTreeSet::new();
        // Every receipt carries its chain: the same few grants, thousands of
        // times a batch, told apart by their text (with the standard keyed
        // hash, so that a hostile broker cannot crowd one bucket) rather
        // than each hashed to its id.
        let mut seen_grants: HashSet<&str> = HashSet::new();
        for item in page {
            for jwk in &item.keys {
                if !seen_keys.insert(jwk.x.as_str()) {
                    continue;
                }
                let Ok(key) = PublicKey::from_jwk(jwk) else {
                    continue;
                };
                let jkt = key.thumbprint().to_string();
                {
                    sqlx::query("INSERT OR IGNORE INTO agent_keys (jkt, jwk) VALUES (?, ?)")
                        .bind(jkt)
                        .bind(serde_json::to_string(&key.to_jwk()).unwrap_or_default())
                        .execute(&mut *tx)
                        .await?;
                }
            }
            for grant in &item.chain {
                if seen_grants.insert(grant.as_str()) {
                    upsert_grant(&mut tx, principal, grant, None).await?;
                }
            }
        }
        // The chain continues from this principal's last receipt, which its
        // signed head names (reading it from the receipts themselves would
        // sort all of them).
        let last_row: Option<(i64, String)> =
            sqlx::query_as("SELECT seq, hash FROM receipt_heads WHERE principal = ?")
                .bind(principal)
                .fetch_optional(&mut *tx)
                .await?;
        let mut prev = match &last_row {
            Some((_, h)) => crate::history::decode_hash(h).ok_or_else(|| {
                ClientError::Tampered("the last receipt's hash is malformed".into())
            })?,
            None => [0u8; 32],
        };
        let mut seq: i64 = sqlx::query_scalar("SELECT coalesce(max(seq), 0) FROM receipts")
            .fetch_one(&mut *tx)
            .await?;
        // Receipts already held are skipped (one query for the page): the
        // rows under their ids' keys, compared whole.
        let mut held: HashSet<String> = HashSet::new();
        let mut ask: QueryBuilder<Sqlite> = QueryBuilder::new(
            "SELECT id FROM receipts WHERE seq IN (SELECT seq FROM receipt_ids WHERE key IN (",
        );
        let push_keys = |ask: &mut QueryBuilder<Sqlite>| {
            let mut keys = ask.separated(", ");
            for c in checked {
                keys.push_bind(id_key(&c.verdict.id));
            }
        };
        push_keys(&mut ask);
        ask.push(") UNION ALL SELECT seq FROM receipt_ids_recent WHERE key IN (");
        push_keys(&mut ask);
        ask.push("))");
        for id in ask
            .build_query_scalar::<String>()
            .fetch_all(&mut *tx)
            .await?
        {
            held.insert(id);
        }
        let mut result = Ingested::default();
        let mut rows = Vec::with_capacity(checked.len());
        for c in checked {
            if !held.insert(c.verdict.id.clone()) {
                continue;
            }
            seq += 1;
            let claims = c.verdict.claims.as_ref();
            let row = ReceiptFields {
                seq,
                principal,
                id: c.verdict.id.as_str(),
                grant_id: claims.map(|x| x.grant.to_string()).unwrap_or_default(),
                agent: c.verdict.agent.as_str(),
                kind: claims.map_or("", |x| x.action.kind.as_str()),
                target: claims.map_or("", |x| x.action.target.as_str()),
                summary: claims.map_or("(unreadable receipt)", |x| x.action.summary.as_str()),
                rationale: claims.and_then(|x| x.rationale.as_deref()),
                outcome: claims.map_or("unknown", |x| outcome_str(x.outcome)),
                cause: claims.and_then(|x| x.cause).map(|x| x.to_string()),
                at: claims.map_or(c.item.received_at, |x| x.iat),
                received_at: c.item.received_at,
                status: if c.verdict.error.is_some() {
                    ReceiptStatus::Failed
                } else {
                    ReceiptStatus::Verified
                },
                error: c.verdict.error,
                token: c.item.receipt.as_str(),
                witness: c.verdict.witness.as_deref(),
                trace: c.verdict.trace.as_deref(),
            };
            let hash = row.hash(&prev);
            rows.push((row, b64::encode(prev), b64::encode(hash)));
            prev = hash;
            result.new += 1;
            if c.verdict.error.is_some() {
                result.failed += 1;
            }
        }
        // Written many rows to a statement: 20 values a row, well under
        // SQLite's limit of 32,766.
        for part in rows.chunks(1000) {
            let mut insert: QueryBuilder<Sqlite> = QueryBuilder::new(
                "INSERT INTO receipts (seq, id, principal, grant_id, agent, kind, target, summary,
                     rationale, outcome, cause, at, received_at, status, error, token, witness,
                     trace, prev, hash) ",
            );
            insert.push_values(part, |mut b, (row, prev, hash)| {
                b.push_bind(row.seq)
                    .push_bind(row.id)
                    .push_bind(principal)
                    .push_bind(row.grant_id.as_str())
                    .push_bind(row.agent)
                    .push_bind(row.kind)
                    .push_bind(row.target)
                    .push_bind(row.summary)
                    .push_bind(row.rationale)
                    .push_bind(row.outcome)
                    .push_bind(row.cause.as_deref())
                    .push_bind(row.at)
                    .push_bind(row.received_at)
                    .push_bind(row.status)
                    .push_bind(row.error)
                    .push_bind(row.token)
                    .push_bind(row.witness)
                    .push_bind(row.trace)
                    .push_bind(prev.as_str())
                    .push_bind(hash.as_str());
            });
            insert.build().execute(&mut *tx).await?;
        }
        // Each new id under its key, then the recent ids moved in key order
        // once there are enough of them (migration 0005).
        for part in rows.chunks(5000) {
            let mut insert: QueryBuilder<Sqlite> =
                QueryBuilder::new("INSERT INTO receipt_ids_recent (key, seq) ");
            insert.push_values(part, |mut b, (row, _, _)| {
                b.push_bind(id_key(row.id)).push_bind(row.seq);
            });
            insert.build().execute(&mut *tx).await?;
        }
        let recent: i64 = sqlx::query_scalar("SELECT count(*) FROM receipt_ids_recent")
            .fetch_one(&mut *tx)
            .await?;
        if recent >= self.recent_ids {
            sqlx::query(
                "INSERT INTO receipt_ids (key, seq) SELECT key, seq FROM receipt_ids_recent",
            )
            .execute(&mut *tx)
            .await?;
            sqlx::query("DELETE FROM receipt_ids_recent")
                .execute(&mut *tx)
                .await?;
        }
        // What each grant was used for, by action type.
        let mut usage: HashMap<(&str, &str), (i64, i64)> = HashMap::new();
        for (row, _, _) in rows
            .iter()
            .filter(|(r, _, _)| r.status == ReceiptStatus::Verified)
        {
            let used = usage
                .entry((row.grant_id.as_str(), row.kind))
                .or_insert((0, row.at));
            used.0 += 1;
            used.1 = used.1.max(row.at);
        }
        for ((grant, kind), (actions, last_at)) in usage {
            sqlx::query(
                "INSERT INTO grant_usage (principal, grant_id, kind, actions, last_at)
                 VALUES (?, ?, ?, ?, ?)
                 ON CONFLICT (principal, grant_id, kind) DO UPDATE SET
                     actions = actions + excluded.actions,
                     last_at = max(last_at, excluded.last_at)",
            )
            .bind(principal)
            .bind(grant)
            .bind(kind)
            .bind(actions)
            .bind(last_at)
            .execute(&mut *tx)
            .await?;
        }
        if result.new > 0 {
            let signature = key.sign_detached(
                RECEIPT_HEAD_CONTEXT,
                &crate::history::head_message(principal, seq, &prev),
            );
            sqlx::query(
                "INSERT INTO receipt_heads (principal, seq, hash, signature) VALUES (?, ?, ?, ?)
                 ON CONFLICT (principal) DO UPDATE SET seq = excluded.seq, hash = excluded.hash,
                     signature = excluded.signature",
            )
            .bind(principal)
            .bind(seq)
            .bind(b64::encode(prev))
            .bind(b64::encode(signature))
            .execute(&mut *tx)
            .await?;
        }
        sqlx::query(
            "INSERT INTO feed_cursors (principal, receipts_after) VALUES (?, ?)
             ON CONFLICT (principal) DO UPDATE SET receipts_after = excluded.receipts_after",
        )
        .bind(principal)
        .bind(last_seq)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(result)
    }
}

/// Receipts in a backlog after which `Ingest::finish` cuts the log back.
const LARGE_BACKLOG: usize = 10_000;

async fn upsert_grant(
    tx: &mut sqlx::SqliteConnection,
    principal: &str,
    grant: &str,
    revoked_at: Option<i64>,
) -> Result<(), ClientError> {
    // A grant that does not parse is not stored; whatever names it will
    // fail to verify and say so.
    let Ok((_, claims)) = peek::<GrantClaims>(grant) else {
        return Ok(());
    };
    sqlx::query(
        "INSERT INTO grants (id, principal, token, parent, grantee, issued_at, expires_at, revoked_at)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?)
         ON CONFLICT (id) DO UPDATE SET revoked_at = coalesce(grants.revoked_at, excluded.revoked_at)",
    )
    .bind(TokenId::of(grant).to_string())
    .bind(principal)
    .bind(grant)
    .bind(claims.prf.map(|p| p.to_string()))
    .bind(mandate_core::AgentId::from_thumbprint(claims.cnf.jkt).to_string())
    .bind(claims.iat)
    .bind(claims.exp)
    .bind(revoked_at)
    .execute(&mut *tx)
    .await?;
    Ok(())
}
