//! After losing a device, exactly as docs/app.md ("Lost a device or a
//! key?") says: sign in elsewhere, which enrolls that computer's key;
//! remove the old key in Devices. Then every chain rooted in the old key
//! is refused by a real resource server following the broker's feed, the
//! old key can never be bound again, and the user goes on deciding from
//! the new device. Real provider, broker, resource server and agent CLI.

use std::time::{Duration, Instant};

use mandate_client::engine::{Config, Engine};
use mandate_client::vault::Vault;
use mandate_e2e::procs;

use crate::browser::{Tamper, TestBrowser};
use crate::delegations::{agent, approved, call};
use crate::engine::{Stack, keyring_ready, service};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_devices_key_is_removed_from_another_and_its_chains_fall() {
    if !keyring_ready() {
        return;
    }
    let stack = Stack::start().await;
    let files = procs::resource_server(&stack.broker.url, 5).await;
    let url = format!("{}/files/reports/q3/revenue.txt", files.url);

    // The old laptop: signed in, it approved agent A, whose calls work.
    let (old, principal) = stack.signed_in("alice").await;
    let old_key = Vault::new(&stack.service)
        .user_key(&principal)
        .await
        .unwrap()
        .expect("the old laptop's key")
        .thumbprint()
        .to_string();
    let mut updates = old.subscribe();
    old.follow();
    agent(&stack, "a.key").await;
    approved(&stack, &old, &mut updates, &principal, "a.json").await;
    let (status, body) = call(&stack, "a.key", "a.json", &url).await;
    assert_eq!(status, 200, "{body}");
    // Then it is lost: nobody signs out of it.
    old.shutdown().await;

    // 1. Sign in elsewhere: a new computer, its own history and keyring.
    let new_service = service();
    let new = Engine::start(Config {
        data_dir: stack.dir.path().join("new-laptop"),
        keyring_service: new_service.clone(),
        device: "Alice's new laptop".into(),
        ..stack.config()
    })
    .await
    .unwrap();
    new.sign_in(&TestBrowser::new("alice", Tamper::None))
        .await
        .unwrap();
    // 2. Signing in enrolled the new computer's key: Devices lists both.
    let devices = new.devices().await.unwrap();
    assert_eq!(devices.len(), 2, "{devices:?}");
    let lost = devices
        .iter()
        .find(|d| !d.this_device)
        .expect("the old laptop's key");
    assert_eq!(lost.jkt, old_key);
    // 3. Remove the old key.
    new.remove_key(&lost.jkt).await.unwrap();
    let removed_at = Instant::now();

    // Every chain rooted in the old key is refused, as soon as the
    // resource server's feed brings the removal.
    let refusal = loop {
        let (status, body) = call(&stack, "a.key", "a.json", &url).await;
        if status != 200 {
            break (status, body);
        }
        assert!(
            removed_at.elapsed() < Duration::from_secs(10),
            "agent A's calls were still accepted 10 s after the removal"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(
        (refusal.0, refusal.1["code"].as_str()),
        (403, Some("chain.key_revoked")),
        "{}",
        refusal.1
    );
    // Devices lists only the new key; the removal is in the history.
    let devices = new.devices().await.unwrap();
    assert_eq!(devices.len(), 1);
    assert!(devices[0].this_device);
    let events = new.history().events(&principal).await.unwrap();
    assert!(
        events
            .iter()
            .any(|e| e.kind == "key.removed" && e.subject == old_key),
        "the removal is in the new laptop's history"
    );
    new.verify_history().await.unwrap();
    // This computer's own key is not removed from here.
    let own = &devices[0].jkt;
    assert_eq!(
        new.remove_key(own).await.unwrap_err().code(),
        "input.invalid"
    );

    // The old laptop, found by a thief, cannot bring its key back: the
    // broker refuses to bind it again, even after a fresh sign-in.
    let thief = Engine::start(stack.config()).await.unwrap();
    let err = thief
        .sign_in(&TestBrowser::new("alice", Tamper::None))
        .await
        .unwrap_err();
    assert_eq!(err.code(), "key.revoked", "{err}");
    thief.shutdown().await;

    // The user goes on from the new laptop: a new grant for A works.
    let mut updates = new.subscribe();
    new.follow();
    approved(&stack, &new, &mut updates, &principal, "a2.json").await;
    let (status, body) = call(&stack, "a.key", "a2.json", &url).await;
    assert_eq!(status, 200, "{body}");

    new.shutdown().await;
    files.kill().await;
    Vault::new(&new_service)
        .forget_user_key(&principal)
        .await
        .unwrap();
    stack.stop(Some(&principal)).await;
}
