//! The approval tiers across real processes: the OIDC provider, the
//! broker, the example resource server and agents using the SDK, with the
//! user's decisions signed as the app signs them (`mandate_client`'s
//! decision functions).
//!
//! - "Just this once": the grant serves one call; the second is refused.
//! - "For this task": a lease of seconds is refused once it ends.
//! - A confirmation of one exact call: refused for a changed body, when
//!   replayed, and when another key signed it.
//! - The cooldown after a denial, and "deny always".

use std::time::Duration;

use mandate_agent::{Agent, Ask, Mandate};
use mandate_client::decision::{Narrowing, Tier, block_for, denial_for, grant_for};
use mandate_core::TokenId;
use mandate_core::scope::Confirm;
use mandate_e2e::procs::{self, Proc};
use rand_core::OsRng;
use serde_json::{Value, json};

use crate::journey::{agent, files};
use crate::user::User;

struct Stage {
    _idp: Proc,
    broker: Proc,
    files: Proc,
    alice: User,
    dir: tempfile::TempDir,
}

/// A provider, a broker (cooldown `cooldown` s), and a file server that
/// allows clocks to disagree by 1 s only, so that a short lease ends
/// within the test.
async fn stage(cooldown: u64) -> Stage {
    let dir = tempfile::tempdir().unwrap();
    let idp = procs::idp().await;
    let cooldown = cooldown.to_string();
    let database = format!("sqlite://{}/broker.db", dir.path().display());
    let broker = procs::broker(
        &database,
        &idp.url,
        &dir.path().join("broker"),
        &["--denial-cooldown", &cooldown],
    )
    .await;
    let mut cmd =
        procs::resource_server_command(&procs::binary("mandate-resource-example"), &broker.url, 5);
    cmd.args(["--clock-skew", "1"]);
    let files = Proc::start(
        "mandate-resource-example",
        cmd,
        procs::RESOURCE_SERVER_PREFIX,
    )
    .await;
    let alice = User::enrolled(&idp.url, "alice", &broker.url).await;
    Stage {
        _idp: idp,
        broker,
        files,
        alice,
        dir,
    }
}

fn ask(alice: &User, actions: &[&str], lifetime: u32) -> Ask {
    Ask {
        principal: alice.principal.clone(),
        scopes: vec![files(actions, "https://files.example/reports/")],
        purpose: "Tidy the reports".into(),
        intent: None,
        lifetime,
        max_depth: 0,
        expires_in: 600,
    }
}

/// Alice approves `agent`'s request for `ask`, for `tier`, with `edit`
/// applied to the scopes; the agent's mandate.
async fn approved(
    s: &Stage,
    agent: &Agent,
    ask: &Ask,
    tier: Tier,
    edit: impl Fn(&mut Vec<mandate_core::AuthorizationDetail>),
) -> Mandate {
    let pending = agent.request(ask).await.unwrap();
    let request = s.alice.pending(&pending.id.to_string()).await;
    let mut scopes = ask.scopes.clone();
    edit(&mut scopes);
    let grant = grant_for(
        &request,
        &s.alice.principal.clone().try_into().unwrap(),
        &s.alice.key,
        &Narrowing {
            scopes: Some(scopes),
            tier,
            ..Narrowing::default()
        },
        mandate_agent::unix_now(),
        &mut OsRng,
    )
    .unwrap();
    let (status, body) = s
        .alice
        .decide(&pending.id.to_string(), json!({ "grant": grant }))
        .await;
    assert_eq!(status, 200, "{body}");
    agent.wait(&pending, Duration::from_secs(10)).await.unwrap()
}

