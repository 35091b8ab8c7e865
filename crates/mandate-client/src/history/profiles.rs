//! Who signed in on this machine, and the keys they removed.

use mandate_core::SigningKey;

use super::log::append;
use super::{History, Profile};
use crate::ClientError;

impl History {
    /// Saves (or replaces) the profile of a signed-in user, and logs the
    /// key's enrollment when the key is new.
    pub async fn save_profile(
        &self,
        profile: &Profile,
        key: &SigningKey,
    ) -> Result<(), ClientError> {
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        let before: Option<String> =
            sqlx::query_scalar("SELECT user_jwk FROM profiles WHERE principal = ?")
                .bind(&profile.principal)
                .fetch_optional(&mut *tx)
                .await?;
        sqlx::query(
            "INSERT INTO profiles (principal, issuer, subject, name, email, user_jwk, binding, broker_url, signed_in_at)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
             ON CONFLICT (principal) DO UPDATE SET name = excluded.name, email = excluded.email,
               user_jwk = excluded.user_jwk, binding = excluded.binding,
               broker_url = excluded.broker_url, signed_in_at = excluded.signed_in_at",
        )
        .bind(&profile.principal)
        .bind(&profile.issuer)
        .bind(&profile.subject)
        .bind(&profile.name)
        .bind(&profile.email)
        .bind(&profile.user_jwk)
        .bind(&profile.binding)
        .bind(&profile.broker_url)
        .bind(profile.signed_in_at)
        .execute(&mut *tx)
        .await
        ?;
        if before.as_deref() != Some(profile.user_jwk.as_str()) {
            let jkt = key.thumbprint().to_string();
            append(
                &mut tx,
                key,
                &profile.principal,
                profile.signed_in_at,
                "key.enrolled",
                &jkt,
                Some(&profile.binding),
            )
            .await?;
        }
        tx.commit().await.map_err(ClientError::from)
    }

    /// Records in `principal`'s history that they removed the user key
    /// `removed` with the signed key revocation `token`.
    pub async fn record_key_removal(
        &self,
        key: &SigningKey,
        principal: &str,
        removed: &str,
        token: &str,
        now: i64,
    ) -> Result<(), ClientError> {
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        append(
            &mut tx,
            key,
            principal,
            now,
            "key.removed",
            removed,
            Some(token),
        )
        .await?;
        tx.commit().await.map_err(ClientError::from)
    }

    /// The profile of `principal`.
    pub async fn profile(&self, principal: &str) -> Result<Option<Profile>, ClientError> {
        Ok(sqlx::query_as("SELECT * FROM profiles WHERE principal = ?")
            .bind(principal)
            .fetch_optional(&self.pool)
            .await?)
    }

    /// The user who signed in last, if anyone has.
    pub async fn last_profile(&self) -> Result<Option<Profile>, ClientError> {
        Ok(
            sqlx::query_as("SELECT * FROM profiles ORDER BY signed_in_at DESC LIMIT 1")
                .fetch_optional(&self.pool)
                .await?,
        )
    }

    /// Every profile the history holds.
    pub async fn profiles(&self) -> Result<Vec<Profile>, ClientError> {
        Ok(
            sqlx::query_as("SELECT * FROM profiles ORDER BY signed_in_at")
                .fetch_all(&self.pool)
                .await?,
        )
    }
}
