//! The whole journey, on SQLite and on Postgres: an agent asks, the user
//! approves a narrower scope, the agent sub-delegates, the sub-agent calls
//! a resource server, the user revokes, the next call fails, and the
//! receipts come back.

use std::time::{Duration, Instant};

use mandate_agent::{
    Action, Agent, AgentError, AgentInfo, Ask, Broker, Delegation, Mandate, Outcome, Report,
};
use mandate_core::TokenId;
use serde_json::{Value, json};

use crate::user::User;
use mandate_e2e::procs;

pub fn agent(broker: &str, name: &str, dir: &std::path::Path) -> Agent {
    let key = mandate_keyfile::create(&dir.join(format!("{name}.key"))).unwrap();
    Agent::new(
        key,
        Broker::new(broker).unwrap(),
        AgentInfo {
            name: name.into(),
            publisher: Some("Mandate tests".into()),
            version: None,
        },
    )
}

pub use mandate_e2e::flood::files;

/// One call to the resource server under `mandate`; the status and body.
pub async fn call(agent: &Agent, mandate: &Mandate, url: &str) -> (u16, Value) {
    let mut req = mandate_agent::client::http_client()
        .unwrap()
        .get(url)
        .timeout(Duration::from_secs(10));
    for (name, value) in agent.present(mandate, "GET", url).unwrap() {
        req = req.header(name, value);
    }
    let res = req.send().await.unwrap();
    (
        res.status().as_u16(),
        res.json().await.unwrap_or(Value::Null),
    )
}

