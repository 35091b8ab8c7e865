//! The demo's supply-chain scenario against a real broker, provider and the
//! demo resource servers, with alice approving as asked; then what the
//! procurement service refuses: past the spending limit (also when two
//! orders race for what is left), and, through its verifier, a malformed
//! order, an order past the per-call limit or in another currency, and a
//! call no route names.

use std::time::Duration;

use mandate_agent::{Agent, AgentInfo, Broker, Mandate};
use mandate_core::Claims as _;
use mandate_core::token::{
    ConfirmationClaims, GrantClaims, Jti, RequestClaims, body_hash, chain_hash, peek,
};
use serde_json::{Value, json};

use crate::user::{Events, User};
use mandate_e2e::procs::{self, Proc, binary};

async fn demo_resources(broker: &str) -> Proc {
    let mut cmd = tokio::process::Command::new(binary("mandate-demo-resources"));
    cmd.args(["--listen", "127.0.0.1:0", "--broker", broker])
        .env("RUST_LOG", "warn");
    Proc::start(
        "mandate-demo-resources",
        cmd,
        "mandate-demo-resources listening on ",
    )
    .await
}

/// Posts `body` to `url` as `agent` under `mandate`.
async fn post(agent: &Agent, mandate: &Mandate, url: &str, body: &str) -> (u16, Value) {
    send(agent, mandate, reqwest::Method::POST, url, body).await
}

async fn send(
    agent: &Agent,
    mandate: &Mandate,
    method: reqwest::Method,
    url: &str,
    body: &str,
) -> (u16, Value) {
    let mut req = mandate_agent::client::http_client()
        .unwrap()
        .request(method.clone(), url)
        .header("content-type", "application/json")
        .body(body.to_owned());
    for (name, value) in agent.present(mandate, method.as_str(), url).unwrap() {
        req = req.header(name, value);
    }
    let res = req.send().await.unwrap();
    (
        res.status().as_u16(),
        res.json().await.unwrap_or(Value::Null),
    )
}

/// The next request in `alice`'s inbox (within `secs` seconds), approved
/// as asked; returns what it asked.
async fn approve_next(alice: &User, inbox: &mut Events, secs: u64) -> RequestClaims {
    let event = inbox
        .next_named("request.created", Duration::from_secs(secs))
        .await;
    let id = serde_json::from_str::<Value>(&event.data).unwrap()["request"]
        .as_str()
        .unwrap()
        .to_owned();
    approve(alice, &id).await
}

/// Request `id` from `alice`'s inbox, approved as asked; returns what it asked.
async fn approve(alice: &User, id: &str) -> RequestClaims {
    let token = alice.pending(id).await;
    let (_, asked) = peek::<RequestClaims>(&token).unwrap();
    let grant = alice.grant(&token, asked.authorization_details.clone());
    let (status, body) = alice.decide(id, json!({ "grant": grant })).await;
    assert_eq!(status, 200, "{body}");
    asked
}

/// The next call in `alice`'s inbox to confirm (within `secs` seconds),
/// confirmed as the app confirms it; returns the call's body.
async fn confirm_next(alice: &User, inbox: &mut Events, secs: u64) -> Value {
    inbox
        .next_named("confirmation.created", Duration::from_secs(secs))
        .await;
    let (status, listed) = alice
        .send(reqwest::Method::GET, "/v1/confirmations", None)
        .await;
    assert_eq!(status, 200, "{listed}");
    let item = &listed["confirmations"][0];
    let chain: Vec<String> = serde_json::from_value(item["chain"].clone()).unwrap();
    let (_, leaf) = peek::<GrantClaims>(chain.last().unwrap()).unwrap();
    let body = mandate_core::base64url::decode(item["body"].as_str().unwrap()).unwrap();
    let now = mandate_agent::unix_now();
    let token = ConfirmationClaims {
        sub: alice.principal.clone().try_into().unwrap(),
        cnf: leaf.cnf,
        ath: chain_hash(&chain),
        htm: item["method"].as_str().unwrap().into(),
        htu: item["uri"].as_str().unwrap().into(),
        bdh: body_hash(&body),
        iat: now,
        exp: now + 300,
        jti: Jti::random(&mut rand_core::OsRng),
    }
    .sign(&alice.key);
    let path = format!(
        "/v1/confirmations/{}/decision",
        item["id"].as_str().unwrap()
    );
    let (status, answer) = alice
        .send(
            reqwest::Method::POST,
            &path,
            Some(json!({ "confirmation": token })),
        )
        .await;
    assert_eq!(status, 200, "{answer}");
    serde_json::from_slice(&body).unwrap()
}

