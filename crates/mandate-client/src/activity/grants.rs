//! The user's grants as the history holds them (the broker's list, saved
//! at each sync by `ingest`) and what each was used for (counted as
//! receipts are written). The screens read them through this API.

use sqlx::FromRow;

use crate::ClientError;
use crate::history::History;

/// A grant as the history holds it.
#[derive(Debug, Clone, FromRow)]
pub(crate) struct GrantRow {
    /// Its id.
    pub(crate) id: String,
    /// The signed grant.
    pub(crate) token: String,
    /// The grant it was delegated under, if any.
    pub(crate) parent: Option<String>,
    /// When the broker said it was revoked.
    pub(crate) revoked_at: Option<i64>,
}

/// What one grant was used for: how many actions of one kind its receipts
/// record, and when the last was taken.
#[derive(Debug, Clone, FromRow)]
pub(crate) struct GrantUse {
    /// The grant.
    pub(crate) grant_id: String,
    /// The action's kind, as the receipts name it.
    pub(crate) kind: String,
    /// How many receipts record it.
    pub(crate) actions: i64,
    /// The last receipt's time.
    pub(crate) last_at: i64,
}

impl History {
    /// Every grant of `principal`'s, in the order issued.
    pub(crate) async fn grant_rows(&self, principal: &str) -> Result<Vec<GrantRow>, ClientError> {
        Ok(sqlx::query_as(
            "SELECT id, token, parent, revoked_at FROM grants WHERE principal = ? ORDER BY issued_at, id",
        )
        .bind(principal)
        .fetch_all(self.pool())
        .await?)
    }

    /// What each of `principal`'s grants was used for.
    pub(crate) async fn grant_usage(&self, principal: &str) -> Result<Vec<GrantUse>, ClientError> {
        Ok(sqlx::query_as(
            "SELECT grant_id, kind, actions, last_at FROM grant_usage WHERE principal = ?",
        )
        .bind(principal)
        .fetch_all(self.pool())
        .await?)
    }

    /// The signed grant `id` of `principal`'s, if the history holds it.
    pub(crate) async fn grant_token(
        &self,
        principal: &str,
        id: &str,
    ) -> Result<Option<String>, ClientError> {
        Ok(
            sqlx::query_scalar("SELECT token FROM grants WHERE principal = ? AND id = ?")
                .bind(principal)
                .bind(id)
                .fetch_optional(self.pool())
                .await?,
        )
    }

    /// Every agent that holds or held one of `principal`'s grants, in the
    /// order of its first grant.
    pub(crate) async fn grantees(&self, principal: &str) -> Result<Vec<String>, ClientError> {
        Ok(sqlx::query_scalar(
            "SELECT grantee FROM grants WHERE principal = ? GROUP BY grantee ORDER BY min(issued_at)",
        )
        .bind(principal)
        .fetch_all(self.pool())
        .await?)
    }
}
