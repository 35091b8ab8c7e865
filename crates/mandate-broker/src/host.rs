//! Hosting the broker on a socket: the key file, the database, the
//! listener, the expiry sweep and a graceful stop. The `mandate-broker`
//! binary and the desktop app (which hosts a broker in-process on
//! 127.0.0.1 by default) both start it through [`Hosted::start`].

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context as _;
use mandate_core::SigningKey;
use mandate_keyfile as keyfile;
use mandate_store::Store;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::guard::{AllowedHost, AllowedOrigin};
use crate::oidc::{OidcVerifier, TrustedIssuer};
use crate::{AppState, Limits, router};

/// Where a broker listens unless told otherwise.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:7700";

/// How long a stop waits for open SSE streams, which never hang up by
/// themselves.
const STREAM_GRACE: Duration = Duration::from_secs(2);

/// What a hosted broker needs.
#[derive(Debug, Clone)]
pub struct HostConfig {
    /// The address to listen on; port 0 picks a free one.
    pub listen: SocketAddr,
    /// Where the key file and the default SQLite database live.
    pub data_dir: PathBuf,
    /// `sqlite://FILE` or `postgres://...` (default: a SQLite file in
    /// `data_dir`).
    pub database: Option<String>,
    /// The URL agents and users reach the broker at (default:
    /// `http://` and the bound address).
    pub public_url: Option<String>,
    /// The OIDC issuers whose users may sign in.
    pub issuers: Vec<TrustedIssuer>,
    /// The broker's signing key file (default: `broker-key` in
    /// `data_dir`), when no [`HostConfig::key`] is given.
    pub key_file: Option<PathBuf>,
    /// The broker's signing key, when the host keeps it itself: the
    /// desktop app keeps its in-process broker's key in the OS keyring,
    /// like the user's key, and no key file is read or written.
    pub key: Option<HostKey>,
    /// The guards.
    pub limits: Limits,
    /// Seconds of clock skew allowed on OIDC tokens.
    pub oidc_leeway: i64,
    /// `Host` values answered besides the bound address and the public
    /// URL's authority ([`crate::guard`]).
    pub allowed_hosts: Vec<AllowedHost>,
    /// Web origins whose requests are taken (default: none).
    pub allowed_origins: Vec<AllowedOrigin>,
    /// The resources the broker issues OAuth access tokens for (default:
    /// none, and the token endpoint refuses every exchange).
    pub oauth_resources: Vec<crate::oauth::Resource>,
    /// The resource servers trusted to report calls made to them
    /// (default: none; [`crate::witness_service`]).
    pub witnesses: Vec<crate::witness_service::Witness>,
    /// The OAuth authorization code flow: where users sign in and as
    /// which client (default: not served). Its issuer must be one of
    /// [`HostConfig::issuers`].
    pub oauth_code_flow: Option<crate::oauth::authorize::CodeFlowConfig>,
}

impl HostConfig {
    /// A broker on `listen` with its files in `data_dir`, trusting
    /// `issuers`, with the default limits.
    pub fn new(listen: SocketAddr, data_dir: PathBuf, issuers: Vec<TrustedIssuer>) -> HostConfig {
        HostConfig {
            listen,
            data_dir,
            database: None,
            public_url: None,
            issuers,
            key_file: None,
            key: None,
            limits: Limits::default(),
            oidc_leeway: crate::oidc::LEEWAY,
            allowed_hosts: Vec::new(),
            allowed_origins: Vec::new(),
            oauth_resources: Vec::new(),
            witnesses: Vec::new(),
            oauth_code_flow: None,
        }
    }
}

/// A broker signing key that its host keeps (see [`HostConfig::key`]).
/// Its `Debug` shows only the key's thumbprint.
#[derive(Clone)]
pub struct HostKey(Arc<SigningKey>);

impl HostKey {
    /// Hands `key` to the broker.
    pub fn new(key: SigningKey) -> HostKey {
        HostKey(Arc::new(key))
    }

    fn signing_key(&self) -> SigningKey {
        SigningKey::from_seed(&self.0.to_seed())
    }
}

impl std::fmt::Debug for HostKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("HostKey")
            .field(&self.0.thumbprint().to_string())
            .finish()
    }
}

/// A broker serving on a socket, until [`Hosted::stop`].
#[derive(Debug)]
pub struct Hosted {
    url: String,
    bound: SocketAddr,
    stop: watch::Sender<bool>,
    served: JoinHandle<anyhow::Result<()>>,
    sweep: JoinHandle<()>,
    store: Store,
}

