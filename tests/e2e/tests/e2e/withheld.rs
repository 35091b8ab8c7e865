//! A revocation feed nobody can silently hold back (issue 14, item 4).
//!
//! A proxy sits between a real resource server and the real broker. It
//! forwards everything, but once told to, it withholds revocations: it
//! drops `revoked` events from the SSE stream and strips the entries from
//! every page of `GET /v1/revocations`, while keep-alive comments (and in
//! the first mode, the broker's checkpoints) pass. The user revokes at the
//! broker directly. Behind the proxy, the resource server must refuse the
//! revoked call with 503 `revocation.stale` once its staleness bound has
//! passed; a second resource server that talks to the broker directly
//! refuses it with 403 `chain.revoked`. When the proxy lets revocations
//! through again, the first one refuses with `chain.revoked` too.
//!
//! `MANDATE_E2E_RESOURCE_SERVER`, if set, names the resource server binary
//! to put behind the proxy instead of this workspace's
//! `mandate-resource-example`: pointing it at one built from the code
//! before checkpoints shows the test failing there (keep-alives kept that
//! verifier "fresh", and it accepted the revoked call for as long as the
//! proxy wished).

use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::Response;
use futures_util::StreamExt as _;
use mandate_core::TokenId;
use serde_json::Value;

use crate::journey::{agent, approved, call};
use crate::user::User;
use mandate_e2e::procs::{self, Proc};

/// The resource servers' staleness bound, in seconds. The broker signs a
/// checkpoint every second here (`procs::broker` passes
/// `--sse-keepalive 1`).
const BOUND: u64 = 4;

/// What the proxy lets through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
enum Mode {
    /// Everything.
    Pass = 0,
    /// All but revocations: no `revoked` event on the stream, no entry in
    /// a feed page. Keep-alives and checkpoints pass.
    DropRevocations = 1,
    /// Keep-alive comments only on the stream, and feed pages without
    /// entries or checkpoint.
    KeepAlivesOnly = 2,
}

/// An HTTP proxy on loopback in front of `upstream`.
struct Proxy {
    url: String,
    mode: Arc<AtomicU8>,
    task: tokio::task::JoinHandle<()>,
}

#[derive(Clone)]
struct Forward {
    upstream: String,
    http: reqwest::Client,
    mode: Arc<AtomicU8>,
}

impl Forward {
    fn mode(&self) -> Mode {
        match self.mode.load(Ordering::SeqCst) {
            0 => Mode::Pass,
            1 => Mode::DropRevocations,
            _ => Mode::KeepAlivesOnly,
        }
    }
}

impl Proxy {
    async fn start(upstream: &str) -> Proxy {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let mode = Arc::new(AtomicU8::new(Mode::Pass as u8));
        let forward = Forward {
            upstream: upstream.to_owned(),
            // No overall timeout: the event stream stays open.
            http: mandate_agent::client::http_client().unwrap(),
            mode: Arc::clone(&mode),
        };
        let app = Router::new().fallback(relay).with_state(forward);
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        Proxy { url, mode, task }
    }

