//! "Narrow to what was used", from the engine, against a real broker and
//! the example resource server: agent A holds files read and write and
//! uses only read. The user narrows: A's grant is revoked and a new one,
//! read only, answers A's request; A collects it with `mandate agent
//! renew`. The old mandate is refused, the new one works, and the signed
//! history records both and notices a tampered row.

use std::process::Stdio;
use std::time::Duration;

use mandate_client::ClientError;
use mandate_e2e::procs::{self, binary, cli};
use serde_json::Value;

use crate::activity::report;
use crate::delegations::{agent, call, delegate};
use crate::engine::{Stack, keyring_ready, next_new};
use crate::journey::agent_got_grant;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_grant_narrowed_to_what_was_used_replaces_the_old_one() {
    if !keyring_ready() {
        return;
    }
    let stack = Stack::start().await;
    let files = procs::resource_server(&stack.broker.url, 5).await;
    let (engine, principal) = stack.signed_in("alice").await;
    let mut updates = engine.subscribe();
    engine.follow();
    let env = [("MANDATE_BROKER", stack.broker.url.as_str())];

    agent(&stack, "a.key").await;
    let b = agent(&stack, "b.key").await;
    let waiting = tokio::process::Command::new(binary("mandate"))
        .args(["agent", "request", "--key", &stack.path("a.key")])
        .args(["--principal", &principal])
        .args(["--scope", "files:read,write:https://files.example/reports/"])
        .args([
            "--purpose",
            "Tidy the reports",
            "--intent",
            "Tidy my reports",
        ])
        .args(["--lifetime", "3600", "--max-depth", "1"])
        .args(["--save-request", &stack.path("a.request")])
        .args(["--wait", "--timeout", "60", "--out", &stack.path("a.json")])
        .env("MANDATE_BROKER", &stack.broker.url)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let request = next_new(&mut updates).await;
    engine
        .approve(&request, &mandate_client::Narrowing::default())
        .await
        .unwrap();
    agent_got_grant(waiting).await;
    delegate(&stack, ("a.key", "a.json"), &b, "b.json", "0").await;
    let grants = engine.grants().await.unwrap();
    let root = grants
        .iter()
        .find(|g| g.parent.is_none())
        .unwrap()
        .id
        .clone();

    // Nothing used yet: nothing to narrow to.
    let unused = engine.narrow_preview(&root).await.unwrap_err();
    assert!(
        matches!(&unused, ClientError::Invalid(m) if m.contains("never used")),
        "{unused:?}"
    );

    report(
        &stack,
        ("a.key", "a.json"),
        "files.read",
        "Read the Q3 revenue file",
        "The tidy-up starts from what is there",
        None,
    )
    .await;
    // B reads too: the broker learns of B's sub-grant from its receipt.
    report(
        &stack,
        ("b.key", "b.json"),
        "files.read",
        "Read the Q3 drafts",
        "To list what to tidy",
        None,
    )
    .await;
    engine.sync_activity().await.unwrap();
    let grants = engine.grants().await.unwrap();
    let sub = grants
        .iter()
        .find(|g| g.parent.is_some())
        .unwrap()
        .id
        .clone();

    // Only the user's own grant can be narrowed, not an agent's sub-grant.
    let theirs = engine.narrow_preview(&sub).await.unwrap_err();
    assert!(
        matches!(&theirs, ClientError::Invalid(m) if m.contains("only a grant you signed")),
        "{theirs:?}"
    );

    let preview = engine.narrow_preview(&root).await.unwrap();
    assert_eq!(preview.drops, ["Create and change files"]);
    assert_eq!(preview.keeps.len(), 1);
    assert_eq!(
        preview.keeps[0]
            .actions
            .iter()
            .map(|a| a.name.as_str())
            .collect::<Vec<_>>(),
        ["read"]
    );
    assert_eq!(preview.revoke.falls.len(), 1, "B's sub-grant falls with it");

    let narrowed = engine.narrow_to_used(&root).await.unwrap();
    assert!(narrowed.revocation.delivered_at.is_some(), "{narrowed:?}");
    assert!(narrowed.reissue.delivered_at.is_some(), "{narrowed:?}");
    assert_eq!(narrowed.reissue.replaces, root);
    assert_eq!(narrowed.reissue.request_id, request);

    // The old mandate, and B's beneath it, are refused; A collects the new
    // grant answering its request.
    let url = format!("{}/files/reports/q3/revenue.txt", files.url);
    for (key, mandate) in [("a.key", "a.json"), ("b.key", "b.json")] {
        let refused = tokio::time::timeout(Duration::from_secs(10), async {
            loop {
                let (status, body) = call(&stack, key, mandate, &url).await;
                if status == 403 && body["code"] == "chain.revoked" {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
        .await;
        assert!(refused.is_ok(), "{mandate} still accepted");
    }
    let (ok, _, err) = cli(
        &[
            "agent",
            "renew",
            "--key",
            &stack.path("a.key"),
            "--request",
            &stack.path("a.request"),
            "--out",
            &stack.path("a2.json"),
        ],
        &env,
    )
    .await;
    assert!(ok, "{err}");
    let (status, body) = call(&stack, "a.key", "a2.json", &url).await;
    assert_eq!(status, 200, "{body}");
    let (ok, out, err) = cli(&["verify", "--mandate", &stack.path("a2.json")], &env).await;
    assert!(ok, "{err}");
    let verified: Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(
        verified["scopes"][0]["actions"],
        serde_json::json!(["read"]),
        "{verified}"
    );
    assert_eq!(verified["grant"], narrowed.reissue.token_id.as_str());

    // The delegations: the new grant in force, the old one ended.
    let delegations = engine.delegations().await.unwrap();
    let active: Vec<&str> = delegations
        .active
        .iter()
        .flat_map(|a| a.grants.iter().map(|g| g.id.as_str()))
        .collect();
    assert_eq!(active, [narrowed.reissue.token_id.as_str()]);
    // The new grant carries on the old one's use (A's and B's beneath it):
    // the same count and last use, and its one action shows as used, not
    // as never used.
    let old = delegations.ended.iter().find(|g| g.id == root).unwrap();
    let new = &delegations.active[0].grants[0];
    assert!(old.actions > 0);
    assert_eq!((new.actions, new.last_used), (old.actions, old.last_used));
    assert_eq!(new.scopes.len(), 1);
    assert_eq!(new.scopes[0].used, ["read"]);
    assert!(new.scopes[0].unused.is_empty(), "{:?}", new.scopes[0]);
    // A grant no longer in force cannot be narrowed again.
    let ended = engine.narrow_preview(&root).await.unwrap_err();
    assert!(
        matches!(&ended, ClientError::Invalid(m) if m.contains("no longer in force")),
        "{ended:?}"
    );

    // The history holds both, signed, and notices a changed row.
    let verified = engine.verify_history().await.unwrap();
    assert!(verified.events > 0);
    let kinds: Vec<String> = engine
        .history()
        .events(&principal)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.kind)
        .collect();
    for kind in [
        "revocation.delivered",
        "grant.reissued",
        "reissue.delivered",
    ] {
        assert!(kinds.iter().any(|k| k == kind), "{kind} in {kinds:?}");
    }
    let db = stack.dir.path().join("app/history.sqlite");
    let edited = std::process::Command::new("sqlite3")
        .arg(&db)
        .arg("UPDATE reissues SET token = token || 'x'")
        .status()
        .unwrap();
    assert!(edited.success());
    let tampered = engine.verify_history().await.unwrap_err();
    assert!(
        matches!(&tampered, ClientError::Tampered(m) if m.contains("re-issued grant") && m.contains("altered")),
        "{tampered:?}"
    );
}