/// One call under `mandate`, with a confirmation when given; the status
/// and the body.
async fn call(
    agent: &Agent,
    mandate: &Mandate,
    method: reqwest::Method,
    url: &str,
    body: Option<&str>,
    confirmation: Option<&str>,
) -> (u16, Value) {
    let mut req = mandate_agent::client::http_client()
        .unwrap()
        .request(method.clone(), url)
        .timeout(Duration::from_secs(10));
    for (name, value) in agent.present(mandate, method.as_str(), url).unwrap() {
        req = req.header(name, value);
    }
    if let Some(token) = confirmation {
        req = req.header(mandate_agent::CONFIRMATION_HEADER, token);
    }
    if let Some(body) = body {
        req = req.body(body.to_owned());
    }
    let res = req.send().await.unwrap();
    (
        res.status().as_u16(),
        res.json().await.unwrap_or(Value::Null),
    )
}

#[tokio::test]
async fn a_grant_for_just_this_once_serves_one_call() {
    let s = stage(600).await;
    let bot = agent(&s.broker.url, "once", s.dir.path());
    let mandate = approved(
        &s,
        &bot,
        &ask(&s.alice, &["read"], 3600),
        Tier::Once,
        |_| {},
    )
    .await;
    let leaf = mandate.leaf().unwrap();
    assert_eq!(leaf.authorization_details[0].limits.max_calls, Some(1));
    assert!(leaf.exp - leaf.iat <= 600, "ten minutes at most");
    let url = format!("{}/files/reports/q3.txt", s.files.url);
    let (status, body) = call(&bot, &mandate, reqwest::Method::GET, &url, None, None).await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = call(&bot, &mandate, reqwest::Method::GET, &url, None, None).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (403, Some("limit.exceeded")),
        "{body}"
    );
}

#[tokio::test]
async fn a_lease_is_refused_once_it_ends() {
    let s = stage(600).await;
    let bot = agent(&s.broker.url, "lease", s.dir.path());
    // The agent asks for 3 s (a lease's minutes, scaled down), and the
    // server allows clocks to disagree by 1 s.
    let mandate = approved(
        &s,
        &bot,
        &ask(&s.alice, &["read"], 3),
        Tier::Standard,
        |_| {},
    )
    .await;
    let url = format!("{}/files/reports/q3.txt", s.files.url);
    let (status, body) = call(&bot, &mandate, reqwest::Method::GET, &url, None, None).await;
    assert_eq!(status, 200, "{body}");
    let exp = mandate.leaf().unwrap().exp;
    // Past `exp` plus the skew, by the second hand.
    while mandate_agent::unix_now() < exp + 2 {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let (status, body) = call(&bot, &mandate, reqwest::Method::GET, &url, None, None).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (401, Some("time.expired")),
        "{body}"
    );
    // A lease of minutes is shortened to them, never lengthened.
    let lease = approved(
        &s,
        &bot,
        &ask(&s.alice, &["read"], 3600),
        Tier::Lease { minutes: 15 },
        |_| {},
    )
    .await;
    let leaf = lease.leaf().unwrap();
    assert_eq!(leaf.exp - leaf.iat, 15 * 60);
}

