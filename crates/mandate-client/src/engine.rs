//! The engine: one signed-in user, their key in the OS keyring, their
//! history in SQLite, and a broker (hosted in-process on 127.0.0.1 by
//! default, or remote). The desktop app's commands are thin calls into it.
//!
//! A decision is signed, then recorded locally with its event and signed
//! head in one transaction (the outbox), then delivered to the broker. The
//! signed token is the delivery's idempotency key: the broker accepts the
//! same decision again without change. Undelivered decisions are retried
//! with backoff, and on every start, until the broker accepts or refuses
//! them for good.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex as StdMutex};
use std::time::Duration;

use mandate_agent::BrokerError;
use mandate_broker::host::{HostConfig, HostKey, Hosted};
use mandate_broker::oidc::TrustedIssuer;
use mandate_core::Claims as _;
use mandate_core::token::BindingClaims;
use mandate_core::{PublicKey, Secret, SigningKey, Thumbprint, TokenId};
use serde::Serialize;
use tokio::sync::{Mutex, OnceCell, RwLock, broadcast};
use tokio::task::JoinHandle;

use crate::activity::{ActivityFilter, ActivityRow, AttributionView, Ingested};
use crate::broker::{KeyItem, NewKey};
use crate::decision::{Narrowing, denial_for, grant_for};
use crate::devices::{Device, Enrolled};
use crate::export::ExportFormat;
use crate::history::{
    DecisionKind, History, NewDecision, Outgoing, Profile, RequestState, StoredDecision,
    StoredRequest, StoredRevocation, Verified,
};
use crate::vault::{StoredSession, Vault};
use crate::view::RequestDetail;
use crate::{BrokerClient, Browser, ClientError, Provider, Session};

/// The scopes the app asks the provider for: a refresh token
/// (`offline_access`) keeps the user signed in across restarts.
pub const SCOPES: &[&str] = &["openid", "email", "profile", "offline_access"];
/// A bearer this close to its expiry is refreshed before use.
const REFRESH_MARGIN: i64 = 60;
/// The broker's receipt feed page: a shorter page is the last.
const RECEIPT_PAGE: usize = 500;
/// The longest pause between delivery attempts, and between reconnects.
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// How often a signed-in engine checks whether its key's binding is due
/// for renewal.
const RENEWAL_CHECK: Duration = Duration::from_secs(600);

/// This device's name, as the user's other devices show it: the
/// `MANDATE_DEVICE_NAME` variable, or the host's name, with the system.
/// The app and `mandate-engine` put it in [`Config::device`].
pub fn device_name() -> String {
    let name = std::env::var("MANDATE_DEVICE_NAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/etc/hostname").ok())
        .or_else(|| std::env::var("COMPUTERNAME").ok())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|n| n.trim().to_owned())
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| "this computer".to_owned());
    let shown: String = format!("{name} ({})", std::env::consts::OS)
        .chars()
        .filter(|c| !c.is_control())
        .take(64)
        .collect();
    shown
}

pub use mandate_broker::host::DEFAULT_LISTEN;

/// The app's client id at the organization's provider, unless told
/// otherwise.
pub const CLIENT_ID: &str = "mandate-desktop";

/// Where the broker is.
#[derive(Debug, Clone)]
pub enum BrokerMode {
    /// Host one in this process, listening on `listen` (127.0.0.1), with
    /// its files under the engine's data directory.
    InProcess {
        /// The address to listen on; port 0 picks a free one.
        listen: SocketAddr,
    },
    /// A shared broker.
    Remote {
        /// Its base URL.
        url: String,
    },
}

/// How to start the engine.
#[derive(Debug, Clone)]
pub struct Config {
    /// Where the history (and an in-process broker's files) live.
    pub data_dir: PathBuf,
    /// The organization's OIDC issuer.
    pub issuer: String,
    /// The app's client id at the provider.
    pub client_id: String,
    /// The broker.
    pub broker: BrokerMode,
    /// The OS keyring service the secrets are kept under.
    pub keyring_service: String,
    /// This device's name, sent when its key is enrolled and shown on the
    /// user's other devices ([`device_name`] in the app).
    pub device: String,
}

/// A change the UI should show.
#[derive(Debug, Clone, Serialize, PartialEq, Eq, ts_rs::TS)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Update {
    /// The inbox changed; `pending` requests wait.
    Inbox {
        /// How many.
        pending: usize,
        /// The requests that arrived with this change.
        new: Vec<String>,
    },
    /// A decision reached the broker, or was refused by it for good.
    Delivery {
        /// The request decided.
        request_id: String,
        /// Whether the broker accepted it.
        delivered: bool,
    },
    /// A revocation reached the broker, or was refused by it for good.
    Revocation {
        /// The revocation's token id.
        token_id: String,
        /// Whether the broker accepted it.
        delivered: bool,
    },
    /// A re-issued grant reached the broker, or was refused for good.
    Reissue {
        /// The new grant's id.
        token_id: String,
        /// Whether the broker accepted it.
        delivered: bool,
    },
    /// Agents' receipts arrived.
    Activity {
        /// How many are new.
        new: usize,
        /// How many of those failed verification.
        failed: usize,
    },
    /// The live connection to the broker went up or down.
    Connection {
        /// Whether it is up.
        online: bool,
    },
    /// A key was enrolled for the user on another device (never this
    /// computer's own key). If it was not the user, they remove it.
    KeyEnrolled {
        /// The new key's thumbprint.
        jkt: String,
        /// Its short fingerprint.
        fingerprint: String,
        /// The name the device gave; `None` when the broker's list did not
        /// have the key.
        device: Option<String>,
        /// When it was enrolled (unix seconds).
        at: i64,
    },
}

