//! The front door: a body that is not JSON, a request from a web origin
//! not on the allow-list, or a `Host` the broker does not answer for is
//! refused with a stable code, and nothing is stored.

use axum::body::Body;
use axum::http::{Request, StatusCode};
use mandate_broker::{AllowedHost, AllowedOrigin, router};
use mandate_core::token::{PopClaims, chain_hash};
use mandate_core::{Claims as _, SigningKey, TokenId};
use serde_json::json;

use crate::users::with_bearer;
use crate::{HOST, Harness, NOW, URL, agent, call, harness, request_token};

/// A signed request for Alice that the broker would store, as a body.
fn filing(h: &Harness, jti: &str) -> (TokenId, String) {
    let token = request_token(&agent(1), jti, &h.alice);
    (TokenId::of(&token), json!({ "request": token }).to_string())
}

/// `POST /v1/requests` with `body` and exactly the headers given.
fn raw_post(headers: &[(&str, &str)], body: String) -> Request<Body> {
    let mut req = Request::post("/v1/requests");
    for (name, value) in headers {
        req = req.header(*name, *value);
    }
    req.body(Body::from(body)).unwrap()
}

async fn stored(h: &Harness, id: &TokenId) -> bool {
    h.store.request(id).await.unwrap().is_some()
}

/// Sends each case's request, which would otherwise file `id`, and
/// checks the refusal and that nothing was stored.
async fn refused(
    h: &Harness,
    app: &axum::Router,
    cases: Vec<(&str, Request<Body>, TokenId, StatusCode, &str)>,
) {
    for (case, req, id, status, code) in cases {
        let (got, body) = call(app, req).await;
        assert_eq!(
            (got, body["code"].as_str()),
            (status, Some(code)),
            "{case}: {body}"
        );
        assert!(
            !body.to_string().contains("evil"),
            "{case}: the refused value is not echoed: {body}"
        );
        assert!(!stored(h, &id).await, "{case}: nothing is stored");
    }
}

#[tokio::test]
async fn a_body_must_be_sent_as_json() {
    let h = harness().await;
    let mut cases = Vec::new();
    for (n, content_type) in [
        Some("text/plain"),
        Some("text/plain;charset=UTF-8"),
        Some("application/x-www-form-urlencoded"),
        Some("multipart/form-data; boundary=x"),
        Some("application/jsonp"),
        Some("application/json, text/plain"),
        Some("text/json"),
        None,
    ]
    .into_iter()
    .enumerate()
    {
        let (id, body) = filing(&h, &format!("ct{n}"));
        let mut headers = vec![("host", HOST)];
        headers.extend(content_type.map(|c| ("content-type", c)));
        cases.push((
            content_type.unwrap_or("no content type"),
            raw_post(&headers, body),
            id,
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "body.content_type",
        ));
    }
    let (id, body) = filing(&h, "ct-twice");
    cases.push((
        "two content types",
        raw_post(
            &[
                ("host", HOST),
                ("content-type", "application/json"),
                ("content-type", "text/plain"),
            ],
            body,
        ),
        id,
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "body.content_type",
    ));
    refused(&h, &h.app, cases).await;

    // Enrolling a key from a form: refused before the bearer is looked at.
    let key = SigningKey::from_seed(&[4; 32]);
    let bearer = h.idp.token("dave", json!({}));
    let proof = PopClaims {
        htm: "POST".into(),
        htu: format!("{URL}/v1/keys"),
        iat: NOW,
        jti: "k".to_string().try_into().unwrap(),
        ath: chain_hash(&[bearer.as_str()]),
    }
    .sign(&key);
    let enroll = Request::post("/v1/keys")
        .header("host", HOST)
        .header("content-type", "text/plain")
        .body(Body::from(
            json!({ "jwk": key.public().to_jwk(), "proof": proof }).to_string(),
        ))
        .unwrap();
    let (status, body) = call(&h.app, with_bearer(enroll, &bearer)).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Some("body.content_type")
        )
    );
    let dave = format!("{}#dave", h.idp.url).try_into().unwrap();
    assert!(h.store.bindings_of(&dave).await.unwrap().is_empty());

    // JSON, with parameters, in any case, is taken.
    for (n, content_type) in ["application/json; charset=utf-8", "Application/JSON"]
        .into_iter()
        .enumerate()
    {
        let (id, body) = filing(&h, &format!("json{n}"));
        let req = raw_post(&[("host", HOST), ("content-type", content_type)], body);
        let (status, body) = call(&h.app, req).await;
        assert_eq!(status, StatusCode::CREATED, "{content_type}: {body}");
        assert!(stored(&h, &id).await);
    }
}

#[tokio::test]
async fn a_method_no_route_serves_is_still_405() {
    let h = harness().await;
    let req = Request::put("/v1/requests")
        .header("host", HOST)
        .header("content-type", "text/plain")
        .body(Body::from("x"))
        .unwrap();
    let (status, _) = call(&h.app, req).await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
}

