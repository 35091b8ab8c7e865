//! Rate limits per agent key and per user.

use axum::http::StatusCode;
use mandate_broker::Limits;
use mandate_broker::ratelimit::Rate;
use mandate_core::TokenId;
use serde_json::json;

use crate::users::with_bearer;
use crate::{URL, agent, call, get, harness_with, pop, request_token, submit};

const NEVER: f64 = 1e-9;

fn tight() -> Limits {
    Limits {
        max_pending_new: 100,
        max_pending_per_agent: 100,
        max_request_wait: 600,
        agent_requests: Rate {
            burst: 2,
            per_second: NEVER,
        },
        user_prompts: Rate {
            burst: 4,
            per_second: NEVER,
        },
        agent_calls: Rate {
            burst: 1,
            per_second: NEVER,
        },
        user_calls: Rate {
            burst: 2,
            per_second: NEVER,
        },
        sse_keepalive: std::time::Duration::from_secs(5),
        ..Limits::default()
    }
}

#[tokio::test]
async fn agents_cannot_flood_and_users_cannot_be_flooded() {
    let h = harness_with(tight()).await;
    for jti in ["a1", "a2"] {
        assert_eq!(
            submit(&h.app, &request_token(&agent(1), jti, &h.alice))
                .await
                .0,
            StatusCode::CREATED
        );
    }
    let (status, body) = submit(&h.app, &request_token(&agent(1), "a3", &h.alice)).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (StatusCode::TOO_MANY_REQUESTS, Some("rate.agent"))
    );
    // Another agent has its own allowance, but the user's is shared.
    for jti in ["b1", "b2"] {
        assert_eq!(
            submit(&h.app, &request_token(&agent(2), jti, &h.alice))
                .await
                .0,
            StatusCode::CREATED
        );
    }
    let (status, body) = submit(&h.app, &request_token(&agent(3), "c1", &h.alice)).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (StatusCode::TOO_MANY_REQUESTS, Some("rate.user_prompts"))
    );
}

#[tokio::test]
async fn polls_and_user_calls_are_limited_per_identity() {
    let h = harness_with(tight()).await;
    let token = request_token(&agent(1), "p", &h.alice);
    submit(&h.app, &token).await;
    let path = format!("/v1/requests/{}", TokenId::of(&token));
    let uri = format!("{URL}{path}");
    assert_eq!(
        call(
            &h.app,
            get(&path, Some(&pop(&agent(1), &token, &uri, "x1")))
        )
        .await
        .0,
        StatusCode::OK
    );
    let (status, body) = call(
        &h.app,
        get(&path, Some(&pop(&agent(1), &token, &uri, "x2"))),
    )
    .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (StatusCode::TOO_MANY_REQUESTS, Some("rate.agent"))
    );

    let bearer = h.idp.token("alice", json!({}));
    for _ in 0..2 {
        assert_eq!(
            call(&h.app, with_bearer(get("/v1/inbox", None), &bearer))
                .await
                .0,
            StatusCode::OK
        );
    }
    let (status, body) = call(&h.app, with_bearer(get("/v1/inbox", None), &bearer)).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (StatusCode::TOO_MANY_REQUESTS, Some("rate.user"))
    );
    let other = h.idp.token("bob", json!({}));
    assert_eq!(
        call(&h.app, with_bearer(get("/v1/inbox", None), &other))
            .await
            .0,
        StatusCode::OK
    );
}
