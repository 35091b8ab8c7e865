//! Revocation from the engine, against a real broker and the example
//! resource server: the user's grant to agent A, A's sub-delegation to B,
//! B's to C. Revoking A's grant stops B's and C's calls; "revoke all"
//! leaves no active grant. Each revocation is signed, recorded in the
//! history and delivered through the outbox.

use std::time::{Duration, Instant};

use mandate_client::engine::{Engine, Update};
use mandate_e2e::procs::{self, cli};
use serde_json::Value;
use tokio::sync::broadcast;

use crate::engine::{Stack, keyring_ready, next_new};
use crate::journey::{agent_got_grant, request};

/// `mandate agent call` under `mandate` by `key`: the resource server's
/// status and body.
pub(crate) async fn call(stack: &Stack, key: &str, mandate: &str, url: &str) -> (u16, Value) {
    let env = [("MANDATE_BROKER", stack.broker.url.as_str())];
    let args = [
        "agent",
        "call",
        "--key",
        &stack.path(key),
        "--mandate",
        &stack.path(mandate),
        "GET",
        url,
    ];
    // It prints the answer, and fails on a refusal.
    let (_, out, err) = cli(&args, &env).await;
    let answer: Value = serde_json::from_str(out.trim()).unwrap_or(Value::Null);
    match answer["status"]
        .as_u64()
        .and_then(|s| u16::try_from(s).ok())
    {
        Some(status) => (status, answer["body"].clone()),
        None => panic!("no answer from `mandate agent call`: {out}{err}"),
    }
}

/// Makes an agent key and returns its id.
pub(crate) async fn agent(stack: &Stack, key: &str) -> String {
    let env = [("MANDATE_BROKER", stack.broker.url.as_str())];
    let (ok, _, err) = cli(&["agent", "init", "--key", &stack.path(key)], &env).await;
    assert!(ok, "{err}");
    let (ok, out, err) = cli(&["agent", "id", "--key", &stack.path(key)], &env).await;
    assert!(ok, "{err}");
    let id: Value = serde_json::from_str(&out).unwrap();
    id["agent_id"].as_str().unwrap().to_owned()
}

/// `from` passes its mandate on to `to`, narrower.
pub(crate) async fn delegate(stack: &Stack, from: (&str, &str), to: &str, out: &str, depth: &str) {
    let env = [("MANDATE_BROKER", stack.broker.url.as_str())];
    let args = [
        "agent",
        "delegate",
        "--key",
        &stack.path(from.0),
        "--mandate",
        &stack.path(from.1),
        "--to",
        to,
        "--scope",
        "files:read:https://files.example/reports/",
        "--purpose",
        "Read the reports",
        "--max-depth",
        depth,
        "--out",
        &stack.path(out),
    ];
    let (ok, _, err) = cli(&args, &env).await;
    assert!(ok, "{err}");
}

