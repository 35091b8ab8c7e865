//! Idempotency keys: a retried call gets the first call's answer, and a key
//! reused for a different body is refused.

use mandate_core::Principal;

use crate::{Store, StoreError, on_pool};

/// What a caller should do with a call that carries an idempotency key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Idempotency {
    /// First time: do the work, then [`Store::finish_idempotent`].
    Proceed,
    /// Done before: answer with this stored response.
    Replay(String),
    /// The first call with this key has not finished.
    InFlight,
    /// The key was used before with another body.
    Mismatch,
}

impl Store {
    /// Claims `key` for `principal` and a body with hash `body_hash`.
    pub async fn begin_idempotent(
        &self,
        principal: &Principal,
        key: &str,
        body_hash: &str,
        now: i64,
    ) -> Result<Idempotency, StoreError> {
        let writing = self.writing().await;
        let claimed = on_pool!(self, pool => {
            sqlx::query(
                "INSERT INTO idempotency (principal, key, body_hash, created_at) VALUES ($1, $2, $3, $4) \
                 ON CONFLICT (principal, key) DO NOTHING",
            )
            .bind(principal.as_str())
            .bind(key)
            .bind(body_hash)
            .bind(now)
            .execute(pool)
            .await?
            .rows_affected()
        });
        drop(writing);
        if claimed == 1 {
            return Ok(Idempotency::Proceed);
        }
        let (hash, response): (String, Option<String>) = on_pool!(self, pool => {
            sqlx::query_as("SELECT body_hash, response FROM idempotency WHERE principal = $1 AND key = $2")
                .bind(principal.as_str())
                .bind(key)
                .fetch_one(pool)
                .await?
        });
        Ok(match response {
            _ if hash != body_hash => Idempotency::Mismatch,
            Some(response) => Idempotency::Replay(response),
            None => Idempotency::InFlight,
        })
    }

    /// Records the response of a call that [`Store::begin_idempotent`] let proceed.
    pub async fn finish_idempotent(
        &self,
        principal: &Principal,
        key: &str,
        response: &str,
    ) -> Result<(), StoreError> {
        let writing = self.writing().await;
        let changed = on_pool!(self, pool => {
            sqlx::query("UPDATE idempotency SET response = $1 WHERE principal = $2 AND key = $3 AND response IS NULL")
                .bind(response)
                .bind(principal.as_str())
                .bind(key)
                .execute(pool)
                .await?
                .rows_affected()
        });
        drop(writing);
        if changed == 1 {
            Ok(())
        } else {
            Err(StoreError::Conflict)
        }
    }

    /// Forgets a claim whose call failed, so that a retry may proceed.
    pub async fn abandon_idempotent(
        &self,
        principal: &Principal,
        key: &str,
    ) -> Result<(), StoreError> {
        let _writing = self.writing().await;
        on_pool!(self, pool => {
            sqlx::query("DELETE FROM idempotency WHERE principal = $1 AND key = $2 AND response IS NULL")
                .bind(principal.as_str())
                .bind(key)
                .execute(pool)
                .await?;
        });
        Ok(())
    }
}
