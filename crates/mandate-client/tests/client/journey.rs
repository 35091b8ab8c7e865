//! The engine's side of a decision, headless, against the real provider,
//! a real broker and an agent using the `mandate` CLI: sign in, enroll the
//! user key, see the request, approve it narrowed (the agent receives
//! exactly that), deny another (the agent sees the denial).

use std::process::Stdio;
use std::time::Duration;

use mandate_client::decision::{denial_for, grant_for};
use mandate_client::{BrokerClient, InboxItem, Narrowing, Provider};
use mandate_core::scope::AuthorizationDetail;
use mandate_core::{Principal, SigningKey};
use mandate_e2e::procs::{self, binary, cli};
use rand_core::OsRng;

use crate::browser::{Tamper, TestBrowser};
use crate::{CLIENT, SCOPES, unix_now};

/// Starts `mandate agent request ... --wait` in the background.
pub(crate) fn request(
    broker: &str,
    key: &str,
    principal: &str,
    out: &str,
) -> tokio::process::Child {
    tokio::process::Command::new(binary("mandate"))
        .args(["agent", "request", "--key", key, "--principal", principal])
        .args(["--scope", "files:read,write:https://files.example/reports/"])
        .args([
            "--purpose",
            "Tidy the reports",
            "--intent",
            "Tidy my reports",
        ])
        .args(["--lifetime", "3600", "--max-depth", "2"])
        .args(["--wait", "--timeout", "60", "--out", out])
        .env("MANDATE_BROKER", broker)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap()
}

