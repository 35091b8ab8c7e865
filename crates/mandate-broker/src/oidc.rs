//! User authentication: an OIDC ID token as a bearer token, verified
//! against its issuer's JWKS.
//!
//! Only configured issuers are trusted, each with the audiences (client
//! ids) it may issue for. Only asymmetric algorithms are accepted. Times are
//! checked against the broker's clock, with [`LEEWAY`] seconds of skew by
//! default ([`OidcVerifier::with_leeway`]).
//! The principal is `issuer#subject`.
//!
//! # The issuers' keys
//!
//! An issuer's JWKS is found through OIDC discovery and fetched over HTTPS
//! (plain HTTP only on loopback). A fetch, discovery and JWKS together,
//! gives up after [`FETCH_TIMEOUT`]. For each issuer:
//!
//! - **Cached.** A fetched JWKS is used for [`JWKS_TTL`] without asking
//!   the issuer again.
//! - **Refetched** once it is older than that, or when a token names a
//!   `kid` it lacks (the issuer rotated its key), but never sooner than
//!   [`REFETCH_AFTER`] after the last fetch ended. The caller waits for the
//!   refetch. A `kid` missing from a good JWKS fetched within that floor,
//!   or from the one the refetch brings, is `auth.unknown_key`.
//! - **One fetch at a time.** Every caller that needs a refetch while one
//!   is under way waits for that one (single flight). The fetch runs in a
//!   task of its own, so it lands even if its callers give up, and no lock
//!   is held while it runs: the cache is a map behind a plain mutex, held
//!   only to read or replace an entry.
//! - **Failures are remembered.** After a failed fetch the next one waits
//!   `REFETCH_AFTER`, doubled with each further consecutive failure up to
//!   [`MAX_BACKOFF`] (30 s, 60 s, 120 s, 240 s, then every 300 s); a good
//!   fetch ends the backoff. While the last fetch has failed, a token whose
//!   key the last good JWKS lacks is `auth.issuer_unavailable`, and within
//!   the backoff that answer (or the key, from the last good JWKS) comes at
//!   once: nobody waits on a failing issuer.
//! - **Stale while the issuer fails.** When a refetch fails, the last good
//!   JWKS stays in use, but only up to [`MAX_STALENESS`] after it was
//!   fetched; past that, tokens from the issuer are
//!   `auth.issuer_unavailable` until a fetch succeeds. A key the issuer
//!   withdraws thus stops verifying within `JWKS_TTL` while the issuer can
//!   be reached, and within `MAX_STALENESS` when it cannot.
//!
//! Before the first good fetch there is nothing to fall back on: a failed
//! fetch makes every token from the issuer `auth.issuer_unavailable`, for
//! the backoff above.

use crate::error::Code;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use jsonwebtoken::jwk::{Jwk, JwkSet};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use mandate_core::{Principal, UnixTime};
use serde::Deserialize;
use tokio::sync::watch;

/// Skew allowed on `exp`, `nbf` and `iat` by default, in seconds.
pub const LEEWAY: i64 = 60;
/// How long a fetched JWKS is used before it is fetched again.
pub const JWKS_TTL: Duration = Duration::from_secs(300);
/// The least time between two fetches for one issuer, and the first wait
/// after a failed one.
pub const REFETCH_AFTER: Duration = Duration::from_secs(30);
/// The longest wait between two fetches for an issuer that keeps failing.
pub const MAX_BACKOFF: Duration = Duration::from_secs(300);
/// How long after it was fetched a JWKS may still be used while the issuer
/// cannot be reached.
pub const MAX_STALENESS: Duration = Duration::from_secs(6 * 3600);
/// How long one fetch, discovery and JWKS, may take.
pub const FETCH_TIMEOUT: Duration = Duration::from_secs(5);

const ALLOWED: &[Algorithm] = &[
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
    Algorithm::ES256,
    Algorithm::ES384,
    Algorithm::EdDSA,
];

/// An issuer whose users may use the broker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrustedIssuer {
    /// The `iss` value, exactly.
    pub issuer: String,
    /// The client ids its tokens may be for.
    pub audiences: Vec<String>,
}

