//! Revocations: who may post one, and the feed resource servers follow.

use axum::http::StatusCode;
use mandate_core::feed::Mark;
use mandate_core::token::{CheckpointClaims, RevocationClaims};
use mandate_core::{
    Checkpointed, Claims as _, Policy, PublicKey, RevocationFeed, SigningKey, TokenId,
};
use serde_json::json;

use crate::users::{alice_key, grant, post_json, with_bearer};
use crate::{Harness, NOW, agent, call, get, harness, request_token, submit};

/// Files a request from agent 1 and approves it; returns the grant's id.
pub async fn approved(h: &Harness, jti: &str) -> TokenId {
    let token = request_token(&agent(1), jti, &h.alice);
    submit(&h.app, &token).await;
    let id = TokenId::of(&token);
    let g = grant(h, id, &agent(1), &["read"], NOW + 600).sign(&alice_key());
    let bearer = h.idp.token("alice", json!({}));
    let (status, body) = call(
        &h.app,
        post_json(
            &format!("/v1/requests/{id}/decision"),
            json!({ "grant": g }),
            &bearer,
        ),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    TokenId::of(&g)
}

pub fn revocation(sub: &str, revokes: Vec<TokenId>, key: &SigningKey, jti: &str) -> String {
    RevocationClaims {
        sub: sub.to_string().try_into().unwrap(),
        revokes,
        reason: Some("done".into()),
        iat: NOW,
        jti: jti.to_string().try_into().unwrap(),
    }
    .sign(key)
}

#[tokio::test]
async fn a_user_revokes_and_resource_servers_follow_the_feed() {
    let h = harness().await;
    let g1 = approved(&h, "rv1").await;
    let g2 = approved(&h, "rv2").await;
    let post = |token: String| {
        crate::post(
            "/v1/revocations",
            json!({ "revocation": token }).to_string(),
        )
    };

    let (status, body) = call(
        &h.app,
        post(revocation(&h.alice, vec![g1], &alice_key(), "r1")),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (status, body) = call(
        &h.app,
        post(revocation(&h.alice, vec![g1], &alice_key(), "r1")),
    )
    .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (StatusCode::CONFLICT, Some("revocation.replayed"))
    );

    let (status, feed) = call(&h.app, get("/v1/revocations", None)).await;
    assert_eq!(status, StatusCode::OK);
    let entries = feed["revoked"].as_array().unwrap();
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0]["grant"], g1.to_string());
    let next = feed["next"].as_i64().unwrap();
    let (_, later) = call(&h.app, get(&format!("/v1/revocations?since={next}"), None)).await;
    assert!(later["revoked"].as_array().unwrap().is_empty());
    assert_eq!(later["next"], next);

    let bearer = h.idp.token("alice", json!({}));
    let (_, grants) = call(&h.app, with_bearer(get("/v1/grants", None), &bearer)).await;
    let revoked: Vec<(String, bool)> = grants["grants"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| {
            assert_eq!(
                g["revoked"].as_bool().unwrap(),
                g["revoked_at"].is_i64(),
                "a revoked grant says when: {g}"
            );
            (
                g["id"].as_str().unwrap().to_owned(),
                g["revoked"].as_bool().unwrap(),
            )
        })
        .collect();
    // Both grants share one timestamp, so their order is the ids' order: compare as a set.
    let mut revoked = revoked;
    revoked.sort();
    let mut expected = vec![(g1.to_string(), true), (g2.to_string(), false)];
    expected.sort();
    assert_eq!(revoked, expected);
    let (status, body) = call(&h.app, get("/v1/revocations?since=soon", None)).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("query.malformed"))
    );
}

