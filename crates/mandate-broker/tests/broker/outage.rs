//! The broker's cache of an issuer's keys against the real test provider
//! (`tests/idp`, oidc-provider on Node, its keys in a file): the provider
//! rotates its key, goes down (killed by its PID) and comes back on the same
//! port with the same keys. The broker is in-process; the key cache's clock
//! stands still but for the test's moves, so that no step waits for real
//! time to pass and none depends on how long the others took.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::http::StatusCode;
use mandate_broker::oidc::{JWKS_TTL, OidcVerifier, REFETCH_AFTER, TrustedIssuer};
use mandate_broker::{AppState, Limits, router};
use mandate_core::SigningKey;
use mandate_e2e::procs::{self, Proc};
use mandate_store::Store;

use crate::users::with_bearer;
use crate::{URL, call, get};

/// The longest any one step may take before the test fails instead of hanging.
const STEP: Duration = Duration::from_secs(30);

/// The provider on `port` (0: any), its keys in `keys`.
async fn provider(keys: &Path, port: &str, extra: &[&str]) -> Proc {
    let keys = keys.to_str().unwrap();
    let args = [&["--port", port, "--keys-file", keys], extra].concat();
    // `idp_with` passes `--port 0` first; the later `--port` wins.
    procs::idp_with(&args).await
}

