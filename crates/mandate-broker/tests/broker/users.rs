//! Signed-in users: the inbox, key enrollment and decisions, with bearer
//! tokens from a real HTTP issuer on loopback.

use axum::body::Body;
use axum::http::{Request, StatusCode};
use mandate_core::scope::AuthorizationDetail;
use mandate_core::token::{Actor, Confirmation, DenialClaims, GrantClaims, PopClaims, chain_hash};
use mandate_core::{BindingSet, Claims as _, Policy, SigningKey, TokenId};
use serde_json::{Value, json};

use crate::{Harness, NOW, URL, agent, call, get, harness, pop, request_token, submit};

pub fn with_bearer(mut req: Request<Body>, token: &str) -> Request<Body> {
    req.headers_mut()
        .insert("authorization", format!("Bearer {token}").parse().unwrap());
    req
}

pub fn post_json(path: &str, body: Value, bearer: &str) -> Request<Body> {
    with_bearer(crate::post(path, body.to_string()), bearer)
}

/// A root grant from Alice's key (seed 1) to `grantee` for request `req`.
pub fn grant(
    h: &Harness,
    req: TokenId,
    grantee: &SigningKey,
    actions: &[&str],
    exp: i64,
) -> GrantClaims {
    grant_for(&h.alice, req, grantee, actions, exp)
}

/// A root grant for principal `sub` to `grantee` for request `req`.
pub fn grant_for(
    sub: &str,
    req: TokenId,
    grantee: &SigningKey,
    actions: &[&str],
    exp: i64,
) -> GrantClaims {
    GrantClaims {
        sub: sub.to_string().try_into().unwrap(),
        act: Actor {
            sub: grantee.public().agent_id(),
        },
        cnf: Confirmation {
            jkt: grantee.thumbprint(),
        },
        authorization_details: vec![
            AuthorizationDetail::new("files", actions.iter().copied(), ["https://f/r/"]).unwrap(),
        ],
        purpose: "Read the Q3 reports".into(),
        intent: Some("Summarize Q3".into()),
        iat: NOW,
        nbf: NOW,
        exp,
        jti: format!("g-{exp}-{}", actions.len()).try_into().unwrap(),
        max_depth: 1,
        prf: None,
        req: Some(req),
    }
}

pub fn alice_key() -> SigningKey {
    SigningKey::from_seed(&[1; 32])
}

