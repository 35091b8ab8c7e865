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

use crate::events::Stream;
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
