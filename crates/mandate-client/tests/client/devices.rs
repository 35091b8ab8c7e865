//! Keys and devices: a key enrolled for the user on a second device (a
//! second engine, with its own history and keyring) is announced on the
//! first, named as the broker lists it; this computer's own key never is.
//! The devices list marks this computer's key on each.

use std::time::Duration;

use mandate_client::engine::{Config, Engine, Update};
use mandate_client::vault::Vault;
use tokio::sync::broadcast;

use crate::browser::{Tamper, TestBrowser};
use crate::engine::{Stack, keyring_ready, service};

const A_NAME: &str = "Test laptop (linux)";
const B_NAME: &str = "Alice's second laptop";

/// Waits until the engine's stream is up: events from then on reach it.
async fn online(updates: &mut broadcast::Receiver<Update>) {
    tokio::time::timeout(Duration::from_secs(20), async {
        while updates.recv().await.unwrap() != (Update::Connection { online: true }) {}
    })
    .await
    .expect("the inbox stream connects");
}

/// The next key enrollment announced: (jkt, fingerprint, device, at).
async fn next_enrolled(
    updates: &mut broadcast::Receiver<Update>,
) -> (String, String, Option<String>, i64) {
    tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            if let Update::KeyEnrolled {
                jkt,
                fingerprint,
                device,
                at,
            } = updates.recv().await.unwrap()
            {
                return (jkt, fingerprint, device, at);
            }
        }
    })
    .await
    .expect("a key enrollment is announced")
}

/// A second device of the stack's user: its own history and keyring.
fn second_device(stack: &Stack) -> Config {
    Config {
        data_dir: stack.dir.path().join("app-b"),
        keyring_service: service(),
        device: B_NAME.into(),
        ..stack.config()
    }
}

/// Signs `user` in on a second device; returns the engine, its key's
/// thumbprint and its keyring service.
async fn sign_in_elsewhere(stack: &Stack, user: &'static str) -> (Engine, String, String) {
    let config = second_device(stack);
    let service = config.keyring_service.clone();
    let engine = Engine::start(config).await.unwrap();
    let account = engine
        .sign_in(&TestBrowser::new(user, Tamper::None))
        .await
        .unwrap();
    let key = Vault::new(&service)
        .user_key(&account.principal)
        .await
        .unwrap()
        .expect("the second device's key is in its keyring");
    (engine, key.thumbprint().to_string(), service)
}

async fn forget(service: &str, principal: &str) {
    let vault = Vault::new(service);
    vault.forget_session(principal).await.unwrap();
    vault.forget_user_key(principal).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_enrolled_on_another_device_is_announced_with_its_name() {
    if !keyring_ready() {
        return;
    }
    let stack = Stack::start().await;
    let (a, principal) = stack.signed_in("alice").await;
    let a_key = Vault::new(&stack.service)
        .user_key(&principal)
        .await
        .unwrap()
        .unwrap()
        .thumbprint()
        .to_string();
    let mut updates = a.subscribe();
    a.follow();
    online(&mut updates).await;

    // Alice signs in on a second device: its key is enrolled, and A says
    // so, naming the device.
    let before = crate::unix_now();
    let (b, b_key, b_service) = sign_in_elsewhere(&stack, "alice").await;
    let after = crate::unix_now();
    let b_account = b.account().await.unwrap();
    let (jkt, fingerprint, device, at) = next_enrolled(&mut updates).await;
    assert_eq!(jkt, b_key);
    assert_eq!(fingerprint, b_account.key_fingerprint);
    assert_eq!(device.as_deref(), Some(B_NAME));
    assert!(
        (before..=after).contains(&at),
        "{before} <= {at} <= {after}"
    );

    // Both list both keys, each marking its own.
    let on_a = a.devices().await.unwrap();
    assert_eq!(on_a.len(), 2, "{on_a:?}");
    let mine: Vec<_> = on_a.iter().filter(|d| d.this_device).collect();
    assert_eq!(mine.len(), 1, "{on_a:?}");
    assert_eq!(mine[0].jkt, a_key);
    assert_eq!(mine[0].device, A_NAME);
    assert_eq!(
        mine[0].fingerprint,
        a.account().await.unwrap().key_fingerprint
    );
    let other = on_a.iter().find(|d| !d.this_device).unwrap();
    assert_eq!(other.jkt, b_key);
    assert_eq!(other.device, B_NAME);
    assert_eq!(other.enrolled_at, at);
    assert_eq!(other.last_used_at, None, "B never signed anything");
    assert!(other.expires_at > after);
    let mut on_b: Vec<(String, bool)> = b
        .devices()
        .await
        .unwrap()
        .into_iter()
        .map(|d| (d.jkt, d.this_device))
        .collect();
    on_b.sort();
    let mut expected = vec![(a_key.clone(), false), (b_key.clone(), true)];
    expected.sort();
    assert_eq!(on_b, expected, "B marks its own");

    b.shutdown().await;
    a.shutdown().await;
    forget(&b_service, &principal).await;
    stack.stop(Some(&principal)).await;
}

/// A new key of this computer's own (its keyring lost the old one, and
/// the user signed in again while the engine followed the stream) is
/// enrolled, and its event arrives, but it is not announced.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn this_computers_own_new_key_is_not_announced() {
    if !keyring_ready() {
        return;
    }
    let stack = Stack::start().await;
    let (a, principal) = stack.signed_in("alice").await;
    let mut updates = a.subscribe();
    a.follow();
    online(&mut updates).await;

    let vault = Vault::new(&stack.service);
    let first = vault.user_key(&principal).await.unwrap().unwrap();
    vault.forget_user_key(&principal).await.unwrap();
    a.sign_in(&TestBrowser::new("alice", Tamper::None))
        .await
        .unwrap();
    let second = vault.user_key(&principal).await.unwrap().unwrap();
    assert_ne!(first.thumbprint(), second.thumbprint(), "a new key");

    // Then another device: the first announcement A makes is that one,
    // though A's new key's event came before it on the same stream.
    let (b, b_key, b_service) = sign_in_elsewhere(&stack, "alice").await;
    let (jkt, _, device, _) = next_enrolled(&mut updates).await;
    assert_eq!(jkt, b_key, "A announced its own new key");
    assert_eq!(device.as_deref(), Some(B_NAME));

    let mut marked: Vec<(String, bool)> = a
        .devices()
        .await
        .unwrap()
        .into_iter()
        .map(|d| (d.jkt, d.this_device))
        .collect();
    marked.sort();
    let mut expected = vec![
        (first.thumbprint().to_string(), false),
        (second.thumbprint().to_string(), true),
        (b_key, false),
    ];
    expected.sort();
    assert_eq!(
        marked, expected,
        "only the signed-in key is this computer's"
    );

    b.shutdown().await;
    a.shutdown().await;
    forget(&b_service, &principal).await;
    stack.stop(Some(&principal)).await;
}
