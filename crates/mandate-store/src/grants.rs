//! Grants the broker has seen: roots the users signed, and the
//! sub-delegations agents reported.

use mandate_core::{Principal, Thumbprint, TokenId};

use crate::error::parse;
use crate::events::{append_event, lock_log};
use crate::{EventKind, Store, StoreError, on_pool};

/// A stored grant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GrantRecord {
    /// The grant's id.
    pub id: TokenId,
    /// The user it is for.
    pub principal: Principal,
    /// The request it answers, if any.
    pub request_id: Option<TokenId>,
    /// Its parent grant; `None` at the root.
    pub parent_id: Option<TokenId>,
    /// Who signed it.
    pub issuer: Thumbprint,
    /// Who received it.
    pub grantee: Thumbprint,
    /// The compact token.
    pub token: String,
    /// Its `exp`.
    pub expires_at: i64,
    /// When the broker stored it.
    pub created_at: i64,
}

#[derive(sqlx::FromRow)]
pub(crate) struct GrantRow {
    id: String,
    principal: String,
    request_id: Option<String>,
    parent_id: Option<String>,
    issuer_jkt: String,
    grantee_jkt: String,
    token: String,
    expires_at: i64,
    created_at: i64,
}

impl TryFrom<GrantRow> for GrantRecord {
    type Error = StoreError;
    fn try_from(r: GrantRow) -> Result<GrantRecord, StoreError> {
        Ok(GrantRecord {
            id: parse(&r.id, "grant id")?,
            principal: r
                .principal
                .try_into()
                .map_err(|_| StoreError::Corrupt("grant principal"))?,
            request_id: r
                .request_id
                .as_deref()
                .map(|s| parse(s, "grant request id"))
                .transpose()?,
            parent_id: r
                .parent_id
                .as_deref()
                .map(|s| parse(s, "grant parent id"))
                .transpose()?,
            issuer: parse(&r.issuer_jkt, "grant issuer")?,
            grantee: parse(&r.grantee_jkt, "grant grantee")?,
            token: r.token,
            expires_at: r.expires_at,
            created_at: r.created_at,
        })
    }
}

/// Inserts a grant and its event inside the transaction `$tx`.
macro_rules! insert_grant_in {
    ($store:expr, $tx:expr, $g:expr) => {{
        let g: &$crate::GrantRecord = $g;
        sqlx::query(
            "INSERT INTO grants (id, principal, request_id, parent_id, issuer_jkt, grantee_jkt, token, expires_at, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(g.id.to_string())
        .bind(g.principal.as_str())
        .bind(g.request_id.map(|id| id.to_string()))
        .bind(g.parent_id.map(|id| id.to_string()))
        .bind(g.issuer.to_string())
        .bind(g.grantee.to_string())
        .bind(&g.token)
        .bind(g.expires_at)
        .bind(g.created_at)
        .execute(&mut *$tx)
        .await?;
        append_event!($store, $tx, EventKind::GrantStored, Some(g.principal.as_str()), Some(g.grantee.to_string()), g.id.to_string(), g.created_at)?
    }};
}
pub(crate) use insert_grant_in;

impl Store {
    /// Stores a grant. A grant with the same id is [`StoreError::Conflict`].
    pub async fn insert_grant(&self, g: &GrantRecord) -> Result<i64, StoreError> {
        on_pool!(self, pool => {
            let _writing = self.writing().await;
            let mut tx = pool.begin().await?;
            lock_log!(self, tx)?;
            let seq = insert_grant_in!(self, tx, g);
            tx.commit().await?;
            Ok(seq)
        })
    }

    /// Whether `principal` ever granted anything to agent `grantee`.
    pub async fn has_granted(
        &self,
        principal: &Principal,
        grantee: &mandate_core::Thumbprint,
    ) -> Result<bool, StoreError> {
        // COUNT is a BIGINT on both backends (a bare `1` is an INT4 on Postgres).
        let found: i64 = on_pool!(self, pool => {
            sqlx::query_scalar(
                "SELECT COUNT(*) FROM (SELECT 1 FROM grants WHERE grantee_jkt = $1 AND principal = $2 LIMIT 1) AS g",
            )
            .bind(grantee.to_string())
            .bind(principal.as_str())
            .fetch_one(pool)
            .await?
        });
        Ok(found > 0)
    }

    /// One grant.
    pub async fn grant(&self, id: &TokenId) -> Result<Option<GrantRecord>, StoreError> {
        let row: Option<GrantRow> = on_pool!(self, pool => {
            sqlx::query_as("SELECT id, principal, request_id, parent_id, issuer_jkt, grantee_jkt, token, expires_at, created_at FROM grants WHERE id = $1")
                .bind(id.to_string())
                .fetch_optional(pool)
                .await?
        });
        row.map(GrantRecord::try_from).transpose()
    }

    /// A principal's grants, oldest first.
    pub async fn grants_of(&self, principal: &Principal) -> Result<Vec<GrantRecord>, StoreError> {
        let rows: Vec<GrantRow> = on_pool!(self, pool => {
            sqlx::query_as("SELECT id, principal, request_id, parent_id, issuer_jkt, grantee_jkt, token, expires_at, created_at FROM grants WHERE principal = $1 ORDER BY created_at, id")
                .bind(principal.as_str())
                .fetch_all(pool)
                .await?
        });
        rows.into_iter().map(GrantRecord::try_from).collect()
    }

    /// The grants delegated directly from `parent`.
    pub async fn children_of(&self, parent: &TokenId) -> Result<Vec<GrantRecord>, StoreError> {
        let rows: Vec<GrantRow> = on_pool!(self, pool => {
            sqlx::query_as("SELECT id, principal, request_id, parent_id, issuer_jkt, grantee_jkt, token, expires_at, created_at FROM grants WHERE parent_id = $1 ORDER BY created_at, id")
                .bind(parent.to_string())
                .fetch_all(pool)
                .await?
        });
        rows.into_iter().map(GrantRecord::try_from).collect()
    }
}