#[tokio::test]
async fn nobody_revokes_another_users_grants() {
    let h = harness().await;
    let g = approved(&h, "rx").await;
    let bob_key = SigningKey::from_seed(&[2; 32]);
    let bob = format!("{}#bob", h.idp.url);
    crate::enroll(&h.store, &bob, &bob_key).await;
    let post = |token: String| {
        crate::post(
            "/v1/revocations",
            json!({ "revocation": token }).to_string(),
        )
    };
    let cases = vec![
        (
            revocation(&bob, vec![g], &bob_key, "b1"),
            StatusCode::UNPROCESSABLE_ENTITY,
            "revocation.unknown_grant",
        ),
        (
            revocation(&h.alice, vec![g], &bob_key, "b2"),
            StatusCode::FORBIDDEN,
            "revocation.not_authorized",
        ),
        (
            revocation(&h.alice, vec![g], &SigningKey::from_seed(&[66; 32]), "b3"),
            StatusCode::FORBIDDEN,
            "revocation.not_authorized",
        ),
        (
            revocation(&h.alice, vec![TokenId::of("unknown")], &alice_key(), "b4"),
            StatusCode::UNPROCESSABLE_ENTITY,
            "revocation.unknown_grant",
        ),
        (
            "not.a.token".into(),
            StatusCode::BAD_REQUEST,
            "token.malformed",
        ),
    ];
    for (token, status, code) in cases {
        let (got, body) = call(&h.app, post(token)).await;
        assert_eq!((got, body["code"].as_str()), (status, Some(code)), "{body}");
    }
    let (_, feed) = call(&h.app, get("/v1/revocations", None)).await;
    assert!(
        feed["revoked"].as_array().unwrap().is_empty(),
        "nothing was revoked"
    );
}

#[tokio::test]
async fn a_revoked_grant_is_reissued_narrower_to_the_same_request() {
    let h = harness().await;
    let token = request_token(&agent(1), "rn", &h.alice);
    submit(&h.app, &token).await;
    let id = TokenId::of(&token);
    let path = format!("/v1/requests/{id}/decision");
    let bearer = h.idp.token("alice", json!({}));
    let decide = |body: serde_json::Value| post_json(&path, body, &bearer);
    let old = grant(&h, id, &agent(1), &["read"], NOW + 600).sign(&alice_key());
    let old_id = TokenId::of(&old);
    let new = grant(&h, id, &agent(1), &["read"], NOW + 500).sign(&alice_key());
    let reissue = |g: &str, replaces: &str| json!({ "grant": g, "replaces": replaces });

    // Only an approved request's grant can be replaced.
    let (status, body) = call(&h.app, decide(reissue(&new, &old_id.to_string()))).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (StatusCode::CONFLICT, Some("request.not_approved")),
        "{body}"
    );
    let (status, body) = call(&h.app, decide(json!({ "grant": old }))).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // Not before the grant it replaces is revoked.
    let (status, body) = call(&h.app, decide(reissue(&new, &old_id.to_string()))).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (StatusCode::CONFLICT, Some("decision.not_revoked")),
        "{body}"
    );
    let (status, body) = call(
        &h.app,
        crate::post(
            "/v1/revocations",
            json!({ "revocation": revocation(&h.alice, vec![old_id], &alice_key(), "rn1") })
                .to_string(),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");

    let other_request = TokenId::of("another request");
    let wrong = [
        (
            reissue(&new, &TokenId::of("another grant").to_string()),
            StatusCode::CONFLICT,
            "decision.stale",
        ),
        (
            reissue(&new, "not an id"),
            StatusCode::BAD_REQUEST,
            "decision.malformed",
        ),
        (
            json!({ "denial": new, "replaces": old_id.to_string() }),
            StatusCode::BAD_REQUEST,
            "decision.malformed",
        ),
        (
            // Longer than the grant it replaces.
            reissue(
                &grant(&h, id, &agent(1), &["read"], NOW + 700).sign(&alice_key()),
                &old_id.to_string(),
            ),
            StatusCode::UNPROCESSABLE_ENTITY,
            "decision.exceeds_grant",
        ),
        (
            // More than the grant it replaces (and than was asked).
            reissue(
                &grant(&h, id, &agent(1), &["read", "write"], NOW + 500).sign(&alice_key()),
                &old_id.to_string(),
            ),
            StatusCode::UNPROCESSABLE_ENTITY,
            "decision.exceeds_grant",
        ),
        (
            reissue(
                &grant(&h, id, &agent(2), &["read"], NOW + 500).sign(&alice_key()),
                &old_id.to_string(),
            ),
            StatusCode::UNPROCESSABLE_ENTITY,
            "decision.wrong_agent",
        ),
        (
            reissue(
                &grant(&h, other_request, &agent(1), &["read"], NOW + 500).sign(&alice_key()),
                &old_id.to_string(),
            ),
            StatusCode::UNPROCESSABLE_ENTITY,
            "decision.wrong_request",
        ),
        (
            reissue(
                &grant(&h, id, &agent(1), &["read"], NOW + 500)
                    .sign(&SigningKey::from_seed(&[66; 32])),
                &old_id.to_string(),
            ),
            StatusCode::BAD_REQUEST,
            "key.unknown",
        ),
    ];
    for (body, status, code) in wrong {
        let (got, res) = call(&h.app, decide(body.clone())).await;
        assert_eq!(
            (got, res["code"].as_str()),
            (status, Some(code)),
            "{body}: {res}"
        );
    }
    let alice: mandate_core::Principal = h.alice.clone().try_into().unwrap();
    assert_eq!(
        h.store.grants_of(&alice).await.unwrap().len(),
        1,
        "nothing stored"
    );

    // Within the old one, after its revocation: the request answers with
    // the new grant from now on.
    let (status, body) = call(&h.app, decide(reissue(&new, &old_id.to_string()))).await;
    assert_eq!(
        (status, body["status"].as_str()),
        (StatusCode::OK, Some("approved")),
        "{body}"
    );
    let poll_path = format!("/v1/requests/{id}");
    let (_, res) = call(
        &h.app,
        get(
            &poll_path,
            Some(&crate::pop(
                &agent(1),
                &token,
                &format!("{}{poll_path}", crate::URL),
                "rn-poll",
            )),
        ),
    )
    .await;
    assert_eq!(res["grant"].as_str(), Some(new.as_str()));
    assert_eq!(h.store.grants_of(&alice).await.unwrap().len(), 2);
    // Sent again (an outbox retrying): accepted, nothing changes.
    let events = h.store.events_since(0, 1000).await.unwrap().len();
    let (status, _) = call(&h.app, decide(reissue(&new, &old_id.to_string()))).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(h.store.events_since(0, 1000).await.unwrap().len(), events);
    // The old grant is no longer the request's: it cannot be replaced again.
    let newer = grant(&h, id, &agent(1), &["read"], NOW + 400).sign(&alice_key());
    let (status, body) = call(&h.app, decide(reissue(&newer, &old_id.to_string()))).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (StatusCode::CONFLICT, Some("decision.stale"))
    );
}

