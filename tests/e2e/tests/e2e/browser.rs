//! No web page can drive the broker on 127.0.0.1 (issue 14, item 3).
//!
//! A real browser, Debian's `chromium` in headless mode, loads a hostile
//! page from `http://evil.test:PORT/`. Each of its attempts carries a
//! validly signed request for an enrolled user, which the broker would
//! store if it took the body:
//! - form posts to `/v1/requests`, `text/plain` with a body shaped as
//!   exactly the JSON the broker reads, and urlencoded; and one to
//!   `/v1/keys`;
//! - a `fetch` with `Content-Type: text/plain`, two `no-cors` fetches and a
//!   JSON fetch (which the browser preflights);
//! - DNS rebinding: the page's own name, once it points at the broker,
//!   makes the page's same-origin requests reach the broker with
//!   `Host: evil.test:PORT`. The attacker's server plays that part: it
//!   serves the page and hands every later connection to the broker.
//!
//! The broker stores nothing from any of them, and the rebound page reads
//! nothing. Then the same requests, sent as the SDK sends them, are all
//! taken: the attempts were real.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::os::unix::fs::MetadataExt as _;
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use mandate_core::{SigningKey, TokenId};
use rand_core::OsRng;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};
use tokio::process::Command;
use tokio::task::{JoinHandle, JoinSet};

use crate::user::User;
use mandate_e2e::flood::signed_request;
use mandate_e2e::procs;

/// How long chromium may take to load the page and run every attempt.
const BROWSER_TIMEOUT: Duration = Duration::from_secs(120);
/// How long one connection through the attacker's server may stay open.
const CONNECTION_TIMEOUT: Duration = Duration::from_secs(30);

/// The attempts that each carry a request of their own.
const FILINGS: [&str; 8] = [
    "form-text-plain",
    "form-urlencoded",
    "fetch-text-plain",
    "fetch-no-cors",
    "fetch-no-cors-claiming-json",
    "fetch-json-preflighted",
    "rebound-post",
    "rebound-post-text-plain",
];

/// The hostile page. It runs every attempt in turn, writes what it could
/// see of each into `#log`, and `done` last.
const PAGE: &str = r#"<!doctype html>
<html><head><title>Win a prize</title></head><body>
<script id="config" type="application/json">__CONFIG__</script>
<pre id="log"></pre>
<script>
const config = JSON.parse(document.getElementById('config').textContent);
const out = document.getElementById('log');
const log = (name, what) => { out.textContent += name + ': ' + what + '\n'; };
const body = (name) => JSON.stringify({ request: config.tokens[name] });

// A form posted into a frame of its own; resolves once an answer loaded.
function form(name, action, enctype, field, value) {
  return new Promise((resolve) => {
    const frame = document.createElement('iframe');
    frame.name = name;
    document.body.appendChild(frame);
    const f = document.createElement('form');
    f.method = 'POST';
    f.action = action;
    f.enctype = enctype;
    f.target = name;
    const input = document.createElement('input');
    input.type = 'hidden';
    input.name = field;
    input.value = value;
    f.appendChild(input);
    document.body.appendChild(f);
    const timer = setTimeout(() => { log(name, 'no answer'); resolve(); }, 10000);
    frame.addEventListener('load', () => { clearTimeout(timer); log(name, 'answered'); resolve(); }, { once: true });
    f.submit();
  });
}

async function attempt(name, url, init) {
  try {
    const res = await fetch(url, init);
    let code = '';
    try { code = (await res.json()).code || 'none'; } catch (e) { code = 'unreadable'; }
    log(name, res.type + ' ' + res.status + ' ' + code);
  } catch (e) {
    log(name, 'failed ' + e.name);
  }
}

