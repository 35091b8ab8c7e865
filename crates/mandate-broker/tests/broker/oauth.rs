//! The broker as an OAuth authorization server: a chain and a DPoP proof
//! exchanged for an access token (RFC 8693, 9449, 9068), each refusal with
//! its RFC error code, and introspection that sees a revocation at once.

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use ed25519_dalek::Signer as _;
use mandate_broker::oauth::Resource;
use mandate_broker::router;
use mandate_core::scope::AuthorizationDetail;
use mandate_core::token::{Actor, Confirmation, GrantClaims};
use mandate_core::{Claims as _, SigningKey, TokenId, base64url};
use serde_json::{Value, json};

use crate::revocations::{approved, revocation};
use crate::users::alice_key;
use crate::{HOST, Harness, NOW, URL, agent, call, harness};

pub(crate) const FILES: &str = "https://f/";
const TOKEN_URL: &str = "http://127.0.0.1:7700/oauth/token";
const CHAIN_TYPE: &str = "urn:mandate:params:oauth:token-type:chain";

/// The harness's broker, issuing tokens for `https://f/` (EdDSA) and
/// `https://ledger.example/` (ES256).
fn app(h: &Harness) -> Router {
    router(h.state.clone().serving(vec![
        Resource::parse(FILES).unwrap(),
        Resource::parse("https://ledger.example/=ES256").unwrap(),
    ]))
}

/// A DPoP proof by `key` for `POST` on the token endpoint.
pub(crate) fn dpop(key: &SigningKey, jti: &str, iat: i64) -> String {
    let header = json!({ "typ": "dpop+jwt", "alg": "EdDSA", "jwk": key.public().to_jwk() });
    let claims = json!({ "jti": jti, "htm": "POST", "htu": TOKEN_URL, "iat": iat });
    let input = format!(
        "{}.{}",
        base64url::encode(header.to_string().as_bytes()),
        base64url::encode(claims.to_string().as_bytes())
    );
    let signature = ed25519_dalek::SigningKey::from_bytes(&key.to_seed()).sign(input.as_bytes());
    format!("{input}.{}", base64url::encode(signature.to_bytes()))
}

/// The root grant `approved` made, as a token.
async fn root_token(h: &Harness, id: TokenId) -> String {
    let grants = h
        .store
        .grants_of(&h.alice.clone().try_into().unwrap())
        .await
        .unwrap();
    grants.into_iter().find(|g| g.id == id).unwrap().token
}

/// Agent 1 delegates `read` under its grant to agent 2, for `exp`.
fn child(h: &Harness, root: TokenId, exp: i64, location: &str) -> String {
    to_agent_2(
        h,
        &agent(1),
        Some(root),
        exp,
        location,
        &format!("child-{exp}"),
    )
}

/// A grant of `read` at `location` to agent 2, signed by `by` under
/// `prf` (a root grant without one), for `exp`.
fn to_agent_2(
    h: &Harness,
    by: &SigningKey,
    prf: Option<TokenId>,
    exp: i64,
    location: &str,
    jti: &str,
) -> String {
    GrantClaims {
        sub: h.alice.clone().try_into().unwrap(),
        act: Actor {
            sub: agent(2).public().agent_id(),
        },
        cnf: Confirmation {
            jkt: agent(2).thumbprint(),
        },
        authorization_details: vec![
            AuthorizationDetail::new("files", ["read"], [location]).unwrap(),
        ],
        purpose: "Fetch the Q3 file".into(),
        intent: None,
        iat: NOW,
        nbf: NOW,
        exp,
        jti: jti.to_owned().try_into().unwrap(),
        max_depth: 0,
        prf,
        req: None,
    }
    .sign(by)
}

/// The refusal says the chain is revoked.
fn assert_revoked(body: &Value) {
    let description = body["error_description"].as_str().unwrap_or_default();
    assert!(description.starts_with("chain.revoked"), "{body}");
}