/// The feed's reader: the broker's key and name, from its metadata.
async fn follower(h: &Harness) -> RevocationFeed {
    let (_, meta) = call(&h.app, get("/.well-known/mandate", None)).await;
    let keys = meta["jwks"]["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| PublicKey::from_jwk(&serde_json::from_value(k.clone()).unwrap()).unwrap())
        .collect();
    RevocationFeed::new(meta["issuer"].as_str().unwrap(), keys)
}

/// Reads the feed after `feed`'s position into it, then takes the page's
/// checkpoint; what it made of it.
async fn read_feed(h: &Harness, feed: &mut RevocationFeed) -> Checkpointed {
    let (status, page) = call(
        &h.app,
        get(&format!("/v1/revocations?since={}", feed.position()), None),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{page}");
    for entry in page["revoked"].as_array().unwrap() {
        let seq = entry["seq"].as_u64().unwrap();
        feed.apply(seq, entry["grant"].as_str().unwrap().parse().unwrap())
            .unwrap();
    }
    let checkpoint = page["checkpoint"].as_str().expect("a checkpoint");
    feed.checkpoint(checkpoint, &Policy::default(), NOW)
        .unwrap()
}

#[tokio::test]
async fn the_feed_carries_a_checkpoint_signed_by_the_broker() {
    let h = harness().await;
    let mut feed = follower(&h).await;
    // An empty feed: position 0, as of the broker's now.
    assert_eq!(read_feed(&h, &mut feed).await, Checkpointed::Accepted);
    assert_eq!(feed.current(), Some(Mark { seq: 0, iat: NOW }));
    let (_, page) = call(&h.app, get("/v1/revocations", None)).await;
    let (_, claims) =
        mandate_core::token::peek::<CheckpointClaims>(page["checkpoint"].as_str().unwrap())
            .unwrap();
    assert_eq!(claims.iss, crate::URL, "iss is the broker's public URL");

    // After a revocation, a new checkpoint covers it, and matches the
    // feed read entry by entry.
    let g = approved(&h, "cp1").await;
    let (status, _) = call(
        &h.app,
        crate::post(
            "/v1/revocations",
            json!({ "revocation": revocation(&h.alice, vec![g], &alice_key(), "cp1") }).to_string(),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        read_feed(&h, &mut feed).await;
        if feed.current().is_some_and(|m| m.seq > 0) {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no checkpoint covers the revocation within 5 s"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(feed.revoked().contains(&g));
    assert_eq!(feed.current().unwrap().seq, feed.position());
}