/// Agent `a.key` asks `principal`, the engine approves as asked, and the
/// agent writes its mandate to `out`.
pub(crate) async fn approved(
    stack: &Stack,
    engine: &Engine,
    updates: &mut broadcast::Receiver<Update>,
    principal: &str,
    out: &str,
) {
    let waiting = request(
        &stack.broker.url,
        &stack.path("a.key"),
        principal,
        &stack.path(out),
    );
    let id = next_new(updates).await;
    engine
        .approve(&id, &mandate_client::Narrowing::default())
        .await
        .unwrap();
    agent_got_grant(waiting).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoking_a_grant_stops_every_sub_agent_beneath_it() {
    if !keyring_ready() {
        return;
    }
    let stack = Stack::start().await;
    let files = procs::resource_server(&stack.broker.url, 5).await;
    let (engine, principal) = stack.signed_in("alice").await;
    let mut updates = engine.subscribe();
    engine.follow();

    // The user approves A; A delegates to B, B to C.
    agent(&stack, "a.key").await;
    let b = agent(&stack, "b.key").await;
    let c = agent(&stack, "c.key").await;
    approved(&stack, &engine, &mut updates, &principal, "a.json").await;
    delegate(&stack, ("a.key", "a.json"), &b, "b.json", "1").await;
    delegate(&stack, ("b.key", "b.json"), &c, "c.json", "0").await;
    let url = format!("{}/files/reports/q3/revenue.txt", files.url);
    for (key, mandate) in [("b.key", "b.json"), ("c.key", "c.json")] {
        let (status, body) = call(&stack, key, mandate, &url).await;
        assert_eq!(status, 200, "{key}: {body}");
    }

    // The user's grant to A, as the broker lists it.
    let grants = engine.grants().await.unwrap();
    assert_eq!(grants.len(), 1, "{grants:?}");
    let root = grants[0].id.clone();
    assert!(!grants[0].revoked);

    // Revoke it: signed, recorded, delivered.
    let revoked = engine
        .revoke(std::slice::from_ref(&root), Some("done"))
        .await
        .unwrap();
    let revoked_at = Instant::now();
    assert!(revoked.delivered_at.is_some(), "{revoked:?}");
    assert_eq!(revoked.grants, std::slice::from_ref(&root));
    let delivered = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            if let Update::Revocation {
                token_id,
                delivered,
            } = updates.recv().await.unwrap()
            {
                break (token_id, delivered);
            }
        }
    })
    .await
    .unwrap();
    assert_eq!(delivered, (revoked.token_id.clone(), true));

    // B's and C's calls fail within 1 s.
    for (key, mandate) in [("b.key", "b.json"), ("c.key", "c.json")] {
        let refusal = loop {
            let (status, body) = call(&stack, key, mandate, &url).await;
            if status != 200 {
                break (status, body);
            }
            assert!(
                revoked_at.elapsed() < Duration::from_secs(1),
                "{key}'s calls were still accepted 1 s after the revocation"
            );
        };
        assert_eq!(
            (refusal.0, refusal.1["code"].as_str()),
            (403, Some("chain.revoked")),
            "{key}"
        );
    }
    let grants = engine.grants().await.unwrap();
    assert!(grants.iter().all(|g| g.revoked), "{grants:?}");

    // The history holds the signed revocation and its delivery, and
    // verifies.
    let events: Vec<String> = engine
        .history()
        .events(&principal)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.kind)
        .collect();
    assert_eq!(
        events[events.len() - 2..],
        ["revocation.signed", "revocation.delivered"]
    );
    engine.verify_history().await.unwrap();

    // Bad input is refused before anything is signed.
    for bad in [vec![], vec!["not-a-grant-id".to_owned()]] {
        let e = engine.revoke(&bad, None).await.unwrap_err();
        assert_eq!(e.code(), "input.invalid");
    }
    engine.shutdown().await;
    files.kill().await;
    stack.stop(Some(&principal)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoke_all_leaves_no_active_grant() {
    if !keyring_ready() {
        return;
    }
    let stack = Stack::start().await;
    let (engine, principal) = stack.signed_in("bob").await;
    let mut updates = engine.subscribe();
    engine.follow();
    agent(&stack, "a.key").await;
    for n in 0..3 {
        approved(
            &stack,
            &engine,
            &mut updates,
            &principal,
            &format!("a{n}.json"),
        )
        .await;
    }
    let active =
        |grants: &[mandate_client::broker::GrantItem]| grants.iter().filter(|g| !g.revoked).count();
    assert_eq!(active(&engine.grants().await.unwrap()), 3);

    let revoked = engine.revoke_all().await.unwrap().unwrap();
    assert_eq!(revoked.grants.len(), 3);
    assert!(revoked.delivered_at.is_some(), "{revoked:?}");
    assert_eq!(active(&engine.grants().await.unwrap()), 0);
    // Nothing is left to revoke.
    assert!(engine.revoke_all().await.unwrap().is_none());
    engine.shutdown().await;
    stack.stop(Some(&principal)).await;
}