impl TrustedIssuer {
    /// Parses `ISSUER=AUDIENCE[,AUDIENCE...]` as given on the command line.
    pub fn parse(spec: &str) -> Option<TrustedIssuer> {
        let (issuer, audiences) = spec.split_once('=')?;
        let audiences: Vec<String> = audiences
            .split(',')
            .filter(|a| !a.is_empty())
            .map(str::to_owned)
            .collect();
        (!issuer.is_empty() && !audiences.is_empty()).then(|| TrustedIssuer {
            issuer: issuer.to_owned(),
            audiences,
        })
    }
}

/// Why a bearer token was refused. Each maps to a stable code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AuthError {
    /// No bearer token was presented.
    #[error("a bearer token is required")]
    Missing,
    /// The token is not a JWT, or its claims are missing or malformed.
    #[error("the bearer token is malformed")]
    Malformed,
    /// The token's algorithm is not an accepted asymmetric one.
    #[error("the token's algorithm is not accepted")]
    Algorithm,
    /// The token's issuer is not trusted here.
    #[error("the token's issuer is not trusted")]
    UnknownIssuer,
    /// The token is for another audience.
    #[error("the token is for another audience")]
    Audience,
    /// The token has expired.
    #[error("the token has expired")]
    Expired,
    /// The token is not valid yet, or claims to be issued in the future.
    #[error("the token is not valid yet")]
    NotYetValid,
    /// The issuer publishes no key with the token's `kid`.
    #[error("the issuer has no such key")]
    UnknownKey,
    /// The signature does not verify.
    #[error("the token's signature is invalid")]
    Signature,
    /// The issuer's keys could not be fetched.
    #[error("the issuer's keys cannot be fetched")]
    IssuerUnavailable,
}

impl AuthError {
    /// The stable code.
    pub fn code(&self) -> Code {
        match self {
            AuthError::Missing => Code::AuthMissing,
            AuthError::Malformed => Code::AuthMalformed,
            AuthError::Algorithm => Code::AuthAlgorithm,
            AuthError::UnknownIssuer => Code::AuthUnknownIssuer,
            AuthError::Audience => Code::AuthAudience,
            AuthError::Expired => Code::AuthExpired,
            AuthError::NotYetValid => Code::AuthNotYetValid,
            AuthError::UnknownKey => Code::AuthUnknownKey,
            AuthError::Signature => Code::AuthSignature,
            AuthError::IssuerUnavailable => Code::AuthIssuerUnavailable,
        }
    }
}

#[derive(Deserialize)]
struct Peek {
    iss: String,
}

#[derive(Deserialize)]
struct IdClaims {
    iss: String,
    sub: String,
    exp: i64,
    #[serde(default)]
    nbf: Option<i64>,
    #[serde(default)]
    iat: Option<i64>,
    #[serde(default)]
    auth_time: Option<i64>,
    #[serde(default)]
    nonce: Option<String>,
}

/// What a verified ID token says of the sign-in behind it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignIn {
    /// `issuer#subject`.
    pub principal: Principal,
    /// When the person authenticated: `auth_time`, or else `iat`.
    pub authenticated_at: Option<UnixTime>,
    /// The token's `nonce`, as the app chose it.
    pub nonce: Option<String>,
    /// When the token expires.
    pub expires_at: UnixTime,
}

/// The monotonic clock the key cache measures ages and waits by.
type Monotonic = Arc<dyn Fn() -> Instant + Send + Sync>;

/// A JWKS as fetched.
struct Fetched {
    keys: Arc<JwkSet>,
    at: Instant,
}

/// What is known of one issuer's keys.
#[derive(Default)]
struct IssuerKeys {
    /// The last JWKS fetched successfully.
    good: Option<Fetched>,
    /// When the last fetch ended, well or not.
    tried: Option<Instant>,
    /// Failed fetches since the last good one.
    failures: u32,
    /// The fetch under way: its sender is dropped when it has landed.
    inflight: Option<watch::Receiver<()>>,
}

