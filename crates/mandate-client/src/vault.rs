//! The user's secrets in the OS keyring: the signing key and the
//! sign-in tokens. Nothing else in the engine stores them; they never go
//! to SQLite, to the logs or over IPC.
//!
//! Each secret is one keyring entry, named by a service (one per app, or
//! per test) and an account: `user-key:PRINCIPAL` holds the key's 32-byte
//! seed, `session:PRINCIPAL` the ID token and refresh token as one JSON
//! value, so that a refresh replaces both at once. The keyring calls block
//! (D-Bus on Linux), so they run on the blocking pool.

use mandate_core::{Secret, SigningKey};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::ClientError;

/// The keyring service the desktop app uses.
pub const SERVICE: &str = "dev.mandate.desktop";

/// The OS keyring, under one service name.
#[derive(Debug, Clone)]
pub struct Vault {
    service: String,
}

/// The tokens of a sign-in, as kept between runs. They are written to
/// the keyring as JSON and, in memory, held as [`Secret`]s.
#[derive(Clone, Serialize, Deserialize)]
pub struct StoredSession {
    /// The ID token, the user's bearer at the broker.
    #[serde(with = "secret_text")]
    pub id_token: Secret,
    /// When the ID token expires (unix seconds).
    pub expires_at: i64,
    /// The refresh token, if the provider issued one.
    #[serde(with = "secret_text::optional")]
    pub refresh_token: Option<Secret>,
}

