//! Two broker instances on one Postgres: what one accepts, the other's
//! followers see (Postgres LISTEN/NOTIFY, with polling behind it).

use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use mandate_broker::oidc::OidcVerifier;
use mandate_broker::{AppState, Limits, router};
use mandate_core::{Claims as _, SigningKey, TokenId};
use mandate_store::Store;
use serde_json::{Value, json};

use crate::events::{Stream, WithHeader as _};
use crate::oidc::TestIssuer;
use crate::revocations::revocation;
use crate::users::{alice_key, grant_for, post_json, with_bearer};
use crate::{NOW, URL, agent, call, get, request_token, submit};

/// Alice, enrolled in a Postgres database of its own, signed in at her
/// provider; broker instances on that database answer her.
struct Alice {
    idp: TestIssuer,
    url: String,
    store: Store,
    principal: String,
    key: SigningKey,
    bearer: String,
}

impl Alice {
    /// `None` when no Postgres is at hand (the test is then skipped).
    async fn on(database: &str) -> Option<Alice> {
        let url = mandate_e2e::procs::postgres(database).await?;
        let idp = TestIssuer::start().await;
        let store = Store::connect(&url).await.unwrap();
        let principal = format!("{}#alice", idp.url);
        let key = alice_key();
        crate::enroll(&store, &principal, &key).await;
        let bearer = idp.token("alice", json!({}));
        Some(Alice {
            idp,
            url,
            store,
            principal,
            key,
            bearer,
        })
    }

    /// A broker instance on Alice's database.
    async fn instance(&self) -> Router {
        let state = AppState::new(
            Store::connect(&self.url).await.unwrap(),
            SigningKey::from_seed(&[90; 32]),
            URL,
            OidcVerifier::new(vec![self.idp.trusted()]).unwrap(),
            Arc::new(|| NOW),
            Limits::default(),
        );
        router(state)
    }

    /// A request from agent 1, its id, and the grant that approves it.
    fn approval(&self, jti: &str) -> (String, TokenId, String) {
        let token = request_token(&agent(1), jti, &self.principal);
        let id = TokenId::of(&token);
        let grant = grant_for(&self.principal, id, &agent(1), &["read"], NOW + 600).sign(&self.key);
        (token, id, grant)
    }

    /// Posts `grant` as Alice's decision on request `id` at `app`.
    async fn decide(&self, app: &Router, id: TokenId, grant: &str) -> (StatusCode, Value) {
        let path = format!("/v1/requests/{id}/decision");
        call(
            app,
            post_json(&path, json!({ "grant": grant }), &self.bearer),
        )
        .await
    }

    /// Alice's revocation of `grant`, and the request that posts it.
    fn revoke(&self, grant: TokenId, jti: &str) -> (TokenId, Request<Body>) {
        let token = revocation(&self.principal, vec![grant], &self.key, jti);
        let post = crate::post(
            "/v1/revocations",
            json!({ "revocation": token }).to_string(),
        );
        (TokenId::of(&token), post)
    }
}

#[tokio::test]
async fn what_one_instance_accepts_reaches_followers_of_the_other() {
    let Some(alice) = Alice::on("broker_instances").await else {
        return;
    };
    let a = alice.instance().await;
    let b = alice.instance().await;
    let mut inbox_on_b = Stream::open(
        &b,
        with_bearer(get("/v1/inbox/events", None), &alice.bearer),
    )
    .await;
    let mut revocations_on_b = Stream::open(&b, get("/v1/revocations/events", None)).await;

    // Filed on A, seen in the inbox stream on B.
    let (token, id, grant) = alice.approval("multi");
    let started = Instant::now();
    submit(&a, &token).await;
    inbox_on_b.until(&id.to_string()).await;
    eprintln!(
        "request filed on A reached B's inbox stream in {:?}",
        started.elapsed()
    );

    // Approved and revoked on A, seen in the revocation stream on B.
    let (status, body) = alice.decide(&a, id, &grant).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let g = TokenId::of(&grant);
    let started = Instant::now();
    let (_, post) = alice.revoke(g, "m1");
    let (status, _) = call(&a, post).await;
    assert_eq!(status, StatusCode::CREATED);
    revocations_on_b.until(&g.to_string()).await;
    eprintln!(
        "revocation posted on A reached B's stream in {:?}",
        started.elapsed()
    );
}

/// A client that retries its decision on another instance while the first
/// attempt is still in flight: both attempts race, and both are told the
/// decision stands, with one grant stored. (Found by the chaos test: the
/// loser was told `request.already_decided`.)
#[tokio::test]
async fn the_same_decision_posted_twice_at_once_stands_on_both_instances() {
    let Some(alice) = Alice::on("broker_decision_race").await else {
        return;
    };
    let a = alice.instance().await;
    let b = alice.instance().await;
    for n in 0..10 {
        let (token, id, grant) = alice.approval(&format!("race-{n}"));
        assert_eq!(submit(&a, &token).await.0, StatusCode::CREATED);
        let ((s1, b1), (s2, b2)) =
            tokio::join!(alice.decide(&a, id, &grant), alice.decide(&b, id, &grant));
        assert_eq!((s1, s2), (StatusCode::OK, StatusCode::OK), "{b1} {b2}");
        // Another decision on the same request is still refused.
        let other =
            grant_for(&alice.principal, id, &agent(1), &["read"], NOW + 300).sign(&alice.key);
        let (status, body) = alice.decide(&b, id, &other).await;
        assert_eq!(status, StatusCode::CONFLICT, "{body}");
    }
    let pool = alice.store.postgres_pool().unwrap();
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
    let Some(alice) = Alice::on("broker_unreadable_event").await else {
        return;
    };
    let a = alice.instance().await;
    let mut grants = Vec::new();
    for n in 0..2 {
        let (token, id, grant) = alice.approval(&format!("gap-{n}"));
        assert_eq!(submit(&a, &token).await.0, StatusCode::CREATED);
        let (status, body) = alice.decide(&a, id, &grant).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        grants.push(TokenId::of(&grant));
    }
    let (first, post) = alice.revoke(grants[0], "gap-r1");
    assert_eq!(call(&a, post).await.0, StatusCode::CREATED);
    // A revocation event whose revocation cannot be read, between two
    // good ones.
    let pool = alice.store.postgres_pool().unwrap();
    let gap: i64 = sqlx::query_scalar(
        "WITH c AS (UPDATE log_clock SET seq = seq + 1 WHERE id = 1 RETURNING seq) \
         INSERT INTO events (seq, kind, principal, agent_jkt, subject, created_at) \
         SELECT seq, 'revoked', $1, NULL, 'unreadable', $2 FROM c RETURNING seq",
    )
    .bind(&alice.principal)
    .bind(NOW)
    .fetch_one(pool)
    .await
    .unwrap();
    let (_, post) = alice.revoke(grants[1], "gap-r2");
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
