//! Proofs of possession spent at any broker instance on this database.

use crate::{Store, StoreError, on_pool};

/// Lower-case hex of a 32-byte id.
fn hex(id: &[u8; 32]) -> String {
    id.iter().map(|b| format!("{b:02x}")).collect()
}

impl Store {
    /// Records proof `id` as spent until `keep_until`. A proof recorded
    /// before and still live at `now` is [`StoreError::Conflict`]: a
    /// replay. One statement, so two instances racing on one proof
    /// cannot both succeed.
    pub async fn spend_proof(
        &self,
        id: &[u8; 32],
        keep_until: i64,
        now: i64,
    ) -> Result<(), StoreError> {
        let stored = on_pool!(self, pool => {
            let _writing = self.writing().await;
            sqlx::query(
                "INSERT INTO spent_proofs (id, keep_until) VALUES ($1, $2) \
                 ON CONFLICT (id) DO UPDATE SET keep_until = excluded.keep_until \
                 WHERE spent_proofs.keep_until < $3",
            )
            .bind(hex(id))
            .bind(keep_until)
            .bind(now)
            .execute(pool)
            .await?
            .rows_affected()
        });
        if stored == 0 {
            return Err(StoreError::Conflict);
        }
        Ok(())
    }

    /// Whether `id` was recorded and is still live at `now`.
    pub async fn is_spent(&self, id: &[u8; 32], now: i64) -> Result<bool, StoreError> {
        let found: Option<i64> = on_pool!(self, pool => {
            sqlx::query_scalar("SELECT keep_until FROM spent_proofs WHERE id = $1 AND keep_until >= $2")
                .bind(hex(id))
                .bind(now)
                .fetch_optional(pool)
                .await?
        });
        Ok(found.is_some())
    }

    /// Forgets proofs that were stale before `now`; returns how many.
    pub async fn forget_spent_proofs(&self, now: i64) -> Result<u64, StoreError> {
        Ok(on_pool!(self, pool => {
            let _writing = self.writing().await;
            sqlx::query("DELETE FROM spent_proofs WHERE keep_until < $1")
                .bind(now)
                .execute(pool)
                .await?
                .rows_affected()
        }))
    }
}