/// Now, in unix seconds. A clock before 1970 is a broken machine; treat it
/// as the epoch.
pub fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

impl Hosted {
    /// Opens (or creates) the key and the database and starts serving.
    pub async fn start(config: HostConfig) -> anyhow::Result<Hosted> {
        std::fs::create_dir_all(&config.data_dir)
            .with_context(|| format!("creating {}", config.data_dir.display()))?;
        let key = match &config.key {
            Some(given) => given.signing_key(),
            None => keyfile::load_or_create(
                &config
                    .key_file
                    .clone()
                    .unwrap_or_else(|| config.data_dir.join("broker-key")),
            )?,
        };
        let database = config
            .database
            .clone()
            .unwrap_or_else(|| format!("sqlite://{}", config.data_dir.join("broker.db").display()));
        let store = Store::connect(&database)
            .await
            .context("opening the database")?;
        let listener = tokio::net::TcpListener::bind(config.listen)
            .await
            .with_context(|| format!("binding {}", config.listen))?;
        let bound = listener.local_addr().context("reading the bound address")?;
        let url = config
            .public_url
            .clone()
            .unwrap_or_else(|| format!("http://{bound}"));
        let public_host = AllowedHost::of_url(&url)
            .with_context(|| format!("the public URL {url:?} is not a URL with a host"))?;
        let oidc = OidcVerifier::new(config.issuers.clone())
            .context("building the HTTP client")?
            .with_leeway(config.oidc_leeway);
        let hosts = AllowedHost::of_socket(bound)
            .into_iter()
            .chain([public_host])
            .chain(config.allowed_hosts.iter().cloned());
        let mut state = AppState::new(store.clone(), key, &url, oidc, Arc::new(now), config.limits)
            .serving(config.oauth_resources.clone())
            .witnessed_by(config.witnesses.clone());
        if let Some(flow) = &config.oauth_code_flow {
            anyhow::ensure!(
                config.issuers.iter().any(|i| i.issuer == flow.issuer),
                "the OAuth sign-in issuer {:?} is not one of the broker's issuers",
                flow.issuer
            );
            let flow = crate::oauth::authorize::CodeFlow::new(flow.clone())
                .context("building the OAuth sign-in's HTTP client")?;
            state = state.with_code_flow(flow);
        }
        let state = state.allowing(hosts, config.allowed_origins.iter().cloned());
        let answers: Vec<String> = state
            .guard()
            .hosts()
            .iter()
            .map(ToString::to_string)
            .collect();
        let sweep = tokio::spawn(expire_requests(store.clone()));
        let (stop, mut stopping) = watch::channel(false);
        let mut stopped = stopping.clone();
        let serve = axum::serve(listener, router(state)).with_graceful_shutdown(async move {
            let _ = stopping.wait_for(|s| *s).await;
        });
        let served = tokio::spawn(async move {
            tokio::select! {
                served = serve => served.context("serving"),
                () = async {
                    let _ = stopped.wait_for(|s| *s).await;
                    tokio::time::sleep(STREAM_GRACE).await;
                } => {
                    tracing::info!("closing the streams still open");
                    Ok(())
                }
            }
        });
        tracing::info!(%bound, %url, backend = ?store.backend(), hosts = ?answers, "serving");
        Ok(Hosted {
            url,
            bound,
            stop,
            served,
            sweep,
            store,
        })
    }

    /// The URL agents and users reach the broker at.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The address it listens on.
    pub fn bound(&self) -> SocketAddr {
        self.bound
    }

    /// Stops accepting, lets requests in flight finish (streams get a short
    /// grace), and closes the database.
    pub async fn stop(self) -> anyhow::Result<()> {
        let _ = self.stop.send(true);
        let served = self.served.await.context("the server task failed")?;
        self.sweep.abort();
        self.store.close().await;
        served
    }
}

/// Marks lapsed requests expired, and forgets stale spent proofs, every
/// few seconds.
async fn expire_requests(store: Store) {
    let mut tick = tokio::time::interval(Duration::from_secs(5));
    loop {
        tick.tick().await;
        if let Err(e) = store.expire_requests(now()).await {
            tracing::warn!(error = ?e, "expiring requests failed");
        }
        if let Err(e) = store.forget_spent_proofs(now()).await {
            tracing::warn!(error = ?e, "forgetting spent proofs failed");
        }
    }
}