/// A [`Secret`] as a JSON string, for the keyring entry alone.
mod secret_text {
    use mandate_core::Secret;
    use serde::{Deserialize as _, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(secret: &Secret, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(secret.expose())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Secret, D::Error> {
        String::deserialize(d).map(Secret::from)
    }

    pub mod optional {
        use mandate_core::Secret;
        use serde::{Deserialize as _, Deserializer, Serializer};

        pub fn serialize<S: Serializer>(secret: &Option<Secret>, s: S) -> Result<S::Ok, S::Error> {
            match secret {
                Some(secret) => s.serialize_some(secret.expose()),
                None => s.serialize_none(),
            }
        }

        pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Secret>, D::Error> {
            Option::<String>::deserialize(d).map(|t| t.map(Secret::from))
        }
    }
}

impl std::fmt::Debug for StoredSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoredSession")
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

impl Vault {
    /// The keyring entries under `service`.
    pub fn new(service: &str) -> Vault {
        Vault {
            service: service.to_owned(),
        }
    }

    /// The user key of `principal`, if one was stored.
    pub async fn user_key(&self, principal: &str) -> Result<Option<SigningKey>, ClientError> {
        let seed = self.get(format!("user-key:{principal}")).await?;
        seed.map(|seed| {
            let seed: &[u8; 32] = seed
                .as_slice()
                .try_into()
                .map_err(|_| ClientError::Keyring("the stored user key is not 32 bytes".into()))?;
            Ok(SigningKey::from_seed(seed))
        })
        .transpose()
    }

    /// Stores `key` as the user key of `principal`.
    pub async fn store_user_key(
        &self,
        principal: &str,
        key: &SigningKey,
    ) -> Result<(), ClientError> {
        let seed = key.to_seed();
        self.set(
            format!("user-key:{principal}"),
            Zeroizing::new(seed.to_vec()),
        )
        .await
    }

    /// The in-process broker's signing key, made on first use. A key file
    /// left by an earlier version at `legacy_file` is moved into the
    /// keyring (so the bindings it signed stay valid) and then deleted.
    pub async fn broker_key(
        &self,
        legacy_file: &std::path::Path,
    ) -> Result<SigningKey, ClientError> {
        const ACCOUNT: &str = "broker-key";
        if let Some(seed) = self.get(ACCOUNT.into()).await? {
            let seed: &[u8; 32] = seed.as_slice().try_into().map_err(|_| {
                ClientError::Keyring("the stored broker key is not 32 bytes".into())
            })?;
            return Ok(SigningKey::from_seed(seed));
        }
        let key = match legacy_file.exists() {
            true => mandate_keyfile::load(legacy_file).map_err(|e| {
                ClientError::Keyring(format!("reading the old broker key file: {e}"))
            })?,
            false => SigningKey::generate(&mut rand_core::OsRng),
        };
        self.set(ACCOUNT.into(), Zeroizing::new(key.to_seed().to_vec()))
            .await?;
        // Only once the keyring holds it: read it back before the file goes.
        if self
            .get(ACCOUNT.into())
            .await?
            .as_deref()
            .map(Vec::as_slice)
            != Some(key.to_seed().as_slice())
        {
            return Err(ClientError::Keyring(
                "the keyring did not keep the broker key".into(),
            ));
        }
        if legacy_file.exists() {
            std::fs::remove_file(legacy_file).map_err(|e| {
                ClientError::Keyring(format!("removing the old broker key file: {e}"))
            })?;
        }
        Ok(key)
    }

    /// Forgets the in-process broker's signing key.
    pub async fn forget_broker_key(&self) -> Result<(), ClientError> {
        self.delete("broker-key".into()).await
    }

    /// The stored sign-in of `principal`, if any.
    pub async fn session(&self, principal: &str) -> Result<Option<StoredSession>, ClientError> {
        let bytes = self.get(format!("session:{principal}")).await?;
        bytes
            .map(|b| {
                serde_json::from_slice(&b)
                    .map_err(|_| ClientError::Keyring("the stored sign-in is unreadable".into()))
            })
            .transpose()
    }

    /// Stores the sign-in of `principal`, replacing any before.
    pub async fn store_session(
        &self,
        principal: &str,
        session: &StoredSession,
    ) -> Result<(), ClientError> {
        let bytes = serde_json::to_vec(session)
            .map_err(|_| ClientError::Keyring("the sign-in cannot be encoded".into()))?;
        self.set(format!("session:{principal}"), Zeroizing::new(bytes))
            .await
    }

    /// Forgets the sign-in of `principal` (sign-out). The user key stays:
    /// it is enrolled, and signs again at the next sign-in.
    pub async fn forget_session(&self, principal: &str) -> Result<(), ClientError> {
        self.delete(format!("session:{principal}")).await
    }

    /// Forgets the user key of `principal`.
    pub async fn forget_user_key(&self, principal: &str) -> Result<(), ClientError> {
        self.delete(format!("user-key:{principal}")).await
    }

    async fn get(&self, account: String) -> Result<Option<Zeroizing<Vec<u8>>>, ClientError> {
        let service = self.service.clone();
        blocking(move || {
            let entry = keyring::Entry::new(&service, &account)?;
            match entry.get_secret() {
                Ok(secret) => Ok(Some(Zeroizing::new(secret))),
                Err(keyring::Error::NoEntry) => Ok(None),
                Err(e) => Err(e),
            }
        })
        .await
    }

    async fn set(&self, account: String, secret: Zeroizing<Vec<u8>>) -> Result<(), ClientError> {
        let service = self.service.clone();
        blocking(move || keyring::Entry::new(&service, &account)?.set_secret(&secret)).await
    }

    async fn delete(&self, account: String) -> Result<(), ClientError> {
        let service = self.service.clone();
        blocking(
            move || match keyring::Entry::new(&service, &account)?.delete_credential() {
                Ok(()) | Err(keyring::Error::NoEntry) => Ok(()),
                Err(e) => Err(e),
            },
        )
        .await
    }
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> keyring::Result<T> + Send + 'static,
) -> Result<T, ClientError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|_| ClientError::Keyring("the keyring call panicked".into()))?
        // The keyring's own messages name the platform's failure, never a
        // secret.
        .map_err(|e| ClientError::Keyring(e.to_string()))
}