/// The signed-in user, as the UI shows them.
#[derive(Debug, Clone, Serialize, PartialEq, Eq, ts_rs::TS)]
pub struct Account {
    /// `issuer#subject`.
    pub principal: String,
    /// The display name, if any.
    pub name: Option<String>,
    /// The email address, if any.
    pub email: Option<String>,
    /// The user key's fingerprint.
    pub key_fingerprint: String,
    /// The broker's URL.
    pub broker_url: String,
}

/// The engine. Cheap to clone; clones share everything.
#[derive(Clone)]
pub struct Engine {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("broker", &self.inner.broker.url())
            .finish_non_exhaustive()
    }
}

struct Inner {
    config: Config,
    history: History,
    vault: Vault,
    broker: BrokerClient,
    hosted: StdMutex<Option<Hosted>>,
    provider: OnceCell<Provider>,
    active: RwLock<Option<Arc<Active>>>,
    updates: broadcast::Sender<Update>,
    delivering: Mutex<()>,
    syncing: Mutex<()>,
    tasks: StdMutex<Vec<JoinHandle<()>>>,
    /// Inbox rows by request id. A row is computed from a request that
    /// never changes, but computing it verifies the request's signature;
    /// with hundreds pending, each refresh would verify every one again.
    rows: StdMutex<HashMap<String, crate::view::InboxRow>>,
    /// The keys this engine enrolled: their `key.enrolled` events are not
    /// another device's. (The event can arrive before the new key is the
    /// signed-in one.)
    own_keys: StdMutex<HashSet<Thumbprint>>,
}

/// A signed-in user's working set. The key and the bearer never leave
/// the process except to the broker (the bearer) and the keyring.
struct Active {
    profile: Profile,
    /// Shared with the renewed working set after a refresh, not copied.
    key: Arc<SigningKey>,
    bearer: Secret,
    expires_at: i64,
}

fn now() -> i64 {
    mandate_broker::host::now()
}

impl Engine {
    /// Opens the history and, in the default mode, starts the in-process
    /// broker. Nobody is signed in yet: see [`Engine::resume`] and
    /// [`Engine::sign_in`].
    pub async fn start(config: Config) -> Result<Engine, ClientError> {
        std::fs::create_dir_all(&config.data_dir)
            .map_err(|e| ClientError::History(format!("creating the data directory: {e}")))?;
        let history = History::open(&config.data_dir.join("history.sqlite")).await?;
        let (hosted, url) = match &config.broker {
            BrokerMode::Remote { url } => (None, url.clone()),
            BrokerMode::InProcess { listen } => {
                let issuer = TrustedIssuer {
                    issuer: config.issuer.trim_end_matches('/').to_owned(),
                    audiences: vec![config.client_id.clone()],
                };
                let data_dir = config.data_dir.join("broker");
                // Its key signs bindings: it lives in the keyring, like the
                // user's key, never in a file.
                let key = Vault::new(&config.keyring_service)
                    .broker_key(&data_dir.join("broker-key"))
                    .await?;
                let mut host = HostConfig::new(*listen, data_dir, vec![issuer]);
                host.key = Some(HostKey::new(key));
                let hosted = Hosted::start(host)
                    .await
                    .map_err(|e| ClientError::unreachable(format!("starting the broker: {e:#}")))?;
                let url = hosted.url().to_owned();
                (Some(hosted), url)
            }
        };
        let broker = BrokerClient::new(&url)?;
        let (updates, _) = broadcast::channel(256);
        Ok(Engine {
            inner: Arc::new(Inner {
                vault: Vault::new(&config.keyring_service),
                config,
                history,
                broker,
                hosted: StdMutex::new(hosted),
                provider: OnceCell::new(),
                active: RwLock::new(None),
                updates,
                delivering: Mutex::new(()),
                syncing: Mutex::new(()),
                tasks: StdMutex::new(Vec::new()),
                rows: StdMutex::new(HashMap::new()),
                own_keys: StdMutex::new(HashSet::new()),
            }),
        })
    }

    /// The broker's URL.
    pub fn broker_url(&self) -> &str {
        self.inner.broker.url()
    }

    /// The local history.
    pub fn history(&self) -> &History {
        &self.inner.history
    }