/// Waits for the agent's `request --wait` to end with its grant.
pub(crate) async fn agent_got_grant(waiting: tokio::process::Child) {
    let done = tokio::time::timeout(Duration::from_secs(30), waiting.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    let stderr = String::from_utf8_lossy(&done.stderr);
    assert!(done.status.success(), "{stderr}");
}

/// Waits for the agent's `request --wait` to end with a denial for `reason`.
pub(crate) async fn agent_got_denial(waiting: tokio::process::Child, reason: &str) {
    let done = tokio::time::timeout(Duration::from_secs(30), waiting.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    let stderr = String::from_utf8_lossy(&done.stderr);
    assert!(!done.status.success());
    assert!(
        stderr.contains("error request.denied") && stderr.contains(reason),
        "{stderr}"
    );
}

/// Waits for one more request than `seen` in the inbox; returns the newest.
async fn next_request(broker: &BrokerClient, bearer: &str, seen: usize) -> InboxItem {
    for _ in 0..100 {
        let mut inbox = broker.inbox(bearer).await.unwrap();
        if inbox.len() > seen {
            return inbox.pop().unwrap();
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("no request reached the inbox");
}

fn files(actions: &[&str], location: &str) -> AuthorizationDetail {
    AuthorizationDetail::new("files", actions.iter().copied(), [location]).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_in_enroll_approve_narrowed_and_deny() {
    let dir = tempfile::tempdir().unwrap();
    let path = |name: &str| dir.path().join(name).display().to_string();
    let procs::Stack {
        idp,
        broker: broker_proc,
    } = procs::stack(dir.path()).await;

    // Sign in and enroll a fresh user key.
    // The sign-in is made for this enrollment: its nonce is the thumbprint
    // of a session key, which the enrollment proves.
    let provider = Provider::discover(&idp.url, CLIENT).await.unwrap();
    let session_key = SigningKey::generate(&mut OsRng);
    let session = provider
        .sign_in_with_nonce(
            &TestBrowser::new("alice", Tamper::None),
            SCOPES,
            Duration::from_secs(20),
            Some(session_key.thumbprint().to_string()),
        )
        .await
        .unwrap();
    let bearer = session.id_token.expose();
    let principal: Principal = session.principal.clone().try_into().unwrap();
    let key = SigningKey::generate(&mut OsRng);
    let broker = BrokerClient::new(&broker_proc.url).unwrap();
    let new_key = mandate_client::broker::NewKey {
        session: &session_key,
        device: "Test laptop",
    };
    let enrollment = broker
        .enroll(bearer, &key, Some(new_key), unix_now(), &mut OsRng)
        .await
        .unwrap();
    assert_eq!(enrollment.jkt, key.thumbprint().to_string());

    // An agent asks, through the CLI.
    let env = [("MANDATE_BROKER", broker_proc.url.as_str())];
    let (ok, _, err) = cli(&["agent", "init", "--key", &path("agent.key")], &env).await;
    assert!(ok, "{err}");
    let waiting = request(
        &broker_proc.url,
        &path("agent.key"),
        &session.principal,
        &path("mandate.json"),
    );
    let item = next_request(&broker, bearer, 0).await;

    // Narrowing beyond the request is refused before anything is signed.
    let wider = Narrowing {
        scopes: Some(vec![files(
            &["read", "delete"],
            "https://files.example/reports/",
        )]),
        ..Narrowing::default()
    };
    let e = grant_for(
        &item.request,
        &principal,
        &key,
        &wider,
        unix_now(),
        &mut OsRng,
    )
    .unwrap_err();
    assert_eq!(e.code(), "input.invalid");
    let longer = Narrowing {
        lifetime: Some(7200),
        ..Narrowing::default()
    };
    assert!(
        grant_for(
            &item.request,
            &principal,
            &key,
            &longer,
            unix_now(),
            &mut OsRng
        )
        .is_err()
    );

    // Approve narrowed: read only, Q3 only, ten minutes, no further hops.
    let narrowed = vec![files(&["read"], "https://files.example/reports/q3/")];
    let narrowing = Narrowing {
        scopes: Some(narrowed.clone()),
        lifetime: Some(600),
        max_depth: Some(0),
        ..Narrowing::default()
    };
    let grant = grant_for(
        &item.request,
        &principal,
        &key,
        &narrowing,
        unix_now(),
        &mut OsRng,
    )
    .unwrap();
    broker.approve(bearer, &item.id, &grant).await.unwrap();
    agent_got_grant(waiting).await;

    // The agent holds exactly the narrowed grant, and it verifies.
    let mandate: mandate_agent::Mandate =
        serde_json::from_str(&std::fs::read_to_string(path("mandate.json")).unwrap()).unwrap();
    assert_eq!(mandate.chain, vec![grant]);
    let leaf = mandate.leaf().unwrap();
    assert_eq!(leaf.authorization_details, narrowed);
    assert_eq!(leaf.max_depth, 0);
    assert!(leaf.exp - leaf.iat <= 600);
    let (ok, out, err) = cli(&["verify", "--mandate", &path("mandate.json")], &env).await;
    assert!(ok, "{err}");
    let verified: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(verified["principal"], session.principal);
    assert_eq!(verified["depth_left"], 0);

    // Deny another request, with a reason: the agent sees it.
    let waiting = request(
        &broker_proc.url,
        &path("agent.key"),
        &session.principal,
        &path("denied.json"),
    );
    let item = next_request(&broker, bearer, 0).await;
    let denial = denial_for(
        item.id,
        &principal,
        &key,
        Some("not now"),
        unix_now(),
        &mut OsRng,
    );
    broker.deny(bearer, &item.id, &denial).await.unwrap();
    agent_got_denial(waiting, "not now").await;
    assert!(!dir.path().join("denied.json").exists(), "nothing written");
    // The same signed denial again (a retry) is accepted and changes
    // nothing; a different decision is refused: it is no longer pending.
    broker.deny(bearer, &item.id, &denial).await.unwrap();
    let other = denial_for(
        item.id,
        &principal,
        &key,
        Some("never"),
        unix_now(),
        &mut OsRng,
    );
    let again = broker.deny(bearer, &item.id, &other).await.unwrap_err();
    assert_eq!(again.code(), "request.already_decided", "{again}");

    broker_proc.kill().await;
    idp.kill().await;
}
