//! What the broker enforces of the approval tiers: "deny always" blocks,
//! signed by the user, and the cooldown after a denial.

use std::sync::atomic::Ordering;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use mandate_core::scope::AuthorizationDetail;
use mandate_core::token::{
    AgentInfo, DenialClaims, Effect, PolicyAgent, PolicyClaims, RequestClaims,
};
use mandate_core::{Claims as _, SigningKey, TokenId};
use serde_json::{Value, json};

use crate::users::{alice_key, post_json, with_bearer};
use crate::{HOST, Harness, NOW, agent, call, harness, request_token, submit};

/// Alice's rule about `agent`, signed by `key`.
fn rule(h: &Harness, agent: &SigningKey, effect: Effect, key: &SigningKey) -> String {
    let approve = effect == Effect::Approve;
    PolicyClaims {
        sub: h.alice.clone().try_into().unwrap(),
        effect,
        agent: PolicyAgent {
            jkt: agent.thumbprint(),
        },
        authorization_details: approve
            .then(|| vec![AuthorizationDetail::new("files", ["read"], ["https://f/r/"]).unwrap()]),
        max_lifetime: approve.then_some(3600),
        max_depth: approve.then_some(1),
        label: Some("Never this one".into()),
        iat: NOW,
        exp: NOW + 86_400,
        jti: format!("rule-{effect:?}").try_into().unwrap(),
    }
    .sign(key)
}

/// A bodiless request by the signed-in user.
fn bare(method: &str, path: &str, bearer: &str) -> Request<Body> {
    with_bearer(
        Request::builder()
            .method(method)
            .uri(path)
            .header("host", HOST)
            .body(Body::empty())
            .unwrap(),
        bearer,
    )
}

fn get_with(path: &str, bearer: &str) -> Request<Body> {
    bare("GET", path, bearer)
}

fn delete_with(path: &str, bearer: &str) -> Request<Body> {
    bare("DELETE", path, bearer)
}

async fn blocks(h: &Harness, bearer: &str) -> Vec<Value> {
    let (status, body) = call(&h.app, get_with("/v1/blocks", bearer)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["blocks"].as_array().unwrap().clone()
}

#[tokio::test]
async fn a_blocked_agent_is_refused_at_once_until_the_block_is_lifted() {
    let h = harness().await;
    let bearer = h.idp.token("alice", json!({}));
    let pest = agent(1);
    // Refused: a rule that approves, one signed by a key not Alice's, and
    // one that is not a policy at all.
    for (policy, status, code) in [
        (
            rule(&h, &pest, Effect::Approve, &alice_key()),
            StatusCode::UNPROCESSABLE_ENTITY,
            "block.not_deny",
        ),
        (
            rule(&h, &pest, Effect::Deny, &SigningKey::from_seed(&[66; 32])),
            StatusCode::BAD_REQUEST,
            "key.unknown",
        ),
        (
            request_token(&pest, "not-a-rule", &h.alice),
            StatusCode::BAD_REQUEST,
            "header.wrong_typ",
        ),
    ] {
        let (got, body) = call(
            &h.app,
            post_json("/v1/blocks", json!({ "policy": policy }), &bearer),
        )
        .await;
        assert_eq!((got, body["code"].as_str()), (status, Some(code)), "{body}");
    }
    assert!(blocks(&h, &bearer).await.is_empty(), "nothing stored");

    let policy = rule(&h, &pest, Effect::Deny, &alice_key());
    let (status, body) = call(
        &h.app,
        post_json("/v1/blocks", json!({ "policy": policy }), &bearer),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["agent"], pest.thumbprint().to_string());
    assert_eq!(body["policy_id"], TokenId::of(&policy).to_string());

    // Its requests are refused, counted, and never reach the inbox.
    for n in 0..2 {
        let (status, body) =
            submit(&h.app, &request_token(&pest, &format!("p{n}"), &h.alice)).await;
        assert_eq!(
            (status, body["code"].as_str()),
            (StatusCode::FORBIDDEN, Some("request.blocked")),
            "{body}"
        );
    }
    // Another agent's are not.
    let (status, _) = submit(&h.app, &request_token(&agent(2), "other", &h.alice)).await;
    assert_eq!(status, StatusCode::CREATED);
    let (_, inbox) = call(&h.app, get_with("/v1/inbox", &bearer)).await;
    assert_eq!(inbox["requests"].as_array().unwrap().len(), 1, "{inbox}");
    let listed = blocks(&h, &bearer).await;
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0]["refusals"], 2);
    assert_eq!(listed[0]["label"], "Never this one");
    // Bob sees none of Alice's blocks.
    let bob = h.idp.token("bob", json!({}));
    assert!(blocks(&h, &bob).await.is_empty());

    // Lifting: bad path, unknown agent, then Alice's block.
    let path = format!("/v1/blocks/{}", pest.thumbprint());
    let (status, body) = call(&h.app, delete_with("/v1/blocks/not-a-key", &bearer)).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("request.bad_id"))
    );
    let (status, body) = call(&h.app, delete_with(&path, &bob)).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (StatusCode::NOT_FOUND, Some("block.not_found")),
        "Bob cannot lift Alice's block"
    );
    let (status, _) = call(&h.app, delete_with(&path, &bearer)).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert!(blocks(&h, &bearer).await.is_empty());
    let (status, body) = submit(&h.app, &request_token(&pest, "after", &h.alice)).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
}