impl IssuerKeys {
    /// Whether a fetch may start at `now`: [`REFETCH_AFTER`] after the last
    /// one, or its backoff after failures.
    fn may_fetch(&self, now: Instant) -> bool {
        let wait = match self.failures {
            0 => REFETCH_AFTER,
            n => REFETCH_AFTER
                .saturating_mul(1 << (n - 1).min(16))
                .min(MAX_BACKOFF),
        };
        self.tried
            .is_none_or(|t| now.saturating_duration_since(t) >= wait)
    }
}

/// What the cache holds for a key.
enum Lookup {
    /// The key, from a JWKS fetched within [`JWKS_TTL`].
    Fresh(Jwk),
    /// The key from an older JWKS (within [`MAX_STALENESS`]), or no key at all.
    Stale(Option<Jwk>),
}

/// The key cache and fetch count, shared by a verifier's clones.
#[derive(Default)]
struct Shared {
    cache: Mutex<HashMap<String, IssuerKeys>>,
    fetches: AtomicU64,
}

impl Shared {
    fn cache(&self) -> MutexGuard<'_, HashMap<String, IssuerKeys>> {
        // Nothing panics while holding it; a poisoned map is still whole.
        self.cache.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A fetch under way. [`Landing::record`] stores its outcome; dropping it
/// unrecorded (its task dropped) records a failure. Dropping it wakes the
/// callers waiting for the fetch, after the outcome is in the cache.
struct Landing {
    shared: Arc<Shared>,
    issuer: String,
    clock: Monotonic,
    recorded: bool,
    _wake: watch::Sender<()>,
}

impl Landing {
    /// Records the fetched keys, or `None` for a failed fetch.
    fn record(&mut self, keys: Option<JwkSet>) {
        self.recorded = true;
        let now = (self.clock)();
        let mut cache = self.shared.cache();
        let entry = cache.entry(self.issuer.clone()).or_default();
        entry.inflight = None;
        entry.tried = Some(now);
        match keys {
            Some(keys) => {
                entry.good = Some(Fetched {
                    keys: Arc::new(keys),
                    at: now,
                });
                entry.failures = 0;
            }
            None => entry.failures = entry.failures.saturating_add(1),
        }
    }
}

impl Drop for Landing {
    fn drop(&mut self) {
        if !self.recorded {
            self.record(None);
        }
        // `_wake` drops after this, with the map unlocked.
    }
}

/// Verifies bearer tokens from the trusted issuers. Clones share the
/// cache of the issuers' keys.
#[derive(Clone)]
pub struct OidcVerifier {
    issuers: Arc<[TrustedIssuer]>,
    http: reqwest::Client,
    shared: Arc<Shared>,
    clock: Monotonic,
    leeway: i64,
}

impl std::fmt::Debug for OidcVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OidcVerifier")
            .field("issuers", &self.issuers)
            .finish_non_exhaustive()
    }
}

/// Whether `url` may be fetched: HTTPS, or HTTP to a loopback host.
fn fetchable(url: &str) -> bool {
    if url.starts_with("https://") {
        return true;
    }
    let Some(rest) = url.strip_prefix("http://") else {
        return false;
    };
    let host = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let host = host.rsplit_once(':').map_or(host, |(h, _)| h);
    matches!(host, "127.0.0.1" | "localhost" | "[::1]")
}

impl OidcVerifier {
    /// A verifier for these issuers.
    pub fn new(issuers: Vec<TrustedIssuer>) -> Result<OidcVerifier, reqwest::Error> {
        // reqwest is built without a default crypto provider; install ring's
        // once per process. A second install fails harmlessly.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .redirect(reqwest::redirect::Policy::none())
            // Fetches are minutes apart: a connection kept for the next one
            // would most likely be dead by then (the issuer restarted, say).
            .pool_max_idle_per_host(0)
            .build()?;
        Ok(OidcVerifier {
            issuers: issuers.into(),
            http,
            shared: Arc::default(),
            clock: Arc::new(Instant::now),
            leeway: LEEWAY,
        })
    }