async fn journey(database: &str) {
    let dir = tempfile::tempdir().unwrap();
    let idp = procs::idp().await;
    let broker = procs::broker(database, &idp.url, &dir.path().join("broker"), &[]).await;
    let files_server = procs::resource_server(&broker.url, 5).await;
    let alice = User::enrolled(&idp.url, "alice", &broker.url).await;
    let mut inbox = alice.inbox_events().await;

    // 1. An agent requests a delegation.
    let planner = agent(&broker.url, "planner", dir.path());
    let ask = Ask {
        principal: alice.principal.clone(),
        scopes: vec![files(&["read", "write"], "https://files.example/reports/")],
        purpose: "Summarize the Q3 reports and file the summary".into(),
        intent: Some("Summarize Q3 for me".into()),
        lifetime: 3600,
        max_depth: 1,
        expires_in: 600,
    };
    let pending = planner.request(&ask).await.unwrap();

    // 2. It appears on the user's SSE inbox.
    let event = inbox
        .next_named("request.created", Duration::from_secs(10))
        .await;
    let data: Value = serde_json::from_str(&event.data).unwrap();
    assert_eq!(data["request"], pending.id.to_string());
    let request = alice.pending(&pending.id.to_string()).await;

    // 3. The user approves a narrower scope, signed by her enrolled key.
    let narrowed = vec![files(&["read"], "https://files.example/reports/q3/")];
    let grant = alice.grant(&request, narrowed.clone());
    let (status, body) = alice
        .decide(&pending.id.to_string(), json!({ "grant": grant }))
        .await;
    assert_eq!(
        (status, body["status"].as_str()),
        (200, Some("approved")),
        "{body}"
    );

    // 4. The agent receives the grant.
    let mandate = planner
        .wait(&pending, Duration::from_secs(30))
        .await
        .unwrap();
    assert_eq!(mandate.chain, vec![grant.clone()]);
    assert_eq!(mandate.leaf().unwrap().authorization_details, narrowed);

    // 5. The agent sub-delegates to a sub-agent, narrower still.
    let reader = agent(&broker.url, "reader", dir.path());
    let sub = planner
        .delegate(
            &mandate,
            &reader.id(),
            &Delegation {
                scopes: Some(vec![files(&["read"], "https://files.example/reports/q3/")]),
                purpose: "Read the Q3 reports".into(),
                intent: Some("Fetch every Q3 report".into()),
                lifetime: 600,
                max_depth: 0,
            },
        )
        .unwrap();
    assert!(matches!(
        reader.delegate(
            &sub,
            &planner.id(),
            &Delegation {
                scopes: None,
                purpose: "loop back".into(),
                intent: None,
                lifetime: 60,
                max_depth: 0,
            }
        ),
        Err(AgentError::DepthExhausted)
    ));

    // 6. The sub-agent calls the resource server, and the call is accepted.
    let url = format!("{}/files/reports/q3/revenue.txt", files_server.url);
    let (status, body) = call(&reader, &sub, &url).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["agent"], reader.id().to_string());
    assert_eq!(body["for"], alice.principal);
    assert_eq!(body["chain_length"], 2);
    // Without a mandate, or with part of one, it is refused.
    let bare = mandate_agent::client::http_client()
        .unwrap()
        .get(&url)
        .send()
        .await
        .unwrap();
    assert_eq!(bare.status(), 401);
    let body: Value = bare.json().await.unwrap();
    assert_eq!(body["code"], "mandate.missing");
    let mut partial = mandate_agent::client::http_client().unwrap().get(&url);
    for (name, value) in reader.present(&sub, "GET", &url).unwrap() {
        if name != mandate_agent::KEYS_HEADER {
            partial = partial.header(name, value);
        }
    }
    let partial = partial.send().await.unwrap();
    assert_eq!(partial.status(), 401);
    let body: Value = partial.json().await.unwrap();
    assert_eq!(body["code"], "mandate.missing");
    // Outside the delegated scope, and by the wrong agent, it is refused.
    let (status, body) = call(
        &reader,
        &sub,
        &format!("{}/files/reports/q4/revenue.txt", files_server.url),
    )
    .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (403, Some("call.out_of_scope"))
    );
    assert!(
        planner.present(&sub, "GET", &url).is_err(),
        "not the planner's mandate"
    );

    // The planner revokes a grant it signed: a second sub-agent's.
    let scratch = agent(&broker.url, "scratch", dir.path());
    let scratch_mandate = planner
        .delegate(
            &mandate,
            &scratch.id(),
            &Delegation {
                scopes: None,
                purpose: "Scratch work".into(),
                intent: None,
                lifetime: 600,
                max_depth: 0,
            },
        )
        .unwrap();
    assert_eq!(call(&scratch, &scratch_mandate, &url).await.0, 200);
    // Its grantee may not revoke it; only an issuer at or above may.
    let own = mandate_core::token::RevocationClaims {
        sub: alice.principal.clone().try_into().unwrap(),
        revokes: vec![TokenId::of(scratch_mandate.chain.last().unwrap())],
        reason: None,
        iat: mandate_agent::unix_now(),
        jti: mandate_core::token::Jti::random(&mut rand_core::OsRng),
    };
    let own = mandate_core::Claims::sign(
        &own,
        &mandate_keyfile::load(&dir.path().join("scratch.key")).unwrap(),
    );
    let mut keys = scratch_mandate.keys.clone();
    keys.push(planner.public_key().to_jwk());
    keys.push(scratch.public_key().to_jwk());
    let refused = planner
        .broker()
        .revoke(&own, &scratch_mandate.chain, &keys)
        .await
        .unwrap_err();
    assert_eq!(refused.code(), "revocation.not_authorized");
    assert!(
        scratch.revoke(&scratch_mandate, None).await.is_err(),
        "the SDK knows it too"
    );
    planner
        .revoke(&scratch_mandate, Some("done"))
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(1);
    loop {
        let (status, body) = call(&scratch, &scratch_mandate, &url).await;
        if status != 200 {
            assert_eq!(
                (status, body["code"].as_str()),
                (403, Some("chain.revoked"))
            );
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the scratch grant still works 1 s after its revocation"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        call(&reader, &sub, &url).await.0,
        200,
        "the sibling is untouched"
    );
    let (_, grants) = alice.send(reqwest::Method::GET, "/v1/grants", None).await;
    assert!(
        grants["grants"].as_array().unwrap().len() >= 2,
        "the user sees the sub-grant the planner revoked: {grants}"
    );

    // Receipts: the planner's decision, then the reader's action it caused.
    let delegated = planner
        .report(
            &mandate,
            &Report {
                action: Action {
                    kind: "delegate".into(),
                    target: reader.id().to_string(),
                    summary: "Asked the reader to fetch the Q3 reports".into(),
                },
                outcome: Outcome::Succeeded,
                rationale: Some("Reading is a separate, narrower task".into()),
                cause: Some(pending.id),
            },
        )
        .await
        .unwrap();
    let read = reader
        .report(
            &sub,
            &Report {
                action: Action {
                    kind: "files.read".into(),
                    target: "https://files.example/reports/q3/revenue.txt".into(),
                    summary: "Read the Q3 revenue report".into(),
                },
                outcome: Outcome::Succeeded,
                rationale: None,
                cause: Some(delegated),
            },
        )
        .await
        .unwrap();

    // 7. The user revokes the root grant.
    let root = TokenId::of(&grant);
    let (status, body) = alice.revoke(&[root]).await;
    assert_eq!(status, 201, "{body}");
    let revoked_at = Instant::now();

    // 8. The sub-agent's next call is rejected within 1 s.
    let deadline = revoked_at + Duration::from_secs(1);
    let refusal = loop {
        let (status, body) = call(&reader, &sub, &url).await;
        if status != 200 {
            break (status, body);
        }
        assert!(
            Instant::now() < deadline,
            "calls were still accepted 1 s after the revocation"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let took = revoked_at.elapsed();
    assert_eq!(
        (refusal.0, refusal.1["code"].as_str()),
        (403, Some("chain.revoked"))
    );
    assert!(took < Duration::from_secs(1));
    eprintln!("revocation reached the resource server in {took:?}");

    // 9. The agents' receipts come back through GET /v1/receipts.
    let (status, body) = alice
        .send(reqwest::Method::GET, "/v1/receipts?since=0", None)
        .await;
    assert_eq!(status, 200, "{body}");
    let ids: Vec<&str> = body["receipts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, vec![delegated.to_string(), read.to_string()]);

    for p in [files_server, broker, idp] {
        p.kill().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_journey_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    journey(&format!("sqlite://{}/broker.db", dir.path().display())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_journey_on_postgres() {
    if let Some(url) = procs::postgres("journey").await {
        journey(&url).await;
    }
}

/// A resource server refuses every call once it has heard nothing from
/// the broker for longer than its bound: it fails closed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resource_server_cut_off_from_its_broker_fails_closed() {
    let dir = tempfile::tempdir().unwrap();
    let procs::Stack { idp, broker } = procs::stack(dir.path()).await;
    let files_server = procs::resource_server(&broker.url, 3).await;
    let alice = User::enrolled(&idp.url, "alice", &broker.url).await;
    let planner = agent(&broker.url, "planner", dir.path());
    let mandate = approved(&alice, &planner).await;
    let url = format!("{}/files/reports/q3/a.txt", files_server.url);
    assert_eq!(call(&planner, &mandate, &url).await.0, 200);

    broker.kill().await;
    let stopped = Instant::now();
    let refusal = loop {
        let (status, body) = call(&planner, &mandate, &url).await;
        if status != 200 {
            break (status, body);
        }
        assert!(
            stopped.elapsed() < Duration::from_secs(20),
            "still accepting calls 20 s after the broker went away"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(
        (refusal.0, refusal.1["code"].as_str()),
        (503, Some("revocation.stale"))
    );
    // The bound is 3 s and the last keep-alive came at most 1 s before the
    // kill, so the refusals start 2 to 3 s after it; not at once.
    assert!(
        stopped.elapsed() >= Duration::from_secs(1),
        "refused before the bound could have passed: {:?}",
        stopped.elapsed()
    );
    files_server.kill().await;
    idp.kill().await;
}

/// Files a request for `agent` and approves it as asked.
pub async fn approved(user: &User, agent: &Agent) -> Mandate {
    let ask = Ask {
        principal: user.principal.clone(),
        scopes: vec![files(&["read"], "https://files.example/reports/")],
        purpose: "Read the reports".into(),
        intent: None,
        lifetime: 3600,
        max_depth: 1,
        expires_in: 600,
    };
    user.approve(agent, &ask).await
}

/// An agent whose mandate allows no further hop puts its sub-agent in
/// front of the user: the sub-agent's request carries the parent chain and
/// the parent's endorsement, the user sees the chain behind it, and an
/// approval is the user's own grant to the sub-agent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sub_agent_asks_the_user_when_its_parent_cannot_delegate() {
    let dir = tempfile::tempdir().unwrap();
    let procs::Stack { idp, broker } = procs::stack(dir.path()).await;
    let files_server = procs::resource_server(&broker.url, 5).await;
    let alice = User::enrolled(&idp.url, "alice", &broker.url).await;
    let planner = agent(&broker.url, "planner", dir.path());
    let reader = agent(&broker.url, "reader", dir.path());

    // The planner holds a mandate with no depth left.
    let ask = Ask {
        principal: alice.principal.clone(),
        scopes: vec![files(&["read"], "https://files.example/reports/")],
        purpose: "Summarize the reports".into(),
        intent: Some("Summarize the reports".into()),
        lifetime: 3600,
        max_depth: 0,
        expires_in: 600,
    };
    let pending = planner.request(&ask).await.unwrap();
    let request = alice.pending(&pending.id.to_string()).await;
    let grant = alice.grant(&request, ask.scopes.clone());
    assert_eq!(
        alice
            .decide(&pending.id.to_string(), json!({ "grant": grant }))
            .await
            .0,
        200
    );
    let mandate = planner
        .wait(&pending, Duration::from_secs(10))
        .await
        .unwrap();
    let narrower = Delegation {
        scopes: None,
        purpose: "Read the Q3 reports".into(),
        intent: None,
        lifetime: 600,
        max_depth: 0,
    };
    assert!(matches!(
        planner.delegate(&mandate, &reader.id(), &narrower),
        Err(AgentError::DepthExhausted)
    ));

    // So the reader asks the user, under the planner's chain.
    let for_reader = Ask {
        scopes: vec![files(&["read"], "https://files.example/reports/q3/")],
        purpose: "Read the Q3 reports for the planner".into(),
        intent: Some("The planner asked me to read Q3".into()),
        max_depth: 0,
        lifetime: 600,
        ..ask.clone()
    };

    // Hostile variants first: each refused with a stable code, none stored.
    let sub = reader.sub_request(&for_reader, &mandate).unwrap();
    let b = planner.broker();
    let refused =
        |r: Result<mandate_agent::client::Submitted, AgentError>| r.unwrap_err().code().to_owned();
    // No endorsement at all.
    let raw = mandate_agent::client::http_client()
        .unwrap()
        .post(format!("{}/v1/requests", broker.url))
        .json(&json!({ "request": sub, "parent_chain": mandate.chain, "keys": mandate.keys }))
        .send()
        .await
        .unwrap();
    assert_eq!(raw.status(), 401);
    let body: Value = raw.json().await.unwrap();
    assert_eq!(body["code"], "request.endorsement_missing");
    // Endorsed by the sub-agent itself, not by the chain's leaf.
    let mut keys = mandate.keys.clone();
    keys.push(planner.public_key().to_jwk());
    let self_endorsed = reader.endorse(&mandate, &sub);
    assert!(
        self_endorsed.is_err(),
        "the SDK refuses to endorse another's chain"
    );
    let forged = {
        // Hand-made: the reader signs the endorsement proof anyway.
        let covered: Vec<&str> = mandate
            .chain
            .iter()
            .map(String::as_str)
            .chain([sub.as_str()])
            .collect();
        mandate_core::token::PopClaims {
            htm: "POST".into(),
            htu: format!("{}/v1/requests", broker.url),
            iat: mandate_agent::unix_now(),
            jti: mandate_core::token::Jti::random(&mut rand_core::OsRng),
            ath: mandate_core::token::chain_hash(&covered),
        }
        .sign(&mandate_keyfile::load(&dir.path().join("reader.key")).unwrap())
    };
    use mandate_core::Claims as _;
    assert_eq!(
        refused(b.submit_sub(&sub, &mandate.chain, &keys, &forged).await),
        "pop.wrong_key"
    );
    // An endorsement of another request.
    let other = reader.sub_request(&for_reader, &mandate).unwrap();
    let endorsement = planner.endorse(&mandate, &other).unwrap();
    assert_eq!(
        refused(
            b.submit_sub(&sub, &mandate.chain, &keys, &endorsement)
                .await
        ),
        "pop.ath_mismatch"
    );
    // A parent chain other than the one the request names.
    let endorsement = planner.endorse(&mandate, &sub).unwrap();
    assert_eq!(
        refused(b.submit_sub(&sub, &[], &keys, &endorsement).await),
        "request.parent_chain_mismatch"
    );
    // A plain request dressed up with a parent chain.
    let plain = reader.sub_request(
        &for_reader,
        &Mandate {
            chain: vec![],
            ..mandate.clone()
        },
    );
    assert!(plain.is_err(), "no chain, no sub-request");
    let (_, inbox) = alice.send(reqwest::Method::GET, "/v1/inbox", None).await;
    assert_eq!(inbox["requests"], json!([]), "nothing was filed");

    // The real thing: the planner endorses, the reader files.
    let escalated = planner
        .escalate(&mandate, &reader, &for_reader)
        .await
        .unwrap();
    let (_, inbox) = alice.send(reqwest::Method::GET, "/v1/inbox", None).await;
    let item = &inbox["requests"][0];
    assert_eq!(item["id"], escalated.id.to_string());
    assert_eq!(
        item["parent_chain"],
        json!(mandate.chain),
        "the user sees the chain behind it"
    );

    // The user approves: her own grant, to the reader.
    let grant = alice.grant(item["request"].as_str().unwrap(), for_reader.scopes.clone());
    let (status, body) = alice
        .decide(&escalated.id.to_string(), json!({ "grant": grant }))
        .await;
    assert_eq!(status, 200, "{body}");
    let reader_mandate = reader
        .wait(&escalated, Duration::from_secs(10))
        .await
        .unwrap();
    assert_eq!(reader_mandate.chain, vec![grant]);
    let url = format!("{}/files/reports/q3/revenue.txt", files_server.url);
    let (status, body) = call(&reader, &reader_mandate, &url).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["agent"], reader.id().to_string());

    for p in [files_server, broker, idp] {
        p.kill().await;
    }
}