#[tokio::test]
async fn the_inbox_shows_a_user_only_their_own_pending_requests() {
    let h = harness().await;
    submit(&h.app, &request_token(&agent(1), "i1", &h.alice)).await;
    submit(&h.app, &request_token(&agent(2), "i2", &h.alice)).await;
    let (status, body) = call(
        &h.app,
        with_bearer(get("/v1/inbox", None), &h.idp.token("alice", json!({}))),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["requests"].as_array().unwrap().len(), 2);
    let (_, body) = call(
        &h.app,
        with_bearer(get("/v1/inbox", None), &h.idp.token("bob", json!({}))),
    )
    .await;
    assert_eq!(
        body["requests"].as_array().unwrap().len(),
        0,
        "bob sees none of alice's requests"
    );

    // Only the named requests, those pending: what the app reads when the
    // stream announces new ones.
    let alice_token = h.idp.token("alice", json!({}));
    let all = call(&h.app, with_bearer(get("/v1/inbox", None), &alice_token))
        .await
        .1;
    let first = all["requests"][0]["id"].as_str().unwrap().to_owned();
    let unknown = mandate_core::TokenId::of("never filed").to_string();
    let (status, body) = call(
        &h.app,
        with_bearer(
            get(&format!("/v1/inbox?ids={unknown},{first}"), None),
            &alice_token,
        ),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let ids: Vec<&str> = body["requests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [first.as_str()]);
    let (_, body) = call(
        &h.app,
        with_bearer(
            get(&format!("/v1/inbox?ids={first}"), None),
            &h.idp.token("bob", json!({})),
        ),
    )
    .await;
    assert_eq!(
        body["requests"],
        json!([]),
        "bob does not read alice's by id"
    );
    let too_many = vec![first.as_str(); 101].join(",");
    for query in [
        "ids=".to_owned(),
        "ids=not-an-id".to_owned(),
        format!("ids={first},"),
        format!("ids={first}&ids={first}"),
        format!("ids={too_many}"),
        "since=3".to_owned(),
    ] {
        let (status, body) = call(
            &h.app,
            with_bearer(get(&format!("/v1/inbox?{query}"), None), &alice_token),
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{query}: {body}");
        assert_eq!(body["code"], "query.malformed", "{query}: {body}");
    }

    let cases: Vec<(Request<Body>, &str)> = vec![
        (get("/v1/inbox", None), "auth.missing"),
        (
            with_bearer(get("/v1/inbox", None), "not.a.jwt"),
            "auth.malformed",
        ),
        (
            with_bearer(
                get("/v1/inbox", None),
                &h.idp.token("alice", json!({ "exp": NOW - 120 })),
            ),
            "auth.expired",
        ),
        (
            with_bearer(
                get("/v1/inbox", None),
                &h.idp.token("alice", json!({ "aud": "other" })),
            ),
            "auth.audience",
        ),
    ];
    for (req, code) in cases {
        let (status, body) = call(&h.app, req).await;
        assert_eq!(
            (status, body["code"].as_str()),
            (StatusCode::UNAUTHORIZED, Some(code)),
            "{body}"
        );
    }
}

/// A proof of possession by `key` for `POST /v1/keys` in the sign-in `bearer`.
fn enroll_proof(key: &SigningKey, bearer: &str, jti: &str) -> String {
    PopClaims {
        htm: "POST".into(),
        htu: format!("{URL}/v1/keys"),
        iat: NOW,
        jti: jti.to_string().try_into().unwrap(),
        ath: chain_hash(&[bearer]),
    }
    .sign(key)
}

/// An enrollment of `key` in the sign-in `bearer`, whose session key is
/// `session` (its thumbprint the token's nonce), from `device`.
fn enrollment(
    key: &SigningKey,
    session: &SigningKey,
    bearer: &str,
    device: &str,
    jti: &str,
) -> Value {
    json!({
        "jwk": key.public().to_jwk(),
        "proof": enroll_proof(key, bearer, &format!("{jti}-k")),
        "device": device,
        "session_jwk": session.public().to_jwk(),
        "session_proof": enroll_proof(session, bearer, &format!("{jti}-s")),
    })
}

async fn refused(h: &Harness, body: Value, bearer: &str, status: StatusCode, code: &str) {
    let (got, res) = call(&h.app, post_json("/v1/keys", body, bearer)).await;
    assert_eq!((got, res["code"].as_str()), (status, Some(code)), "{res}");
}

async fn keys_of(h: &Harness, bearer: &str) -> Vec<Value> {
    let (status, res) = call(&h.app, with_bearer(get("/v1/keys", None), bearer)).await;
    assert_eq!(status, StatusCode::OK, "{res}");
    res["keys"].as_array().unwrap().clone()
}

#[tokio::test]
async fn a_user_enrolls_a_key_they_hold_in_a_fresh_sign_in_made_for_it() {
    let h = harness().await;
    let key = SigningKey::from_seed(&[3; 32]);
    let session = SigningKey::from_seed(&[33; 32]);
    let nonce = session.thumbprint().to_string();
    let bearer = h.idp.token("carol", json!({ "nonce": nonce }));
    let unauthorized = StatusCode::UNAUTHORIZED;

    // A proof made for another sign-in does not enroll the key.
    let other = h
        .idp
        .token("carol", json!({ "iat": NOW - 1, "nonce": nonce }));
    let mut body = enrollment(&key, &session, &bearer, "Carol's laptop", "a");
    body["proof"] = json!(enroll_proof(&key, &other, "a0"));
    refused(&h, body, &bearer, unauthorized, "pop.ath_mismatch").await;
    // Nor a proof by another key.
    let mut body = enrollment(&key, &session, &bearer, "Carol's laptop", "b");
    body["proof"] = json!(enroll_proof(
        &SigningKey::from_seed(&[4; 32]),
        &bearer,
        "b0"
    ));
    refused(&h, body, &bearer, unauthorized, "pop.wrong_key").await;

    // A sign-in more than 5 minutes old enrolls nothing, by auth_time or,
    // without one, by iat.
    for stale in [
        json!({ "nonce": nonce, "auth_time": NOW - 301 }),
        json!({ "nonce": nonce, "iat": NOW - 301 }),
    ] {
        let old = h.idp.token("carol", stale);
        let body = enrollment(&key, &session, &old, "Carol's laptop", "c");
        refused(&h, body, &old, unauthorized, "key.sign_in_stale").await;
    }
    // A sign-in whose nonce commits to another session key (a copied ID
    // token, say) enrolls nothing; nor one without the session key.
    let copied = h
        .idp
        .token("carol", json!({ "nonce": "someone-elses-nonce" }));
    let body = enrollment(&key, &session, &copied, "Carol's laptop", "d");
    refused(&h, body, &copied, unauthorized, "key.nonce_mismatch").await;
    let mut body = enrollment(&key, &session, &bearer, "Carol's laptop", "e");
    body.as_object_mut().unwrap().remove("session_proof");
    refused(
        &h,
        body,
        &bearer,
        StatusCode::BAD_REQUEST,
        "key.session_missing",
    )
    .await;
    // The session key's proof must be by the session key.
    let mut body = enrollment(&key, &session, &bearer, "Carol's laptop", "f");
    body["session_proof"] = json!(enroll_proof(&key, &bearer, "f1"));
    refused(&h, body, &bearer, unauthorized, "pop.wrong_key").await;
    // The device is named, briefly, in text.
    for device in [String::new(), "  ".into(), "a\nb".into(), "x".repeat(65)] {
        let body = enrollment(
            &key,
            &session,
            &bearer,
            &device,
            &format!("g{}", device.len()),
        );
        refused(
            &h,
            body,
            &bearer,
            StatusCode::BAD_REQUEST,
            "key.device_malformed",
        )
        .await;
    }
    assert!(
        keys_of(&h, &bearer).await.is_empty(),
        "nothing was enrolled"
    );

    let (status, res) = call(
        &h.app,
        post_json(
            "/v1/keys",
            enrollment(&key, &session, &bearer, "Carol's laptop", "h"),
            &bearer,
        ),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{res}");
    // The binding verifies under the broker's published key, for 7 days.
    let broker = SigningKey::from_seed(&[90; 32]);
    let mut bindings = BindingSet::new();
    bindings
        .insert_token(
            res["binding"].as_str().unwrap(),
            broker.public(),
            URL,
            &Policy::default(),
            NOW,
        )
        .unwrap();
    assert_eq!(res["jkt"], key.thumbprint().to_string());
    assert_eq!(res["expires_at"], NOW + 7 * 24 * 3600);
    let listed = keys_of(&h, &bearer).await;
    assert_eq!(listed.len(), 1);
    assert_eq!(
        (
            &listed[0]["jkt"],
            &listed[0]["device"],
            &listed[0]["enrolled_at"]
        ),
        (
            &json!(key.thumbprint().to_string()),
            &json!("Carol's laptop"),
            &json!(NOW)
        )
    );
    let events = h.store.events_since(0, 100).await.unwrap();
    assert!(
        events
            .iter()
            .any(|e| e.kind == mandate_store::EventKind::KeyEnrolled
                && e.subject == key.thumbprint().to_string()),
        "the enrollment is an event on the user's stream"
    );

    // The same sign-in cannot enroll a second key...
    let second = SigningKey::from_seed(&[5; 32]);
    let body = enrollment(&second, &session, &bearer, "Another", "i");
    refused(&h, body, &bearer, StatusCode::CONFLICT, "key.token_spent").await;
    // ...but renews the binding of the key it holds, as any later sign-in
    // may, fresh or not, with no session key and no device.
    let later = h.idp.token("carol", json!({ "iat": NOW - 3000 }));
    let renew = json!({ "jwk": key.public().to_jwk(), "proof": enroll_proof(&key, &later, "j") });
    let (status, res) = call(&h.app, post_json("/v1/keys", renew, &later)).await;
    assert_eq!(status, StatusCode::CREATED, "{res}");
    assert_eq!(
        keys_of(&h, &later).await.len(),
        1,
        "a renewal is no new key"
    );

    // The same key cannot be enrolled by someone else.
    let dave_session = SigningKey::from_seed(&[44; 32]);
    let dave = h.idp.token(
        "dave",
        json!({ "nonce": dave_session.thumbprint().to_string() }),
    );
    let body = enrollment(&key, &dave_session, &dave, "Dave's", "k");
    refused(&h, body, &dave, StatusCode::CONFLICT, "key.bound_elsewhere").await;
    assert!(keys_of(&h, &dave).await.is_empty());
}

#[tokio::test]
async fn a_decision_must_answer_the_request_as_asked() {
    let h = harness().await;
    let token = request_token(&agent(1), "d1", &h.alice);
    submit(&h.app, &token).await;
    let id = TokenId::of(&token);
    let path = format!("/v1/requests/{id}/decision");
    let bearer = h.idp.token("alice", json!({}));
    let decide = |grant: &GrantClaims, key: &SigningKey| json!({ "grant": grant.sign(key) });

    let other_request = TokenId::of("another request");
    let wrong: Vec<(Value, StatusCode, &str)> = vec![
        (
            decide(
                &grant(&h, other_request, &agent(1), &["read"], NOW + 600),
                &alice_key(),
            ),
            StatusCode::UNPROCESSABLE_ENTITY,
            "decision.wrong_request",
        ),
        (
            decide(
                &grant(&h, id, &agent(2), &["read"], NOW + 600),
                &alice_key(),
            ),
            StatusCode::UNPROCESSABLE_ENTITY,
            "decision.wrong_agent",
        ),
        (
            decide(
                &grant(&h, id, &agent(1), &["read", "write"], NOW + 600),
                &alice_key(),
            ),
            StatusCode::UNPROCESSABLE_ENTITY,
            "decision.exceeds_request",
        ),
        (
            decide(
                &grant(&h, id, &agent(1), &["read"], NOW + 86_400),
                &alice_key(),
            ),
            StatusCode::UNPROCESSABLE_ENTITY,
            "decision.exceeds_request",
        ),
        (
            decide(
                &grant(&h, id, &agent(1), &["read"], NOW + 600),
                &SigningKey::from_seed(&[66; 32]),
            ),
            StatusCode::BAD_REQUEST,
            "key.unknown",
        ),
        (
            json!({ "grant": "a", "denial": "b" }),
            StatusCode::BAD_REQUEST,
            "decision.malformed",
        ),
        (
            json!({ "grant": "not.a.token" }),
            StatusCode::BAD_REQUEST,
            "token.malformed",
        ),
    ];
    for (body, status, code) in wrong {
        let (got, res) = call(&h.app, post_json(&path, body, &bearer)).await;
        assert_eq!((got, res["code"].as_str()), (status, Some(code)), "{res}");
    }
    // Bob cannot decide Alice's request, nor learn that it exists.
    let good = decide(
        &grant(&h, id, &agent(1), &["read"], NOW + 600),
        &alice_key(),
    );
    let (status, res) = call(
        &h.app,
        post_json(&path, good.clone(), &h.idp.token("bob", json!({}))),
    )
    .await;
    assert_eq!(
        (status, res["code"].as_str()),
        (StatusCode::NOT_FOUND, Some("request.not_found"))
    );
    assert!(
        h.store
            .grants_of(&h.alice.clone().try_into().unwrap())
            .await
            .unwrap()
            .is_empty(),
        "nothing stored"
    );

    let (status, res) = call(&h.app, post_json(&path, good.clone(), &bearer)).await;
    assert_eq!(
        (status, res["status"].as_str()),
        (StatusCode::OK, Some("approved")),
        "{res}"
    );
    // The same signed decision again (an outbox resending after a crash)
    // is accepted and changes nothing; any other decision is refused.
    let events = h.store.events_since(0, 1000).await.unwrap().len();
    let (status, res) = call(&h.app, post_json(&path, good, &bearer)).await;
    assert_eq!(
        (status, res["status"].as_str()),
        (StatusCode::OK, Some("approved")),
        "{res}"
    );
    assert_eq!(h.store.events_since(0, 1000).await.unwrap().len(), events);
    let other = decide(
        &grant(&h, id, &agent(1), &["read"], NOW + 500),
        &alice_key(),
    );
    let (status, res) = call(&h.app, post_json(&path, other, &bearer)).await;
    assert_eq!(
        (status, res["code"].as_str()),
        (StatusCode::CONFLICT, Some("request.already_decided"))
    );

    // The agent collects exactly the grant the user signed.
    let poll_path = format!("/v1/requests/{id}");
    let (_, res) = call(
        &h.app,
        get(
            &poll_path,
            Some(&pop(&agent(1), &token, &format!("{URL}{poll_path}"), "c")),
        ),
    )
    .await;
    let expected = grant(&h, id, &agent(1), &["read"], NOW + 600).sign(&alice_key());
    assert_eq!(res["grant"].as_str(), Some(expected.as_str()));
}

#[tokio::test]
async fn a_user_denies_with_a_signature() {
    let h = harness().await;
    let token = request_token(&agent(1), "n1", &h.alice);
    submit(&h.app, &token).await;
    let id = TokenId::of(&token);
    let denial = |req: TokenId, key: &SigningKey| {
        DenialClaims {
            sub: h.alice.clone().try_into().unwrap(),
            req,
            reason: Some("not now".into()),
            iat: NOW,
            jti: "deny".to_string().try_into().unwrap(),
        }
        .sign(key)
    };
    let bearer = h.idp.token("alice", json!({}));
    let path = format!("/v1/requests/{id}/decision");
    let (status, res) = call(
        &h.app,
        post_json(
            &path,
            json!({ "denial": denial(TokenId::of("x"), &alice_key()) }),
            &bearer,
        ),
    )
    .await;
    assert_eq!(
        (status, res["code"].as_str()),
        (
            StatusCode::UNPROCESSABLE_ENTITY,
            Some("decision.wrong_request")
        )
    );
    let stranger = SigningKey::from_seed(&[66; 32]);
    let (status, res) = call(
        &h.app,
        post_json(&path, json!({ "denial": denial(id, &stranger) }), &bearer),
    )
    .await;
    assert_eq!(
        (status, res["code"].as_str()),
        (StatusCode::FORBIDDEN, Some("decision.key_not_enrolled"))
    );
    let (status, res) = call(
        &h.app,
        post_json(
            &path,
            json!({ "denial": denial(id, &alice_key()) }),
            &bearer,
        ),
    )
    .await;
    assert_eq!(
        (status, res["status"].as_str()),
        (StatusCode::OK, Some("denied")),
        "{res}"
    );
    let poll_path = format!("/v1/requests/{id}");
    let (_, res) = call(
        &h.app,
        get(
            &poll_path,
            Some(&pop(&agent(1), &token, &format!("{URL}{poll_path}"), "d")),
        ),
    )
    .await;
    assert_eq!(res["status"], "denied");
    assert_eq!(
        res["denial"].as_str(),
        Some(denial(id, &alice_key()).as_str())
    );
}

#[tokio::test]
async fn a_long_poll_returns_as_soon_as_the_user_decides() {
    let h = harness().await;
    let token = request_token(&agent(1), "lp", &h.alice);
    submit(&h.app, &token).await;
    let id = TokenId::of(&token);
    let path = format!("/v1/requests/{id}");
    let proof = pop(&agent(1), &token, &format!("{URL}{path}"), "lp");
    let app = h.app.clone();
    let poll_path = format!("{path}?wait=30");
    let waiting = tokio::spawn(async move { call(&app, get(&poll_path, Some(&proof))).await });

    let bearer = h.idp.token("alice", json!({}));
    let g = grant(&h, id, &agent(1), &["read"], NOW + 600).sign(&alice_key());
    let (status, _) = call(
        &h.app,
        post_json(&format!("{path}/decision"), json!({ "grant": g }), &bearer),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    // The poll may wait 30 s; it must return well before, woken by the decision.
    let (status, body) = tokio::time::timeout(std::time::Duration::from_secs(10), waiting)
        .await
        .expect("the long poll is woken by the decision")
        .expect("task");
    assert_eq!(
        (status, body["status"].as_str()),
        (StatusCode::OK, Some("approved")),
        "{body}"
    );
    assert_eq!(body["grant"].as_str(), Some(g.as_str()));

    let (status, body) = call(&h.app, get(&format!("{path}?wait=soon"), None)).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("query.malformed"))
    );
}

/// A key revocation by `by`, for `sub`, removing `keys`.
pub(crate) fn key_revocation(
    by: &SigningKey,
    sub: &str,
    keys: &[&SigningKey],
    jti: &str,
) -> String {
    mandate_core::token::KeyRevocationClaims {
        sub: sub.to_owned().try_into().unwrap(),
        keys: keys.iter().map(|k| k.thumbprint()).collect(),
        reason: None,
        iat: NOW,
        jti: jti.to_owned().try_into().unwrap(),
    }
    .sign(by)
}

#[tokio::test]
async fn a_user_removes_their_own_keys_and_only_those() {
    let h = harness().await;
    let bearer = h.idp.token("alice", json!({}));
    let desktop = SigningKey::from_seed(&[1; 32]);
    let laptop = SigningKey::from_seed(&[21; 32]);
    crate::enroll(&h.store, &h.alice, &laptop).await;
    let bob = format!("{}#bob", h.idp.url);
    let bobs = SigningKey::from_seed(&[22; 32]);
    crate::enroll(&h.store, &bob, &bobs).await;
    let remove = |token: String| {
        post_json(
            "/v1/keys/revocations",
            json!({ "revocation": token }),
            &bearer,
        )
    };
    let refused = |status: StatusCode, code: &'static str| (status, Some(code));

    for (token, expect) in [
        // Signed by a key bound to nobody.
        (
            key_revocation(
                &SigningKey::from_seed(&[23; 32]),
                &h.alice,
                &[&laptop],
                "r1",
            ),
            refused(StatusCode::FORBIDDEN, "revocation.not_authorized"),
        ),
        // Naming another user's key.
        (
            key_revocation(&desktop, &h.alice, &[&bobs], "r2"),
            refused(StatusCode::FORBIDDEN, "revocation.not_authorized"),
        ),
        // For another user.
        (
            key_revocation(&desktop, &bob, &[&laptop], "r3"),
            refused(StatusCode::FORBIDDEN, "revocation.not_authorized"),
        ),
        // Signed by another user's key.
        (
            key_revocation(&bobs, &h.alice, &[&laptop], "r4"),
            refused(StatusCode::FORBIDDEN, "revocation.not_authorized"),
        ),
    ] {
        let (status, res) = call(&h.app, remove(token)).await;
        assert_eq!((status, res["code"].as_str()), expect, "{res}");
    }
    // A grant revocation is not a key revocation.
    let grant_revocation = mandate_core::token::RevocationClaims {
        sub: h.alice.clone().try_into().unwrap(),
        revokes: vec![TokenId::of("g")],
        reason: None,
        iat: NOW,
        jti: "r5".to_owned().try_into().unwrap(),
    }
    .sign(&desktop);
    let (status, res) = call(&h.app, remove(grant_revocation)).await;
    assert_eq!(res["code"], "header.wrong_typ", "{status} {res}");
    let (_, feed) = call(&h.app, get("/v1/revocations?since=0", None)).await;
    assert_eq!(feed["revoked"], json!([]), "nothing was removed: {feed}");

    // The desktop removes the laptop's key: once, then again, the same.
    let token = key_revocation(&desktop, &h.alice, &[&laptop], "r6");
    for _ in 0..2 {
        let (status, res) = call(&h.app, remove(token.clone())).await;
        assert_eq!(status, StatusCode::CREATED, "{res}");
        assert_eq!(res["keys"], json!([laptop.thumbprint().to_string()]));
    }
    // It is on the feed, after nothing else, as a key.
    let (_, feed) = call(&h.app, get("/v1/revocations?since=0", None)).await;
    let entries = feed["revoked"].as_array().unwrap();
    assert_eq!(entries.len(), 1, "{feed}");
    assert_eq!(entries[0]["key"], laptop.thumbprint().to_string());
    assert!(entries[0].get("grant").is_none(), "{feed}");
    // The user's keys no longer list it, and it is never bound again.
    let (_, keys) = call(&h.app, with_bearer(get("/v1/keys", None), &bearer)).await;
    assert_eq!(
        keys["keys"].as_array().unwrap().len(),
        1,
        "only the desktop's: {keys}"
    );
    let session = SigningKey::from_seed(&[24; 32]);
    let fresh = h.idp.token(
        "alice",
        json!({ "nonce": session.thumbprint().to_string() }),
    );
    let body = enrollment(&laptop, &session, &fresh, "The laptop, found", "r7");
    refused_enrollment(&h, body, &fresh, StatusCode::CONFLICT, "key.revoked").await;
}

async fn refused_enrollment(
    h: &Harness,
    body: Value,
    bearer: &str,
    status: StatusCode,
    code: &str,
) {
    let (got, res) = call(&h.app, post_json("/v1/keys", body, bearer)).await;
    assert_eq!((got, res["code"].as_str()), (status, Some(code)), "{res}");
}