    fn set(&self, mode: Mode) {
        self.mode.store(mode as u8, Ordering::SeqCst);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Forwards one request to the broker (with the broker's `Host`), and its
/// answer back, filtered as the mode says.
async fn relay(State(f): State<Forward>, req: Request) -> Response {
    let path = req.uri().path().to_owned();
    let target = format!(
        "{}{}",
        f.upstream,
        req.uri().path_and_query().map_or("/", |p| p.as_str())
    );
    let method = req.method().clone();
    let mut headers = req.headers().clone();
    headers.remove(header::HOST);
    let body = axum::body::to_bytes(req.into_body(), 1 << 20)
        .await
        .unwrap_or_default();
    let upstream = match f
        .http
        .request(method.clone(), target)
        .headers(headers)
        .body(body)
        .send()
        .await
    {
        Ok(res) => res,
        Err(_) => {
            return Response::builder()
                .status(StatusCode::BAD_GATEWAY)
                .body(Body::empty())
                .unwrap();
        }
    };
    let status = upstream.status();
    let mut headers: HeaderMap = upstream.headers().clone();
    for h in [
        header::CONTENT_LENGTH,
        header::TRANSFER_ENCODING,
        header::CONNECTION,
    ] {
        headers.remove(h);
    }
    let body = if path == "/v1/revocations/events" {
        Body::from_stream(filter_events(upstream, f.clone()))
    } else if path == "/v1/revocations" && method == "GET" && f.mode() != Mode::Pass {
        let mut page: Value = upstream.json().await.unwrap_or(Value::Null);
        if let Some(entries) = page.get_mut("revoked") {
            *entries = Value::Array(Vec::new());
        }
        if f.mode() == Mode::KeepAlivesOnly
            && let Some(page) = page.as_object_mut()
        {
            page.remove("checkpoint");
        }
        Body::from(page.to_string())
    } else {
        Body::from_stream(upstream.bytes_stream())
    };
    let mut res = Response::builder().status(status).body(body).unwrap();
    *res.headers_mut() = headers;
    res
}

/// The event stream, event by event, with what the current mode withholds
/// left out.
fn filter_events(
    upstream: reqwest::Response,
    f: Forward,
) -> impl futures_util::Stream<Item = Result<Bytes, reqwest::Error>> {
    let mut pending = String::new();
    upstream.bytes_stream().map(move |chunk| {
        let chunk = chunk?;
        pending.push_str(&String::from_utf8_lossy(&chunk));
        let mut out = String::new();
        while let Some(end) = pending.find("\n\n") {
            let block: String = pending.drain(..end + 2).collect();
            let named = |name: &str| block.lines().any(|l| l == format!("event: {name}"));
            let comment_only = block
                .lines()
                .filter(|l| !l.is_empty())
                .all(|l| l.starts_with(':'));
            let keep = match f.mode() {
                Mode::Pass => true,
                Mode::DropRevocations => !named("revoked"),
                Mode::KeepAlivesOnly => comment_only,
            };
            if keep {
                out.push_str(&block);
            }
        }
        Ok(Bytes::from(out))
    })
}

/// The example resource server (or `MANDATE_E2E_RESOURCE_SERVER`),
/// trusting the broker at `broker`, with the staleness bound [`BOUND`].
async fn resource_server(broker: &str, binary: Option<std::path::PathBuf>) -> Proc {
    let binary = binary.unwrap_or_else(|| procs::binary("mandate-resource-example"));
    procs::resource_server_from(&binary, broker, BOUND).await
}

/// Calls until the answer is no longer 200, for at most `within`; the
/// status and code of the first refusal.
async fn first_refusal(
    agent: &mandate_agent::Agent,
    mandate: &mandate_agent::Mandate,
    url: &str,
    within: Duration,
    what: &str,
) -> (u16, String) {
    let start = Instant::now();
    loop {
        let (status, body) = call(agent, mandate, url).await;
        if status != 200 {
            return (status, body["code"].as_str().unwrap_or_default().to_owned());
        }
        assert!(
            start.elapsed() < within,
            "{what}: the revoked call was still accepted {within:?} after the revocation"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn withheld(mode: Mode) {
    let dir = tempfile::tempdir().unwrap();
    let procs::Stack { idp, broker } = procs::stack(dir.path()).await;
    let proxy = Proxy::start(&broker.url).await;
    let under_test = std::env::var_os("MANDATE_E2E_RESOURCE_SERVER").map(Into::into);
    let behind = resource_server(&proxy.url, under_test).await;
    let direct = resource_server(&broker.url, None).await;
    let alice = User::enrolled(&idp.url, "alice", &broker.url).await;
    let planner = agent(&broker.url, "planner", dir.path());
    let mandate = approved(&alice, &planner).await;
    let behind_url = format!("{}/files/reports/q3/a.txt", behind.url);
    let direct_url = format!("{}/files/reports/q3/a.txt", direct.url);

    // Before anything is held back, the call succeeds on both.
    for url in [&behind_url, &direct_url] {
        let start = Instant::now();
        loop {
            let (status, body) = call(&planner, &mandate, url).await;
            if status == 200 {
                break;
            }
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "{url} never accepted the call: {status} {body}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    // The proxy starts withholding; the user revokes at the broker.
    proxy.set(mode);
    let root = TokenId::of(&mandate.chain[0]);
    let (status, body) = alice.revoke(&[root]).await;
    assert_eq!(status, 201, "{body}");

    // The control: talking to the broker directly, the call is refused as
    // revoked.
    let direct_refusal = first_refusal(
        &planner,
        &mandate,
        &direct_url,
        Duration::from_secs(10),
        "directly",
    )
    .await;
    assert_eq!(direct_refusal, (403, "chain.revoked".to_owned()));

    // Behind the proxy, the revocation never arrives, and once the bound
    // has passed, the call is refused as stale.
    let behind_refusal = first_refusal(
        &planner,
        &mandate,
        &behind_url,
        Duration::from_secs(BOUND + 20),
        &format!("behind a proxy in {mode:?}"),
    )
    .await;
    assert_eq!(behind_refusal, (503, "revocation.stale".to_owned()));
    // It stays refused while the proxy keeps holding back: keep-alives (and
    // checkpoints it cannot catch up to) refresh nothing.
    for _ in 0..3 {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let (status, body) = call(&planner, &mandate, &behind_url).await;
        assert_eq!(
            (status, body["code"].as_str()),
            (503, Some("revocation.stale")),
            "{mode:?}"
        );
    }

    // Once the proxy lets revocations through, the server catches up.
    proxy.set(Mode::Pass);
    let start = Instant::now();
    loop {
        let (status, body) = call(&planner, &mandate, &behind_url).await;
        assert_ne!(status, 200, "a revoked call was accepted: {body}");
        if (status, body["code"].as_str()) == (403, Some("chain.revoked")) {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "the server never caught up: {status} {body}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    for p in [behind, direct, broker, idp] {
        p.kill().await;
    }
}

/// A proxy that passes keep-alives and checkpoints but drops revocations.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_proxy_that_drops_revocations_makes_the_verifier_stale_not_fresh() {
    withheld(Mode::DropRevocations).await;
}

/// A proxy that passes nothing but keep-alive comments.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_proxy_that_passes_only_keep_alives_makes_the_verifier_stale() {
    withheld(Mode::KeepAlivesOnly).await;
}
