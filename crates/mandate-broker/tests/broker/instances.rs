//! Two broker instances on one Postgres: what one accepts, the other's
//! followers see (Postgres LISTEN/NOTIFY, with polling behind it).

use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::http::StatusCode;
use mandate_broker::oidc::OidcVerifier;
use mandate_broker::{AppState, Limits, router};
use mandate_core::{Claims as _, SigningKey, TokenId};
use mandate_store::Store;
use serde_json::json;

use crate::events::{Stream, WithHeader as _};
use crate::oidc::TestIssuer;
use crate::revocations::revocation;
use crate::users::{alice_key, grant_for, post_json, with_bearer};
use crate::{NOW, URL, agent, call, get, request_token, submit};

async fn instance(url: &str, idp: &TestIssuer) -> (Router, Store) {
    let store = Store::connect(url).await.unwrap();
    let state = AppState::new(
        store.clone(),
        SigningKey::from_seed(&[90; 32]),
        URL,
        OidcVerifier::new(vec![idp.trusted()]).unwrap(),
        Arc::new(|| NOW),
        Limits::default(),
    );
    (router(state), store)
}

#[tokio::test]
async fn what_one_instance_accepts_reaches_followers_of_the_other() {
    let Some(url) = mandate_e2e::procs::postgres("broker_instances").await else {
        return;
    };
    let idp = TestIssuer::start().await;
    let (a, store) = instance(&url, &idp).await;
    let (b, _) = instance(&url, &idp).await;
    let alice = format!("{}#alice", idp.url);
    let key = alice_key();
    crate::enroll(&store, &alice, &key).await;

    let bearer = idp.token("alice", json!({}));
    let mut inbox_on_b =
        Stream::open(&b, with_bearer(get("/v1/inbox/events", None), &bearer)).await;
    let mut revocations_on_b = Stream::open(&b, get("/v1/revocations/events", None)).await;

    // Filed on A, seen in the inbox stream on B.
    let token = request_token(&agent(1), "multi", &alice);
    let started = Instant::now();
    submit(&a, &token).await;
    let id = TokenId::of(&token);
    inbox_on_b.until(&id.to_string()).await;
    eprintln!(
        "request filed on A reached B's inbox stream in {:?}",
        started.elapsed()
    );

    // Approved and revoked on A, seen in the revocation stream on B.
    let h_grant = grant_for(&alice, id, &agent(1), &["read"], NOW + 600).sign(&key);
    let (status, body) = call(
        &a,
        post_json(
            &format!("/v1/requests/{id}/decision"),
            json!({ "grant": h_grant }),
            &bearer,
        ),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let g = TokenId::of(&h_grant);
    let started = Instant::now();
    let (status, _) = call(
        &a,
        crate::post(
            "/v1/revocations",
            json!({ "revocation": revocation(&alice, vec![g], &key, "m1") }).to_string(),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    revocations_on_b.until(&g.to_string()).await;
    eprintln!(
        "revocation posted on A reached B's stream in {:?}",
        started.elapsed()
    );
}

/// A request from `agent` for `alice`, its id, and the grant that
/// approves it, signed by `key`.
fn approval(
    alice: &str,
    agent: &SigningKey,
    jti: &str,
    key: &SigningKey,
) -> (String, TokenId, String) {
    let token = request_token(agent, jti, alice);
    let id = TokenId::of(&token);
    let grant = grant_for(alice, id, agent, &["read"], NOW + 600).sign(key);
    (token, id, grant)
}

/// A client that retries its decision on another instance while the first
/// attempt is still in flight: both attempts race, and both are told the
/// decision stands, with one grant stored. (Found by the chaos test: the
/// loser was told `request.already_decided`.)
#[tokio::test]
async fn the_same_decision_posted_twice_at_once_stands_on_both_instances() {
    let Some(url) = mandate_e2e::procs::postgres("broker_decision_race").await else {
        return;
    };
    let idp = TestIssuer::start().await;
    let (a, store) = instance(&url, &idp).await;
    let (b, _) = instance(&url, &idp).await;
    let alice = format!("{}#alice", idp.url);
    let key = alice_key();
    crate::enroll(&store, &alice, &key).await;
    let bearer = idp.token("alice", json!({}));
    for n in 0..10 {
        let (token, id, grant) = approval(&alice, &agent(1), &format!("race-{n}"), &key);
        assert_eq!(submit(&a, &token).await.0, StatusCode::CREATED);
        let path = format!("/v1/requests/{id}/decision");
        let post = || post_json(&path, json!({ "grant": grant }), &bearer);
        let ((s1, b1), (s2, b2)) = tokio::join!(call(&a, post()), call(&b, post()));
        assert_eq!((s1, s2), (StatusCode::OK, StatusCode::OK), "{b1} {b2}");
        // Another decision on the same request is still refused.
        let other = grant_for(&alice, id, &agent(1), &["read"], NOW + 300).sign(&key);
        let (status, body) = call(&b, post_json(&path, json!({ "grant": other }), &bearer)).await;
        assert_eq!(status, StatusCode::CONFLICT, "{body}");
    }
    let pool = store.postgres_pool().unwrap();
    let twice: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM (SELECT request_id FROM grants GROUP BY request_id HAVING COUNT(*) > 1) AS t",
    )
    .fetch_one(pool)
    .await
    .unwrap();
    assert_eq!(twice, 0, "one grant per request");
}

/// An event the revocation stream should carry but cannot read (here its
/// revocation is missing, as a failed read leaves it) ends the stream
/// before it: nothing after it is delivered past the gap, and a follower
/// that resumes from its last id once the event reads again gets it and
/// what followed. (Before, the stream skipped it, and the follower never
/// learnt of that revocation.)
#[tokio::test]
async fn a_stream_ends_before_an_event_it_cannot_read_and_never_skips_it() {
    let Some(url) = mandate_e2e::procs::postgres("broker_unreadable_event").await else {
        return;
    };
    let idp = TestIssuer::start().await;
    let (a, store) = instance(&url, &idp).await;
    let alice = format!("{}#alice", idp.url);
    let key = alice_key();
    crate::enroll(&store, &alice, &key).await;
    let bearer = idp.token("alice", json!({}));
    let mut grants = Vec::new();
    for n in 0..2 {
        let (token, id, grant) = approval(&alice, &agent(1), &format!("gap-{n}"), &key);
        assert_eq!(submit(&a, &token).await.0, StatusCode::CREATED);
        let path = format!("/v1/requests/{id}/decision");
        let (status, body) = call(&a, post_json(&path, json!({ "grant": grant }), &bearer)).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        grants.push(TokenId::of(&grant));
    }
    let revoke = |g: TokenId, jti: &str| {
        let token = revocation(&alice, vec![g], &key, jti);
        (
            TokenId::of(&token),
            crate::post(
                "/v1/revocations",
                json!({ "revocation": token }).to_string(),
            ),
        )
    };
    let (first, post) = revoke(grants[0], "gap-r1");
    assert_eq!(call(&a, post).await.0, StatusCode::CREATED);
    // A revocation event whose revocation cannot be read, between two
    // good ones.
    let pool = store.postgres_pool().unwrap();
    let gap: i64 = sqlx::query_scalar(
        "WITH c AS (UPDATE log_clock SET seq = seq + 1 WHERE id = 1 RETURNING seq) \
         INSERT INTO events (seq, kind, principal, agent_jkt, subject, created_at) \
         SELECT seq, 'revoked', $1, NULL, 'unreadable', $2 FROM c RETURNING seq",
    )
    .bind(&alice)
    .bind(NOW)
    .fetch_one(pool)
    .await
    .unwrap();
    let (_, post) = revoke(grants[1], "gap-r2");
    assert_eq!(call(&a, post).await.0, StatusCode::CREATED);

    let from_start = || get("/v1/revocations/events", None).with_last_event_id(0);
    let seen = Stream::open(&a, from_start()).await.until_end().await;
    assert!(seen.contains(&grants[0].to_string()), "{seen}");
    assert!(
        !seen.contains(&grants[1].to_string()),
        "nothing past the gap: {seen}"
    );

    // The event reads again (here: it names a revocation that exists).
    sqlx::query("UPDATE events SET subject = $1 WHERE seq = $2")
        .bind(first.to_string())
        .bind(gap)
        .execute(pool)
        .await
        .unwrap();
    let mut resumed = Stream::open(
        &a,
        get("/v1/revocations/events", None).with_last_event_id(gap - 1),
    )
    .await;
    let seen = resumed.until(&grants[1].to_string()).await;
    assert!(seen.contains(&format!("id: {gap}")), "{seen}");
}
