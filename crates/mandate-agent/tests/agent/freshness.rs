//! The verifier's revocation set is current only as of a checkpoint the
//! broker signed and the set caught up to. Checkpoints by another key, for
//! another broker, older than the last one, or naming revocations the feed
//! holds back count for nothing: the stream keeps its keep-alives and its
//! checkpoints coming, and still the verifier goes stale and refuses.

use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{Method, StatusCode};

use crate::verifier::{Signing, World, detail, world_with};

/// The bound the verifier is built with here.
const BOUND: Duration = Duration::from_secs(2);

fn files() -> Vec<mandate_core::AuthorizationDetail> {
    vec![detail("files", "read", "https://files.example/")]
}

/// Calls until the call is refused, for at most `within`; the status and
/// code of the refusal.
async fn refusal(world: &World, within: Duration) -> (StatusCode, String) {
    let start = Instant::now();
    loop {
        let (status, body) = world
            .call(Method::GET, "/files/q3.txt", Body::empty())
            .await;
        if status != StatusCode::OK {
            return (status, body["code"].as_str().unwrap_or_default().to_owned());
        }
        assert!(
            start.elapsed() < within,
            "calls were still accepted after {within:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The verifier never becomes current, or stops being current, under
/// `signing`: every call is refused with 503 `revocation.stale` once the
/// bound has passed, and keeps being refused.
async fn goes_stale(signing: Signing) {
    let world = world_with(files(), signing, BOUND).await;
    let refused = refusal(&world, BOUND + Duration::from_secs(10)).await;
    assert_eq!(
        refused,
        (StatusCode::SERVICE_UNAVAILABLE, "revocation.stale".into()),
        "{signing:?}"
    );
    // The stream keeps sending keep-alives and checkpoints; none helps.
    tokio::time::sleep(BOUND + Duration::from_secs(1)).await;
    world
        .refused(
            Method::GET,
            "/files/q3.txt",
            Body::empty(),
            (StatusCode::SERVICE_UNAVAILABLE, "revocation.stale"),
        )
        .await;
}

#[tokio::test]
async fn honest_checkpoints_keep_the_verifier_current() {
    let world = world_with(files(), Signing::Honest, BOUND).await;
    // Several bounds' worth of calls, all accepted.
    let start = Instant::now();
    while start.elapsed() < BOUND * 2 {
        let (status, body) = world
            .call(Method::GET, "/files/q3.txt", Body::empty())
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn checkpoints_by_another_key_count_for_nothing() {
    goes_stale(Signing::ForeignKey).await;
}

#[tokio::test]
async fn checkpoints_for_another_broker_count_for_nothing() {
    goes_stale(Signing::ForeignIssuer).await;
}

#[tokio::test]
async fn checkpoints_older_than_the_last_count_for_nothing() {
    goes_stale(Signing::OlderAfterOne).await;
}

#[tokio::test]
async fn checkpoints_naming_revocations_the_feed_holds_back_count_for_nothing() {
    goes_stale(Signing::Withheld).await;
}
