//! From an agent filing a request to its grant in the agent's hands, when
//! one of the user's standing rules approves it: the app's engine (with
//! the OS keyring and its SQLite history) follows the inbox, matches the
//! rule, signs the grant and delivers it; the agent's long poll returns
//! it. Against the floor, in the same run and on the same broker: a bare
//! approver that, on each inbox event, fetches the request and posts a
//! grant it signs at once (no history, no rule, no checks).
//!
//!     cargo build --release --bins -p mandate-broker -p mandate-e2e
//!     scripts/with-keyring.sh cargo bench -p mandate-e2e --bench autoapprove [-- REQUESTS]
//!
//! Rounds alternate between the two, one request at a time. Reports p50,
//! p99 and the mean of each, and the ratios. The goal: p99 at most
//! 50 ms for the rule's path.

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::print_stdout)]

#[allow(dead_code)]
#[path = "../tests/e2e/user.rs"]
mod user;

use std::time::{Duration, Instant};

use mandate_agent::{Agent, AgentInfo, Ask, Broker};
use mandate_client::decision::Tier;
use mandate_client::engine::{BrokerMode, Config, Engine, Update};
use mandate_client::{CommandBrowser, Narrowing};
use mandate_core::scope::AuthorizationDetail;
use mandate_e2e::procs;
use serde_json::{Value, json};

use user::User;

fn files(actions: &[&str], location: &str) -> AuthorizationDetail {
    AuthorizationDetail::new("files", actions.iter().copied(), [location]).unwrap()
}

fn ask(principal: &str, location: &str) -> Ask {
    Ask {
        principal: principal.into(),
        scopes: vec![files(&["read"], location)],
        purpose: "Read the Q3 reports".into(),
        intent: None,
        lifetime: 600,
        max_depth: 0,
        expires_in: 120,
    }
}

fn agent(broker: &str, dir: &std::path::Path, name: &str) -> Agent {
    let key = mandate_keyfile::create(&dir.join(format!("{name}.key"))).unwrap();
    Agent::new(
        key,
        Broker::new(broker).unwrap(),
        AgentInfo {
            name: name.into(),
            publisher: None,
            version: None,
        },
    )
}

/// Milliseconds from filing `ask` to holding the grant.
async fn time_one(agent: &Agent, ask: &Ask) -> f64 {
    let started = Instant::now();
    let pending = agent.request(ask).await.unwrap();
    agent.wait(&pending, Duration::from_secs(20)).await.unwrap();
    started.elapsed().as_secs_f64() * 1000.0
}