/// Alice revokes grant `id`, at `app`.
async fn revoke(app: &Router, h: &Harness, id: TokenId, jti: &str) {
    let (status, body) = call(
        app,
        crate::post(
            "/v1/revocations",
            json!({ "revocation": revocation(&h.alice, vec![id], &alice_key(), jti) }).to_string(),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
}

/// A token-exchange call.
fn exchange(chain: &[String], proof: Option<&str>, extra: &[(&str, &str)]) -> Request<Body> {
    let joined = chain.join(",");
    let mut form: Vec<(&str, &str)> = vec![
        (
            "grant_type",
            "urn:ietf:params:oauth:grant-type:token-exchange",
        ),
        ("subject_token", &joined),
        ("subject_token_type", CHAIN_TYPE),
        ("resource", FILES),
    ];
    for (k, v) in extra {
        form.retain(|(name, _)| name != k);
        form.push((k, v));
    }
    let mut r = Request::post("/oauth/token")
        .header("host", HOST)
        .header("content-type", "application/x-www-form-urlencoded");
    if let Some(p) = proof {
        r = r.header("dpop", p);
    }
    r.body(Body::from(serde_urlencoded::to_string(&form).unwrap()))
        .unwrap()
}

fn introspect(token: &str) -> Request<Body> {
    Request::post("/oauth/introspect")
        .header("host", HOST)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(Body::from(
            serde_urlencoded::to_string([("token", token)]).unwrap(),
        ))
        .unwrap()
}

/// The header and claims of a compact JWS.
fn decode(token: &str) -> (Value, Value) {
    let mut parts = token.split('.');
    let mut part =
        || serde_json::from_slice(&base64url::decode(parts.next().unwrap()).unwrap()).unwrap();
    (part(), part())
}

#[tokio::test]
async fn a_chain_is_exchanged_for_an_access_token_bound_to_the_leaf_key() {
    let h = harness().await;
    let app = app(&h);
    let root_id = approved(&h, "ox1").await;
    let root = root_token(&h, root_id).await;
    let sub = child(&h, root_id, NOW + 400, "https://f/r/q3/");
    let chain = vec![root.clone(), sub.clone()];
    let keys = base64url::encode(agent(1).public().as_bytes());

    let (status, body) = call(
        &app,
        exchange(
            &chain,
            Some(&dpop(&agent(2), "d1", NOW)),
            &[("mandate_keys", &keys)],
        ),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["token_type"], "DPoP");
    assert_eq!(
        body["issued_token_type"],
        "urn:ietf:params:oauth:token-type:access_token"
    );
    assert_eq!(body["expires_in"], 300);
    let (header, claims) = decode(body["access_token"].as_str().unwrap());
    assert_eq!(header["typ"], "at+jwt");
    assert_eq!(header["alg"], "EdDSA");
    assert_eq!(claims["iss"], URL);
    assert_eq!(claims["sub"], h.alice.as_str());
    assert_eq!(claims["aud"], FILES);
    let leaf = agent(2).public().agent_id().to_string();
    let parent = agent(1).public().agent_id().to_string();
    assert_eq!(claims["client_id"], leaf);
    assert_eq!(
        claims["act"],
        json!({ "sub": leaf, "act": { "sub": parent } }),
        "the leaf outermost"
    );
    assert_eq!(claims["cnf"]["jkt"], agent(2).thumbprint().to_string());
    assert_eq!(claims["exp"], NOW + 300);
    assert_eq!(claims["scope"], "files:read");
    assert_eq!(
        claims["authorization_details"],
        json!([{ "type": "files", "actions": ["read"], "locations": ["https://f/r/q3/"] }])
    );
    assert!(claims["jti"].as_str().is_some_and(|j| j.len() >= 16));
    assert_eq!(claims.get("mandate_limits"), None, "no max_calls here");
    // Its signature verifies under the key set the broker publishes.
    let (_, set) = call(&app, crate::get("/oauth/jwks", None)).await;
    let key = set["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["kid"] == header["kid"])
        .expect("the signing key is published");
    let x: [u8; 32] = base64url::decode(key["x"].as_str().unwrap())
        .unwrap()
        .try_into()
        .unwrap();
    let token = body["access_token"].as_str().unwrap();
    let (input, signature) = token.rsplit_once('.').unwrap();
    let signature: [u8; 64] = base64url::decode(signature).unwrap().try_into().unwrap();
    ed25519_dalek::VerifyingKey::from_bytes(&x)
        .unwrap()
        .verify_strict(
            input.as_bytes(),
            &ed25519_dalek::Signature::from_bytes(&signature),
        )
        .expect("the access token verifies under the published key");

    // The token never outlives the chain: a child ending in 100 s.
    let short = vec![
        root.clone(),
        child(&h, root_id, NOW + 100, "https://f/r/q3/"),
    ];
    let (status, body) = call(
        &app,
        exchange(
            &short,
            Some(&dpop(&agent(2), "d2", NOW)),
            &[("mandate_keys", &keys)],
        ),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["expires_in"], 100);

    // A resource the chain grants nothing at.
    let (status, body) = call(
        &app,
        exchange(
            std::slice::from_ref(&root),
            Some(&dpop(&agent(1), "d3", NOW)),
            &[("resource", "https://ledger.example/")],
        ),
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_target")),
        "the root grants nothing at the ledger: {body}"
    );

    // Introspection: active, then inactive the moment the root is revoked.
    let token = {
        let (_, body) = call(
            &app,
            exchange(
                &chain,
                Some(&dpop(&agent(2), "d4", NOW)),
                &[("mandate_keys", &keys)],
            ),
        )
        .await;
        body["access_token"].as_str().unwrap().to_owned()
    };
    let (status, body) = call(&app, introspect(&token)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["active"], true);
    assert_eq!(body["client_id"], leaf);
    assert_eq!(body["token_type"], "DPoP");
    revoke(&app, &h, root_id, "orv").await;
    let (_, body) = call(&app, introspect(&token)).await;
    assert_eq!(body, json!({ "active": false }), "revoked at once");
    // And a revoked chain is not exchanged again.
    let (status, body) = call(
        &app,
        exchange(
            &chain,
            Some(&dpop(&agent(2), "d5", NOW)),
            &[("mandate_keys", &keys)],
        ),
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_grant")),
        "{body}"
    );
    assert_revoked(&body);
    // Not a token of this broker's, or garbage: inactive.
    for other in ["x", "a.b.c", root.as_str()] {
        let (status, body) = call(&app, introspect(other)).await;
        assert_eq!((status, body), (StatusCode::OK, json!({ "active": false })));
    }
}

#[tokio::test]
async fn an_es256_resource_gets_an_es256_token() {
    let h = harness().await;
    let app = router(
        h.state
            .clone()
            .serving(vec![Resource::parse("https://f/r/=ES256").unwrap()]),
    );
    let root_id = approved(&h, "oes").await;
    let root = root_token(&h, root_id).await;
    let (status, body) = call(
        &app,
        exchange(
            &[root],
            Some(&dpop(&agent(1), "e1", NOW)),
            &[("resource", "https://f/r/")],
        ),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let token = body["access_token"].as_str().unwrap();
    let (header, _) = decode(token);
    assert_eq!(header["alg"], "ES256");
    let (_, set) = call(&app, crate::get("/oauth/jwks", None)).await;
    let key = set["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["kid"] == header["kid"])
        .expect("published");
    assert_eq!((&key["kty"], &key["crv"]), (&json!("EC"), &json!("P-256")));
    let (_, body) = call(&app, introspect(token)).await;
    assert_eq!(body["active"], true, "{body}");
    // The metadata names the token endpoint and each resource's algorithm.
    let (_, meta) = call(
        &app,
        crate::get("/.well-known/oauth-authorization-server", None),
    )
    .await;
    assert_eq!(meta["issuer"], URL);
    assert_eq!(meta["token_endpoint"], TOKEN_URL);
    assert_eq!(meta["mandate_resources"]["https://f/r/"], "ES256");
}

#[tokio::test]
async fn each_refusal_has_its_rfc_error_code() {
    let h = harness().await;
    let app = app(&h);
    let root_id = approved(&h, "orf").await;
    let root = root_token(&h, root_id).await;
    let one = vec![root.clone()];

    // No proof; another key's proof; a stale one; one for another URL.
    let (s, b) = call(&app, exchange(&one, None, &[])).await;
    refused_with(s, &b, "invalid_dpop_proof");
    let (s, b) = call(&app, exchange(&one, Some(&dpop(&agent(3), "r1", NOW)), &[])).await;
    refused_with(s, &b, "invalid_grant");
    let (s, b) = call(
        &app,
        exchange(&one, Some(&dpop(&agent(1), "r2", NOW - 600)), &[]),
    )
    .await;
    refused_with(s, &b, "invalid_dpop_proof");
    // An unknown resource.
    let (s, b) = call(
        &app,
        exchange(
            &one,
            Some(&dpop(&agent(1), "r3", NOW)),
            &[("resource", "https://elsewhere.example/")],
        ),
    )
    .await;
    refused_with(s, &b, "invalid_target");
    // authorization_details and scope wider than the chain.
    let wider =
        json!([{ "type": "files", "actions": ["read", "write"], "locations": ["https://f/r/"] }])
            .to_string();
    let (s, b) = call(
        &app,
        exchange(
            &one,
            Some(&dpop(&agent(1), "r4", NOW)),
            &[("authorization_details", &wider)],
        ),
    )
    .await;
    refused_with(s, &b, "invalid_authorization_details");
    let (s, b) = call(
        &app,
        exchange(
            &one,
            Some(&dpop(&agent(1), "r5", NOW)),
            &[("scope", "files:write")],
        ),
    )
    .await;
    refused_with(s, &b, "invalid_scope");
    // A chain wider than its parent: the child asks for write.
    let mut wide = GrantClaims {
        sub: h.alice.clone().try_into().unwrap(),
        act: Actor {
            sub: agent(2).public().agent_id(),
        },
        cnf: Confirmation {
            jkt: agent(2).thumbprint(),
        },
        authorization_details: vec![
            AuthorizationDetail::new("files", ["read", "write"], ["https://f/r/"]).unwrap(),
        ],
        purpose: "More than given".into(),
        intent: None,
        iat: NOW,
        nbf: NOW,
        exp: NOW + 300,
        jti: "wide".to_string().try_into().unwrap(),
        max_depth: 0,
        prf: Some(root_id),
        req: None,
    };
    let keys = base64url::encode(agent(1).public().as_bytes());
    let (s, b) = call(
        &app,
        exchange(
            &[root.clone(), wide.clone().sign(&agent(1))],
            Some(&dpop(&agent(2), "r6", NOW)),
            &[("mandate_keys", &keys)],
        ),
    )
    .await;
    refused_with(s, &b, "invalid_grant");
    assert!(
        b["error_description"]
            .as_str()
            .unwrap()
            .starts_with("scope.escalated_action"),
        "{b}"
    );
    // An expired chain.
    wide.authorization_details =
        vec![AuthorizationDetail::new("files", ["read"], ["https://f/r/"]).unwrap()];
    wide.exp = NOW - 120;
    wide.iat = NOW - 300;
    wide.nbf = NOW - 300;
    let (s, b) = call(
        &app,
        exchange(
            &[root.clone(), wide.sign(&agent(1))],
            Some(&dpop(&agent(2), "r7", NOW)),
            &[("mandate_keys", &keys)],
        ),
    )
    .await;
    refused_with(s, &b, "invalid_grant");
    assert!(
        b["error_description"]
            .as_str()
            .unwrap()
            .starts_with("time.expired"),
        "{b}"
    );
    // A proof used twice.
    let proof = dpop(&agent(1), "r8", NOW);
    let (s, b) = call(&app, exchange(&one, Some(&proof), &[])).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let (s, b) = call(&app, exchange(&one, Some(&proof), &[])).await;
    refused_with(s, &b, "invalid_dpop_proof");
    // An empty chain.
    let (s, b) = call(
        &app,
        exchange(&[String::new()], Some(&dpop(&agent(1), "r10", NOW)), &[]),
    )
    .await;
    refused_with(s, &b, "invalid_request");
    // Another grant type; a repeated parameter; not a form at all.
    let (s, b) = call(
        &app,
        exchange(
            &one,
            Some(&dpop(&agent(1), "r9", NOW)),
            &[("grant_type", "client_credentials")],
        ),
    )
    .await;
    refused_with(s, &b, "unsupported_grant_type");
    let twice = Request::post("/oauth/token")
        .header("host", HOST)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(Body::from("grant_type=a&grant_type=b"))
        .unwrap();
    let (s, b) = call(&app, twice).await;
    refused_with(s, &b, "invalid_request");
    let json_body = crate::post("/oauth/token", "{}");
    let (s, b) = call(&app, json_body).await;
    assert_eq!(
        (s, b["code"].as_str()),
        (
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Some("body.content_type")
        ),
        "the front door: {b}"
    );
}

pub(crate) fn refused_with(status: StatusCode, body: &Value, error: &str) {
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some(error)),
        "{body}"
    );
}

/// Two broker instances on one store. Each keeps a chain's bindings and
/// revocation state in memory between changes; what one instance
/// revokes, the other's exchange refuses as soon as its event hub has
/// seen it (at once on Postgres through LISTEN/NOTIFY, within a poll on
/// SQLite), although it had that chain's state in memory.
#[tokio::test]
async fn a_revocation_on_another_instance_reaches_this_ones_exchange() {
    let h = harness().await;
    let this = app(&h);
    let tick = std::sync::Arc::clone(&h.clock);
    let other = router(mandate_broker::AppState::new(
        h.store.clone(),
        SigningKey::from_seed(&[90; 32]),
        URL,
        mandate_broker::oidc::OidcVerifier::new(vec![h.idp.trusted()]).unwrap(),
        std::sync::Arc::new(move || tick.load(std::sync::atomic::Ordering::SeqCst)),
        mandate_broker::Limits::default(),
    ));
    let root_id = approved(&h, "oi1").await;
    let root = root_token(&h, root_id).await;
    let chain = vec![
        root.clone(),
        child(&h, root_id, NOW + 400, "https://f/r/q3/"),
    ];
    let keys = base64url::encode(agent(1).public().as_bytes());
    let mut n = 0;
    let mut exchange_here = async || {
        n += 1;
        let proof = dpop(&agent(2), &format!("oi-{n}"), NOW);
        call(
            &this,
            exchange(&chain, Some(&proof), &[("mandate_keys", &keys)]),
        )
        .await
    };
    // Twice: the second is answered from memory.
    for _ in 0..2 {
        let (status, body) = exchange_here().await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    revoke(&other, &h, root_id, "oir").await;
    // This instance learns of it from the store's event log; until then
    // it may still exchange. 40 tries, 250 ms apart, bound the wait.
    let mut refused = None;
    for _ in 0..40 {
        let (status, body) = exchange_here().await;
        if body["error"] == "invalid_grant" {
            refused = Some(body);
            break;
        }
        assert!(
            status == StatusCode::OK || body["error"] == "slow_down",
            "{status} {body}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    }
    let body = refused.expect("the revocation never reached this instance");
    assert_revoked(&body);
}

/// A chain rooted in a user key that the user removes (a lost laptop) is
/// refused by the next exchange, although its state was in memory.
#[tokio::test]
async fn a_removed_user_key_ends_its_chains_at_once() {
    let h = harness().await;
    let app = app(&h);
    let laptop = SigningKey::from_seed(&[21; 32]);
    crate::enroll(&h.store, &h.alice, &laptop).await;
    let root = to_agent_2(&h, &laptop, None, NOW + 600, "https://f/r/", "laptop-root");
    let chain = vec![root];
    for n in 0..2 {
        let proof = dpop(&agent(2), &format!("rk-{n}"), NOW);
        let (status, body) = call(&app, exchange(&chain, Some(&proof), &[])).await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    let bearer = h.idp.token("alice", json!({}));
    let removal = crate::users::key_revocation(&alice_key(), &h.alice, &[&laptop], "rk");
    let (status, body) = call(
        &app,
        crate::users::post_json(
            "/v1/keys/revocations",
            json!({ "revocation": removal }),
            &bearer,
        ),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let proof = dpop(&agent(2), "rk-after", NOW);
    let (status, body) = call(&app, exchange(&chain, Some(&proof), &[])).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_grant")),
        "{body}"
    );
}
