//! Live streams: a request reaches the user's inbox stream, a revocation
//! reaches the revocation stream, and a client that reconnects with
//! Last-Event-ID gets what it missed.

use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt as _;
use mandate_core::{SigningKey, TokenId};
use serde_json::json;
use tower::ServiceExt as _;

use crate::revocations::{approved, revocation};
use crate::users::{alice_key, with_bearer};
use crate::{agent, get, harness, harness_with, request_token, submit};
use mandate_broker::Limits;

/// An open SSE response body.
pub struct Stream {
    body: Body,
    seen: String,
}

impl Stream {
    pub async fn open(app: &Router, req: Request<Body>) -> Stream {
        let res = app.clone().oneshot(req).await.unwrap();
        assert_eq!(res.status(), StatusCode::OK);
        assert_eq!(res.headers()["content-type"], "text/event-stream");
        Stream {
            body: res.into_body(),
            seen: String::new(),
        }
    }

    /// Reads until `needle` appears, or fails after 5 s.
    pub async fn until(&mut self, needle: &str) -> String {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while !self.seen.contains(needle) {
            let frame = tokio::time::timeout_at(deadline, self.body.frame())
                .await
                .unwrap_or_else(|_| panic!("{needle:?} did not arrive; got {:?}", self.seen))
                .expect("stream open")
                .expect("frame");
            if let Ok(data) = frame.into_data() {
                self.seen.push_str(&String::from_utf8_lossy(&data));
            }
        }
        std::mem::take(&mut self.seen)
    }

    /// Reads until the broker ends the stream, or fails after 5 s; what
    /// came.
    pub async fn until_end(&mut self) -> String {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while let Some(frame) = tokio::time::timeout_at(deadline, self.body.frame())
            .await
            .unwrap_or_else(|_| panic!("the stream did not end; got {:?}", self.seen))
        {
            if let Ok(data) = frame.expect("frame").into_data() {
                self.seen.push_str(&String::from_utf8_lossy(&data));
            }
        }
        std::mem::take(&mut self.seen)
    }
}

/// Alice revokes grant `g` with revocation `jti`, and the broker takes it.
async fn alice_revokes(h: &crate::Harness, g: TokenId, jti: &str) {
    let token = revocation(&h.alice, vec![g], &alice_key(), jti);
    let (status, body) = crate::call(
        &h.app,
        crate::post(
            "/v1/revocations",
            json!({ "revocation": token }).to_string(),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
}

#[tokio::test]
async fn a_filed_request_reaches_only_its_users_inbox_stream() {
    let h = harness().await;
    let bob_key = SigningKey::from_seed(&[2; 32]);
    let bob = format!("{}#bob", h.idp.url);
    crate::enroll(&h.store, &bob, &bob_key).await;

    let mut alice_stream = Stream::open(
        &h.app,
        with_bearer(
            get("/v1/inbox/events", None),
            &h.idp.token("alice", json!({})),
        ),
    )
    .await;
    let mut bob_stream = Stream::open(
        &h.app,
        with_bearer(
            get("/v1/inbox/events", None),
            &h.idp.token("bob", json!({})),
        ),
    )
    .await;
    let for_alice = request_token(&agent(1), "e1", &h.alice);
    let for_bob = request_token(&agent(1), "e2", &bob);
    submit(&h.app, &for_alice).await;
    submit(&h.app, &for_bob).await;
    let seen = alice_stream
        .until(&TokenId::of(&for_alice).to_string())
        .await;
    assert!(seen.contains("request.created"));
    let seen = bob_stream.until(&TokenId::of(&for_bob).to_string()).await;
    assert!(
        !seen.contains(&TokenId::of(&for_alice).to_string()),
        "bob never sees alice's request"
    );
}

#[tokio::test]
async fn revocations_stream_live_and_resume_after_a_disconnect() {
    let h = harness().await;
    let g = approved(&h, "ev").await;
    let mut live = Stream::open(&h.app, get("/v1/revocations/events", None)).await;
    alice_revokes(&h, g, "ev1").await;
    let seen = live.until(&g.to_string()).await;
    assert!(seen.contains("event: revoked"), "{seen}");
    let id: i64 = seen
        .lines()
        .find_map(|l| l.strip_prefix("id: "))
        .and_then(|s| s.trim().parse().ok())
        .expect("an event id");

    // A follower that saw everything before `id` gets the revocation again
    // from the backlog; one that saw `id` gets nothing old.
    let mut resumed = Stream::open(
        &h.app,
        get("/v1/revocations/events", None).with_last_event_id(id - 1),
    )
    .await;
    assert!(resumed.until(&g.to_string()).await.contains("revoked"));
    let bad = get("/v1/revocations/events", None).with_header("last-event-id", "soon");
    let (status, body) = crate::call(&h.app, bad).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("sse.bad_last_event_id"))
    );
}