#[tokio::test]
async fn a_request_from_a_web_origin_is_refused_unless_allowed() {
    let h = harness().await;
    let mut cases = Vec::new();
    for (n, origins) in [
        &["http://evil.example"][..],
        &["null"],
        &["http://127.0.0.1:7700"],
        &["http://evil.example", "http://evil.example"],
    ]
    .into_iter()
    .enumerate()
    {
        let (id, body) = filing(&h, &format!("o{n}"));
        let mut headers = vec![("host", HOST), ("content-type", "application/json")];
        headers.extend(origins.iter().map(|o| ("origin", *o)));
        cases.push((
            origins[0],
            raw_post(&headers, body),
            id,
            StatusCode::FORBIDDEN,
            "request.origin",
        ));
    }
    refused(&h, &h.app, cases).await;
    let inbox = with_bearer(
        Request::get("/v1/inbox")
            .header("host", HOST)
            .header("origin", "http://evil.example")
            .body(Body::empty())
            .unwrap(),
        &h.idp.token("alice", json!({})),
    );
    let (status, body) = call(&h.app, inbox).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (StatusCode::FORBIDDEN, Some("request.origin")),
        "reads too"
    );

    // An origin on the allow-list gets through, compared without regard to
    // case; the same name on another port or scheme does not.
    let app = router(h.state.clone().allowing(
        [],
        ["https://App.Example".parse::<AllowedOrigin>().unwrap()],
    ));
    let (id, body) = filing(&h, "allowed");
    let req = raw_post(
        &[
            ("host", HOST),
            ("content-type", "application/json"),
            ("origin", "https://app.example"),
        ],
        body,
    );
    let (status, body) = call(&app, req).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert!(stored(&h, &id).await);
    let mut cases = Vec::new();
    for (n, origin) in ["https://app.example:444", "http://app.example", "null"]
        .into_iter()
        .enumerate()
    {
        let (id, body) = filing(&h, &format!("other{n}"));
        cases.push((
            origin,
            raw_post(
                &[
                    ("host", HOST),
                    ("content-type", "application/json"),
                    ("origin", origin),
                ],
                body,
            ),
            id,
            StatusCode::FORBIDDEN,
            "request.origin",
        ));
    }
    refused(&h, &app, cases).await;
}

#[tokio::test]
async fn a_host_the_broker_does_not_answer_for_is_refused() {
    let h = harness().await;
    let json = ("content-type", "application/json");
    let mut cases = Vec::new();
    for (n, host) in [
        "evil.test:7700",
        "evil.test",
        "127.0.0.1:7701",
        "127.0.0.1",
        "localhost:7700",
        "127.0.0.1:7700.evil.test",
        "user@127.0.0.1:7700",
        "127.0.0.1:",
        "127.0.0.1:99999",
        "[::1]:7700",
    ]
    .into_iter()
    .enumerate()
    {
        let (id, body) = filing(&h, &format!("h{n}"));
        cases.push((
            host,
            raw_post(&[("host", host), json], body),
            id,
            StatusCode::MISDIRECTED_REQUEST,
            "request.host",
        ));
    }
    // An absolute target names the host as well as Host does.
    let (id, body) = filing(&h, "absolute");
    cases.push((
        "absolute target",
        Request::post("http://evil.test:7700/v1/requests")
            .header("host", HOST)
            .header(json.0, json.1)
            .body(Body::from(body))
            .unwrap(),
        id,
        StatusCode::MISDIRECTED_REQUEST,
        "request.host",
    ));
    let (id, body) = filing(&h, "none");
    cases.push((
        "no Host",
        raw_post(&[json], body),
        id,
        StatusCode::BAD_REQUEST,
        "request.host_missing",
    ));
    let (id, body) = filing(&h, "twice");
    cases.push((
        "two Hosts",
        raw_post(&[("host", HOST), ("host", "evil.test"), json], body),
        id,
        StatusCode::BAD_REQUEST,
        "request.host_missing",
    ));
    refused(&h, &h.app, cases).await;

    // Reads too: a rebound page cannot read the broker as its own origin.
    let req = Request::get("/.well-known/mandate")
        .header("host", "evil.test:7700")
        .body(Body::empty())
        .unwrap();
    let (status, body) = call(&h.app, req).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (StatusCode::MISDIRECTED_REQUEST, Some("request.host"))
    );

    // A name configured for the broker is answered, in any case, on its
    // port only.
    let app = router(h.state.clone().allowing(
        ["Mandate.Internal:8080".parse::<AllowedHost>().unwrap()],
        [],
    ));
    let (id, body) = filing(&h, "named");
    let (status, body) = call(
        &app,
        raw_post(&[("host", "mandate.INTERNAL:8080"), json], body),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert!(stored(&h, &id).await);
    let (id, body) = filing(&h, "named-wrong-port");
    refused(
        &h,
        &app,
        vec![(
            "the configured name on another port",
            raw_post(&[("host", "mandate.internal:8081"), json], body),
            id,
            StatusCode::MISDIRECTED_REQUEST,
            "request.host",
        )],
    )
    .await;
}

#[tokio::test]
async fn every_route_that_takes_a_body_wants_json() {
    let h = harness().await;
    let (_, doc) = call(&h.app, crate::get("/openapi.json", None)).await;
    let mut posts = 0;
    for (path, item) in doc["paths"].as_object().unwrap() {
        if item.get("post").is_none() {
            continue;
        }
        posts += 1;
        let path = path.replace("{id}", &TokenId::of("x").to_string());
        let req = Request::post(path.as_str())
            .header("host", HOST)
            .header("content-type", "text/plain")
            .body(Body::from("{}"))
            .unwrap();
        let (status, body) = call(&h.app, req).await;
        assert_eq!(
            (status, body["code"].as_str()),
            (
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                Some("body.content_type")
            ),
            "POST {path}"
        );
        assert!(
            item["post"]["responses"]["415"].is_object(),
            "POST {path} documents 415"
        );
    }
    // Twelve take JSON (registration, witness reports, tools statements,
    // blocks and calls to confirm among them), and OAuth's three take
    // forms: text/plain is neither.
    assert_eq!(posts, 15, "every POST route is in the document");
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, operation) in item.as_object().unwrap() {
            for status in ["400", "403", "421"] {
                assert!(
                    operation["responses"][status].is_object(),
                    "{method} {path} documents {status}"
                );
            }
        }
    }
}