/// The demo's agent `name`, with the mandate it kept in `dir`.
fn demo_agent(dir: &std::path::Path, name: &str, broker: &str) -> (Agent, Mandate) {
    let key = mandate_keyfile::load(&dir.join(format!("{name}.key"))).unwrap();
    let mandate: Mandate =
        serde_json::from_slice(&std::fs::read(dir.join(format!("{name}.mandate.json"))).unwrap())
            .unwrap();
    let info = AgentInfo {
        name: name.into(),
        publisher: None,
        version: None,
    };
    (Agent::new(key, Broker::new(broker).unwrap(), info), mandate)
}

fn order(amount: &str) -> String {
    json!({ "vendor": "Contoso", "item": "SSD 2TB", "quantity": 10,
            "amount": { "amount": amount, "currency": "USD" } })
    .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_supply_chain_scenario_follows_through_and_its_spending_limit_holds() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let procs::Stack { idp, broker } = procs::stack(d).await;
    let resources = demo_resources(&broker.url).await;
    let alice = User::enrolled(&idp.url, "alice", &broker.url).await;
    let mut inbox = alice.inbox_events().await;

    let demo_dir = d.join("demo");
    let demo = tokio::process::Command::new(binary("mandate-demo"))
        .args(["--broker", &broker.url, "--resources", &resources.url])
        .args([
            "--principal",
            &alice.principal,
            "--scenario",
            "supply-chain",
        ])
        .arg("--dir")
        .arg(&demo_dir)
        .args(["--timeout", "60"])
        .kill_on_drop(true)
        .output();
    let demo = tokio::spawn(demo);

    // Alice approves the planner's request as asked, then the vendor
    // manager's own (it needs email, which the planner does not hold),
    // filed with the planner's chain behind it.
    let asked = approve_next(&alice, &mut inbox, 60).await;
    assert_eq!(asked.agent.name, "Supply Planner");
    assert!(asked.parent_chain.is_empty());
    // The SSD order, 12,000 USD, is above the 10,000 USD the planner asked
    // to confirm: alice confirms that exact order. The RAM order (9,900)
    // needs no confirmation.
    let confirmed = confirm_next(&alice, &mut inbox, 60).await;
    assert_eq!(
        (
            &confirmed["vendor"],
            &confirmed["amount"]["amount"],
            &confirmed["quantity"]
        ),
        (&json!("Northwind"), &json!("12000.00"), &json!(100))
    );
    let asked = approve_next(&alice, &mut inbox, 60).await;
    assert_eq!(asked.agent.name, "Vendor Manager");
    assert_eq!(asked.parent_chain.len(), 1);

    let out = tokio::time::timeout(Duration::from_secs(60), demo)
        .await
        .expect("the demo ends")
        .unwrap()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let steps: Vec<Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let kinds: Vec<&str> = steps.iter().map(|s| s["step"].as_str().unwrap()).collect();
    assert_eq!(
        kinds,
        [
            "asked",
            "approved",
            "receipt",
            "receipt",
            "receipt",
            "confirming",
            "receipt",
            "refused",
            "receipt",
            "asked",
            "approved",
            "receipt",
            "receipt",
            "done"
        ]
    );
    let refused = &steps[7];
    assert_eq!(
        (refused["status"].as_u64(), refused["code"].as_str()),
        (Some(403), Some("limit.exceeded"))
    );
    assert!(
        steps[4]["summary"]
            .as_str()
            .unwrap()
            .starts_with("Checked that")
    );
    assert_eq!(steps[9]["via"], "supply-planner");
    assert!(
        steps[11]["summary"]
            .as_str()
            .unwrap()
            .starts_with("Emailed Northwind")
    );
    assert!(
        steps[6]["summary"]
            .as_str()
            .unwrap()
            .starts_with("Ordered 100 SSD 2TB from Northwind for 12000.00 USD (PO-")
    );

    // The vendor manager's mandate: 20,000 USD, of which 12,000 is spent.
    let (agent, mandate) = demo_agent(&demo_dir, "vendor-manager", &broker.url);
    let url = format!("{}/procurement/orders", resources.url);

    // A malformed order: the verifier cannot read its amount, so it is
    // refused before the handler, and nothing is charged.
    for body in [
        "not json",
        r#"{"vendor":"Contoso"}"#,
        &order("12.3456789"),
        &order("-5"),
    ] {
        let (status, answer) = post(&agent, &mandate, &url, body).await;
        assert_eq!(
            (status, answer["code"].as_str()),
            (400, Some("call.unreadable")),
            "{body}: {answer}"
        );
    }
    // Another currency than the limit's, or more than the limit in one
    // order, is outside the scope: the verifier refuses it.
    let eur = order("1.00").replace("USD", "EUR");
    for body in [&eur, &order("20000.01")] {
        let (status, answer) = post(&agent, &mandate, &url, body).await;
        assert_eq!(
            (status, answer["code"].as_str()),
            (403, Some("call.out_of_scope")),
            "{body}: {answer}"
        );
    }

    // 8,000 left: of two orders of 5,000 sent at once, one is placed.
    let five = order("5000");
    let (a, b) = tokio::join!(
        post(&agent, &mandate, &url, &five),
        post(&agent, &mandate, &url, &five),
    );
    let mut statuses = [a.0, b.0];
    statuses.sort_unstable();
    assert_eq!(statuses, [201, 403], "{a:?} {b:?}");
    let placed = if a.0 == 201 { &a.1 } else { &b.1 };
    assert_eq!(placed["grant_spent"], "17000.00");
    // What is left is still there to spend, to the cent.
    let (status, answer) = post(&agent, &mandate, &url, &order("3000.00")).await;
    assert_eq!(status, 201, "{answer}");
    assert_eq!(answer["grant_spent"], "20000.00");
    let (status, answer) = post(&agent, &mandate, &url, &order("0.01")).await;
    assert_eq!(
        (status, answer["code"].as_str()),
        (403, Some("limit.exceeded"))
    );

    // The market analyst holds no orders scope; a method no route names is
    // refused to everyone.
    let (analyst, analyst_mandate) = demo_agent(&demo_dir, "market-analyst", &broker.url);
    let (status, answer) = post(&analyst, &analyst_mandate, &url, &order("1.00")).await;
    assert_eq!(
        (status, answer["code"].as_str()),
        (403, Some("call.out_of_scope"))
    );
    let (status, answer) = send(&agent, &mandate, reqwest::Method::DELETE, &url, "").await;
    assert_eq!(
        (status, answer["code"].as_str()),
        (403, Some("call.no_need"))
    );
}