fn summary(name: &str, ms: &mut [f64]) -> (f64, f64, f64) {
    ms.sort_by(f64::total_cmp);
    let at = |q: f64| ms[((ms.len() as f64 * q).ceil() as usize).clamp(1, ms.len()) - 1];
    let (p50, p99) = (at(0.50), at(0.99));
    let mean = ms.iter().sum::<f64>() / ms.len() as f64;
    println!(
        "{name:<40} n {:>4}  p50 {p50:>7.2} ms  p99 {p99:>7.2} ms  mean {mean:>7.2} ms  max {:>7.2} ms",
        ms.len(),
        ms[ms.len() - 1]
    );
    (p50, p99, mean)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let requests: usize = std::env::args()
        .skip(1)
        .find(|a| !a.starts_with('-'))
        .and_then(|a| a.parse().ok())
        .unwrap_or(200);
    assert!(
        std::env::var("MANDATE_KEYRING").as_deref() == Ok("secret-service"),
        "run under scripts/with-keyring.sh: the engine keeps the user key in the OS keyring"
    );
    let dir = tempfile::tempdir().unwrap();
    let idp = procs::idp().await;
    let database = format!("sqlite://{}/broker.db", dir.path().display());
    let broker = procs::broker(
        &database,
        &idp.url,
        &dir.path().join("broker"),
        &[
            "--rate",
            "agent_requests=100000:100000",
            "--rate",
            "user_prompts=100000:100000",
            "--rate",
            "agent_calls=100000:100000",
            "--rate",
            "user_calls=100000:100000",
        ],
    )
    .await;

    // The app's engine, signed in as alice, following her inbox.
    let service = format!("mandate-bench-{}", std::process::id());
    let engine = Engine::start(Config {
        data_dir: dir.path().join("app"),
        issuer: idp.url.clone(),
        client_id: "mandate-desktop".into(),
        broker: BrokerMode::Remote {
            url: broker.url.clone(),
        },
        keyring_service: service.clone(),
        device: "Bench laptop (linux)".into(),
        oauth_resources: Vec::new(),
        witnesses: Vec::new(),
    })
    .await
    .unwrap();
    let browse = format!(
        "{} {} --user alice",
        which_node(),
        procs::repo().join("tests/idp/browse.mjs").display()
    );
    let account = engine
        .sign_in(&CommandBrowser::new(&browse).unwrap())
        .await
        .unwrap();
    let mut updates = engine.subscribe();
    engine.follow();

    // Alice approves the agent's first request with a rule.
    let ruled = agent(&broker.url, dir.path(), "ruled");
    let first = ruled
        .request(&ask(&account.principal, "https://files.example/reports/"))
        .await
        .unwrap();
    let id = tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            if let Update::Inbox { new, .. } = updates.recv().await.unwrap()
                && let Some(id) = new.into_iter().next()
            {
                return id;
            }
        }
    })
    .await
    .unwrap();
    engine
        .approve(
            &id,
            &Narrowing {
                tier: Tier::Rule { days: 30 },
                ..Narrowing::default()
            },
        )
        .await
        .unwrap();
    ruled.wait(&first, Duration::from_secs(20)).await.unwrap();

    // The floor: bob's bare approver.
    let bob = User::enrolled(&idp.url, "bob", &broker.url).await;
    let bare = agent(&broker.url, dir.path(), "bare");
    let mut events = bob.inbox_events().await;
    let approver = tokio::spawn(async move {
        loop {
            let event = events
                .next_named("request.created", Duration::from_secs(3600))
                .await;
            let data: Value = serde_json::from_str(&event.data).unwrap();
            let id = data["request"].as_str().unwrap().to_owned();
            let request = bob.pending(&id).await;
            let grant = bob.grant(
                &request,
                vec![files(&["read"], "https://files.example/reports/")],
            );
            let (status, body) = bob.decide(&id, json!({ "grant": grant })).await;
            assert_eq!(status, 200, "{body}");
        }
    });
    let bob_principal = format!("{}#bob", idp.url);

    // Warm both paths, then alternate.
    for _ in 0..5 {
        time_one(
            &ruled,
            &ask(&account.principal, "https://files.example/reports/q3/"),
        )
        .await;
        time_one(
            &bare,
            &ask(&bob_principal, "https://files.example/reports/"),
        )
        .await;
    }
    let (mut by_rule, mut floor) = (Vec::new(), Vec::new());
    for _ in 0..requests {
        by_rule.push(
            time_one(
                &ruled,
                &ask(&account.principal, "https://files.example/reports/q3/"),
            )
            .await,
        );
        floor.push(
            time_one(
                &bare,
                &ask(&bob_principal, "https://files.example/reports/"),
            )
            .await,
        );
    }
    approver.abort();
    println!("request filed -> grant in the agent's hands, {requests} rounds, alternating:");
    let (r50, r99, rmean) = summary("approved by a rule (the app's engine)", &mut by_rule);
    let (f50, f99, fmean) = summary("floor: a bare approver, no history", &mut floor);
    println!(
        "ratio rule/floor: p50 {:.2}  p99 {:.2}  mean {:.2}",
        r50 / f50,
        r99 / f99,
        rmean / fmean
    );
    println!(
        "goal p99 <= 50 ms: {}",
        if r99 <= 50.0 { "met" } else { "NOT met" }
    );
    let vault = mandate_client::vault::Vault::new(&service);
    vault.forget_session(&account.principal).await.unwrap();
    vault.forget_user_key(&account.principal).await.unwrap();
    engine.shutdown().await;
    drop(broker);
    drop(idp);
}

/// The Node that runs the test provider's browser helper.
fn which_node() -> String {
    std::env::var("NODE").unwrap_or_else(|_| "node".into())
}