#[tokio::test]
async fn a_confirmed_write_needs_the_exact_body_once_and_the_users_key() {
    let s = stage(600).await;
    let bot = agent(&s.broker.url, "writer", s.dir.path());
    let mandate = approved(
        &s,
        &bot,
        &ask(&s.alice, &["write"], 3600),
        Tier::Standard,
        |scopes| scopes[0].limits.confirm = Some(Confirm { above: None }),
    )
    .await;
    let url = format!("{}/files/reports/q3.txt", s.files.url);
    let put = reqwest::Method::PUT;
    let body = "Q3 revenue: 4.2M";
    // Unconfirmed, it is refused.
    let (status, answer) = call(&bot, &mandate, put.clone(), &url, Some(body), None).await;
    assert_eq!(
        (status, answer["code"].as_str()),
        (403, Some("confirm.required"))
    );
    let token = s
        .alice
        .confirmation(&s.alice.key, &bot, &mandate, "PUT", &url, body);
    // One byte changed, it is refused.
    let (status, answer) = call(
        &bot,
        &mandate,
        put.clone(),
        &url,
        Some("Q3 revenue: 4.3M"),
        Some(&token),
    )
    .await;
    assert_eq!(
        (status, answer["code"].as_str()),
        (403, Some("confirm.body_mismatch"))
    );
    // The exact body goes through, once.
    let (status, answer) = call(&bot, &mandate, put.clone(), &url, Some(body), Some(&token)).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["written"], true);
    let (status, answer) = call(&bot, &mandate, put.clone(), &url, Some(body), Some(&token)).await;
    assert_eq!(
        (status, answer["code"].as_str()),
        (403, Some("confirm.replayed"))
    );
    // Signed by another key: the agent's own, or Bob's (enrolled, but
    // bound to Bob), it is refused.
    let bob = User::enrolled(
        s.alice.principal.split('#').next().unwrap(),
        "bob",
        &s.broker.url,
    )
    .await;
    let agent_key = mandate_keyfile::load(&s.dir.path().join("writer.key")).unwrap();
    for signer in [&agent_key, &bob.key] {
        let token = s
            .alice
            .confirmation(signer, &bot, &mandate, "PUT", &url, body);
        let (status, answer) =
            call(&bot, &mandate, put.clone(), &url, Some(body), Some(&token)).await;
        assert_eq!(status, 401, "{answer}");
        assert!(
            matches!(
                answer["code"].as_str(),
                Some("signer.not_bound" | "key.unknown")
            ),
            "{answer}"
        );
    }
}