/// The next progress line the demo prints, within `secs` seconds.
async fn next_line(
    lines: &mut tokio::io::Lines<tokio::io::BufReader<tokio::process::ChildStdout>>,
    secs: u64,
) -> Value {
    let line = tokio::time::timeout(Duration::from_secs(secs), lines.next_line())
        .await
        .expect("a progress line in time")
        .unwrap()
        .expect("the demo still running");
    serde_json::from_str(&line).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_demo_agent_asks_before_its_user_signs_in_and_the_request_waits_for_her() {
    use tokio::io::AsyncBufReadExt as _;

    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let idp = procs::idp().await;
    let db = format!("sqlite://{}/broker.db", d.display());
    let broker = procs::broker(&db, &idp.url, &d.join("broker"), &[]).await;
    let resources = demo_resources(&broker.url).await;
    let principal = format!("{}#alice", idp.url);
    let mut demo = tokio::process::Command::new(binary("mandate-demo"))
        .args(["--broker", &broker.url, "--resources", &resources.url])
        .args(["--principal", &principal, "--scenario", "k8s"])
        .arg("--dir")
        .arg(d.join("demo"))
        .args(["--timeout", "60"])
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = tokio::io::BufReader::new(demo.stdout.take().unwrap()).lines();

    // Alice has not signed in, and the broker does not say so: the request
    // is filed like any other, and waits.
    let first = next_line(&mut lines, 15).await;
    assert_eq!(first["step"].as_str(), Some("asked"), "{first}");

    // She signs in; the request filed before is in her inbox.
    let alice = User::enrolled(&idp.url, "alice", &broker.url).await;
    let (status, body) = alice.send(reqwest::Method::GET, "/v1/inbox", None).await;
    assert_eq!(status, 200, "{body}");
    let id = body["requests"][0]["id"]
        .as_str()
        .expect("one request")
        .to_owned();
    approve(&alice, &id).await;
    loop {
        let line = next_line(&mut lines, 30).await;
        if line["step"] == "done" {
            break;
        }
        assert_ne!(line["step"], "refused", "{line}");
    }
    let status = tokio::time::timeout(Duration::from_secs(10), demo.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(status.success());
}
