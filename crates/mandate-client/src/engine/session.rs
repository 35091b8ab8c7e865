//! Who is signed in: the sign-in at the provider and its refresh, the
//! user key in the keyring, its enrollment and its binding's renewal.
//! Every other part takes the working set ([`Active`]) this one hands out.

use std::collections::HashSet;
use std::sync::{Arc, Mutex as StdMutex};

use mandate_core::token::BindingClaims;
use mandate_core::{PublicKey, Secret, SigningKey, Thumbprint};
use tokio::sync::{OnceCell, RwLock};

use super::{Account, now};
use crate::broker::NewKey;
use crate::history::{History, Profile};
use crate::vault::{StoredSession, Vault};
use crate::{BrokerClient, Browser, ClientError, Provider, Session};

/// The scopes the app asks the provider for: a refresh token
/// (`offline_access`) keeps the user signed in across restarts.
pub const SCOPES: &[&str] = &["openid", "email", "profile", "offline_access"];
/// A bearer this close to its expiry is refreshed before use.
const REFRESH_MARGIN: i64 = 60;

/// A signed-in user's working set. The key and the bearer never leave
/// the process except to the broker (the bearer) and the keyring.
pub(super) struct Active {
    pub(super) profile: Profile,
    /// Shared with the renewed working set after a refresh, not copied.
    pub(super) key: Arc<SigningKey>,
    pub(super) bearer: Secret,
    expires_at: i64,
}

impl Active {
    /// The signed-in principal, typed.
    pub(super) fn principal(&self) -> Result<mandate_core::Principal, ClientError> {
        mandate_core::Principal::try_from(self.profile.principal.clone())
            .map_err(|_| ClientError::Invalid("the signed-in principal is malformed".into()))
    }

    /// The user key's thumbprint.
    pub(super) fn user(&self) -> Thumbprint {
        self.key.public().thumbprint()
    }

    fn fresh(&self) -> bool {
        self.expires_at - REFRESH_MARGIN > now()
    }
}

/// The provider, the keyring and the signed-in user, if any.
pub(super) struct SignedIn {
    issuer: String,
    client_id: String,
    device: String,
    vault: Vault,
    history: History,
    broker: BrokerClient,
    provider: OnceCell<Provider>,
    active: RwLock<Option<Arc<Active>>>,
    /// The keys this engine enrolled: their `key.enrolled` events are not
    /// another device's. (The event can arrive before the new key is the
    /// signed-in one.)
    own_keys: StdMutex<HashSet<Thumbprint>>,
}

impl SignedIn {
    pub(super) fn new(
        config: &super::Config,
        vault: Vault,
        history: History,
        broker: BrokerClient,
    ) -> SignedIn {
        SignedIn {
            issuer: config.issuer.clone(),
            client_id: config.client_id.clone(),
            device: config.device.clone(),
            vault,
            history,
            broker,
            provider: OnceCell::new(),
            active: RwLock::new(None),
            own_keys: StdMutex::new(HashSet::new()),
        }
    }

    async fn provider(&self) -> Result<&Provider, ClientError> {
        self.provider
            .get_or_try_init(|| Provider::discover(&self.issuer, &self.client_id))
            .await
            .map_err(ClientError::from)
    }

    /// Picks up the last sign-in from the keyring, refreshing it if it has
    /// expired. `None` when nobody is signed in (or the sign-in can no
    /// longer be refreshed).
    pub(super) async fn resume(&self) -> Result<Option<Account>, ClientError> {
        let Some(profile) = self.history.last_profile().await? else {
            return Ok(None);
        };
        let Some(stored) = self.vault.session(&profile.principal).await? else {
            return Ok(None);
        };
        let Some(key) = self.vault.user_key(&profile.principal).await? else {
            return Ok(None);
        };
        // A binding that lapsed while nobody was signed in needs a fresh
        // sign-in to enroll the key again.
        let lapsed = mandate_core::token::peek::<BindingClaims>(&profile.binding)
            .map_or(true, |(_, b)| b.exp <= now());
        if lapsed {
            tracing::info!("the key's binding lapsed: sign in again");
            return Ok(None);
        }
        if jwk_json(key.public()) != profile.user_jwk {
            return Err(ClientError::Keyring(
                "the keyring's user key is not the one this history was signed with".into(),
            ));
        }
        let (bearer, expires_at) = if stored.expires_at - REFRESH_MARGIN > now() {
            (stored.id_token.clone(), stored.expires_at)
        } else {
            let Some(refresh) = stored.refresh_token.as_ref().map(Secret::expose) else {
                return Ok(None);
            };
            match self
                .provider()
                .await?
                .refresh(refresh, &profile.subject)
                .await
            {
                Ok(session) => {
                    self.keep_session(&profile.principal, &session).await?;
                    (session.id_token.clone(), session.expires_at)
                }
                Err(e) => {
                    tracing::info!(code = e.code(), "the stored sign-in could not be refreshed");
                    return Ok(None);
                }
            }
        };
        let account = account_of(&profile, &key);
        self.activate(Active {
            profile,
            key: Arc::new(key),
            bearer,
            expires_at,
        })
        .await;
        Ok(Some(account))
    }