#[tokio::test]
async fn a_block_ends_with_its_rule() {
    let h = harness().await;
    let bearer = h.idp.token("alice", json!({}));
    let pest = agent(1);
    let policy = rule(&h, &pest, Effect::Deny, &alice_key());
    let (status, _) = call(
        &h.app,
        post_json("/v1/blocks", json!({ "policy": policy }), &bearer),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(blocks(&h, &bearer).await.len(), 1);
    h.clock.store(NOW + 86_400, Ordering::SeqCst);
    let principal = h.alice.clone().try_into().unwrap();
    assert!(
        h.store
            .blocks(&principal, NOW + 86_400)
            .await
            .unwrap()
            .is_empty()
    );
    let token = RequestClaims {
        iat: NOW + 86_400,
        exp: NOW + 86_400 + 300,
        ..mandate_core::token::peek::<RequestClaims>(&request_token(&pest, "late", &h.alice))
            .unwrap()
            .1
    }
    .sign(&pest);
    let (status, body) = submit(&h.app, &token).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
}

/// Alice's signed denial of request `id`.
fn denial(h: &Harness, id: TokenId, jti: &str) -> String {
    DenialClaims {
        sub: h.alice.clone().try_into().unwrap(),
        req: id,
        reason: None,
        iat: NOW,
        jti: jti.to_string().try_into().unwrap(),
    }
    .sign(&alice_key())
}

/// Agent `n`'s request for `scope`, with `purpose`.
fn asking(h: &Harness, n: u8, jti: &str, scope: &str, purpose: &str) -> String {
    RequestClaims {
        principal_hint: Some(h.alice.clone()),
        agent: AgentInfo {
            name: "Report bot".into(),
            publisher: None,
            version: None,
        },
        authorization_details: vec![AuthorizationDetail::new("files", ["read"], [scope]).unwrap()],
        purpose: purpose.into(),
        intent: None,
        lifetime: 3600,
        max_depth: 0,
        parent_chain: vec![],
        binding_code: "ABCD-EF12".to_string().try_into().unwrap(),
        jti: jti.to_string().try_into().unwrap(),
        iat: h.clock.load(Ordering::SeqCst),
        exp: h.clock.load(Ordering::SeqCst) + 300,
        oauth_client: None,
    }
    .sign(&agent(n))
}

#[tokio::test]
async fn the_same_request_after_a_denial_waits_out_the_cooldown() {
    let h = harness().await;
    let bearer = h.idp.token("alice", json!({}));
    let first = asking(&h, 1, "a", "https://f/r/", "Read the reports");
    submit(&h.app, &first).await;
    let id = TokenId::of(&first);
    let (status, body) = call(
        &h.app,
        post_json(
            &format!("/v1/requests/{id}/decision"),
            json!({ "denial": denial(&h, id, "d1") }),
            &bearer,
        ),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");

    // Two minutes later: the same scopes, reworded, are refused, with
    // when to ask again, in the body and in `Retry-After`.
    h.clock.store(NOW + 120, Ordering::SeqCst);
    let again = asking(&h, 1, "b", "https://f/r/", "Please, just read the reports");
    let res = tower::ServiceExt::oneshot(
        h.app.clone(),
        crate::post("/v1/requests", json!({ "request": again }).to_string()),
    )
    .await
    .unwrap();
    assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(res.headers()["retry-after"], "480");
    let body: Value = serde_json::from_slice(
        &http_body_util::BodyExt::collect(res.into_body())
            .await
            .unwrap()
            .to_bytes(),
    )
    .unwrap();
    assert_eq!(body["code"], "request.cooldown");
    assert_eq!(body["retry_after"], 480);
    // Another agent asking the same is not held back, and nor is this
    // agent asking for something else; its new request is marked.
    let (status, _) = submit(&h.app, &asking(&h, 2, "c", "https://f/r/", "Read")).await;
    assert_eq!(status, StatusCode::CREATED);
    let other = asking(&h, 1, "d", "https://f/r/q3/", "Read only Q3");
    let (status, body) = submit(&h.app, &other).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (_, inbox) = call(&h.app, get_with("/v1/inbox", &bearer)).await;
    let items = inbox["requests"].as_array().unwrap();
    let marked: Vec<(&str, &Value)> = items
        .iter()
        .map(|i| (i["request"].as_str().unwrap(), &i["denied_before"]))
        .collect();
    assert!(marked.contains(&(other.as_str(), &json!(NOW))), "{inbox}");
    assert!(
        marked.iter().any(|(_, d)| d.is_null()),
        "the other agent's is not marked: {inbox}"
    );

    // After the cooldown, the same ask reaches the user again.
    h.clock.store(NOW + 600, Ordering::SeqCst);
    let (status, body) = submit(&h.app, &asking(&h, 1, "e", "https://f/r/", "Read")).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
}