#[tokio::test]
async fn a_denied_request_waits_out_the_cooldown_and_a_blocked_agent_is_refused() {
    let s = stage(600).await;
    let principal: mandate_core::Principal = s.alice.principal.clone().try_into().unwrap();
    let bot = agent(&s.broker.url, "pushy", s.dir.path());
    let asked = ask(&s.alice, &["read", "write"], 3600);
    let pending = bot.request(&asked).await.unwrap();
    let denial = denial_for(
        pending.id,
        &principal,
        &s.alice.key,
        Some("not now"),
        mandate_agent::unix_now(),
        &mut OsRng,
    );
    let (status, body) = s
        .alice
        .decide(&pending.id.to_string(), json!({ "denial": denial }))
        .await;
    assert_eq!(status, 200, "{body}");
    // The same ask again: refused, with when to ask again.
    let e = bot.request(&asked).await.unwrap_err();
    assert_eq!(e.code(), "request.cooldown");
    let mandate_agent::AgentError::Broker(refusal) = &e else {
        panic!("a broker refusal: {e}");
    };
    let wait = refusal.retry_after().expect("a retry time");
    assert!(
        wait > Duration::ZERO && wait <= Duration::from_secs(600),
        "{wait:?}"
    );
    // Asking for less reaches the user.
    let less = bot.request(&ask(&s.alice, &["read"], 3600)).await.unwrap();
    let (_, inbox) = s.alice.send(reqwest::Method::GET, "/v1/inbox", None).await;
    let item = inbox["requests"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["id"] == less.id.to_string())
        .cloned()
        .expect("in the inbox");
    assert!(item["denied_before"].is_i64(), "marked: {item}");

    // Deny always: its next request is refused at once.
    let policy = block_for(
        &bot.public_key().thumbprint(),
        &principal,
        &s.alice.key,
        Some("pushy"),
        mandate_agent::unix_now(),
        &mut OsRng,
    );
    let (status, body) = s
        .alice
        .send(
            reqwest::Method::POST,
            "/v1/blocks",
            Some(json!({ "policy": policy })),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let e = bot
        .request(&ask(&s.alice, &["list"], 60))
        .await
        .unwrap_err();
    assert_eq!(e.code(), "request.blocked");
    let (_, blocks) = s.alice.send(reqwest::Method::GET, "/v1/blocks", None).await;
    assert_eq!(blocks["blocks"][0]["refusals"], 1, "{blocks}");
    assert_eq!(
        blocks["blocks"][0]["policy_id"],
        TokenId::of(&policy).to_string()
    );
}

#[tokio::test]
async fn an_agent_asks_the_broker_for_a_confirmation_and_the_user_answers() {
    let s = stage(600).await;
    let bot = agent(&s.broker.url, "asker", s.dir.path());
    let mandate = approved(
        &s,
        &bot,
        &ask(&s.alice, &["write"], 3600),
        Tier::Standard,
        |scopes| scopes[0].limits.confirm = Some(Confirm { above: None }),
    )
    .await;
    let url = format!("{}/files/reports/q3.txt?v=2", s.files.url);
    let body = "Q3 revenue: 4.2M";
    let pending = bot
        .ask_confirmation(
            &mandate,
            "PUT",
            &url,
            body.as_bytes(),
            "Write the Q3 figure",
        )
        .await
        .unwrap();
    // The user reads it from the broker, with the chain and the body.
    let (status, listed) = s
        .alice
        .send(reqwest::Method::GET, "/v1/confirmations", None)
        .await;
    assert_eq!(status, 200, "{listed}");
    let item = &listed["confirmations"][0];
    assert_eq!(
        (item["method"].as_str(), item["uri"].as_str()),
        (Some("PUT"), Some(url.as_str()))
    );
    assert_eq!(
        mandate_core::base64url::decode(item["body"].as_str().unwrap()).unwrap(),
        body.as_bytes()
    );
    let path = format!("/v1/confirmations/{}/decision", pending.id);
    // A confirmation of another body is refused, and nothing is decided.
    let other = s.alice.confirmation(
        &s.alice.key,
        &bot,
        &mandate,
        "PUT",
        &url,
        "Q3 revenue: 9.9M",
    );
    let (status, answer) = s
        .alice
        .send(
            reqwest::Method::POST,
            &path,
            Some(json!({ "confirmation": other })),
        )
        .await;
    assert_eq!(
        (status, answer["code"].as_str()),
        (400, Some("confirm.body_mismatch")),
        "{answer}"
    );
    let token = s
        .alice
        .confirmation(&s.alice.key, &bot, &mandate, "PUT", &url, body);
    let (status, answer) = s
        .alice
        .send(
            reqwest::Method::POST,
            &path,
            Some(json!({ "confirmation": token })),
        )
        .await;
    assert_eq!(
        (status, answer["status"].as_str()),
        (200, Some("confirmed")),
        "{answer}"
    );
    let (status, answer) = s
        .alice
        .send(
            reqwest::Method::POST,
            &path,
            Some(json!({ "reason": "changed my mind" })),
        )
        .await;
    assert_eq!(
        (status, answer["code"].as_str()),
        (409, Some("confirmation.already_decided"))
    );
    // The agent collects it, and the call goes through once.
    let got = bot
        .wait_confirmation(&pending, Duration::from_secs(10))
        .await
        .unwrap();
    assert_eq!(got, token);
    let (status, answer) = call(
        &bot,
        &mandate,
        reqwest::Method::PUT,
        &url,
        Some(body),
        Some(&got),
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    // A refused call tells the agent why.
    let refused = bot
        .ask_confirmation(&mandate, "PUT", &url, b"anything", "Write something")
        .await
        .unwrap();
    let (status, _) = s
        .alice
        .send(
            reqwest::Method::POST,
            &format!("/v1/confirmations/{}/decision", refused.id),
            Some(json!({ "reason": "not that" })),
        )
        .await;
    assert_eq!(status, 200);
    match bot
        .wait_confirmation(&refused, Duration::from_secs(10))
        .await
    {
        Err(mandate_agent::AgentError::Denied(Some(reason))) => assert_eq!(reason, "not that"),
        other => panic!("a refusal with its reason, got {other:?}"),
    }
    // Another agent cannot file a call under this chain.
    let thief = agent(&s.broker.url, "thief", s.dir.path());
    assert!(
        thief
            .ask_confirmation(&mandate, "PUT", &url, b"x", "steal")
            .await
            .is_err(),
        "not the thief's mandate"
    );
}