    /// Signs in through `browser`: the provider's page, then back to a
    /// loopback listener. Generates the user key on first sign-in (it goes
    /// straight to the keyring), and enrolls it with the broker.
    pub(super) async fn sign_in(&self, browser: &dyn Browser) -> Result<Account, ClientError> {
        let provider = self.provider().await?;
        // A key for this sign-in alone: the ID token's nonce is its
        // thumbprint, and the enrollment proves it, so that the ID token
        // enrolls a key only together with this process.
        let session_key = SigningKey::generate(&mut rand_core::OsRng);
        let session = provider
            .sign_in_with_nonce(
                browser,
                SCOPES,
                crate::signin::SIGN_IN_TIMEOUT,
                Some(session_key.thumbprint().to_string()),
            )
            .await?;
        self.sign_in_with(session, &session_key).await
    }

    /// Completes a sign-in: the key, its enrollment, the profile.
    async fn sign_in_with(
        &self,
        session: Session,
        session_key: &SigningKey,
    ) -> Result<Account, ClientError> {
        let principal = session.principal.clone();
        let key = match self.vault.user_key(&principal).await? {
            Some(key) => key,
            None => {
                let key = SigningKey::generate(&mut rand_core::OsRng);
                self.vault.store_user_key(&principal, &key).await?;
                // Read it back: a keyring that quietly drops writes must
                // not leave the user with a key nobody kept.
                match self.vault.user_key(&principal).await? {
                    Some(kept) if kept.thumbprint() == key.thumbprint() => key,
                    _ => {
                        return Err(ClientError::Keyring(
                            "the keyring did not keep the new user key".into(),
                        ));
                    }
                }
            }
        };
        if let Ok(mut own) = self.own_keys.lock() {
            own.insert(key.thumbprint());
        }
        let enrollment = self
            .broker
            .enroll(
                session.id_token.expose(),
                &key,
                Some(NewKey {
                    session: session_key,
                    device: &self.device,
                }),
                now(),
                &mut rand_core::OsRng,
            )
            .await?;
        self.keep_session(&principal, &session).await?;
        let profile = Profile {
            principal: principal.clone(),
            issuer: session.issuer.clone(),
            subject: session.subject.clone(),
            name: session.name.clone(),
            email: session.email.clone(),
            user_jwk: jwk_json(key.public()),
            binding: enrollment.binding,
            broker_url: self.broker.url().to_owned(),
            signed_in_at: now(),
        };
        self.history.save_profile(&profile, &key).await?;
        let account = account_of(&profile, &key);
        self.activate(Active {
            profile,
            key: Arc::new(key),
            bearer: session.id_token.clone(),
            expires_at: session.expires_at,
        })
        .await;
        Ok(account)
    }

    async fn keep_session(&self, principal: &str, session: &Session) -> Result<(), ClientError> {
        let stored = StoredSession {
            id_token: session.id_token.clone(),
            expires_at: session.expires_at,
            refresh_token: session.refresh_token().map(Secret::new),
        };
        self.vault.store_session(principal, &stored).await
    }

    /// Forgets the sign-in (the keyring's tokens). The user key and the
    /// history stay.
    pub(super) async fn sign_out(&self) -> Result<(), ClientError> {
        let active = self.active.write().await.take();
        if let Some(active) = active {
            let principal = &active.profile.principal;
            self.revoke_refresh_token(principal).await;
            self.vault.forget_session(principal).await?;
        }
        Ok(())
    }

