//! Crash safety of decisions: the engine (the `mandate-engine` process) is
//! killed with SIGKILL at a random instant while it approves or denies, 50
//! times. After each restart, each decision was either recorded and
//! delivered exactly once, or never made: nothing half-done, nothing
//! delivered twice, and the history still verifies.

use std::process::Stdio;
use std::time::{Duration, Instant};

use mandate_agent::{Agent, Ask, Broker};
use mandate_client::history::{DecisionKind, History, RequestState, StoredDecision};
use mandate_client::vault::Vault;
use mandate_core::SigningKey;
use mandate_core::scope::AuthorizationDetail;
use mandate_core::token::AgentInfo;
use mandate_e2e::procs::binary;
use rand_core::{OsRng, RngCore as _};

use crate::engine::{Stack, keyring_ready};

const ROUNDS: usize = 50;
/// How long the relay holds each chunk on its way to the broker.
const HELD: Duration = Duration::from_millis(60);

/// A TCP relay to `upstream` that holds each chunk from the client for
/// `delay` before passing it on: a slow network, which widens the window
/// between a decision's commit and its delivery. A client killed while its
/// request is held still has it delivered, as on a real network.
/// The relay listens before the broker starts, so that the broker can be
/// told to answer for the relay's address (the `Host` its clients send).
async fn slow_relay(
    listener: tokio::net::TcpListener,
    upstream: String,
    delay: Duration,
) -> String {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let url = format!("http://{}", listener.local_addr().unwrap());
    let upstream = upstream.trim_start_matches("http://").to_owned();
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            let upstream = upstream.clone();
            tokio::spawn(async move {
                let Ok(server) = tokio::net::TcpStream::connect(&upstream).await else {
                    return;
                };
                let (mut client_read, mut client_write) = client.into_split();
                let (mut server_read, mut server_write) = server.into_split();
                let forward = async move {
                    let mut buf = vec![0u8; 64 * 1024];
                    while let Ok(n) = client_read.read(&mut buf).await {
                        if n == 0 {
                            break;
                        }
                        tokio::time::sleep(delay).await;
                        if server_write.write_all(&buf[..n]).await.is_err() {
                            break;
                        }
                    }
                    let _ = server_write.shutdown().await;
                };
                let back = tokio::io::copy(&mut server_read, &mut client_write);
                let _ = tokio::join!(forward, back);
            });
        }
    });
    url
}

fn engine_command(stack: &Stack, broker: &str, args: &[&str]) -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new(binary("mandate-engine"));
    cmd.args(args)
        .env("MANDATE_ISSUER", &stack.idp.url)
        .env("MANDATE_BROKER", broker)
        .env("MANDATE_DATA_DIR", stack.dir.path().join("app"))
        .env("MANDATE_KEYRING_SERVICE", &stack.service)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    cmd
}

