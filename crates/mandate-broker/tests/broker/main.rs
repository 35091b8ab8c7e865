//! The broker's router, driven with `oneshot` on a real SQLite store.

#![allow(clippy::expect_used, clippy::unwrap_used)]

#[cfg(unix)]
mod binary;
mod events;
mod guard;
mod instances;
mod oauth;
mod oauth_code;
mod oidc;
mod outage;
mod rates;
mod receipts;
mod revocations;
mod tiers;
mod users;
mod witness;

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt as _;
use mandate_broker::{AppState, Limits, router};
use mandate_core::scope::AuthorizationDetail;
use mandate_core::token::{AgentInfo, PopClaims, RequestClaims, chain_hash};
use mandate_core::{Claims as _, Principal, SigningKey, TokenId};
use mandate_store::{Binding, GrantRecord, Store};
use serde_json::{Value, json};
use tower::ServiceExt as _;

pub const NOW: i64 = 1_767_225_600;
pub const URL: &str = "http://127.0.0.1:7700";
/// The `Host` clients of [`URL`] send.
pub const HOST: &str = "127.0.0.1:7700";
pub struct Harness {
    pub app: Router,
    /// The state behind `app`, to build a router with other allow-lists.
    pub state: AppState,
    pub store: Store,
    pub clock: Arc<AtomicI64>,
    pub idp: oidc::TestIssuer,
    /// Alice's principal at the test issuer; her key (seed 1) is enrolled.
    pub alice: String,
    _dir: tempfile::TempDir,
}

/// Records, as the broker would after enrollment, that `key` belongs to `principal`.
pub async fn enroll(store: &Store, principal: &str, key: &SigningKey) {
    let principal: Principal = principal.to_string().try_into().unwrap();
    let binding = Binding {
        jkt: key.thumbprint(),
        key: *key.public(),
        principal,
        token: "b".into(),
        issued_at: NOW,
        expires_at: NOW + 86_400,
        device: "test device".into(),
        enrolled_at: NOW,
        last_used_at: None,
    };
    store.put_binding(&binding).await.unwrap();
}

pub async fn harness() -> Harness {
    harness_with(Limits {
        max_pending_new: 3,
        max_request_wait: 600,
        ..Limits::default()
    })
    .await
}

pub async fn harness_with(limits: Limits) -> Harness {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::connect(&format!("sqlite://{}/broker.db", dir.path().display()))
        .await
        .unwrap();
    let idp = oidc::TestIssuer::start().await;
    let alice_text = format!("{}#alice", idp.url);
    enroll(&store, &alice_text, &SigningKey::from_seed(&[1; 32])).await;
    let clock = Arc::new(AtomicI64::new(NOW));
    let tick = Arc::clone(&clock);
    let state = AppState::new(
        store.clone(),
        SigningKey::from_seed(&[90; 32]),
        URL,
        mandate_broker::oidc::OidcVerifier::new(vec![idp.trusted()]).unwrap(),
        Arc::new(move || tick.load(Ordering::SeqCst)),
        limits,
    );
    Harness {
        app: router(state.clone()),
        state,
        store,
        clock,
        idp,
        alice: alice_text,
        _dir: dir,
    }
}

pub fn agent(n: u8) -> SigningKey {
    SigningKey::from_seed(&[100 + n; 32])
}

pub fn request_token(agent: &SigningKey, jti: &str, hint: &str) -> String {
    RequestClaims {
        principal_hint: Some(hint.into()),
        agent: AgentInfo {
            name: "Report bot".into(),
            publisher: None,
            version: None,
        },
        authorization_details: vec![
            AuthorizationDetail::new("files", ["read"], ["https://f/r/"]).unwrap(),
        ],
        purpose: "Read the Q3 reports".into(),
        intent: Some("Summarize Q3".into()),
        lifetime: 3600,
        max_depth: 1,
        parent_chain: vec![],
        binding_code: "ABCD-EF12".to_string().try_into().unwrap(),
        jti: jti.to_string().try_into().unwrap(),
        iat: NOW,
        exp: NOW + 300,
        oauth_client: None,
    }
    .sign(agent)
}