/// The kids in the provider's keys file, the signing one first.
fn kids(keys: &Path) -> Vec<String> {
    let file: serde_json::Value = serde_json::from_slice(&std::fs::read(keys).unwrap()).unwrap();
    file["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap().to_owned())
        .collect()
}

fn kid_of(token: &str) -> String {
    let header = token.split('.').next().unwrap();
    let header: serde_json::Value =
        serde_json::from_slice(&mandate_core::base64url::decode(header).unwrap()).unwrap();
    header["kid"].as_str().unwrap().to_owned()
}

/// `token` with its header's kid replaced by one no provider publishes.
fn with_unknown_kid(token: &str) -> String {
    let (_, rest) = token.split_once('.').unwrap();
    let header = mandate_core::base64url::encode(r#"{"alg":"RS256","kid":"never-published"}"#);
    format!("{header}.{rest}")
}

/// Alice signing in at the provider, through its real login and consent.
async fn sign_in(issuer: &str) -> String {
    procs::sign_in(issuer, "alice", "mandate-desktop").await
}

/// An in-process broker trusting `issuer`, and what the test watches it by.
struct Broker {
    app: Router,
    /// A clone of the broker's verifier: it shares the key cache.
    verifier: OidcVerifier,
    /// Seconds the key cache's clock has been moved on.
    skipped: Arc<AtomicU64>,
    _dir: tempfile::TempDir,
}

impl Broker {
    async fn start(issuer: &str) -> Broker {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::connect(&format!("sqlite://{}/broker.db", dir.path().display()))
            .await
            .unwrap();
        let start = Instant::now();
        let skipped = Arc::new(AtomicU64::new(0));
        let skip = Arc::clone(&skipped);
        let verifier = OidcVerifier::new(vec![TrustedIssuer {
            issuer: issuer.to_owned(),
            audiences: vec!["mandate-desktop".into()],
        }])
        .unwrap()
        .with_monotonic_clock(move || {
            // Stands still but for the test's moves: no step depends on
            // how long the steps before it took.
            start + Duration::from_secs(skip.load(Ordering::SeqCst))
        });
        // The provider's tokens carry real times.
        let wall = || {
            let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
            i64::try_from(now.as_secs()).unwrap()
        };
        let state = AppState::new(
            store,
            SigningKey::from_seed(&[90; 32]),
            URL,
            verifier.clone(),
            Arc::new(wall),
            Limits::default(),
        );
        Broker {
            app: router(state),
            verifier,
            skipped,
            _dir: dir,
        }
    }

    /// Moves the key cache's clock on by `by`.
    fn advance(&self, by: Duration) {
        self.skipped.fetch_add(by.as_secs(), Ordering::SeqCst);
    }

    fn fetches(&self) -> u64 {
        self.verifier.key_fetches()
    }

    /// `GET /v1/inbox` with `token`: the status, and the error code if any.
    async fn inbox(&self, token: &str) -> (StatusCode, Option<String>) {
        let (status, body) = tokio::time::timeout(
            STEP,
            call(&self.app, with_bearer(get("/v1/inbox", None), token)),
        )
        .await
        .expect("the broker answers, and does not hang on the provider");
        (status, body["code"].as_str().map(str::to_owned))
    }

    async fn accepts(&self, token: &str, what: &str) {
        let (status, code) = self.inbox(token).await;
        assert_eq!(status, StatusCode::OK, "{what}: {code:?}");
    }

    async fn refuses(&self, token: &str, status: StatusCode, code: &str, what: &str) {
        assert_eq!(
            self.inbox(token).await,
            (status, Some(code.to_owned())),
            "{what}"
        );
    }
}

#[tokio::test]
async fn the_broker_rides_out_a_key_rotation_and_a_provider_outage() {
    let dir = tempfile::tempdir().unwrap();
    let keys = dir.path().join("idp-keys.json");
    // Each `Proc` is killed by its PID when dropped, on every path.
    let idp = provider(&keys, "0", &[]).await;
    let issuer = idp.url.clone();
    let port = issuer.rsplit_once(':').unwrap().1.to_owned();
    let broker = Broker::start(&issuer).await;

    // A sign-in, used at the broker: one fetch of the provider's keys.
    let first = sign_in(&issuer).await;
    let [k1] = kids(&keys).try_into().unwrap();
    assert_eq!(kid_of(&first), k1);
    broker.accepts(&first, "a sign-in").await;
    assert_eq!(broker.fetches(), 1);

    // The provider rotates its key, keeping the old one published.
    idp.kill().await;
    let idp = provider(&keys, &port, &["--rotate-key"]).await;
    assert_eq!(idp.url, issuer, "the same provider, on the same port");
    let [k2, old] = kids(&keys).try_into().unwrap();
    assert_eq!(old, k1);
    let second = sign_in(&issuer).await;
    assert_eq!(kid_of(&second), k2, "the new key signs");
    // Within REFETCH_AFTER of the last fetch, the broker does not ask again.
    broker
        .refuses(
            &second,
            StatusCode::UNAUTHORIZED,
            "auth.unknown_key",
            "a new kid within the refetch floor",
        )
        .await;
    assert_eq!(broker.fetches(), 1);
    // After it, eight callers with the new kid at once share one fetch.
    broker.advance(REFETCH_AFTER);
    let callers: Vec<_> = (0..8)
        .map(|_| {
            let (app, token) = (broker.app.clone(), second.clone());
            tokio::spawn(async move {
                tokio::time::timeout(
                    STEP,
                    call(&app, with_bearer(get("/v1/inbox", None), &token)),
                )
                .await
                .expect("the broker answers")
                .0
            })
        })
        .collect();
    for caller in callers {
        assert_eq!(caller.await.unwrap(), StatusCode::OK, "the rotated key");
    }
    assert_eq!(broker.fetches(), 2, "one fetch for eight callers");
    broker.accepts(&first, "the old key, still published").await;

    // The provider goes down, and the cached keys are due for a refresh.
    idp.kill().await;
    broker.advance(JWKS_TTL);
    broker
        .accepts(&second, "an issued token, while the provider is down")
        .await;
    assert_eq!(broker.fetches(), 3, "the refresh was tried, and failed");
    let unknown = with_unknown_kid(&second);
    for _ in 0..10 {
        broker
            .accepts(&second, "the new key, from the last good JWKS")
            .await;
        broker
            .accepts(&first, "the old key, from the last good JWKS")
            .await;
        broker
            .refuses(
                &unknown,
                StatusCode::SERVICE_UNAVAILABLE,
                "auth.issuer_unavailable",
                "a kid the last good JWKS lacks, while the provider is down",
            )
            .await;
    }
    assert_eq!(
        broker.fetches(),
        3,
        "no fetch on every call while it is down"
    );
    // Tried again once the backoff has passed, then not for twice as long.
    broker.advance(REFETCH_AFTER);
    broker
        .accepts(&second, "after another failed refresh")
        .await;
    assert_eq!(broker.fetches(), 4);
    broker.advance(REFETCH_AFTER);
    broker.accepts(&second, "within the doubled backoff").await;
    assert_eq!(broker.fetches(), 4);

    // The provider is back on the same port with the same keys: sign-ins
    // carry on at once, from the cached keys.
    let idp = provider(&keys, &port, &[]).await;
    assert_eq!(idp.url, issuer);
    let third = sign_in(&issuer).await;
    assert_eq!(kid_of(&third), k2, "the same key after the restart");
    broker.accepts(&third, "a sign-in after the outage").await;
    assert_eq!(broker.fetches(), 4);
    // Once the backoff has passed, the refresh succeeds and the failure is
    // forgotten: a kid the provider lacks is unknown again, not unavailable.
    broker.advance(REFETCH_AFTER);
    broker.accepts(&third, "after a good refresh").await;
    assert_eq!(broker.fetches(), 5);
    broker
        .refuses(
            &unknown,
            StatusCode::UNAUTHORIZED,
            "auth.unknown_key",
            "a kid the provider does not publish, once it is back",
        )
        .await;
    assert_eq!(broker.fetches(), 5);
    idp.kill().await;
}