    /// Revokes the stored refresh token at the provider. Best effort: the
    /// sign-out goes on without the provider (the token is forgotten here
    /// either way), with a warning in the log.
    async fn revoke_refresh_token(&self, principal: &str) {
        let stored = match self.vault.session(principal).await {
            Ok(Some(stored)) => stored,
            Ok(None) => return,
            Err(e) => {
                tracing::warn!(
                    code = e.code(),
                    "the refresh token could not be read to revoke it"
                );
                return;
            }
        };
        let Some(refresh_token) = stored.refresh_token.as_ref().map(Secret::expose) else {
            return;
        };
        let revoked = match self.provider().await {
            Ok(provider) => provider
                .revoke(refresh_token)
                .await
                .map_err(ClientError::from),
            Err(e) => Err(e),
        };
        match revoked {
            Ok(true) => tracing::info!("refresh token revoked at the provider"),
            Ok(false) => tracing::info!("the provider offers no token revocation"),
            Err(e) => {
                tracing::warn!(code = e.code(), error = %e, "the refresh token could not be revoked")
            }
        }
    }

    /// The signed-in user, if any.
    pub(super) async fn account(&self) -> Option<Account> {
        let active = self.active.read().await;
        active.as_ref().map(|a| account_of(&a.profile, &a.key))
    }

    async fn activate(&self, active: Active) {
        *self.active.write().await = Some(Arc::new(active));
    }

    /// Whether this engine enrolled the key `jkt`.
    pub(super) fn enrolled_here(&self, jkt: &Thumbprint) -> bool {
        self.own_keys.lock().is_ok_and(|own| own.contains(jkt))
    }

    /// The signed-in user's working set, its bearer refreshed first when
    /// it is about to lapse.
    pub(super) async fn current(&self) -> Result<Arc<Active>, ClientError> {
        let current = self
            .active
            .read()
            .await
            .clone()
            .ok_or(ClientError::SignedOut)?;
        if current.fresh() {
            return Ok(current);
        }
        // The bearer is about to lapse: refresh it, once, for everyone.
        let mut slot = self.active.write().await;
        let Some(current) = slot.clone() else {
            return Err(ClientError::SignedOut);
        };
        if current.fresh() {
            return Ok(current);
        }
        let principal = &current.profile.principal;
        let stored = self.vault.session(principal).await?;
        let refresh = stored
            .as_ref()
            .and_then(|s| s.refresh_token.as_ref().map(Secret::expose))
            .ok_or(ClientError::SignedOut)?;
        let session = self
            .provider()
            .await?
            .refresh(refresh, &current.profile.subject)
            .await?;
        self.keep_session(principal, &session).await?;
        let renewed = Arc::new(Active {
            profile: current.profile.clone(),
            key: Arc::clone(&current.key),
            bearer: session.id_token.clone(),
            expires_at: session.expires_at,
        });
        *slot = Some(Arc::clone(&renewed));
        Ok(renewed)
    }

    /// Renews the user key's binding at the broker once half its life has
    /// passed; returns whether it did. The broker binds a key for a short
    /// time (7 days by default), so a device nobody signs in on stops
    /// vouching for new chains by itself.
    pub(super) async fn renew_binding(&self) -> Result<bool, ClientError> {
        let active = self.current().await?;
        let (_, binding) = mandate_core::token::peek::<BindingClaims>(&active.profile.binding)?;
        if binding.exp - now() > (binding.exp - binding.iat) / 2 {
            return Ok(false);
        }
        let enrollment = self
            .broker
            .enroll(
                active.bearer.expose(),
                &active.key,
                None,
                now(),
                &mut rand_core::OsRng,
            )
            .await?;
        let profile = Profile {
            binding: enrollment.binding,
            ..active.profile.clone()
        };
        self.history.save_profile(&profile, &active.key).await?;
        let mut slot = self.active.write().await;
        if let Some(current) = slot.as_ref()
            && current.profile.principal == profile.principal
        {
            *slot = Some(Arc::new(Active {
                profile,
                key: Arc::clone(&current.key),
                bearer: current.bearer.clone(),
                expires_at: current.expires_at,
            }));
        }
        tracing::info!("the key's binding was renewed");
        Ok(true)
    }
}

fn jwk_json(key: &PublicKey) -> String {
    // A JWK of four short strings always encodes.
    serde_json::to_string(&key.to_jwk()).unwrap_or_default()
}

fn account_of(profile: &Profile, key: &SigningKey) -> Account {
    Account {
        principal: profile.principal.clone(),
        name: profile.name.clone(),
        email: profile.email.clone(),
        key_fingerprint: key.public().agent_id().fingerprint(),
        broker_url: profile.broker_url.clone(),
    }
}