pub trait WithHeader {
    fn with_header(self, name: &'static str, value: &str) -> Self;
    fn with_last_event_id(self, id: i64) -> Self;
}

impl WithHeader for Request<Body> {
    fn with_header(mut self, name: &'static str, value: &str) -> Self {
        self.headers_mut().insert(name, value.parse().unwrap());
        self
    }

    fn with_last_event_id(self, id: i64) -> Self {
        self.with_header("last-event-id", &id.to_string())
    }
}

#[tokio::test]
async fn the_revocation_stream_carries_checkpoints_and_one_after_each_revocation() {
    let h = harness_with(Limits {
        // Long enough that only a revocation explains a second checkpoint.
        sse_keepalive: Duration::from_secs(3600),
        ..Limits::default()
    })
    .await;
    let g = approved(&h, "cps").await;
    let mut live = Stream::open(&h.app, get("/v1/revocations/events", None)).await;
    let first = live.until("event: checkpoint").await;
    assert!(
        !first.contains("id:"),
        "a checkpoint has no event id: {first}"
    );
    alice_revokes(&h, g, "cps1").await;
    let seen = live.until(&g.to_string()).await;
    let seen = if seen.contains("event: checkpoint") {
        seen
    } else {
        live.until("event: checkpoint").await
    };
    let data = seen
        .split("\n\n")
        .filter(|e| e.contains("event: checkpoint"))
        .find_map(|e| e.lines().find_map(|l| l.strip_prefix("data: ")))
        .expect("a checkpoint after the revocation");
    let data: serde_json::Value = serde_json::from_str(data).unwrap();
    let (_, claims) = mandate_core::token::peek::<mandate_core::token::CheckpointClaims>(
        data["checkpoint"].as_str().unwrap(),
    )
    .unwrap();
    assert!(claims.seq > 0, "it covers the revocation: {claims:?}");
}

#[tokio::test]
async fn the_revocation_stream_pages_a_long_log_and_takes_a_bounded_number_of_followers() {
    let h = harness_with(Limits {
        max_followers: 2,
        ..Limits::default()
    })
    .await;
    // More than a page of other events before the revocation.
    let someone =
        mandate_core::Principal::try_from("https://idp.example#someone".to_owned()).unwrap();
    let agent_key = agent(7).thumbprint();
    for n in 0..1_100u32 {
        let id = TokenId::of(&format!("filler-{n}"));
        h.store
            .insert_request(&mandate_store::NewRequest {
                id,
                agent: agent_key,
                principal: &someone,
                token: "filler",
                parent_chain: &[],
                parent_keys: "[]",
                created_at: crate::NOW,
                expires_at: crate::NOW + 600,
                lane: mandate_store::Lane::New,
                sponsor: agent_key,
                max_pending: i64::MAX,
                max_pending_per_agent: i64::MAX,
            })
            .await
            .unwrap();
    }
    let g = approved(&h, "paged").await;
    alice_revokes(&h, g, "paged1").await;
    let mut from_start = Stream::open(
        &h.app,
        get("/v1/revocations/events", None).with_last_event_id(0),
    )
    .await;
    let seen = from_start.until(&g.to_string()).await;
    assert_eq!(seen.matches("event: revoked").count(), 1, "{seen}");
    assert!(!seen.contains("filler"), "only revocations");

    let second = Stream::open(&h.app, get("/v1/revocations/events", None)).await;
    let (status, body) = crate::call(&h.app, get("/v1/revocations/events", None)).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (StatusCode::SERVICE_UNAVAILABLE, Some("feed.busy"))
    );
    drop(second);
    Stream::open(&h.app, get("/v1/revocations/events", None)).await;
}