(async () => {
  const requests = config.broker + '/v1/requests';
  // text/plain form encoding is name=value: the '=' lands inside a key's
  // "x", which the broker ignores on a root request.
  const json = body('form-text-plain');
  const cut = json.length - 1;
  await form('form-text-plain', requests, 'text/plain',
    json.slice(0, cut) + ',"keys":[{"kty":"OKP","crv":"Ed25519","x":"a', 'b"}]}');
  await form('form-urlencoded', requests, 'application/x-www-form-urlencoded',
    'request', config.tokens['form-urlencoded']);
  await form('form-keys', config.broker + '/v1/keys', 'text/plain',
    '{"jwk":' + JSON.stringify(config.jwk) + ',"proof":"a', 'b"}');
  await attempt('fetch-text-plain', requests,
    { method: 'POST', headers: { 'Content-Type': 'text/plain' }, body: body('fetch-text-plain') });
  await attempt('fetch-no-cors', requests,
    { method: 'POST', mode: 'no-cors', body: body('fetch-no-cors') });
  await attempt('fetch-no-cors-claiming-json', requests,
    { method: 'POST', mode: 'no-cors', headers: { 'Content-Type': 'application/json' },
      body: body('fetch-no-cors-claiming-json') });
  await attempt('fetch-json-preflighted', requests,
    { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: body('fetch-json-preflighted') });
  // Same origin, once evil.test points at the broker.
  await attempt('rebound-post', '/v1/requests',
    { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: body('rebound-post') });
  await attempt('rebound-post-text-plain', '/v1/requests',
    { method: 'POST', body: body('rebound-post-text-plain') });
  await attempt('rebound-read', '/.well-known/mandate', {});
  log('done', 'yes');
})();
</script>
</body></html>
"#;

/// The attacker's server for `evil.test`, stopped when dropped.
struct Attacker {
    port: u16,
    task: JoinHandle<()>,
}

impl Drop for Attacker {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Attacker {
    /// Serves `page` at `/`. Every other connection goes to `broker`, as
    /// the page's name would once rebound to the broker's address.
    async fn start(page: String, broker: SocketAddr) -> Attacker {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let page = Arc::new(page);
        let task = tokio::spawn(async move {
            // Dropped with the task, which ends every connection.
            let mut connections = JoinSet::new();
            while let Ok((conn, _)) = listener.accept().await {
                let page = Arc::clone(&page);
                connections.spawn(tokio::time::timeout(
                    CONNECTION_TIMEOUT,
                    answer(conn, page, broker),
                ));
                while connections.try_join_next().is_some() {}
            }
        });
        Attacker { port, task }
    }
}

/// One connection to the attacker's server: the page, or the broker.
async fn answer(mut conn: TcpStream, page: Arc<String>, broker: SocketAddr) -> std::io::Result<()> {
    let mut head = Vec::new();
    let mut buf = [0u8; 4096];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = conn.read(&mut buf).await?;
        if n == 0 || head.len() > 65_536 {
            return Ok(());
        }
        head.extend_from_slice(&buf[..n]);
    }
    if head.starts_with(b"GET / ") {
        let response = format!(
            "HTTP/1.1 200 OK\r\nContent-Type: text/html; charset=utf-8\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n{page}",
            page.len()
        );
        conn.write_all(response.as_bytes()).await?;
        return conn.shutdown().await;
    }
    let mut upstream = TcpStream::connect(broker).await?;
    upstream.write_all(&head).await?;
    tokio::io::copy_bidirectional(&mut conn, &mut upstream).await?;
    Ok(())
}

/// A process group, killed when dropped: chromium and its helpers.
struct Group(u32);

impl Drop for Group {
    fn drop(&mut self) {
        let _ = std::process::Command::new("kill")
            .args(["-KILL", "--", &format!("-{}", self.0)])
            .stderr(Stdio::null())
            .status();
    }
}

/// Loads `url` in headless chromium, with `evil.test` resolving to
/// 127.0.0.1, and returns the page's `#log` once its attempts ran.
async fn browse(url: &str, dir: &std::path::Path) -> BTreeMap<String, String> {
    let profile = dir.join("chromium-profile");
    let stderr = dir.join("chromium.stderr");
    let mut cmd = Command::new("chromium");
    cmd.args([
        "--headless=new",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-proxy-server",
        "--host-resolver-rules=MAP evil.test 127.0.0.1",
        "--virtual-time-budget=60000",
        "--dump-dom",
    ])
    .arg(format!("--user-data-dir={}", profile.display()));
    if std::fs::metadata("/proc/self").unwrap().uid() == 0 {
        // Chromium's sandbox refuses to run as root.
        cmd.arg("--no-sandbox");
    }
    cmd.arg(url)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&stderr).unwrap())
        .process_group(0)
        .kill_on_drop(true);
    let child = cmd
        .spawn()
        .expect("starting chromium: run scripts/setup.sh, which installs Debian's chromium");
    let _group = Group(child.id().unwrap());
    let out = tokio::time::timeout(BROWSER_TIMEOUT, child.wait_with_output())
        .await
        .unwrap_or_else(|_| panic!("chromium did not finish within {BROWSER_TIMEOUT:?}"))
        .unwrap();
    let dom = String::from_utf8_lossy(&out.stdout);
    let log = dom
        .split_once("<pre id=\"log\">")
        .and_then(|(_, rest)| rest.split_once("</pre>"))
        .map(|(log, _)| log)
        .unwrap_or_default();
    let seen: BTreeMap<String, String> = log
        .lines()
        .filter_map(|l| l.split_once(": "))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    assert!(
        seen.contains_key("done"),
        "the page did not run to its end ({}); the DOM: {dom}\nchromium's stderr: {}",
        out.status,
        std::fs::read_to_string(&stderr).unwrap_or_default()
    );
    seen
}