    /// Changes for the UI, from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Update> {
        self.inner.updates.subscribe()
    }

    async fn provider(&self) -> Result<&Provider, ClientError> {
        let c = &self.inner.config;
        self.inner
            .provider
            .get_or_try_init(|| Provider::discover(&c.issuer, &c.client_id))
            .await
            .map_err(ClientError::from)
    }

    /// The issuer the engine signs in with.
    pub fn issuer(&self) -> &str {
        &self.inner.config.issuer
    }

    /// Picks up the last sign-in from the keyring, refreshing it if it has
    /// expired. `None` when nobody is
    /// signed in (or the sign-in can no longer be refreshed).
    pub async fn resume(&self) -> Result<Option<Account>, ClientError> {
        let Some(profile) = self.inner.history.last_profile().await? else {
            return Ok(None);
        };
        let Some(stored) = self.inner.vault.session(&profile.principal).await? else {
            return Ok(None);
        };
        let Some(key) = self.inner.vault.user_key(&profile.principal).await? else {
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
    pub async fn sign_in(&self, browser: &dyn Browser) -> Result<Account, ClientError> {
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
        let key = match self.inner.vault.user_key(&principal).await? {
            Some(key) => key,
            None => {
                let key = SigningKey::generate(&mut rand_core::OsRng);
                self.inner.vault.store_user_key(&principal, &key).await?;
                // Read it back: a keyring that quietly drops writes must
                // not leave the user with a key nobody kept.
                match self.inner.vault.user_key(&principal).await? {
                    Some(kept) if kept.thumbprint() == key.thumbprint() => key,
                    _ => {
                        return Err(ClientError::Keyring(
                            "the keyring did not keep the new user key".into(),
                        ));
                    }
                }
            }
        };
        if let Ok(mut own) = self.inner.own_keys.lock() {
            own.insert(key.thumbprint());
        }
        let enrollment = self
            .inner
            .broker
            .enroll(
                session.id_token.expose(),
                &key,
                Some(NewKey {
                    session: session_key,
                    device: &self.inner.config.device,
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
            broker_url: self.inner.broker.url().to_owned(),
            signed_in_at: now(),
        };
        self.inner.history.save_profile(&profile, &key).await?;
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
        self.inner.vault.store_session(principal, &stored).await
    }

    /// Forgets the sign-in (the keyring's tokens) and stops syncing. The
    /// user key and the history stay.
    pub async fn sign_out(&self) -> Result<(), ClientError> {
        self.stop_tasks();
        let active = self.inner.active.write().await.take();
        if let Some(active) = active {
            let principal = &active.profile.principal;
            self.revoke_refresh_token(principal).await;
            self.inner.vault.forget_session(principal).await?;
        }
        Ok(())
    }

    /// Revokes the stored refresh token at the provider. Best effort: the
    /// sign-out goes on without the provider (the token is forgotten here
    /// either way), with a warning in the log.
    async fn revoke_refresh_token(&self, principal: &str) {
        let stored = match self.inner.vault.session(principal).await {
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
    pub async fn account(&self) -> Option<Account> {
        let active = self.inner.active.read().await;
        active.as_ref().map(|a| account_of(&a.profile, &a.key))
    }

    async fn activate(&self, active: Active) {
        *self.inner.active.write().await = Some(Arc::new(active));
    }

    /// Keeps the signed-in user in step with the broker, in the
    /// background, until sign-out or shutdown: follows the inbox stream
    /// (each change re-reads the inbox and is announced on
    /// [`Engine::subscribe`]) and retries the outbox with backoff.
    pub fn follow(&self) {
        self.stop_tasks();
        let outbox = tokio::spawn(self.clone().run_outbox());
        let sync = tokio::spawn(self.clone().run_sync());
        let renewal = tokio::spawn(self.clone().run_renewal());
        if let Ok(mut tasks) = self.inner.tasks.lock() {
            tasks.push(outbox);
            tasks.push(sync);
            tasks.push(renewal);
        }
    }

    /// Keeps the user key's binding alive while the user is signed in.
    async fn run_renewal(self) {
        loop {
            if let Err(e) = self.renew_binding().await {
                tracing::info!(
                    code = e.code(),
                    "the key's binding could not be renewed yet"
                );
            }
            tokio::time::sleep(RENEWAL_CHECK).await;
        }
    }

    /// Renews the user key's binding at the broker once half its life has
    /// passed; returns whether it did. The broker binds a key for a short
    /// time (7 days by default), so a device nobody signs in on stops
    /// vouching for new chains by itself.
    pub async fn renew_binding(&self) -> Result<bool, ClientError> {
        let active = self.active().await?;
        let (_, binding) = mandate_core::token::peek::<BindingClaims>(&active.profile.binding)?;
        if binding.exp - now() > (binding.exp - binding.iat) / 2 {
            return Ok(false);
        }
        let enrollment = self
            .inner
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
        self.inner
            .history
            .save_profile(&profile, &active.key)
            .await?;
        let mut slot = self.inner.active.write().await;
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

    /// Removes one of the user's other keys (a lost device's): signs a key
    /// revocation with this device's key, has the broker publish it on the
    /// revocation feed, and records it in the history. Every chain rooted
    /// in that key then falls at every verifier that follows the feed. This
    /// computer's own key is refused: sign out here, or remove it from
    /// another device.
    pub async fn remove_key(&self, jkt: &str) -> Result<(), ClientError> {
        let active = self.active().await?;
        let removed: mandate_core::Thumbprint = jkt
            .parse()
            .map_err(|_| ClientError::Invalid("not a key thumbprint".into()))?;
        if removed == active.key.thumbprint() {
            return Err(ClientError::Invalid(
                "this is this computer's own key: sign out here, or remove it from another device"
                    .into(),
            ));
        }
        let principal = &active.profile.principal;
        let token = mandate_core::token::KeyRevocationClaims {
            sub: principal
                .clone()
                .try_into()
                .map_err(|_| ClientError::Invalid("the principal is malformed".into()))?,
            keys: vec![removed],
            reason: Some("Removed in Devices".into()),
            iat: now(),
            jti: mandate_core::token::Jti::random(&mut rand_core::OsRng),
        }
        .sign(&active.key);
        self.inner
            .broker
            .remove_keys(active.bearer.expose(), &token)
            .await?;
        self.inner
            .history
            .record_key_removal(&active.key, principal, jkt, &token, now())
            .await?;
        tracing::info!("a key of the user's was removed");
        Ok(())
    }

    /// The signed-in user's keys at the broker, one per device.
    pub async fn keys(&self) -> Result<Vec<KeyItem>, ClientError> {
        let active = self.active().await?;
        self.inner.broker.keys(active.bearer.expose()).await
    }

    fn stop_tasks(&self) {
        if let Ok(mut tasks) = self.inner.tasks.lock() {
            for task in tasks.drain(..) {
                task.abort();
            }
        }
    }

    async fn active(&self) -> Result<Arc<Active>, ClientError> {
        let current = self
            .inner
            .active
            .read()
            .await
            .clone()
            .ok_or(ClientError::SignedOut)?;
        if current.expires_at - REFRESH_MARGIN > now() {
            return Ok(current);
        }
        // The bearer is about to lapse: refresh it, once, for everyone.
        let mut slot = self.inner.active.write().await;
        let Some(current) = slot.clone() else {
            return Err(ClientError::SignedOut);
        };
        if current.expires_at - REFRESH_MARGIN > now() {
            return Ok(current);
        }
        let principal = &current.profile.principal;
        let stored = self.inner.vault.session(principal).await?;
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

    /// Reads the broker's inbox into the history, and returns the pending
    /// requests, newest first. Offline, it returns what the history holds.
    pub async fn inbox(&self) -> Result<Vec<StoredRequest>, ClientError> {
        let active = self.active().await?;
        match self.fetch_inbox(&active).await {
            Ok(_) => {}
            Err(ClientError::Broker(BrokerError::Unreachable(e))) => {
                tracing::info!(error = %e, "the broker is unreachable; showing the local inbox");
            }
            Err(e) => return Err(e),
        }
        self.inner
            .history
            .requests(&active.profile.principal, Some(RequestState::Pending))
            .await
    }

    /// Fetches the inbox, records what is new (verified first), and marks
    /// what the broker no longer lists. Returns the new requests' ids.
    async fn fetch_inbox(&self, active: &Active) -> Result<Vec<String>, ClientError> {
        let items = self.inner.broker.inbox(active.bearer.expose()).await?;
        let principal = &active.profile.principal;
        let mut new = Vec::new();
        let mut listed = Vec::with_capacity(items.len());
        // Each new request is one durable transaction; known ones cost none.
        let known = self.inner.history.request_ids(principal).await?;
        for item in &items {
            let id = item.id.to_string();
            listed.push(id.clone());
            if known.contains(&id) {
                continue;
            }
            match self
                .inner
                .history
                .record_request(&active.key, principal, item, now())
                .await
            {
                Ok(true) => new.push(item.id.to_string()),
                Ok(false) => {}
                // A request that does not verify is never shown.
                Err(ClientError::Token(e)) => {
                    tracing::warn!(request = %item.id, code = e.code(), "skipping a request that does not verify");
                }
                Err(e) => return Err(e),
            }
        }
        let expired = self
            .inner
            .history
            .expire_missing(principal, &listed)
            .await?;
        // Only a change is announced: a page that re-reads the inbox on
        // each announcement must not set off another.
        if !new.is_empty() || expired > 0 {
            let pending = self
                .inner
                .history
                .requests(principal, Some(RequestState::Pending))
                .await?
                .len();
            let _ = self.inner.updates.send(Update::Inbox {
                pending,
                new: new.clone(),
            });
        }
        Ok(new)
    }

    /// The inbox as the list shows it: the pending requests the history
    /// holds, newest first. It reads nothing from the broker: while the
    /// engine follows the broker ([`Engine::follow`]), the history is
    /// current.
    pub async fn inbox_rows(&self) -> Result<Vec<crate::view::InboxRow>, ClientError> {
        let active = self.active().await?;
        let pending = self
            .inner
            .history
            .requests(&active.profile.principal, Some(RequestState::Pending))
            .await?;
        let mut cache = self
            .inner
            .rows
            .lock()
            .map_err(|_| ClientError::History("the inbox cache was poisoned".into()))?;
        // Only the rows still pending stay cached (request ids are unique
        // across principals: each is a hash of a signed token).
        let mut fresh = HashMap::with_capacity(pending.len());
        let mut rows = Vec::with_capacity(pending.len());
        for request in &pending {
            let row = match cache.remove(&request.id) {
                Some(row) => row,
                None => crate::view::row(request, &active.profile.principal, active.key.public())?,
            };
            fresh.insert(request.id.clone(), row.clone());
            rows.push(row);
        }
        *cache = fresh;
        Ok(rows)
    }

    /// One request of the signed-in user, ready to show: the agent, the
    /// scopes in plain language, the chain behind it, the decision.
    pub async fn detail(&self, id: &str) -> Result<RequestDetail, ClientError> {
        let active = self.active().await?;
        let principal = &active.profile.principal;
        let history = &self.inner.history;
        let request = history
            .request(principal, id)
            .await?
            .ok_or(ClientError::NotFound)?;
        let (known, name_reused) = history.agent_record(principal, id).await?;
        let names = history.agent_names(principal).await?;
        let user = active
            .profile
            .email
            .clone()
            .or_else(|| active.profile.name.clone())
            .unwrap_or_else(|| principal.clone());
        crate::view::detail(
            &request,
            history.decision(id).await?,
            principal,
            &user,
            active.key.public(),
            &names,
            known,
            name_reused,
        )
    }

    /// One request of the signed-in user, as recorded.
    pub async fn request(&self, id: &str) -> Result<StoredRequest, ClientError> {
        let active = self.active().await?;
        self.inner
            .history
            .request(&active.profile.principal, id)
            .await?
            .ok_or(ClientError::NotFound)
    }

    /// Approves the request `id`, narrowed as the user chose: signs the
    /// grant, records it, and delivers it.
    pub async fn approve(
        &self,
        id: &str,
        narrowing: &Narrowing,
    ) -> Result<StoredDecision, ClientError> {
        let active = self.active().await?;
        let request = self.pending(&active, id).await?;
        let grant = grant_for(
            &request.request,
            &principal_of(&active)?,
            &active.key,
            narrowing,
            now(),
            &mut rand_core::OsRng,
        )?;
        self.decide(&active, id, DecisionKind::Grant, &grant).await
    }

    /// Denies the request `id`, with an optional reason: signs the
    /// denial, records it, and delivers it.
    pub async fn deny(
        &self,
        id: &str,
        reason: Option<&str>,
    ) -> Result<StoredDecision, ClientError> {
        let active = self.active().await?;
        let request = self.pending(&active, id).await?;
        let request_id = TokenId::of(&request.request);
        let denial = denial_for(
            request_id,
            &principal_of(&active)?,
            &active.key,
            reason,
            now(),
            &mut rand_core::OsRng,
        );
        self.decide(&active, id, DecisionKind::Denial, &denial)
            .await
    }

    async fn pending(&self, active: &Active, id: &str) -> Result<StoredRequest, ClientError> {
        let request = self
            .inner
            .history
            .request(&active.profile.principal, id)
            .await?
            .ok_or(ClientError::NotFound)?;
        if request.state != RequestState::Pending {
            return Err(ClientError::Invalid(format!(
                "this request is already {}",
                request.state.as_str()
            )));
        }
        Ok(request)
    }

    async fn decide(
        &self,
        active: &Active,
        id: &str,
        kind: DecisionKind,
        token: &str,
    ) -> Result<StoredDecision, ClientError> {
        let token_id = TokenId::of(token).to_string();
        self.inner
            .history
            .record_decision(
                &active.key,
                &active.profile.principal,
                id,
                NewDecision {
                    kind,
                    token,
                    token_id: &token_id,
                },
                now(),
            )
            .await?;
        tracing::info!(request = %id, kind = ?kind, "decision recorded");
        // Delivery failures leave it in the outbox; the caller sees its
        // state in the returned row.
        if let Err(e) = self.deliver().await {
            tracing::info!(code = e.code(), "delivery deferred");
        }
        self.inner
            .history
            .decision(id)
            .await?
            .ok_or(ClientError::NotFound)
    }

    /// Delivers every decision in the outbox. Returns how many are still
    /// waiting (the broker unreachable, or busy).
    pub async fn deliver(&self) -> Result<usize, ClientError> {
        let _one_at_a_time = self.inner.delivering.lock().await;
        let active = self.active().await?;
        let principal = &active.profile.principal;
        let mut waiting = 0;
        for d in self.inner.history.outbox(principal).await? {
            let sent = Outgoing::Decision(&d.request_id);
            let answer = match d.request_id.parse::<TokenId>() {
                Ok(id) if d.kind == DecisionKind::Grant => {
                    self.inner
                        .broker
                        .approve(active.bearer.expose(), &id, &d.token)
                        .await
                }
                Ok(id) => {
                    self.inner
                        .broker
                        .deny(active.bearer.expose(), &id, &d.token)
                        .await
                }
                // Cannot happen for rows this engine wrote.
                Err(_) => Err(ClientError::Broker(BrokerError::Refused {
                    status: 400,
                    code: "request.malformed".into(),
                    message: "the request id is malformed".into(),
                })),
            };
            if !self.settle(&active, sent, answer).await? {
                waiting += 1;
            }
        }
        for r in self.inner.history.revocation_outbox(principal).await? {
            let answer = self
                .inner
                .broker
                .revoke(active.bearer.expose(), &r.token)
                .await;
            if !self
                .settle(&active, Outgoing::Revocation(&r.token_id), answer)
                .await?
            {
                waiting += 1;
            }
        }
        // A re-issued grant goes once the grant it replaces is revoked at
        // the broker; it cannot go if that revocation was refused.
        for (r, revocation_refused, revocation_delivered) in
            self.inner.history.reissue_outbox(principal).await?
        {
            let sent = Outgoing::Reissue(&r.token_id);
            let answer = match (revocation_refused, revocation_delivered) {
                (Some(code), _) => Err(ClientError::Broker(BrokerError::Refused {
                    status: 409,
                    code,
                    message: "the revocation of the grant it replaces was refused".into(),
                })),
                (None, false) => {
                    waiting += 1;
                    continue;
                }
                (None, true) => {
                    self.inner
                        .broker
                        .reissue(active.bearer.expose(), &r.request_id, &r.token, &r.replaces)
                        .await
                }
            };
            if !self.settle(&active, sent, answer).await? {
                waiting += 1;
            }
        }
        Ok(waiting)
    }

    /// What narrowing grant `id` to what was used would keep, drop, and
    /// take down with it.
    pub async fn narrow_preview(
        &self,
        id: &str,
    ) -> Result<crate::narrow::NarrowPreview, ClientError> {
        let active = self.active().await?;
        self.refresh_grants(&active).await?;
        Ok(self
            .inner
            .history
            .narrow_plan(
                &active.profile.principal,
                &active.key.public().thumbprint(),
                id,
                now(),
            )
            .await?
            .preview)
    }

    /// Narrows grant `id` to what was used: signs its revocation and a new
    /// grant with only the actions used, to the same agent for the same
    /// request; records both, then delivers them (see [`crate::narrow`]).
    pub async fn narrow_to_used(&self, id: &str) -> Result<crate::narrow::Narrowed, ClientError> {
        let active = self.active().await?;
        self.refresh_grants(&active).await?;
        let principal = &active.profile.principal;
        let at = now();
        let plan = self
            .inner
            .history
            .narrow_plan(principal, &active.key.public().thumbprint(), id, at)
            .await?;
        let revocation = crate::decision::revocation_for(
            &[plan.id],
            &principal_of(&active)?,
            &active.key,
            Some("narrowed to what was used"),
            at,
            &mut rand_core::OsRng,
        );
        let grant = crate::narrow::reissued_grant(&plan, &active.key, at, &mut rand_core::OsRng);
        let narrowed = self
            .inner
            .history
            .record_reissue(&active.key, principal, &plan, (&revocation, &grant), at)
            .await?;
        tracing::info!(replaces = %plan.id, grant = %narrowed.reissue.token_id, "grant narrowed to what was used");
        if let Err(e) = self.deliver().await {
            tracing::info!(code = e.code(), "delivery deferred");
        }
        let history = &self.inner.history;
        Ok(crate::narrow::Narrowed {
            revocation: history
                .revocation(&narrowed.revocation.token_id)
                .await?
                .ok_or(ClientError::NotFound)?,
            reissue: history
                .reissue(&narrowed.reissue.token_id)
                .await?
                .ok_or(ClientError::NotFound)?,
        })
    }

    /// Records how one delivery went; `false` when it is to be tried again.
    async fn settle(
        &self,
        active: &Active,
        sent: Outgoing<'_>,
        answer: Result<(), ClientError>,
    ) -> Result<bool, ClientError> {
        let history = &self.inner.history;
        let principal = &active.profile.principal;
        let refused = match answer {
            Ok(()) => None,
            Err(ClientError::Broker(BrokerError::Refused { status, code, .. }))
                if final_refusal(status) =>
            {
                tracing::warn!(?sent, %code, "the broker refused it for good");
                Some(code)
            }
            Err(e) => {
                history.note_attempt(sent, Some(e.code())).await?;
                return Ok(false);
            }
        };
        history.note_attempt(sent, refused.as_deref()).await?;
        history
            .settle(&active.key, principal, sent, refused.as_deref(), now())
            .await?;
        let update = match sent {
            Outgoing::Decision(request_id) => Update::Delivery {
                request_id: request_id.to_owned(),
                delivered: refused.is_none(),
            },
            Outgoing::Revocation(token_id) => Update::Revocation {
                token_id: token_id.to_owned(),
                delivered: refused.is_none(),
            },
            Outgoing::Reissue(token_id) => Update::Reissue {
                token_id: token_id.to_owned(),
                delivered: refused.is_none(),
            },
        };
        let _ = self.inner.updates.send(update);
        Ok(true)
    }

    /// Revokes `grants` (and, with them, every sub-delegation beneath
    /// them): signs a revocation with the user key, records it, and
    /// delivers it. Delivery failures leave it in the outbox; the row says
    /// how delivery went.
    pub async fn revoke(
        &self,
        grants: &[String],
        reason: Option<&str>,
    ) -> Result<StoredRevocation, ClientError> {
        if grants.is_empty() {
            return Err(ClientError::Invalid(
                "name at least one grant to revoke".into(),
            ));
        }
        let ids = grants
            .iter()
            .map(|g| g.parse::<TokenId>())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|_| ClientError::Invalid("a grant id is malformed".into()))?;
        let active = self.active().await?;
        let principal = &active.profile.principal;
        let revocation = crate::decision::revocation_for(
            &ids,
            &principal_of(&active)?,
            &active.key,
            reason,
            now(),
            &mut rand_core::OsRng,
        );
        let stored = self
            .inner
            .history
            .record_revocation(&active.key, principal, &revocation, grants, now())
            .await?;
        tracing::info!(revocation = %stored.token_id, grants = grants.len(), "revocation recorded");
        if let Err(e) = self.deliver().await {
            tracing::info!(code = e.code(), "delivery deferred");
        }
        self.inner
            .history
            .revocation(&stored.token_id)
            .await?
            .ok_or(ClientError::NotFound)
    }

    /// The kill switch: one signed revocation of every grant the broker
    /// holds for the user that is neither revoked nor expired. `None` when
    /// there was none.
    pub async fn revoke_all(&self) -> Result<Option<StoredRevocation>, ClientError> {
        let at = now();
        let active: Vec<String> = self
            .grants()
            .await?
            .into_iter()
            .filter(|g| !g.revoked && g.expires_at > at)
            .map(|g| g.id)
            .collect();
        if active.is_empty() {
            return Ok(None);
        }
        self.revoke(&active, Some("revoke all")).await.map(Some)
    }

    /// The grants the broker holds for the signed-in user, oldest first,
    /// with their revocation state.
    pub async fn grants(&self) -> Result<Vec<crate::broker::GrantItem>, ClientError> {
        let active = self.active().await?;
        self.inner.broker.grants(active.bearer.expose()).await
    }

    /// The devices screen: the user's keys at the broker, oldest first,
    /// with this computer's marked.
    pub async fn devices(&self) -> Result<Vec<Device>, ClientError> {
        let active = self.active().await?;
        let keys = self.inner.broker.keys(active.bearer.expose()).await?;
        Ok(crate::devices::devices(keys, &active.key.thumbprint()))
    }

    /// Announces a key enrolled for the user, unless it is this
    /// computer's own; its device's name comes from the broker's list.
    async fn announce_enrolled(&self, enrolled: Enrolled) -> Result<(), ClientError> {
        let active = self.active().await?;
        let own = active.key.thumbprint() == enrolled.jkt
            || self
                .inner
                .own_keys
                .lock()
                .is_ok_and(|own| own.contains(&enrolled.jkt));
        if own {
            return Ok(());
        }
        let jkt = enrolled.jkt.to_string();
        let device = match self.inner.broker.keys(active.bearer.expose()).await {
            Ok(keys) => keys.into_iter().find(|k| k.jkt == jkt).map(|k| k.device),
            // Said without a name rather than not at all.
            Err(e) => {
                tracing::info!(code = e.code(), "the new key's device could not be read");
                None
            }
        };
        tracing::info!(key = %jkt, "a key was enrolled on another device");
        let _ = self.inner.updates.send(Update::KeyEnrolled {
            fingerprint: mandate_core::AgentId::from_thumbprint(enrolled.jkt).fingerprint(),
            jkt,
            device,
            at: enrolled.at,
        });
        Ok(())
    }

    /// Reads the user's grants and every receipt not yet seen from the
    /// broker, checks each receipt, and records them all. Announces
    /// [`Update::Activity`] when any is new.
    pub async fn sync_activity(&self) -> Result<Ingested, ClientError> {
        let _one_at_a_time = self.inner.syncing.lock().await;
        let active = self.active().await?;
        let principal = &active.profile.principal;
        let history = &self.inner.history;
        let grants = self.inner.broker.grants(active.bearer.expose()).await?;
        history.save_grants(principal, &grants).await?;
        let checker = history.checker(principal, active.key.public()).await?;
        let mut ingest = crate::activity::Ingest::new(history, principal, &active.key, checker);
        let mut since = history.receipts_cursor(principal).await?;
        loop {
            // Up to ten of the broker's pages to a transaction: a large
            // backlog is written several times faster than page by page.
            let mut batch = Vec::new();
            let mut last_page = false;
            while batch.len() < 10 * RECEIPT_PAGE {
                let page = self
                    .inner
                    .broker
                    .receipts(active.bearer.expose(), since)
                    .await?;
                last_page = page.len() < RECEIPT_PAGE;
                if let Some(last) = page.last() {
                    since = last.seq;
                }
                batch.extend(page);
                if last_page {
                    break;
                }
            }
            // Checked while the batch before it is written.
            ingest.push(batch).await?;
            if last_page {
                break;
            }
        }
        let total = ingest.finish().await?;
        if total.new > 0 {
            tracing::info!(new = total.new, failed = total.failed, "receipts recorded");
            let _ = self.inner.updates.send(Update::Activity {
                new: total.new,
                failed: total.failed,
            });
        }
        Ok(total)
    }

    /// The delegations screen: the user's grants in force by agent (with
    /// the sub-delegations beneath them, and what each was used for), and
    /// those that ended. Reads the broker's list first when it can.
    pub async fn delegations(&self) -> Result<crate::delegations::Delegations, ClientError> {
        let active = self.active().await?;
        let principal = &active.profile.principal;
        self.refresh_grants(&active).await?;
        let user = active.key.public().thumbprint();
        self.inner
            .history
            .delegations(principal, &user, now())
            .await
    }

    /// The grants in force that lapse within `within` seconds, read from
    /// the history alone (no broker call), soonest first.
    pub async fn expiring(
        &self,
        within: i64,
    ) -> Result<Vec<crate::delegations::GrantView>, ClientError> {
        let active = self.active().await?;
        let at = now();
        let user = active.key.public().thumbprint();
        let mut soon: Vec<_> = self
            .inner
            .history
            .grant_views(&active.profile.principal, &user, at)
            .await?
            .into_iter()
            .filter(|g| {
                g.state == crate::delegations::GrantState::Active && g.expires_at - at <= within
            })
            .collect();
        soon.sort_by_key(|g| g.expires_at);
        Ok(soon)
    }

    /// Every agent that holds or held one of the user's grants.
    pub async fn agents(&self) -> Result<Vec<crate::delegations::AgentChoice>, ClientError> {
        let active = self.active().await?;
        self.inner.history.agents(&active.profile.principal).await
    }

    /// What revoking grant `id` takes down: its sub-delegations in force
    /// and the requests waiting under it.
    pub async fn revoke_preview(
        &self,
        id: &str,
    ) -> Result<crate::delegations::RevokePreview, ClientError> {
        let active = self.active().await?;
        self.refresh_grants(&active).await?;
        self.inner
            .history
            .revoke_preview(
                &active.profile.principal,
                &active.key.public().thumbprint(),
                id,
                now(),
            )
            .await
    }

    /// Reads the broker's grant list into the history; offline, the
    /// history's is used as it is.
    async fn refresh_grants(&self, active: &Active) -> Result<(), ClientError> {
        match self.inner.broker.grants(active.bearer.expose()).await {
            Ok(grants) => {
                self.inner
                    .history
                    .save_grants(&active.profile.principal, &grants)
                    .await
            }
            Err(ClientError::Broker(BrokerError::Unreachable(e))) => {
                tracing::info!(error = %e, "the broker is unreachable; showing the local grants");
                Ok(())
            }
            Err(e) => Err(e),
        }
    }

    /// Checks one page of receipts and records it, as
    /// [`Engine::sync_activity`] does with each page the broker serves.
    pub async fn ingest(
        &self,
        page: &[crate::broker::ReceiptItem],
    ) -> Result<Ingested, ClientError> {
        let active = self.active().await?;
        let principal = &active.profile.principal;
        let history = &self.inner.history;
        let mut checker = history.checker(principal, active.key.public()).await?;
        history
            .ingest(principal, &active.key, &mut checker, page)
            .await
    }

    /// A page of the user's activity, newest first.
    pub async fn activity(&self, filter: &ActivityFilter) -> Result<Vec<ActivityRow>, ClientError> {
        let active = self.active().await?;
        self.inner
            .history
            .activity(&active.profile.principal, filter)
            .await
    }

    /// Why receipt `id` happened, from the user's intent down to it, each
    /// step verified again.
    pub async fn attribution(&self, id: &str) -> Result<AttributionView, ClientError> {
        let active = self.active().await?;
        self.inner
            .history
            .attribution(&active.profile.principal, active.key.public(), id)
            .await
    }

    /// Reports receipt `id` ("this was not expected"): marks it, records
    /// the report in the signed history, and, when `revoke` is set, revokes
    /// the grant it was made under (and everything beneath it).
    pub async fn report(
        &self,
        id: &str,
        note: Option<&str>,
        revoke: bool,
    ) -> Result<Option<StoredRevocation>, ClientError> {
        let active = self.active().await?;
        let principal = &active.profile.principal;
        let (row, _) = self
            .inner
            .history
            .receipt_row(principal, id)
            .await?
            .ok_or(ClientError::NotFound)?;
        self.inner
            .history
            .report_receipt(&active.key, principal, id, note, now())
            .await?;
        if !revoke {
            return Ok(None);
        }
        let reason = format!("reported action {id}");
        self.revoke(&[row.grant_id], Some(&reason)).await.map(Some)
    }

    /// Writes the activity that `filter` selects (every page of it) to
    /// `path`, as JSON Lines or CSV, each record with the signed receipt
    /// and what it takes to verify it elsewhere. The file appears whole or
    /// not at all. Returns how many records it holds.
    pub async fn export(
        &self,
        filter: &ActivityFilter,
        format: ExportFormat,
        path: &std::path::Path,
    ) -> Result<usize, ClientError> {
        let active = self.active().await?;
        crate::export::write(
            &self.inner.history,
            &active.profile.principal,
            &active.profile.binding,
            active.key.public(),
            filter,
            format,
            path,
        )
        .await
    }

    /// Checks the signed-in user's history: every link, and the head's
    /// signature.
    pub async fn verify_history(&self) -> Result<Verified, ClientError> {
        let active = self.active().await?;
        let key = PublicKey::from_jwk_json(&active.profile.user_jwk)?;
        self.inner
            .history
            .verify(&active.profile.principal, &key)
            .await
    }

    /// The signed-in user's decisions, newest first.
    pub async fn decisions(&self) -> Result<Vec<StoredDecision>, ClientError> {
        let active = self.active().await?;
        self.inner
            .history
            .decisions(&active.profile.principal)
            .await
    }

    /// Retries the outbox with backoff while it holds anything.
    async fn run_outbox(self) {
        let mut pause = Duration::from_secs(1);
        loop {
            match self.deliver().await {
                Ok(0) => pause = Duration::from_secs(1),
                Ok(_) | Err(_) => pause = (pause * 2).min(MAX_BACKOFF),
            }
            tokio::time::sleep(pause).await;
        }
    }

    /// Follows the broker's inbox stream; each change re-reads the inbox.
    /// Reconnects with backoff, resuming after the last event seen.
    async fn run_sync(self) {
        let mut last: Option<String> = None;
        let mut pause = Duration::from_millis(250);
        loop {
            match self.follow_once(&mut last).await {
                Ok(()) => pause = Duration::from_millis(250),
                Err(e) => {
                    tracing::info!(code = e.code(), "the inbox stream dropped");
                    pause = (pause * 2).min(MAX_BACKOFF);
                }
            }
            let _ = self
                .inner
                .updates
                .send(Update::Connection { online: false });
            tokio::time::sleep(pause).await;
        }
    }

    async fn follow_once(&self, last: &mut Option<String>) -> Result<(), ClientError> {
        use futures_util::StreamExt as _;
        let active = self.active().await?;
        let mut res = self
            .inner
            .broker
            .inbox_events(active.bearer.expose(), last.as_deref())
            .await?;
        let _ = self.inner.updates.send(Update::Connection { online: true });
        // Whatever happened while disconnected.
        self.fetch_inbox(&active).await?;
        self.sync_activity().await?;
        let mut parser = mandate_agent::sse::SseParser::default();
        loop {
            let chunk = tokio::time::timeout(STREAM_IDLE, res.next())
                .await
                .map_err(|_| ClientError::unreachable("the inbox stream went quiet"))?;
            let Some(chunk) = chunk else {
                return Ok(());
            };
            let chunk = chunk.map_err(|e| ClientError::unreachable(e.without_url().to_string()))?;
            let (mut requests, mut receipts) = (false, false);
            let mut enrolled = Vec::new();
            for event in parser.feed(&chunk) {
                if let Some(id) = event.id {
                    *last = Some(id);
                }
                requests |= event.name.starts_with("request.");
                receipts |= event.name == "receipt.stored";
                if event.name == "key.enrolled" {
                    enrolled.extend(Enrolled::parse(&event.data));
                }
            }
            for key in enrolled {
                self.announce_enrolled(key).await?;
            }
            if requests {
                // The bearer may have been refreshed since the stream began.
                let active = self.active().await?;
                self.fetch_inbox(&active).await?;
            }
            if receipts {
                self.sync_activity().await?;
            }
        }
    }

    /// Stops syncing and the in-process broker, and closes the history.
    pub async fn shutdown(&self) {
        self.stop_tasks();
        let hosted = self.inner.hosted.lock().ok().and_then(|mut h| h.take());
        if let Some(hosted) = hosted
            && let Err(e) = hosted.stop().await
        {
            tracing::warn!(error = %e, "stopping the broker");
        }
        self.inner.history.close().await;
    }
}

/// The broker sends a keep-alive every few seconds; this long without
/// anything means the connection is gone.
const STREAM_IDLE: Duration = Duration::from_secs(30);

/// Whether a refusal is final (retrying the same token cannot succeed):
/// any 4xx but an expired bearer (401) and a rate limit (429).
fn final_refusal(status: u16) -> bool {
    (400..500).contains(&status) && status != 401 && status != 429
}

fn principal_of(active: &Active) -> Result<mandate_core::Principal, ClientError> {
    mandate_core::Principal::try_from(active.profile.principal.clone())
        .map_err(|_| ClientError::Invalid("the signed-in principal is malformed".into()))
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

#[cfg(test)]
mod tests {
    /// The agents' default broker is where a broker listens by default.
    #[test]
    fn agents_default_to_where_the_broker_listens() {
        assert_eq!(
            mandate_agent::client::DEFAULT_BROKER_URL,
            format!("http://{}", super::DEFAULT_LISTEN)
        );
    }
}
