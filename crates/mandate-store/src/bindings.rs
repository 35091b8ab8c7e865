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
    /// The name the device gave when the key was enrolled.
    pub device: String,
    /// When the key was first enrolled (renewals keep it). Ignored by
    /// [`Store::put_binding`], which sets it.
    pub enrolled_at: i64,
    /// When the broker last accepted something the key signed. Ignored by
    /// [`Store::put_binding`].
    pub last_used_at: Option<i64>,
}

/// What [`Store::put_binding`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BindingPut {
    /// The key was bound for the first time; the event's sequence number.
    Enrolled(i64),
    /// The key's binding was renewed; the event's sequence number.
    Renewed(i64),
}

#[derive(sqlx::FromRow)]
struct BindingRow {
    jkt: String,
    public_key: String,
    principal: String,
    token: String,
    issued_at: i64,
    expires_at: i64,
    device: String,
    enrolled_at: i64,
    last_used_at: Option<i64>,
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
            device: r.device,
            enrolled_at: r.enrolled_at,
            last_used_at: r.last_used_at,
        })
    }
}

impl Store {
    /// Stores a binding, or renews it (keeping its device and enrollment
    /// time). A key already bound to another principal, or removed by its
    /// user, is refused with [`StoreError::Conflict`] and nothing changes. A first binding is a
    /// `key.enrolled` event on the principal's stream; a renewal is
    /// `binding.stored`.
    pub async fn put_binding(&self, b: &Binding) -> Result<BindingPut, StoreError> {
        on_pool!(self, pool => {
            let _writing = self.writing().await;
            let mut tx = pool.begin().await?;
            lock_log!(self, tx)?;
            let removed: i64 = sqlx::query_scalar(
                "SELECT COUNT(*) FROM revoked_grants WHERE grant_id = $1 AND kind = 'key'",
            )
            .bind(b.jkt.to_string())
            .fetch_one(&mut *tx)
            .await?;
            if removed > 0 {
                return Err(StoreError::Conflict);
            }
            let holder: Option<(String, i64)> =
                sqlx::query_as("SELECT principal, expires_at FROM bindings WHERE jkt = $1")
                    .bind(b.jkt.to_string())
                    .fetch_optional(&mut *tx)
                    .await?;
            let kind = match holder {
                None => {
                    sqlx::query(
                        "INSERT INTO bindings (jkt, public_key, principal, token, issued_at, expires_at, device, enrolled_at) \
                         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                    )
                    .bind(b.jkt.to_string())
                    .bind(mandate_core::base64url::encode(b.key.as_bytes()))
                    .bind(b.principal.as_str())
                    .bind(&b.token)
                    .bind(b.issued_at)
                    .bind(b.expires_at)
                    .bind(&b.device)
                    .bind(b.issued_at)
                    .execute(&mut *tx)
                    .await?;
                    EventKind::KeyEnrolled
                }
                Some((p, lapsed_at)) if p == b.principal.as_str() => {
                    sqlx::query(
                        "UPDATE bindings SET token = $2, issued_at = $3, expires_at = $4 WHERE jkt = $1",
                    )
                    .bind(b.jkt.to_string())
                    .bind(&b.token)
                    .bind(b.issued_at)
                    .bind(b.expires_at)
                    .execute(&mut *tx)
                    .await?;
                    // A key whose binding had lapsed comes back only through
                    // a fresh sign-in: the user hears of it as of a new one.
                    if lapsed_at <= b.issued_at {
                        EventKind::KeyEnrolled
                    } else {
                        EventKind::BindingStored
                    }
                }
                Some(_) => return Err(StoreError::Conflict),
            };
            let seq = append_event!(self, tx, kind, Some(b.principal.as_str()), None::<String>, b.jkt.to_string(), b.issued_at)?;
            tx.commit().await?;
            Ok(if kind == EventKind::KeyEnrolled {
                BindingPut::Enrolled(seq)
            } else {
                BindingPut::Renewed(seq)
            })
        })
    }

    /// Records that the broker accepted something `jkt` signed at `at`.
    pub async fn touch_binding(&self, jkt: &Thumbprint, at: i64) -> Result<(), StoreError> {
        on_pool!(self, pool => {
            let _writing = self.writing().await;
            sqlx::query(
                "UPDATE bindings SET last_used_at = $2 WHERE jkt = $1 AND (last_used_at IS NULL OR last_used_at < $2)",
            )
            .bind(jkt.to_string())
            .bind(at)
            .execute(pool)
            .await?;
            Ok(())
        })
    }

    /// Spends an ID token (by its hash) on an enrollment: refused with
    /// [`StoreError::Conflict`] when it was spent before. Spent tokens are
    /// forgotten once expired (`now`).
    pub async fn spend_id_token(
        &self,
        hash: &str,
        expires_at: i64,
        now: i64,
    ) -> Result<(), StoreError> {
        on_pool!(self, pool => {
            let _writing = self.writing().await;
            let mut tx = pool.begin().await?;
            sqlx::query("DELETE FROM spent_id_tokens WHERE expires_at < $1")
                .bind(now)
                .execute(&mut *tx)
                .await?;
            let stored = sqlx::query(
                "INSERT INTO spent_id_tokens (hash, expires_at) VALUES ($1, $2) ON CONFLICT (hash) DO NOTHING",
            )
            .bind(hash)
            .bind(expires_at)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if stored == 0 {
                return Err(StoreError::Conflict);
            }
            tx.commit().await?;
            Ok(())
        })
    }

    /// The binding of a user key.
    pub async fn binding(&self, jkt: &Thumbprint) -> Result<Option<Binding>, StoreError> {
        let row: Option<BindingRow> = on_pool!(self, pool => {
            sqlx::query_as("SELECT jkt, public_key, principal, token, issued_at, expires_at, device, enrolled_at, last_used_at FROM bindings WHERE jkt = $1")
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
                "SELECT jkt, public_key, principal, token, issued_at, expires_at, device, enrolled_at, last_used_at \
                 FROM bindings WHERE principal = $1 ORDER BY enrolled_at, jkt",
            )
            .bind(principal.as_str())
            .fetch_all(pool)
            .await?
        });
        rows.into_iter().map(Binding::try_from).collect()
    }
}