pub fn pop(agent: &SigningKey, request: &str, uri: &str, jti: &str) -> String {
    PopClaims {
        htm: "GET".into(),
        htu: uri.into(),
        iat: NOW,
        jti: jti.to_string().try_into().unwrap(),
        ath: chain_hash(&[request]),
    }
    .sign(agent)
}

pub async fn call(app: &Router, req: Request<Body>) -> (StatusCode, Value) {
    let res = app.clone().oneshot(req).await.unwrap();
    let status = res.status();
    let bytes = res.into_body().collect().await.unwrap().to_bytes();
    let body = serde_json::from_slice(&bytes)
        .unwrap_or_else(|_| json!({ "raw": String::from_utf8_lossy(&bytes) }));
    (status, body)
}

/// A JSON `POST`, as a client of [`URL`] sends it.
pub fn post(path: &str, body: impl Into<Body>) -> Request<Body> {
    Request::post(path)
        .header("host", HOST)
        .header("content-type", "application/json")
        .body(body.into())
        .unwrap()
}

/// A `GET`, as a client of [`URL`] sends it.
pub fn get(path: &str, pop: Option<&str>) -> Request<Body> {
    let mut r = Request::get(path).header("host", HOST);
    if let Some(p) = pop {
        r = r.header("mandate-pop", p);
    }
    r.body(Body::empty()).unwrap()
}

pub async fn submit(app: &Router, token: &str) -> (StatusCode, Value) {
    call(
        app,
        post("/v1/requests", json!({ "request": token }).to_string()),
    )
    .await
}

#[tokio::test]
async fn metadata_publishes_the_broker_key() {
    let h = harness().await;
    let (status, body) = call(&h.app, get("/.well-known/mandate", None)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["issuer"], URL);
    let jwk = &body["jwks"]["keys"][0];
    assert_eq!(
        jwk["kid"],
        SigningKey::from_seed(&[90; 32]).thumbprint().to_string()
    );
    assert!(jwk.get("d").is_none(), "no private part");
}

#[tokio::test]
async fn an_agent_files_a_request_once() {
    let h = harness().await;
    let token = request_token(&agent(1), "r1", &h.alice);
    let (status, body) = submit(&h.app, &token).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["id"], TokenId::of(&token).to_string());
    assert_eq!(body["status"], "pending");
    assert_eq!(body["binding_code"], "ABCD-EF12");
    let (status, body) = submit(&h.app, &token).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (StatusCode::CONFLICT, Some("request.replayed"))
    );
    assert_eq!(
        h.store.events_since(0, 10).await.unwrap().len(),
        2,
        "the binding and one request"
    );
}

#[tokio::test]
async fn hostile_submissions_get_a_stable_code_and_store_nothing() {
    let h = harness().await;
    // A token of another kind, signed by the same agent.
    let pop_as_request = pop(
        &agent(1),
        &request_token(&agent(1), "x", &h.alice),
        URL,
        "p",
    );
    let cases: Vec<(Request<Body>, StatusCode, &str)> = vec![
        (
            post("/v1/requests", "{not json"),
            StatusCode::BAD_REQUEST,
            "body.malformed_json",
        ),
        (
            post(
                "/v1/requests",
                json!({"request": "a.b.c", "x": 1}).to_string(),
            ),
            StatusCode::BAD_REQUEST,
            "body.malformed_json",
        ),
        (
            post("/v1/requests", json!({"request": "a.b"}).to_string()),
            StatusCode::BAD_REQUEST,
            "token.malformed",
        ),
        (
            post(
                "/v1/requests",
                json!({"request": pop_as_request}).to_string(),
            ),
            StatusCode::BAD_REQUEST,
            "header.wrong_typ",
        ),
        (
            post(
                "/v1/requests",
                json!({"request": "x".repeat(400_000)}).to_string(),
            ),
            StatusCode::PAYLOAD_TOO_LARGE,
            "body.too_large",
        ),
        (
            post("/v1/nothing", "{}"),
            StatusCode::NOT_FOUND,
            "not_found",
        ),
    ];
    for (req, status, code) in cases {
        let (got, body) = call(&h.app, req).await;
        assert_eq!((got, body["code"].as_str()), (status, Some(code)), "{body}");
        assert!(
            !body.to_string().contains("eyJ"),
            "no token is echoed: {body}"
        );
    }
    // A tampered request: one character of the signature changed.
    let mut tampered = request_token(&agent(1), "t", &h.alice);
    let last = tampered.pop().unwrap();
    tampered.push(if last == 'A' { 'B' } else { 'A' });
    let (status, body) = submit(&h.app, &tampered).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(
        h.store.events_since(0, 10).await.unwrap().len(),
        1,
        "only the binding"
    );
}