/// Runs `mandate-engine ARGS` to its end; returns its stdout as JSON.
async fn engine_run(stack: &Stack, args: &[&str]) -> serde_json::Value {
    let out = tokio::time::timeout(
        Duration::from_secs(30),
        engine_command(stack, &stack.broker.url, args).output(),
    )
    .await
    .expect("mandate-engine finishes")
    .unwrap();
    assert!(
        out.status.success(),
        "mandate-engine {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// Runs one approval, timing the instant its decision is committed (the
/// engine logs it) and the whole run.
async fn calibrate(stack: &Stack, broker: &str, id: &str) -> (Duration, Duration) {
    use tokio::io::AsyncBufReadExt as _;
    let started = Instant::now();
    let mut child = engine_command(stack, broker, &["approve", id])
        .env("RUST_LOG", "mandate_client=info")
        .spawn()
        .unwrap();
    let mut lines = tokio::io::BufReader::new(child.stderr.take().unwrap()).lines();
    let mut recorded = None;
    while let Some(line) = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
        .await
        .unwrap()
        .unwrap()
    {
        if recorded.is_none() && line.contains("decision recorded") {
            recorded = Some(started.elapsed());
        }
    }
    let status = tokio::time::timeout(Duration::from_secs(30), child.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(status.success());
    (
        recorded.expect("the engine logs the commit"),
        started.elapsed(),
    )
}

fn random_within(from: Duration, to: Duration) -> Duration {
    let width = to.saturating_sub(from).as_micros() as u64 + 1;
    from + Duration::from_micros(OsRng.next_u64() % width)
}

/// The local decision on `id`, if any, and the request's state.
async fn local_decision(stack: &Stack, id: &str) -> (Option<StoredDecision>, RequestState) {
    let history = History::open(&stack.dir.path().join("app/history.sqlite"))
        .await
        .unwrap();
    let decision = history.decision(id).await.unwrap();
    let principal = history.last_profile().await.unwrap().unwrap().principal;
    let state = history
        .request(&principal, id)
        .await
        .unwrap()
        .unwrap()
        .state;
    history.close().await;
    (decision, state)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_the_engine_mid_decision_never_half_decides() {
    if !keyring_ready() {
        return;
    }
    // One agent files a request a round; the default per-agent and
    // per-user rates
    // would slow the test down for nothing.
    let relay_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let relay_host = relay_listener.local_addr().unwrap().to_string();
    let stack = Stack::start_with(&[
        "--rate",
        "agent_requests=100:100",
        "--rate",
        "user_prompts=100:100",
        // A kill before the decision leaves its request pending, and one
        // agent files them all.
        "--max-pending-new",
        "100",
        "--max-pending-per-agent",
        "100",
        // Each round files the same request again, and some rounds deny
        // it: no cooldown.
        "--denial-cooldown",
        "0",
        "--allowed-host",
        relay_host.as_str(),
    ])
    .await;
    // Sign in once; the processes below pick the sign-in up from the
    // keyring.
    let (engine, principal) = stack.signed_in("carol").await;
    engine.shutdown().await;

    let agent = Agent::new(
        SigningKey::generate(&mut OsRng),
        Broker::new(&stack.broker.url).unwrap(),
        AgentInfo {
            name: "crash-test agent".into(),
            publisher: None,
            version: None,
        },
    );
    let ask = Ask {
        principal: principal.clone(),
        scopes: vec![
            AuthorizationDetail::new(
                "files",
                ["read", "write"],
                ["https://files.example/reports/"],
            )
            .unwrap(),
        ],
        purpose: "Tidy the reports".into(),
        intent: None,
        lifetime: 600,
        max_depth: 1,
        expires_in: 600,
    };
    let file = || async {
        let pending = agent.request(&ask).await.unwrap();
        let inbox = engine_run(&stack, &["inbox"]).await;
        assert!(
            inbox
                .as_array()
                .unwrap()
                .iter()
                .any(|r| r["id"] == pending.id.to_string()),
            "{inbox}"
        );
        pending
    };

    // One uninterrupted approval gives the span the kills are spread over,
    // and the instant its decision is committed locally.
    let pending = file().await;
    // The killed processes reach the broker through a slow relay.
    let relay = slow_relay(relay_listener, stack.broker.url.clone(), HELD).await;
    let (recorded, span) = calibrate(&stack, &relay, &pending.id.to_string()).await;

    let (mut never, mut undelivered, mut delivered) = (0, 0, 0);
    for round in 0..ROUNDS {
        let pending = file().await;
        let id = pending.id.to_string();
        let args: Vec<&str> = if round % 2 == 0 {
            vec!["approve", &id, "--lifetime", "300"]
        } else {
            vec!["deny", &id, "--reason", "crash test"]
        };
        // Half the kills land anywhere in the run; half around the
        // commit and the delivery held by the relay, where a decision is
        // recorded but not yet delivered (or delivered, unacknowledged).
        let at = if round % 4 < 2 {
            random_within(Duration::ZERO, span * 6 / 5)
        } else {
            random_within(
                recorded.saturating_sub(Duration::from_millis(10)),
                recorded + HELD + Duration::from_millis(20),
            )
        };
        let mut child = engine_command(&stack, &relay, &args).spawn().unwrap();
        tokio::time::sleep(at).await;
        child.start_kill().unwrap(); // SIGKILL
        let _ = tokio::time::timeout(Duration::from_secs(10), child.wait())
            .await
            .unwrap();
        let at_kill = local_decision(&stack, &id).await.0;
        match &at_kill {
            None => never += 1,
            Some(d) if d.delivered_at.is_none() => undelivered += 1,
            Some(_) => delivered += 1,
        }

        // Restart: the outbox is delivered.
        engine_run(&stack, &["deliver"]).await;

        let (local, state) = local_decision(&stack, &id).await;
        let remote = agent.poll(&pending, Duration::ZERO).await.unwrap();
        match local {
            Some(d) => {
                assert!(
                    at_kill.is_some(),
                    "round {round}: no decision appears after the kill"
                );
                assert!(
                    d.delivered_at.is_some(),
                    "round {round} (kill at {at:?}): {d:?}"
                );
                assert_eq!(d.refused_code, None);
                let (status, token) = if d.kind == DecisionKind::Grant {
                    (RequestState::Approved, remote.grant.clone())
                } else {
                    (RequestState::Denied, remote.denial.clone())
                };
                assert_eq!(remote.status, status.as_str(), "round {round}");
                assert_eq!(token.as_deref(), Some(d.token.as_str()), "round {round}");
                assert_eq!(state, status);
            }
            None => {
                assert_eq!(remote.status, "pending", "round {round} (kill at {at:?})");
                assert_eq!(state, RequestState::Pending, "round {round}");
            }
        }
    }
    let made = undelivered + delivered;
    eprintln!(
        "crash test: {ROUNDS} kills (run {span:?}, commit at {recorded:?}): {never} never made, \
         {undelivered} recorded but undelivered at the kill, {delivered} delivered before it"
    );
    // The kills land on both sides of the commit, and between the commit
    // and the delivery.
    assert!(
        never > 0 && undelivered > 0,
        "never {never}, undelivered {undelivered}"
    );

    // Each decision is in the history once, delivered once, and the
    // history verifies.
    let report = engine_run(&stack, &["history", "--verify"]).await;
    let decisions = report["decisions"].as_array().unwrap();
    assert_eq!(
        decisions.len(),
        made + 1,
        "the calibration's, and those made"
    );
    let history = History::open(&stack.dir.path().join("app/history.sqlite"))
        .await
        .unwrap();
    let events = history.events(&principal).await.unwrap();
    history.close().await;
    let count = |kind: &str| events.iter().filter(|e| e.kind == kind).count();
    assert_eq!(count("grant.signed") + count("denial.signed"), made + 1);
    assert_eq!(count("decision.delivered"), made + 1);
    assert_eq!(count("request.seen"), ROUNDS + 1);
    assert_eq!(
        report["verified"]["events"].as_i64(),
        Some(events.len() as i64)
    );
    // The broker holds one grant per approval made, none twice.
    let bearer = Vault::new(&stack.service)
        .session(&principal)
        .await
        .unwrap()
        .unwrap()
        .id_token
        .expose()
        .to_owned();
    let grants: serde_json::Value = reqwest::Client::new()
        .get(format!("{}/v1/grants", stack.broker.url))
        .bearer_auth(bearer)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let approvals = decisions.iter().filter(|d| d["kind"] == "grant").count();
    assert_eq!(
        grants["grants"].as_array().unwrap().len(),
        approvals,
        "{grants}"
    );
    stack.stop(Some(&principal)).await;
}
