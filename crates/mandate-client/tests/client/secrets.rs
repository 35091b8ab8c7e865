//! The user's secrets stay in the keyring. A full journey (sign-in with
//! the key generated and enrolled, requests arriving live, a refresh of
//! the sign-in, an approval, a denial, the history verified, sign-out and
//! a headless engine process resuming) runs with every log at TRACE, the
//! broker in-process; then the SQLite files, every log line and every
//! value the app would send over IPC are searched for the private key and
//! the refresh tokens (and the ID tokens, outside the logs of the
//! provider exchange). None is found.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use mandate_client::Narrowing;
use mandate_client::engine::{BrokerMode, Config, Engine, Update};
use mandate_client::vault::Vault;
use mandate_core::base64url;
use mandate_e2e::procs::{self, binary, cli};
use serde::Serialize;

use crate::browser::{Tamper, TestBrowser};
use crate::engine::{keyring_ready, next_new, service};
use crate::journey::{agent_got_denial, agent_got_grant, request};

/// Everything every thread of this process logs, at TRACE.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn ipc(payloads: &mut Vec<u8>, value: &impl Serialize) {
    payloads.extend_from_slice(&serde_json::to_vec(value).unwrap());
    payloads.push(b'\n');
}

fn find(haystack: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && haystack.windows(needle.len()).any(|w| w == needle)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_reaches_the_database_the_logs_or_ipc() {
    if !keyring_ready() {
        return;
    }
    let logs = Captured::default();
    let writer = logs.clone();
    tracing::subscriber::set_global_default(
        tracing_subscriber::fmt()
            .with_max_level(tracing::Level::TRACE)
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .finish(),
    )
    .expect("the only global subscriber in this test binary");

    let dir = tempfile::tempdir().unwrap();
    let path = |name: &str| dir.path().join(name).display().to_string();
    // ID tokens live 62 s: within a minute of expiry the engine refreshes
    // before each use, so this journey refreshes its sign-in.
    let idp = procs::idp_with(&["--id-token-ttl", "62"]).await;
    let keyring_service = service();
    let config = Config {
        data_dir: dir.path().join("app"),
        issuer: idp.url.clone(),
        client_id: crate::CLIENT.into(),
        broker: BrokerMode::InProcess {
            listen: "127.0.0.1:0".parse().unwrap(),
        },
        keyring_service: keyring_service.clone(),
        device: "secrets test".into(),
        oauth_resources: Vec::new(),
        witnesses: Vec::new(),
    };
    // A broker key file an earlier version left behind: the engine moves
    // it into the keyring, and the file is gone.
    let legacy = dir.path().join("app/broker/broker-key");
    std::fs::create_dir_all(legacy.parent().unwrap()).unwrap();
    let legacy_key = mandate_keyfile::create(&legacy).unwrap();
    let engine = Engine::start(config.clone()).await.unwrap();
    let broker_url = engine.broker_url().to_owned();
    assert!(!legacy.exists(), "the broker key file is gone");
    let metadata: serde_json::Value = reqwest::get(format!("{broker_url}/.well-known/mandate"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        metadata["jwks"]["keys"][0]["x"],
        legacy_key.public().to_jwk().x,
        "the broker signs with the key it had"
    );
    let mut payloads = Vec::new();
    let vault = Vault::new(&keyring_service);
    let mut refresh_tokens = Vec::new();
    let mut id_tokens = Vec::new();

    let account = engine
        .sign_in(&TestBrowser::new("alice", Tamper::None))
        .await
        .unwrap();
    ipc(&mut payloads, &account);
    let principal = account.principal.clone();
    let stored = vault.session(&principal).await.unwrap().unwrap();
    refresh_tokens.push(stored.refresh_token.as_ref().unwrap().expose().to_owned());
    id_tokens.push(stored.id_token.expose().to_owned());

    let mut updates = engine.subscribe();
    engine.follow();
    let env = [("MANDATE_BROKER", broker_url.as_str())];
    let (ok, _, err) = cli(&["agent", "init", "--key", &path("agent.key")], &env).await;
    assert!(ok, "{err}");
    let waiting = request(&broker_url, &path("agent.key"), &principal, &path("m.json"));
    let id = next_new(&mut updates).await;
    ipc(&mut payloads, &engine.inbox().await.unwrap());
    ipc(&mut payloads, &engine.request(&id).await.unwrap());

    // Let the ID token come within its refresh margin: the approval
    // refreshes the sign-in first.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    ipc(
        &mut payloads,
        &engine.approve(&id, &Narrowing::default()).await.unwrap(),
    );
    agent_got_grant(waiting).await;
    let refreshed = vault.session(&principal).await.unwrap().unwrap();
    assert_ne!(
        refreshed
            .refresh_token
            .as_ref()
            .map(mandate_core::Secret::expose),
        refresh_tokens.first().map(String::as_str),
        "the sign-in was refreshed (and the refresh token rotated)"
    );
    refresh_tokens.push(
        refreshed
            .refresh_token
            .as_ref()
            .unwrap()
            .expose()
            .to_owned(),
    );
    id_tokens.push(refreshed.id_token.expose().to_owned());

    let waiting = request(&broker_url, &path("agent.key"), &principal, &path("d.json"));
    let id = next_new(&mut updates).await;
    ipc(
        &mut payloads,
        &engine.deny(&id, Some("not now"), false).await.unwrap(),
    );
    agent_got_denial(waiting, "not now").await;
    ipc(&mut payloads, &engine.verify_history().await.unwrap());
    ipc(&mut payloads, &engine.decisions().await.unwrap());
    ipc(
        &mut payloads,
        &engine.history().events(&principal).await.unwrap(),
    );
    while let Ok(update) = updates.try_recv() {
        ipc(&mut payloads, &update);
    }
    ipc(&mut payloads, &Update::Connection { online: true });
    let key = vault.user_key(&principal).await.unwrap().unwrap();
    engine.shutdown().await;

    // A headless engine process resumes from the keyring, logging at TRACE.
    let out = tokio::process::Command::new(binary("mandate-engine"))
        .args(["history", "--verify"])
        .env("MANDATE_ISSUER", &idp.url)
        .env("MANDATE_DATA_DIR", dir.path().join("app"))
        .env("MANDATE_KEYRING_SERVICE", &keyring_service)
        .env("RUST_LOG", "trace")
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(Duration::from_secs(60), out)
        .await
        .unwrap()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    payloads.extend_from_slice(&out.stdout);
    let mut process_logs = out.stderr.clone();
    let stored = vault.session(&principal).await.unwrap().unwrap();
    refresh_tokens.push(stored.refresh_token.as_ref().unwrap().expose().to_owned());
    id_tokens.push(stored.id_token.expose().to_owned());

    // Sign out, and the keyring forgets the tokens.
    let again = Engine::start(Config {
        broker: BrokerMode::InProcess {
            listen: "127.0.0.1:0".parse().unwrap(),
        },
        ..config
    })
    .await
    .unwrap();
    ipc(&mut payloads, &again.resume().await.unwrap());
    again.sign_out().await.unwrap();
    again.shutdown().await;
    assert!(vault.session(&principal).await.unwrap().is_none());

    // The haystacks.
    let mut database = Vec::new();
    for entry in walk(&dir.path().join("app")) {
        database.extend_from_slice(&std::fs::read(entry).unwrap());
    }
    let logs = logs.0.lock().unwrap().clone();
    process_logs.extend_from_slice(&logs);
    assert!(
        find(&process_logs, b"decision recorded"),
        "the logs were captured"
    );
    assert!(
        find(&database, principal.as_bytes()),
        "the database was read"
    );
    assert!(!payloads.is_empty());

    // The broker's key is in the keyring, and no file holds it.
    let broker_key = vault.broker_key(&legacy).await.unwrap();
    assert_eq!(broker_key.thumbprint(), legacy_key.thumbprint());
    assert!(
        walk(&dir.path().join("app"))
            .iter()
            .all(|f| f.file_name().is_none_or(|n| n != "broker-key")),
        "no broker key file"
    );
    let mut key_forms: Vec<(String, Vec<u8>)> = Vec::new();
    for (which, seed) in [
        ("the user's private key", key.to_seed()),
        ("the broker's private key", broker_key.to_seed()),
    ] {
        key_forms.push((format!("{which}, raw"), seed.to_vec()));
        key_forms.push((
            format!("{which}, base64url"),
            base64url::encode(*seed).into_bytes(),
        ));
        key_forms.push((
            format!("{which}, hex"),
            seed.iter()
                .map(|b| format!("{b:02x}"))
                .collect::<String>()
                .into_bytes(),
        ));
    }
    for (what, needle) in &key_forms {
        assert!(!find(&database, needle), "{what} is in the database");
        assert!(!find(&process_logs, needle), "{what} is in the logs");
        assert!(!find(&payloads, needle), "{what} is in an IPC payload");
    }
    for token in &refresh_tokens {
        let needle = token.as_bytes();
        assert!(
            !find(&database, needle),
            "a refresh token is in the database"
        );
        assert!(
            !find(&process_logs, needle),
            "a refresh token is in the logs"
        );
        assert!(
            !find(&payloads, needle),
            "a refresh token is in an IPC payload"
        );
    }
    for token in &id_tokens {
        let needle = token.as_bytes();
        assert!(!find(&database, needle), "an ID token is in the database");
        assert!(!find(&process_logs, needle), "an ID token is in the logs");
        assert!(!find(&payloads, needle), "an ID token is in an IPC payload");
    }
    vault.forget_user_key(&principal).await.unwrap();
    vault.forget_broker_key().await.unwrap();
    idp.kill().await;
}

/// Every file under `dir`.
fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files.extend(walk(&path));
        } else {
            files.push(path);
        }
    }
    files
}