#[tokio::test]
async fn a_user_cannot_be_flooded_with_prompts() {
    let h = harness_with(Limits {
        max_pending_new: 3,
        max_pending_known: 2,
        max_pending_per_agent: 2,
        max_request_wait: 600,
        ..Limits::default()
    })
    .await;
    let file = |agent_n: u8, jti: &str| {
        let token = request_token(&agent(agent_n), jti, &h.alice);
        let app = h.app.clone();
        async move { submit(&app, &token).await }
    };
    let too_many = (
        StatusCode::TOO_MANY_REQUESTS,
        Some("request.too_many_pending"),
    );
    // One agent gets its share of the new lane, and no more.
    for n in 0..2 {
        assert_eq!(file(1, &format!("a{n}")).await.0, StatusCode::CREATED);
    }
    let (status, body) = file(1, "a2").await;
    assert_eq!((status, body["code"].as_str()), too_many);
    // Throwaway keys fill the rest of the new lane.
    assert_eq!(file(2, "b0").await.0, StatusCode::CREATED);
    let (status, body) = file(3, "c0").await;
    assert_eq!((status, body["code"].as_str()), too_many);
    // An agent Alice approved before is in the known lane, and gets through.
    let approved = agent(9);
    h.store
        .insert_grant(&GrantRecord {
            id: TokenId::of("an earlier grant"),
            principal: Principal::try_from(h.alice.clone()).unwrap(),
            request_id: None,
            parent_id: None,
            issuer: SigningKey::from_seed(&[1; 32]).thumbprint(),
            grantee: approved.thumbprint(),
            token: "an earlier grant".into(),
            expires_at: NOW + 3600,
            created_at: NOW - 3600,
        })
        .await
        .unwrap();
    let (status, body) = file(9, "k0").await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(file(9, "k1").await.0, StatusCode::CREATED);
    let (status, body) = file(9, "k2").await;
    assert_eq!((status, body["code"].as_str()), too_many, "its own share");
}

