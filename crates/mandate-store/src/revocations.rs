//! Revocations: the signed tokens, and the grant ids they revoked (or the
//! user keys they removed), in the order the broker learned them.

use mandate_core::{Principal, Thumbprint, TokenId};

use crate::error::parse;
use crate::events::{append_event, lock_log};
use crate::{EventKind, Store, StoreError, on_pool};

/// A revocation to store, already verified and authorized by the caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RevocationRecord {
    /// The revocation token's id.
    pub id: TokenId,
    /// The user whose grants these are.
    pub principal: Principal,
    /// Who signed it.
    pub signer: Thumbprint,
    /// The compact token.
    pub token: String,
    /// When the broker stored it.
    pub created_at: i64,
}

/// What one entry of the revocation feed revokes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Withdrawn {
    /// A grant, and everything beneath it.
    Grant(TokenId),
    /// A user key, and every chain rooted in it.
    Key(Thumbprint),
}

/// One entry of the revocation feed, as followers see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RevokedGrant {
    /// Its place in the revocation feed.
    pub seq: i64,
    /// What it revokes.
    pub withdrawn: Withdrawn,
    /// The revocation that revoked it first.
    pub revocation_id: TokenId,
    /// When.
    pub revoked_at: i64,
}

#[derive(sqlx::FromRow)]
struct RevokedRow {
    seq: i64,
    grant_id: String,
    kind: String,
    revocation_id: String,
    revoked_at: i64,
}

impl TryFrom<RevokedRow> for RevokedGrant {
    type Error = StoreError;
    fn try_from(r: RevokedRow) -> Result<RevokedGrant, StoreError> {
        let withdrawn = match r.kind.as_str() {
            "grant" => Withdrawn::Grant(parse(&r.grant_id, "revoked grant id")?),
            "key" => Withdrawn::Key(parse(&r.grant_id, "removed key")?),
            _ => return Err(StoreError::Corrupt("revoked kind")),
        };
        Ok(RevokedGrant {
            seq: r.seq,
            withdrawn,
            revocation_id: parse(&r.revocation_id, "revocation id")?,
            revoked_at: r.revoked_at,
        })
    }
}

impl Store {
    /// Stores a revocation and what it withdraws: each revoked grant, or
    /// removed user key (whose binding, if this principal's, is deleted),
    /// is a feed entry in this order. A grant or key revoked before keeps
    /// its first revocation. The same revocation again is
    /// [`StoreError::Conflict`].
    pub async fn insert_revocation(
        &self,
        r: &RevocationRecord,
        withdrawn: &[Withdrawn],
    ) -> Result<i64, StoreError> {
        on_pool!(self, pool => {
            let _writing = self.writing().await;
            let mut tx = pool.begin().await?;
            lock_log!(self, tx)?;
            sqlx::query("INSERT INTO revocations (id, principal, signer_jkt, token, created_at) VALUES ($1, $2, $3, $4, $5)")
                .bind(r.id.to_string())
                .bind(r.principal.as_str())
                .bind(r.signer.to_string())
                .bind(&r.token)
                .bind(r.created_at)
                .execute(&mut *tx)
                .await?;
            for w in withdrawn {
                let (subject, kind) = match w {
                    Withdrawn::Grant(id) => (id.to_string(), "grant"),
                    Withdrawn::Key(jkt) => (jkt.to_string(), "key"),
                };
                sqlx::query(
                    "INSERT INTO revoked_grants (grant_id, kind, revocation_id, revoked_at) VALUES ($1, $2, $3, $4) \
                     ON CONFLICT (grant_id) DO NOTHING",
                )
                .bind(&subject)
                .bind(kind)
                .bind(r.id.to_string())
                .bind(r.created_at)
                .execute(&mut *tx)
                .await?;
                if let Withdrawn::Key(_) = w {
                    sqlx::query("DELETE FROM bindings WHERE jkt = $1 AND principal = $2")
                        .bind(&subject)
                        .bind(r.principal.as_str())
                        .execute(&mut *tx)
                        .await?;
                }
            }
            let seq = append_event!(self, tx, EventKind::Revoked, Some(r.principal.as_str()), None::<String>, r.id.to_string(), r.created_at)?;
            tx.commit().await?;
            Ok(seq)
        })
    }

    /// Revoked grants after feed position `after`, oldest first, at most `limit`.
    pub async fn revoked_since(
        &self,
        after: i64,
        limit: i64,
    ) -> Result<Vec<RevokedGrant>, StoreError> {
        let rows: Vec<RevokedRow> = on_pool!(self, pool => {
            sqlx::query_as("SELECT seq, grant_id, kind, revocation_id, revoked_at FROM revoked_grants WHERE seq > $1 ORDER BY seq LIMIT $2")
                .bind(after)
                .bind(limit)
                .fetch_all(pool)
                .await?
        });
        rows.into_iter().map(RevokedGrant::try_from).collect()
    }

    /// What a revocation revoked first (grants, or removed keys), in feed
    /// order.
    pub async fn revoked_by(&self, revocation: &TokenId) -> Result<Vec<Withdrawn>, StoreError> {
        let rows: Vec<RevokedRow> = on_pool!(self, pool => {
            sqlx::query_as("SELECT seq, grant_id, kind, revocation_id, revoked_at FROM revoked_grants WHERE revocation_id = $1 ORDER BY seq")
                .bind(revocation.to_string())
                .fetch_all(pool)
                .await?
        });
        rows.into_iter()
            .map(|r| RevokedGrant::try_from(r).map(|g| g.withdrawn))
            .collect()
    }

    /// Whether a user key was removed.
    pub async fn is_key_revoked(&self, key: &Thumbprint) -> Result<bool, StoreError> {
        let n: i64 = on_pool!(self, pool => {
            sqlx::query_scalar("SELECT COUNT(*) FROM revoked_grants WHERE grant_id = $1 AND kind = 'key'")
                .bind(key.to_string())
                .fetch_one(pool)
                .await?
        });
        Ok(n > 0)
    }

    /// Which of a principal's grants are revoked, and when.
    pub async fn revoked_grants_of(
        &self,
        principal: &Principal,
    ) -> Result<std::collections::HashMap<TokenId, i64>, StoreError> {
        let rows: Vec<(String, i64)> = on_pool!(self, pool => {
            sqlx::query_as(
                "SELECT r.grant_id, r.revoked_at FROM revoked_grants r JOIN grants g ON g.id = r.grant_id WHERE g.principal = $1",
            )
            .bind(principal.as_str())
            .fetch_all(pool)
            .await?
        });
        rows.iter()
            .map(|(id, at)| Ok((parse(id, "revoked grant id")?, *at)))
            .collect()
    }

    /// Whether a grant is revoked.
    pub async fn is_revoked(&self, grant: &TokenId) -> Result<bool, StoreError> {
        let n: i64 = on_pool!(self, pool => {
            sqlx::query_scalar("SELECT COUNT(*) FROM revoked_grants WHERE grant_id = $1 AND kind = 'grant'")
                .bind(grant.to_string())
                .fetch_one(pool)
                .await?
        });
        Ok(n > 0)
    }
}
