//! The `mandate-broker` binary on a real socket: it starts, serves, keeps
//! its key private across restarts, and refuses a key file others can read.

use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncBufReadExt as _, AsyncReadExt as _, AsyncWriteExt as _, BufReader};
use tokio::process::{Child, Command};

const START: Duration = Duration::from_secs(60);

fn broker(data: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_mandate-broker"));
    cmd.args(["--listen", "127.0.0.1:0", "--data-dir"])
        .arg(data)
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    cmd
}

/// Starts the broker and returns it with its base URL's address.
async fn start(data: &Path) -> (Child, String) {
    let mut child = broker(data).spawn().expect("spawn mandate-broker");
    let stdout = child.stdout.take().expect("stdout");
    let mut line = String::new();
    tokio::time::timeout(START, BufReader::new(stdout).read_line(&mut line))
        .await
        .expect("the broker announces itself in time")
        .expect("read stdout");
    let addr = line
        .trim()
        .strip_prefix("mandate-broker listening on http://")
        .expect("announcement")
        .to_owned();
    (child, addr)
}

/// A plain HTTP/1.1 GET, returning the status and the body as JSON.
async fn http_get(addr: &str, path: &str) -> (u16, Value) {
    let mut stream = tokio::time::timeout(START, tokio::net::TcpStream::connect(addr))
        .await
        .expect("connect in time")
        .expect("connect");
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.expect("send");
    let mut response = String::new();
    tokio::time::timeout(START, stream.read_to_string(&mut response))
        .await
        .expect("answer in time")
        .expect("read");
    let status = response
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("status line");
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b)
        .unwrap_or_default();
    (status, serde_json::from_str(body).expect("JSON body"))
}

async fn stop(mut child: Child) {
    child.kill().await.expect("kill the broker by its PID");
}

#[tokio::test]
async fn serves_and_keeps_its_key_private_across_restarts() {
    let data = tempfile::tempdir().unwrap();
    let (child, addr) = start(data.path()).await;
    let (status, meta) = http_get(&addr, "/.well-known/mandate").await;
    assert_eq!(status, 200);
    let kid = meta["jwks"]["keys"][0]["kid"]
        .as_str()
        .expect("kid")
        .to_owned();
    assert_eq!(meta["issuer"], format!("http://{addr}"));
    let (status, body) = http_get(&addr, "/v1/nothing").await;
    assert_eq!((status, body["code"].as_str()), (404, Some("not_found")));
    stop(child).await;

    let key_file = data.path().join("broker-key");
    assert_eq!(
        std::fs::metadata(&key_file).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let (child, addr) = start(data.path()).await;
    let (_, meta) = http_get(&addr, "/.well-known/mandate").await;
    assert_eq!(
        meta["jwks"]["keys"][0]["kid"], kid,
        "the same key after a restart"
    );
    stop(child).await;

    std::fs::set_permissions(&key_file, std::fs::Permissions::from_mode(0o644)).unwrap();
    let out = tokio::time::timeout(START, broker(data.path()).output())
        .await
        .expect("exits in time")
        .expect("run");
    assert!(!out.status.success(), "refuses a key file others can read");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("chmod 600"), "says how to fix it: {stderr}");
}