    /// The same verifier measuring the key cache's ages and waits by
    /// `clock` instead of [`Instant::now`]: for tests, to move its time
    /// along. Tokens' times stay on the clock given to [`Self::verify`].
    pub fn with_monotonic_clock(
        mut self,
        clock: impl Fn() -> Instant + Send + Sync + 'static,
    ) -> OidcVerifier {
        self.clock = Arc::new(clock);
        self
    }

    /// How many key fetches (discovery and JWKS) this verifier and its
    /// clones have started, for all issuers together.
    pub fn key_fetches(&self) -> u64 {
        self.shared.fetches.load(Ordering::Relaxed)
    }

    /// The same verifier allowing `seconds` of clock skew (negative is 0).
    pub fn with_leeway(mut self, seconds: i64) -> OidcVerifier {
        self.leeway = seconds.max(0);
        self
    }

    /// The trusted issuers.
    pub fn issuers(&self) -> &[TrustedIssuer] {
        &self.issuers
    }

    /// Verifies `token` at `now` and returns what it says of the sign-in.
    pub async fn verify(&self, token: &str, now: UnixTime) -> Result<SignIn, AuthError> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| AuthError::Malformed)?;
        if !ALLOWED.contains(&header.alg) {
            return Err(AuthError::Algorithm);
        }
        let payload = token.split('.').nth(1).ok_or(AuthError::Malformed)?;
        let peek: Peek = mandate_core::base64url::decode(payload)
            .and_then(|bytes| serde_json::from_slice(&bytes).ok())
            .ok_or(AuthError::Malformed)?;
        let trusted = self
            .issuers
            .iter()
            .find(|i| i.issuer == peek.iss)
            .ok_or(AuthError::UnknownIssuer)?;
        let jwk = self
            .key(&trusted.issuer, header.kid.as_deref(), header.alg)
            .await?;
        let key = DecodingKey::from_jwk(&jwk).map_err(|_| AuthError::UnknownKey)?;

        let mut validation = Validation::new(header.alg);
        validation.set_issuer(&[&trusted.issuer]);
        validation.set_audience(&trusted.audiences);
        validation.set_required_spec_claims(&["iss", "aud", "sub", "exp"]);
        // Times are checked below, against the broker's clock.
        validation.validate_exp = false;
        validation.validate_nbf = false;
        let data = jsonwebtoken::decode::<IdClaims>(token, &key, &validation).map_err(|e| {
            use jsonwebtoken::errors::ErrorKind;
            match e.kind() {
                ErrorKind::InvalidSignature => AuthError::Signature,
                ErrorKind::InvalidAudience => AuthError::Audience,
                ErrorKind::InvalidIssuer => AuthError::UnknownIssuer,
                ErrorKind::InvalidAlgorithm | ErrorKind::InvalidAlgorithmName => {
                    AuthError::Algorithm
                }
                _ => AuthError::Malformed,
            }
        })?;
        let c = data.claims;
        if now >= c.exp.saturating_add(self.leeway) {
            return Err(AuthError::Expired);
        }
        if c.nbf
            .is_some_and(|nbf| nbf > now.saturating_add(self.leeway))
            || c.iat
                .is_some_and(|iat| iat > now.saturating_add(self.leeway))
        {
            return Err(AuthError::NotYetValid);
        }
        let principal = format!("{}#{}", c.iss, c.sub)
            .try_into()
            .map_err(|_| AuthError::Malformed)?;
        Ok(SignIn {
            principal,
            authenticated_at: c.auth_time.or(c.iat),
            nonce: c.nonce,
            expires_at: c.exp,
        })
    }

    /// The issuer's key for `kid` (or its only key for `alg` when the token
    /// names none), by the rules in the module's documentation.
    async fn key(&self, issuer: &str, kid: Option<&str>, alg: Algorithm) -> Result<Jwk, AuthError> {
        let pick = |set: &JwkSet| match kid {
            Some(kid) => set.find(kid).cloned(),
            None => {
                let mut fitting = set.keys.iter().filter(|k| {
                    k.common
                        .key_algorithm
                        .is_none_or(|a| a.to_string() == format!("{alg:?}"))
                });
                match (fitting.next(), fitting.next()) {
                    (Some(only), None) => Some(only.clone()),
                    _ => None,
                }
            }
        };
        let landed = {
            let mut cache = self.shared.cache();
            let entry = cache.entry(issuer.to_owned()).or_default();
            let now = (self.clock)();
            match Self::lookup(entry, now, pick) {
                Lookup::Fresh(jwk) => return Ok(jwk),
                Lookup::Stale(found) => match &entry.inflight {
                    Some(landed) => landed.clone(),
                    None if entry.may_fetch(now) => self.start_fetch(issuer, entry),
                    None => return Self::settle(entry, found),
                },
            }
        };
        let mut landed = landed;
        // Bounded: the fetch gives up after FETCH_TIMEOUT, and its sender
        // drops however it ends.
        let _ = landed.changed().await;
        let mut cache = self.shared.cache();
        let entry = cache.entry(issuer.to_owned()).or_default();
        match Self::lookup(entry, (self.clock)(), pick) {
            Lookup::Fresh(jwk) => Ok(jwk),
            Lookup::Stale(found) => Self::settle(entry, found),
        }
    }

    /// The key `pick` finds in what `entry` holds at `now`.
    fn lookup(entry: &IssuerKeys, now: Instant, pick: impl Fn(&JwkSet) -> Option<Jwk>) -> Lookup {
        let Some(good) = entry
            .good
            .as_ref()
            .filter(|g| now.saturating_duration_since(g.at) < MAX_STALENESS)
        else {
            return Lookup::Stale(None);
        };
        match pick(&good.keys) {
            Some(jwk) if now.saturating_duration_since(good.at) < JWKS_TTL => Lookup::Fresh(jwk),
            found => Lookup::Stale(found),
        }
    }

    /// The answer when no fetch is to be made: the key if the last good
    /// JWKS has it; else the issuer is unavailable if its last fetch failed
    /// (or none ever succeeded), or it has no such key.
    fn settle(entry: &IssuerKeys, found: Option<Jwk>) -> Result<Jwk, AuthError> {
        match found {
            Some(jwk) => Ok(jwk),
            None if entry.failures > 0 || entry.good.is_none() => Err(AuthError::IssuerUnavailable),
            None => Err(AuthError::UnknownKey),
        }
    }

    /// Starts fetching `issuer`'s keys in a task of its own, and marks it
    /// under way in `entry`. The receiver wakes when it has landed.
    fn start_fetch(&self, issuer: &str, entry: &mut IssuerKeys) -> watch::Receiver<()> {
        let (wake, landed) = watch::channel(());
        entry.inflight = Some(landed.clone());
        self.shared.fetches.fetch_add(1, Ordering::Relaxed);
        let mut landing = Landing {
            shared: Arc::clone(&self.shared),
            issuer: issuer.to_owned(),
            clock: Arc::clone(&self.clock),
            recorded: false,
            _wake: wake,
        };
        let http = self.http.clone();
        tokio::spawn(async move {
            let fetched = tokio::time::timeout(FETCH_TIMEOUT, fetch(&http, &landing.issuer)).await;
            let keys = fetched.unwrap_or_else(|_| {
                tracing::warn!(issuer = %landing.issuer, "fetching the issuer's keys timed out");
                Err(AuthError::IssuerUnavailable)
            });
            landing.record(keys.ok());
        });
        landed
    }
}

