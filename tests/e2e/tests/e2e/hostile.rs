//! Hostile input against the real broker process, with real sign-ins:
//! each case gets a 4xx with a stable code, and nothing is stored.

use std::time::Duration;

use mandate_agent::unix_now;
use mandate_core::Claims as _;
use mandate_core::token::{Jti, PopClaims, chain_hash};
use rand_core::OsRng;
use serde_json::{Value, json};

use crate::journey::{agent, files};
use crate::user::User;
use mandate_agent::Ask;
use mandate_e2e::procs::{self, sign_in};

async fn raw(
    method: reqwest::Method,
    url: &str,
    bearer: Option<&str>,
    body: Vec<u8>,
) -> (u16, Value) {
    let mut req = mandate_agent::client::http_client()
        .unwrap()
        .request(method, url)
        .header("content-type", "application/json")
        .timeout(Duration::from_secs(10))
        .body(body);
    if let Some(b) = bearer {
        req = req.bearer_auth(b);
    }
    let res = req.send().await.unwrap();
    (
        res.status().as_u16(),
        res.json().await.unwrap_or(Value::Null),
    )
}

fn code(r: &(u16, Value)) -> (u16, &str) {
    (r.0, r.1["code"].as_str().unwrap_or("<none>"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_input_gets_a_stable_4xx_and_stores_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let procs::Stack { idp, broker } = procs::stack(dir.path()).await;
    let stranger_idp = procs::idp().await;
    let b = broker.url.as_str();
    let alice = User::enrolled(&idp.url, "alice", b).await;
    let bob = User::enrolled(&idp.url, "bob", b).await;

    let planner = agent(b, "planner", dir.path());
    let ask = Ask {
        principal: alice.principal.clone(),
        scopes: vec![files(&["read"], "https://files.example/reports/")],
        purpose: "Read the reports".into(),
        intent: None,
        lifetime: 3600,
        max_depth: 1,
        expires_in: 600,
    };
    let pending = planner.request(&ask).await.unwrap();
    let id = pending.id.to_string();
    let request = alice.pending(&id).await;

    // One user reading or deciding another user's requests.
    let (status, body) = bob.send(reqwest::Method::GET, "/v1/inbox", None).await;
    assert_eq!(status, 200);
    assert_eq!(
        body["requests"],
        json!([]),
        "bob sees none of alice's requests"
    );
    let bobs_grant = bob.grant(&request, ask.scopes.clone());
    let r = bob.decide(&id, json!({ "grant": bobs_grant })).await;
    assert_eq!(code(&r), (404, "request.not_found"), "{}", r.1);
    let alices_grant = alice.grant(&request, ask.scopes.clone());
    let r = bob.decide(&id, json!({ "grant": alices_grant })).await;
    assert_eq!(code(&r), (404, "request.not_found"), "{}", r.1);

    // One agent polling another agent's request.
    let intruder = agent(b, "intruder", dir.path());
    let stolen = intruder.poll(&pending, Duration::ZERO).await.unwrap_err();
    assert_eq!(stolen.code(), "auth.not_your_request");

    // A grant that does not answer its request: it answers another one.
    let other = planner.request(&ask).await.unwrap();
    let other_request = alice.pending(&other.id.to_string()).await;
    let wrong = alice.grant(&other_request, ask.scopes.clone());
    let r = alice.decide(&id, json!({ "grant": wrong })).await;
    assert_eq!(code(&r), (422, "decision.wrong_request"), "{}", r.1);

    // A replayed request.
    let r = raw(
        reqwest::Method::POST,
        &format!("{b}/v1/requests"),
        None,
        serde_json::to_vec(&json!({ "request": request })).unwrap(),
    )
    .await;
    assert_eq!(code(&r), (409, "request.replayed"));

    // An oversized body.
    let huge = format!("{{\"request\":\"{}\"}}", "a".repeat(400 * 1024));
    let r = raw(
        reqwest::Method::POST,
        &format!("{b}/v1/requests"),
        None,
        huge.into_bytes(),
    )
    .await;
    assert_eq!(code(&r), (413, "body.too_large"));

    // Malformed JSON, and a malformed JWS.
    let r = raw(
        reqwest::Method::POST,
        &format!("{b}/v1/requests"),
        None,
        b"{\"request\":".to_vec(),
    )
    .await;
    assert_eq!(code(&r), (400, "body.malformed_json"));
    let r = raw(
        reqwest::Method::POST,
        &format!("{b}/v1/requests"),
        None,
        br#"{"request":"not.a.jws!"}"#.to_vec(),
    )
    .await;
    assert_eq!(code(&r), (400, "token.malformed"));

    // A wrong `typ`: a proof of possession filed as a request.
    let pop = PopClaims {
        htm: "POST".into(),
        htu: format!("{b}/v1/requests"),
        iat: unix_now(),
        jti: Jti::random(&mut OsRng),
        ath: chain_hash(&[request.as_str()]),
    }
    .sign(&alice.key);
    let r = raw(
        reqwest::Method::POST,
        &format!("{b}/v1/requests"),
        None,
        serde_json::to_vec(&json!({ "request": pop })).unwrap(),
    )
    .await;
    assert_eq!(code(&r), (400, "header.wrong_typ"));

    // A token from another issuer, and one for another audience.
    let foreign = sign_in(&stranger_idp.url, "alice", "mandate-desktop").await;
    let r = raw(
        reqwest::Method::GET,
        &format!("{b}/v1/inbox"),
        Some(&foreign),
        vec![],
    )
    .await;
    assert_eq!(code(&r), (401, "auth.unknown_issuer"));
    let other_audience = sign_in(&idp.url, "alice", "mandate-test").await;
    let r = raw(
        reqwest::Method::GET,
        &format!("{b}/v1/inbox"),
        Some(&other_audience),
        vec![],
    )
    .await;
    assert_eq!(code(&r), (401, "auth.audience"));
    let r = raw(
        reqwest::Method::GET,
        &format!("{b}/v1/inbox"),
        Some("not-a-jwt"),
        vec![],
    )
    .await;
    assert_eq!(code(&r), (401, "auth.malformed"));

    // Nothing was stored: both requests still pending, no grant, no receipt.
    let (_, inbox) = alice.send(reqwest::Method::GET, "/v1/inbox", None).await;
    let mut pending_ids: Vec<&str> = inbox["requests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap())
        .collect();
    pending_ids.sort_unstable();
    let other_id = other.id.to_string();
    let mut expected = vec![id.as_str(), other_id.as_str()];
    expected.sort_unstable();
    assert_eq!(pending_ids, expected);
    let (_, grants) = alice.send(reqwest::Method::GET, "/v1/grants", None).await;
    assert_eq!(grants["grants"], json!([]));
    let view = planner.poll(&pending, Duration::ZERO).await.unwrap();
    assert_eq!(view.status, "pending");

    for p in [broker, stranger_idp, idp] {
        p.kill().await;
    }
}

/// An ID token past its `exp` is refused. The provider issues 3-second
/// tokens and the broker allows no clock skew, so the test need not wait
/// out the default minute.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_id_token_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let idp = procs::idp_with(&["--id-token-ttl", "3"]).await;
    let db = format!("sqlite://{}/broker.db", dir.path().display());
    let broker = procs::broker(
        &db,
        &idp.url,
        &dir.path().join("broker"),
        &["--oidc-leeway", "0"],
    )
    .await;
    let inbox = format!("{}/v1/inbox", broker.url);
    let token = sign_in(&idp.url, "alice", "mandate-desktop").await;
    let claims: Value = {
        let payload = token.split('.').nth(1).unwrap();
        serde_json::from_slice(&mandate_core::base64url::decode(payload).unwrap()).unwrap()
    };
    let exp = claims["exp"].as_i64().unwrap();
    assert_eq!(exp - claims["iat"].as_i64().unwrap(), 3);
    if mandate_agent::unix_now() < exp {
        // Still valid: accepted (unless the sign-in itself took 3 s).
        let r = raw(reqwest::Method::GET, &inbox, Some(&token), vec![]).await;
        assert!(r.0 == 200 || mandate_agent::unix_now() >= exp, "{:?}", r);
    }
    while mandate_agent::unix_now() < exp + 1 {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let r = raw(reqwest::Method::GET, &inbox, Some(&token), vec![]).await;
    assert_eq!(code(&r), (401, "auth.expired"));
    for p in [broker, idp] {
        p.kill().await;
    }
}
