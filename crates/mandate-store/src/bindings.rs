//! User key bindings: which principal a user key belongs to, and until when.

use mandate_core::{Principal, PublicKey, Thumbprint};

use crate::error::parse;
use crate::events::{append_event, lock_log};
use crate::{EventKind, Store, StoreError, on_pool};

/// A user key bound to a principal, with the broker's binding token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Binding {
    /// The user key's thumbprint.
    pub jkt: Thumbprint,
    /// The user key, which verifies the user's decisions and revocations.
    pub key: PublicKey,
    /// The principal it belongs to.
    pub principal: Principal,
    /// The `mandate-binding+jwt` the broker issued.
    pub token: String,
    /// Issued at.
    pub issued_at: i64,
    /// Expires at.
    pub expires_at: i64,
}

#[derive(sqlx::FromRow)]
struct BindingRow {
    jkt: String,
    public_key: String,
    principal: String,
    token: String,
    issued_at: i64,
    expires_at: i64,
}

impl TryFrom<BindingRow> for Binding {
    type Error = StoreError;
    fn try_from(r: BindingRow) -> Result<Binding, StoreError> {
        let key = mandate_core::base64url::decode(&r.public_key)
            .and_then(|b| <[u8; 32]>::try_from(b.as_slice()).ok())
            .and_then(|b| PublicKey::from_bytes(&b).ok())
            .ok_or(StoreError::Corrupt("binding key"))?;
        let jkt: Thumbprint = parse(&r.jkt, "binding jkt")?;
        if key.thumbprint() != jkt {
            return Err(StoreError::Corrupt("binding key"));
        }
        Ok(Binding {
            jkt,
            key,
            principal: r
                .principal
                .try_into()
                .map_err(|_| StoreError::Corrupt("binding principal"))?,
            token: r.token,
            issued_at: r.issued_at,
            expires_at: r.expires_at,
        })
    }
}

impl Store {
    /// Stores a binding, or renews it. A key already bound to another
    /// principal is refused with [`StoreError::Conflict`] and nothing changes.
    pub async fn put_binding(&self, b: &Binding) -> Result<i64, StoreError> {
        on_pool!(self, pool => {
            let _writing = self.writing().await;
            let mut tx = pool.begin().await?;
            lock_log!(self, tx)?;
            let changed = sqlx::query(
                "INSERT INTO bindings (jkt, public_key, principal, token, issued_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6) \
                 ON CONFLICT (jkt) DO UPDATE SET token = excluded.token, issued_at = excluded.issued_at, \
                 expires_at = excluded.expires_at WHERE bindings.principal = excluded.principal",
            )
            .bind(b.jkt.to_string())
            .bind(mandate_core::base64url::encode(b.key.as_bytes()))
            .bind(b.principal.as_str())
            .bind(&b.token)
            .bind(b.issued_at)
            .bind(b.expires_at)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if changed == 0 {
                return Err(StoreError::Conflict);
            }
            let seq = append_event!(self, tx, EventKind::BindingStored, Some(b.principal.as_str()), None::<String>, b.jkt.to_string(), b.issued_at)?;
            tx.commit().await?;
            Ok(seq)
        })
    }

    /// The binding of a user key.
    pub async fn binding(&self, jkt: &Thumbprint) -> Result<Option<Binding>, StoreError> {
        let row: Option<BindingRow> = on_pool!(self, pool => {
            sqlx::query_as("SELECT jkt, public_key, principal, token, issued_at, expires_at FROM bindings WHERE jkt = $1")
                .bind(jkt.to_string())
                .fetch_optional(pool)
                .await?
        });
        row.map(Binding::try_from).transpose()
    }

    /// Every binding of a principal.
    pub async fn bindings_of(&self, principal: &Principal) -> Result<Vec<Binding>, StoreError> {
        let rows: Vec<BindingRow> = on_pool!(self, pool => {
            sqlx::query_as(
                "SELECT jkt, public_key, principal, token, issued_at, expires_at FROM bindings WHERE principal = $1 ORDER BY issued_at",
            )
            .bind(principal.as_str())
            .fetch_all(pool)
            .await?
        });
        rows.into_iter().map(Binding::try_from).collect()
    }
}