/// Discovery, then the JWKS.
async fn fetch(http: &reqwest::Client, issuer: &str) -> Result<JwkSet, AuthError> {
    #[derive(Deserialize)]
    struct Discovery {
        issuer: String,
        jwks_uri: String,
    }
    let discovery_url = format!(
        "{}/.well-known/openid-configuration",
        issuer.trim_end_matches('/')
    );
    if !fetchable(&discovery_url) {
        return Err(AuthError::IssuerUnavailable);
    }
    let discovery: Discovery = get_json(http, issuer, &discovery_url).await?;
    if discovery.issuer != issuer || !fetchable(&discovery.jwks_uri) {
        tracing::warn!(%issuer, "discovery names another issuer or an unsafe jwks_uri");
        return Err(AuthError::IssuerUnavailable);
    }
    get_json(http, issuer, &discovery.jwks_uri).await
}

/// GETs `url` and reads its JSON body; any failure is the issuer being unavailable.
async fn get_json<T: serde::de::DeserializeOwned>(
    http: &reqwest::Client,
    issuer: &str,
    url: &str,
) -> Result<T, AuthError> {
    let unavailable = |e: reqwest::Error| {
        tracing::warn!(%issuer, error = %e, "fetching the issuer's keys failed");
        AuthError::IssuerUnavailable
    };
    http.get(url)
        .send()
        .await
        .and_then(reqwest::Response::error_for_status)
        .map_err(unavailable)?
        .json()
        .await
        .map_err(unavailable)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issuer_specs_and_fetchable_urls() {
        assert_eq!(
            TrustedIssuer::parse("https://idp.example=app,cli"),
            Some(TrustedIssuer {
                issuer: "https://idp.example".into(),
                audiences: vec!["app".into(), "cli".into()]
            })
        );
        assert_eq!(TrustedIssuer::parse("https://idp.example"), None);
        assert_eq!(TrustedIssuer::parse("https://idp.example="), None);
        assert!(fetchable("https://idp.example/jwks"));
        assert!(fetchable("http://127.0.0.1:9000/jwks"));
        assert!(fetchable("http://localhost/jwks"));
        assert!(!fetchable("http://idp.example/jwks"));
        assert!(!fetchable("http://127.0.0.1.evil.example/jwks"));
        assert!(!fetchable("file:///etc/passwd"));
    }

    use axum::response::IntoResponse as _;
    use serde_json::{Value, json};
    use tokio::sync::Semaphore;

    /// A fake issuer on loopback: discovery, and the JWKS the test sets
    /// (`None`: a 503). Each JWKS answer waits for a permit of `gate`.
    struct Fake {
        url: String,
        jwks: Arc<Mutex<Option<Value>>>,
        gate: Arc<Semaphore>,
        /// JWKS requests received, answered or not.
        hits: Arc<AtomicU64>,
    }

    impl Fake {
        async fn start(kids: &[&str], gate: usize) -> Fake {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let url = format!("http://{}", listener.local_addr().unwrap());
            let fake = Fake {
                url: url.clone(),
                jwks: Arc::new(Mutex::new(Some(jwks(kids)))),
                gate: Arc::new(Semaphore::new(gate)),
                hits: Arc::default(),
            };
            let (jwks, gate, hits) = (
                Arc::clone(&fake.jwks),
                Arc::clone(&fake.gate),
                Arc::clone(&fake.hits),
            );
            let discovery = json!({ "issuer": url, "jwks_uri": format!("{url}/jwks") });
            let app = axum::Router::new()
                .route(
                    "/.well-known/openid-configuration",
                    axum::routing::get(move || async move { axum::Json(discovery) }),
                )
                .route(
                    "/jwks",
                    axum::routing::get(move || async move {
                        hits.fetch_add(1, Ordering::SeqCst);
                        let _permit = gate.acquire().await.unwrap();
                        let body = jwks.lock().unwrap().clone();
                        match body {
                            Some(body) => axum::Json(body).into_response(),
                            None => axum::http::StatusCode::SERVICE_UNAVAILABLE.into_response(),
                        }
                    }),
                );
            tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
            fake
        }

        /// Publishes `kids` from now on; `None` makes the JWKS fail.
        fn publish(&self, kids: Option<&[&str]>) {
            *self.jwks.lock().unwrap() = kids.map(jwks);
        }

        fn hits(&self) -> u64 {
            self.hits.load(Ordering::SeqCst)
        }
    }

    /// A JWKS of Ed25519 keys under `kids`.
    fn jwks(kids: &[&str]) -> Value {
        let x = mandate_core::base64url::encode(
            mandate_core::SigningKey::from_seed(&[42; 32])
                .public()
                .as_bytes(),
        );
        let keys: Vec<Value> = kids
            .iter()
            .map(
                |kid| json!({ "kty": "OKP", "crv": "Ed25519", "x": x, "kid": kid, "alg": "EdDSA" }),
            )
            .collect();
        json!({ "keys": keys })
    }

    /// A verifier for `issuers` whose key cache's clock stands still until
    /// the test moves it with the returned handle, in seconds.
    fn verifier(issuers: &[&str]) -> (OidcVerifier, Arc<AtomicU64>) {
        let trusted = issuers
            .iter()
            .map(|i| TrustedIssuer {
                issuer: (*i).to_owned(),
                audiences: vec!["app".into()],
            })
            .collect();
        let start = Instant::now();
        let skip = Arc::new(AtomicU64::new(0));
        let clock = Arc::clone(&skip);
        let verifier = OidcVerifier::new(trusted)
            .unwrap()
            .with_monotonic_clock(move || {
                start + Duration::from_secs(clock.load(Ordering::SeqCst))
            });
        (verifier, skip)
    }

    fn advance(clock: &AtomicU64, by: Duration) {
        clock.fetch_add(by.as_secs(), Ordering::SeqCst);
    }

    /// The kid of the key `verifier` finds for `kid` at `issuer`, or the error's code.
    async fn find(
        verifier: &OidcVerifier,
        issuer: &str,
        kid: &str,
    ) -> Result<String, &'static str> {
        tokio::time::timeout(
            Duration::from_secs(20),
            verifier.key(issuer, Some(kid), Algorithm::EdDSA),
        )
        .await
        .expect("the key lookup ends")
        .map(|jwk| jwk.common.key_id.unwrap_or_default())
        .map_err(|e| e.code().as_str())
    }

    #[tokio::test]
    async fn callers_needing_keys_share_one_fetch_and_hold_no_lock_during_it() {
        let slow = Fake::start(&["k1"], 0).await;
        let other = Fake::start(&["k1"], 100).await;
        let (v, _) = verifier(&[&slow.url, &other.url]);
        let callers: Vec<_> = (0..8)
            .map(|_| {
                let (v, url) = (v.clone(), slow.url.clone());
                tokio::spawn(async move { find(&v, &url, "k1").await })
            })
            .collect();
        // The one fetch has reached the JWKS and is held there.
        tokio::time::timeout(Duration::from_secs(20), async {
            while slow.hits() == 0 {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
        .await
        .expect("the fetch reaches the issuer");
        // Meanwhile another issuer's keys are fetched and found: nothing is
        // locked while a fetch is under way.
        assert_eq!(find(&v, &other.url, "k1").await, Ok("k1".into()));
        slow.gate.add_permits(100);
        for caller in callers {
            assert_eq!(caller.await.unwrap(), Ok("k1".into()));
        }
        assert_eq!(slow.hits(), 1, "one fetch for eight callers");
        assert_eq!(v.key_fetches(), 2, "one per issuer");
    }

    #[tokio::test]
    async fn a_rotated_key_is_fetched_but_never_sooner_than_the_floor() {
        let idp = Fake::start(&["k1"], 100).await;
        let (v, clock) = verifier(&[&idp.url]);
        assert_eq!(find(&v, &idp.url, "k1").await, Ok("k1".into()));
        idp.publish(Some(&["k2", "k1"]));
        // Within REFETCH_AFTER of the last fetch, a new kid is unknown.
        assert_eq!(find(&v, &idp.url, "k2").await, Err("auth.unknown_key"));
        assert_eq!(v.key_fetches(), 1);
        advance(&clock, REFETCH_AFTER);
        assert_eq!(find(&v, &idp.url, "k2").await, Ok("k2".into()));
        assert_eq!(find(&v, &idp.url, "k1").await, Ok("k1".into()));
        assert_eq!(v.key_fetches(), 2);
        // A kid still unknown after the refetch is unknown, and asking
        // again does not fetch until the floor has passed.
        advance(&clock, REFETCH_AFTER);
        assert_eq!(find(&v, &idp.url, "k9").await, Err("auth.unknown_key"));
        assert_eq!(find(&v, &idp.url, "k9").await, Err("auth.unknown_key"));
        assert_eq!(v.key_fetches(), 3);
        // Once the TTL has passed, a withdrawn key is refetched and gone.
        idp.publish(Some(&["k2"]));
        advance(&clock, JWKS_TTL);
        assert_eq!(find(&v, &idp.url, "k1").await, Err("auth.unknown_key"));
        assert_eq!(find(&v, &idp.url, "k2").await, Ok("k2".into()));
        assert_eq!((v.key_fetches(), idp.hits()), (4, 4));
    }

    #[tokio::test]
    async fn a_failing_issuer_is_asked_with_backoff_while_its_last_keys_serve_a_while() {
        let idp = Fake::start(&["k1"], 100).await;
        let (v, clock) = verifier(&[&idp.url]);
        assert_eq!(find(&v, &idp.url, "k1").await, Ok("k1".into()));
        idp.publish(None);
        // The TTL has passed: the refetch fails, the last good keys serve.
        advance(&clock, JWKS_TTL);
        assert_eq!(find(&v, &idp.url, "k1").await, Ok("k1".into()));
        assert_eq!(v.key_fetches(), 2);
        // Until the backoff passes nobody fetches: known keys verify, and
        // any other kid is refused at once as the issuer being unavailable.
        for _ in 0..5 {
            assert_eq!(find(&v, &idp.url, "k1").await, Ok("k1".into()));
            assert_eq!(
                find(&v, &idp.url, "k2").await,
                Err("auth.issuer_unavailable")
            );
        }
        assert_eq!(v.key_fetches(), 2);
        // The backoff doubles from REFETCH_AFTER up to MAX_BACKOFF.
        let mut elapsed = JWKS_TTL;
        let mut wait = REFETCH_AFTER;
        let mut fetches = 2;
        while elapsed + wait < MAX_STALENESS {
            advance(&clock, wait - Duration::from_secs(1));
            assert_eq!(
                find(&v, &idp.url, "k2").await,
                Err("auth.issuer_unavailable")
            );
            assert_eq!(
                v.key_fetches(),
                fetches,
                "no fetch before the backoff passed"
            );
            advance(&clock, Duration::from_secs(1));
            assert_eq!(find(&v, &idp.url, "k1").await, Ok("k1".into()));
            fetches += 1;
            assert_eq!(v.key_fetches(), fetches, "one fetch once it passed");
            elapsed += wait;
            wait = (wait * 2).min(MAX_BACKOFF);
        }
        assert_eq!(wait, MAX_BACKOFF);
        // Past MAX_STALENESS, the old keys are no longer used.
        advance(&clock, MAX_STALENESS - elapsed);
        assert_eq!(
            find(&v, &idp.url, "k1").await,
            Err("auth.issuer_unavailable")
        );
        // The issuer is back: the next fetch (after the backoff) ends it all.
        idp.publish(Some(&["k1"]));
        advance(&clock, MAX_BACKOFF);
        assert_eq!(find(&v, &idp.url, "k1").await, Ok("k1".into()));
        assert_eq!(find(&v, &idp.url, "k2").await, Err("auth.unknown_key"));
    }

    #[tokio::test]
    async fn an_issuer_never_reached_is_unavailable_and_not_asked_again_at_once() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let issuer = format!("http://127.0.0.1:{port}");
        let (v, clock) = verifier(&[&issuer]);
        for _ in 0..3 {
            assert_eq!(
                find(&v, &issuer, "k1").await,
                Err("auth.issuer_unavailable")
            );
        }
        assert_eq!(v.key_fetches(), 1);
        advance(&clock, REFETCH_AFTER);
        assert_eq!(
            find(&v, &issuer, "k1").await,
            Err("auth.issuer_unavailable")
        );
        assert_eq!(v.key_fetches(), 2);
    }
}