/// Rows of `table` in the broker's SQLite database, read-only.
async fn rows(database: &std::path::Path, table: &str) -> i64 {
    let url = format!("sqlite://{}?mode=ro", database.display());
    let pool = sqlx::SqlitePool::connect(&url).await.unwrap();
    let sql = format!("SELECT count(*) FROM {table}");
    let (n,): (i64,) = sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .fetch_one(&pool)
        .await
        .unwrap();
    pool.close().await;
    n
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_web_page_can_drive_the_broker() {
    let dir = tempfile::tempdir().unwrap();
    let procs::Stack { idp, broker } = procs::stack(dir.path()).await;
    let database = dir.path().join("broker.db");
    let b = broker.url.as_str();
    let alice = User::enrolled(&idp.url, "alice", b).await;
    // One agent key a filing: an agent may have only a few requests
    // pending for one user (docs/broker.md, "A fair inbox").
    let tokens: BTreeMap<&str, String> = FILINGS
        .iter()
        .map(|name| {
            let agent = SigningKey::generate(&mut OsRng);
            (*name, signed_request(&agent, &alice.principal, name))
        })
        .collect();
    let (requests_before, bindings_before) = (
        rows(&database, "requests").await,
        rows(&database, "bindings").await,
    );
    assert_eq!(
        (requests_before, bindings_before),
        (0, 1),
        "alice's key only"
    );

    let config = json!({
        "broker": b,
        "tokens": tokens,
        "jwk": SigningKey::generate(&mut OsRng).public().to_jwk(),
    });
    let page = PAGE.replace("__CONFIG__", &config.to_string().replace('<', "\\u003c"));
    let broker_addr: SocketAddr = b.strip_prefix("http://").unwrap().parse().unwrap();
    let attacker = Attacker::start(page, broker_addr).await;
    let seen = browse(&format!("http://evil.test:{}/", attacker.port), dir.path()).await;
    drop(attacker);
    eprintln!("what the hostile page saw: {seen:#?}");

    // Every form got an answer, so each post reached the broker.
    for form in ["form-text-plain", "form-urlencoded", "form-keys"] {
        assert_eq!(seen[form], "answered", "{form}: {seen:?}");
    }
    // The rebound page reaches the broker but is refused, and reads
    // nothing: not even the public metadata.
    for rebound in ["rebound-post", "rebound-post-text-plain", "rebound-read"] {
        assert_eq!(
            seen[rebound], "basic 421 request.host",
            "{rebound}: {seen:?}"
        );
    }

    // Nothing was stored: no request in alice's inbox or in the database,
    // and no key enrolled.
    let (status, inbox) = alice.send(reqwest::Method::GET, "/v1/inbox", None).await;
    assert_eq!(status, 200, "{inbox}");
    assert_eq!(
        inbox["requests"],
        json!([]),
        "the page filed nothing: {seen:?}"
    );
    assert_eq!(rows(&database, "requests").await, 0, "{seen:?}");
    assert_eq!(rows(&database, "bindings").await, 1, "{seen:?}");

    // The same requests, sent as the SDK sends them, are taken: each
    // attempt carried a request the broker stores.
    let http = mandate_agent::client::http_client().unwrap();
    for (name, token) in &tokens {
        let res = http
            .post(format!("{b}/v1/requests"))
            .json(&json!({ "request": token }))
            .timeout(Duration::from_secs(10))
            .send()
            .await
            .unwrap();
        let status = res.status().as_u16();
        let body: Value = res.json().await.unwrap_or(Value::Null);
        assert_eq!(status, 201, "{name}: {body}");
    }
    let (_, inbox) = alice.send(reqwest::Method::GET, "/v1/inbox", None).await;
    let mut filed: Vec<String> = inbox["requests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap().to_owned())
        .collect();
    filed.sort();
    let mut expected: Vec<String> = tokens
        .values()
        .map(|t| TokenId::of(t).to_string())
        .collect();
    expected.sort();
    assert_eq!(filed, expected);
    broker.kill().await;
    idp.kill().await;
}