#[tokio::test]
async fn a_request_names_its_user_as_issuer_and_subject() {
    let h = harness().await;
    let issuer = h.alice.trim_end_matches("#alice").to_owned();
    let refused = [
        ("alice@example.com".to_owned(), "request.no_principal"),
        (format!("{issuer}#"), "request.no_principal"),
        ("#alice".to_owned(), "request.no_principal"),
        (format!("{issuer}#al\u{7}ice"), "request.no_principal"),
        (
            "https://idp.example#alice".to_owned(),
            "request.unknown_issuer",
        ),
        (format!("{issuer}/#alice"), "request.unknown_issuer"),
    ];
    for (i, (hint, code)) in refused.iter().enumerate() {
        let token = request_token(&agent(1), &format!("n{i}"), hint);
        let (status, body) = submit(&h.app, &token).await;
        assert_eq!(
            (status, body["code"].as_str()),
            (StatusCode::UNPROCESSABLE_ENTITY, Some(*code)),
            "{hint:?}: {body}"
        );
    }
    let (_, mut none) =
        mandate_core::token::peek::<RequestClaims>(&request_token(&agent(1), "n9", &h.alice))
            .unwrap();
    none.principal_hint = None;
    let (status, body) = submit(&h.app, &none.sign(&agent(1))).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (
            StatusCode::UNPROCESSABLE_ENTITY,
            Some("request.no_principal")
        ),
        "{body}"
    );
    // Nothing of these was filed.
    let alice = Principal::try_from(h.alice.clone()).unwrap();
    assert!(
        h.store
            .pending_requests(&alice, NOW)
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn who_is_enrolled_is_not_told() {
    let h = harness().await;
    let nobody = h.alice.replace("#alice", "#nobody");
    let filed = |jti: &str, hint: &str| request_token(&agent(1), jti, hint);
    let (alice_token, nobody_token) = (filed("e1", &h.alice), filed("e2", &nobody));
    let (s1, b1) = submit(&h.app, &alice_token).await;
    let (s2, b2) = submit(&h.app, &nobody_token).await;
    assert_eq!((s1, s2), (StatusCode::CREATED, StatusCode::CREATED), "{b2}");
    let keys = |b: &Value| {
        let mut k: Vec<String> = b.as_object().unwrap().keys().cloned().collect();
        k.sort();
        k
    };
    assert_eq!(keys(&b1), keys(&b2));
    assert_eq!(
        (&b1["status"], &b1["expires_at"]),
        (&b2["status"], &b2["expires_at"])
    );
    // Both are pending when polled, and the second reaches nobody's inbox.
    for (token, jti) in [(&alice_token, "p1"), (&nobody_token, "p2")] {
        let path = format!("/v1/requests/{}", TokenId::of(token));
        let proof = pop(&agent(1), token, &format!("{URL}{path}"), jti);
        let (status, body) = call(&h.app, get(&path, Some(&proof))).await;
        assert_eq!(
            (status, body["status"].as_str()),
            (StatusCode::OK, Some("pending"))
        );
    }
    let alice = Principal::try_from(h.alice.clone()).unwrap();
    assert_eq!(
        h.store.pending_requests(&alice, NOW).await.unwrap().len(),
        1
    );
}

#[tokio::test]
async fn only_the_filing_agent_may_poll() {
    let h = harness().await;
    let token = request_token(&agent(1), "p1", &h.alice);
    submit(&h.app, &token).await;
    let id = TokenId::of(&token);
    let path = format!("/v1/requests/{id}");
    let uri = format!("{URL}{path}");

    let (status, body) = call(&h.app, get(&path, Some(&pop(&agent(1), &token, &uri, "a")))).await;
    assert_eq!(
        (status, body["status"].as_str()),
        (StatusCode::OK, Some("pending")),
        "{body}"
    );
    assert!(body.get("grant").is_none());

    let cases: Vec<(Option<String>, StatusCode, &str)> = vec![
        (None, StatusCode::UNAUTHORIZED, "auth.pop_missing"),
        (
            Some(pop(&agent(2), &token, &uri, "b")),
            StatusCode::FORBIDDEN,
            "auth.not_your_request",
        ),
        (
            Some(pop(&agent(1), &token, &uri, "a")),
            StatusCode::UNAUTHORIZED,
            "pop.replayed",
        ),
        (
            Some(pop(&agent(1), &token, &format!("{URL}/v1/requests"), "c")),
            StatusCode::UNAUTHORIZED,
            "pop.htu_mismatch",
        ),
        (
            Some(pop(&agent(1), "another request", &uri, "d")),
            StatusCode::UNAUTHORIZED,
            "pop.ath_mismatch",
        ),
        (
            Some("garbage".into()),
            StatusCode::UNAUTHORIZED,
            "token.malformed",
        ),
    ];
    for (p, status, code) in cases {
        let (got, body) = call(&h.app, get(&path, p.as_deref())).await;
        assert_eq!((got, body["code"].as_str()), (status, Some(code)), "{body}");
    }
    let (status, body) = call(&h.app, get("/v1/requests/not-an-id", None)).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("request.bad_id"))
    );
    let unknown = format!("/v1/requests/{}", TokenId::of("unknown"));
    let (status, body) = call(&h.app, get(&unknown, None)).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (StatusCode::NOT_FOUND, Some("request.not_found"))
    );
}

