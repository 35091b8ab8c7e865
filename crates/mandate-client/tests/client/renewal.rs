//! The key's binding is short-lived and the engine renews it while the
//! user is signed in: not before half its life, then with a proof of the
//! key alone (no new sign-in), for a whole new lifetime. A real broker
//! binding keys for 20 s.

use std::time::Duration;

use crate::engine::{Stack, keyring_ready};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_engine_renews_its_keys_binding_at_half_life() {
    if !keyring_ready() {
        return;
    }
    let stack = Stack::start_with(&["--binding-lifetime", "20"]).await;
    let (engine, principal) = stack.signed_in("alice").await;
    let first = engine.devices().await.unwrap();
    assert_eq!(first.len(), 1);
    let lapses = first[0].expires_at;
    // Not due yet: nothing is sent.
    assert!(!engine.renew_binding().await.unwrap());
    // Past half its life, it is renewed, for the same key and device.
    tokio::time::sleep(Duration::from_secs(11)).await;
    assert!(engine.renew_binding().await.unwrap());
    let renewed = engine.devices().await.unwrap();
    assert_eq!(renewed.len(), 1, "a renewal is no new device");
    assert_eq!(renewed[0].jkt, first[0].jkt);
    assert_eq!(renewed[0].enrolled_at, first[0].enrolled_at);
    assert!(
        renewed[0].expires_at >= lapses + 10,
        "{} then {}",
        lapses,
        renewed[0].expires_at
    );
    // And not again until half the new life has passed.
    assert!(!engine.renew_binding().await.unwrap());
    engine.shutdown().await;
    stack.stop(Some(&principal)).await;
}