#[tokio::test]
async fn the_agent_collects_its_grant_and_lapsed_requests_expire() {
    let h = harness().await;
    let token = request_token(&agent(1), "g1", &h.alice);
    submit(&h.app, &token).await;
    let id = TokenId::of(&token);
    let grant = GrantRecord {
        id: TokenId::of("grant"),
        principal: h.alice.clone().try_into().unwrap(),
        request_id: Some(id),
        parent_id: None,
        issuer: SigningKey::from_seed(&[1; 32]).thumbprint(),
        grantee: agent(1).thumbprint(),
        token: "the.grant.token".into(),
        expires_at: NOW + 3600,
        created_at: NOW,
    };
    h.store.approve_request(&id, &grant, NOW + 1).await.unwrap();
    let path = format!("/v1/requests/{id}");
    let (status, body) = call(
        &h.app,
        get(
            &path,
            Some(&pop(&agent(1), &token, &format!("{URL}{path}"), "g")),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        (body["status"].as_str(), body["grant"].as_str()),
        (Some("approved"), Some("the.grant.token"))
    );

    let lapsing = request_token(&agent(1), "g2", &h.alice);
    submit(&h.app, &lapsing).await;
    h.clock.store(NOW + 301, Ordering::SeqCst);
    let path = format!("/v1/requests/{}", TokenId::of(&lapsing));
    // The proof is made at NOW; 301 s later it is stale, so make a fresh one.
    let fresh = PopClaims {
        htm: "GET".into(),
        htu: format!("{URL}{path}"),
        iat: NOW + 301,
        jti: "late".to_string().try_into().unwrap(),
        ath: chain_hash(&[lapsing.as_str()]),
    }
    .sign(&agent(1));
    let (status, body) = call(&h.app, get(&path, Some(&fresh))).await;
    assert_eq!(
        (status, body["status"].as_str()),
        (StatusCode::OK, Some("expired")),
        "{body}"
    );
}

#[tokio::test]
async fn the_openapi_document_covers_every_route() {
    let h = harness().await;
    let (status, doc) = call(&h.app, get("/openapi.json", None)).await;
    assert_eq!(status, StatusCode::OK);
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    let routes = [
        ("/.well-known/mandate", "get"),
        ("/v1/requests", "post"),
        ("/v1/requests/{id}", "get"),
        ("/v1/requests/{id}/decision", "post"),
        ("/v1/inbox", "get"),
        ("/v1/inbox/events", "get"),
        ("/v1/keys", "post"),
        ("/v1/keys", "get"),
        ("/v1/keys/revocations", "post"),
        ("/v1/revocations", "post"),
        ("/v1/revocations", "get"),
        ("/v1/revocations/events", "get"),
        ("/v1/grants", "get"),
        ("/v1/blocks", "post"),
        ("/v1/blocks", "get"),
        ("/v1/blocks/{agent}", "delete"),
        ("/v1/confirmations", "post"),
        ("/v1/confirmations", "get"),
        ("/v1/confirmations/{id}", "get"),
        ("/v1/confirmations/{id}/decision", "post"),
        ("/v1/receipts", "post"),
        ("/v1/witness", "post"),
        ("/v1/witness/tools", "post"),
        ("/v1/receipts", "get"),
        ("/.well-known/oauth-authorization-server", "get"),
        ("/oauth/jwks", "get"),
        ("/oauth/token", "post"),
        ("/oauth/introspect", "post"),
        ("/oauth/revoke", "post"),
        ("/oauth/register", "post"),
        ("/oauth/authorize", "get"),
        ("/oauth/callback", "get"),
        ("/oauth/wait/{flow}", "get"),
    ];
    for (path, method) in routes {
        assert!(
            doc["paths"][path][method].is_object(),
            "{method} {path} is documented"
        );
    }
    let documented: usize = doc["paths"]
        .as_object()
        .unwrap()
        .values()
        .map(|p| p.as_object().unwrap().len())
        .sum();
    assert_eq!(
        documented,
        routes.len(),
        "nothing documented that the router does not serve"
    );
    for schema in [
        "ErrorBody",
        "Submitted",
        "RequestView",
        "Inbox",
        "Feed",
        "Receipts",
        "Metadata",
    ] {
        assert!(
            doc["components"]["schemas"][schema].is_object(),
            "{schema} is described"
        );
    }
    assert_eq!(
        doc["components"]["securitySchemes"]["bearer"]["scheme"],
        "bearer"
    );
}
