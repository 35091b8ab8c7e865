//! The history proves itself: a real history (a grant, a denial, a
//! sub-delegation, receipts, a revocation and a report), then edited with
//! the sqlite3 CLI, one way at a time, on a copy. `mandate history verify`
//! passes the untouched copy and names the first bad row of each edited one.

use std::path::{Path, PathBuf};
use std::time::Duration;

use mandate_e2e::procs::cli;
use serde_json::Value;

use crate::delegations::{agent, approved, delegate};
use crate::engine::{Stack, keyring_ready, next_new};
use crate::journey::{agent_got_denial, request};

/// Runs SQL with the sqlite3 CLI; returns what it prints.
pub(crate) async fn sqlite(db: &Path, sql: &str) -> String {
    let out = tokio::time::timeout(
        Duration::from_secs(30),
        tokio::process::Command::new("sqlite3")
            .arg(db)
            .arg(sql)
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("sqlite3 timed out")
    .expect("sqlite3 is installed (make setup)");
    assert!(
        out.status.success(),
        "sqlite3 {sql}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// `mandate history verify DB`: whether it passed, and its report.
async fn verify(db: &Path) -> (bool, Value) {
    let (ok, out, err) = cli(&["history", "verify", &db.display().to_string()], &[]).await;
    let report = serde_json::from_str(out.lines().next().unwrap_or("null"))
        .unwrap_or_else(|_| panic!("no report: {out}{err}"));
    (ok, report)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_names_the_first_row_edited_deleted_or_reordered() {
    if !keyring_ready() {
        return;
    }
    let stack = Stack::start().await;
    let (engine, principal) = stack.signed_in("alice").await;
    let mut updates = engine.subscribe();
    engine.follow();
    agent(&stack, "a.key").await;
    let b = agent(&stack, "b.key").await;
    approved(&stack, &engine, &mut updates, &principal, "a.json").await;
    let denied = request(
        &stack.broker.url,
        &stack.path("a.key"),
        &principal,
        &stack.path("never.json"),
    );
    let id = next_new(&mut updates).await;
    engine.deny(&id, Some("not now"), false).await.unwrap();
    agent_got_denial(denied, "not now").await;
    delegate(&stack, ("a.key", "a.json"), &b, "b.json", "0").await;
    let env = [("MANDATE_BROKER", stack.broker.url.as_str())];
    for (key, mandate, summary) in [
        ("a.key", "a.json", "Planned the tidy-up"),
        ("b.key", "b.json", "Read the revenue file"),
        ("b.key", "b.json", "Read the costs file"),
    ] {
        let (k, m) = (stack.path(key), stack.path(mandate));
        let args = [
            "agent",
            "report",
            "--key",
            &k,
            "--mandate",
            &m,
            "--action",
            "files.read",
            "--target",
            "https://files.example/reports/q3/",
            "--summary",
            summary,
        ];
        let (ok, _, err) = cli(&args, &env).await;
        assert!(ok, "{err}");
    }
    engine.sync_activity().await.unwrap();
    let receipts = engine
        .activity(&mandate_client::activity::ActivityFilter::default())
        .await
        .unwrap();
    assert_eq!(receipts.len(), 3);
    engine
        .report(&receipts[0].id, Some("odd"), false)
        .await
        .unwrap();
    let root = engine
        .grants()
        .await
        .unwrap()
        .into_iter()
        .find(|g| g.parent.is_none())
        .unwrap()
        .id;
    engine.revoke(&[root], None).await.unwrap();
    engine.verify_history().await.unwrap();
    engine.shutdown().await;

    let original = stack.dir.path().join("app/history.sqlite");
    sqlite(&original, "PRAGMA wal_checkpoint(TRUNCATE);").await;
    let (ok, report) = verify(&original).await;
    assert!(ok, "the untouched history verifies: {report}");
    assert_eq!(report["intact"], true);

    // Facts about the history, to name the rows each edit must be found at.
    let one = |sql: &'static str| {
        let db = original.clone();
        async move { sqlite(&db, sql).await }
    };
    let third_event = one("SELECT seq FROM events ORDER BY seq LIMIT 1 OFFSET 2").await;
    let fourth_event = one("SELECT seq FROM events ORDER BY seq LIMIT 1 OFFSET 3").await;
    let denial = one("SELECT request_id FROM decisions WHERE kind = 'denial'").await;
    let revocation = one("SELECT token_id FROM revocations").await;
    let second_receipt = one("SELECT seq FROM receipts ORDER BY seq LIMIT 1 OFFSET 1").await;
    let third_receipt = one("SELECT seq FROM receipts ORDER BY seq LIMIT 1 OFFSET 2").await;
    let reported = one("SELECT id FROM receipts WHERE reported_at IS NOT NULL").await;
    assert!(!reported.is_empty() && !revocation.is_empty() && !denial.is_empty());

    let unlock = "DROP TRIGGER events_append_only_update; DROP TRIGGER events_append_only_delete; \
                  DROP TRIGGER receipts_append_only_delete;";
    let cases: Vec<(&str, String, String)> = vec![
        (
            "an event edited",
            format!("UPDATE events SET subject = 'someone-else' WHERE seq = {third_event};"),
            format!("event {third_event}: its content does not match its hash"),
        ),
        (
            "an event deleted",
            format!("DELETE FROM events WHERE seq = {third_event};"),
            format!("event {fourth_event}: does not follow the event before it"),
        ),
        (
            "two events reordered",
            format!(
                "UPDATE events SET seq = -1 WHERE seq = {third_event}; \
                 UPDATE events SET seq = {third_event} WHERE seq = {fourth_event}; \
                 UPDATE events SET seq = {fourth_event} WHERE seq = -1;"
            ),
            format!("event {third_event}: does not follow the event before it"),
        ),
        (
            "the last event cut off",
            "DELETE FROM events WHERE seq = (SELECT max(seq) FROM events);".into(),
            "the signed head is not the last event".into(),
        ),
        (
            "a decision's token edited",
            format!("UPDATE decisions SET token = token || 'x' WHERE request_id = '{denial}';"),
            format!("decision {denial}: its row was altered"),
        ),
        (
            "a revocation deleted",
            format!("DELETE FROM revocations WHERE token_id = '{revocation}';"),
            format!("revocation {revocation}: its row is missing"),
        ),
        (
            "a request added",
            "INSERT INTO requests SELECT 'planted', principal, request, agent_id, agent_name, \
             agent_skeleton, parent_chain, received_at, expires_at, 'pending', parent_keys, tools, \
             denied_before, code_misses, code_matched, flagged FROM requests LIMIT 1;"
                .into(),
            "request planted: a row no event recorded".into(),
        ),
        (
            "a receipt's summary edited",
            format!("UPDATE receipts SET summary = 'Nothing to see' WHERE seq = {second_receipt};"),
            format!("receipt row {second_receipt}: its content does not match its hash"),
        ),
        (
            "a receipt's status changed",
            format!(
                "UPDATE receipts SET status = 'failed', error = 'x' WHERE seq = {third_receipt};"
            ),
            format!("receipt row {third_receipt}: its content does not match its hash"),
        ),
        (
            "a receipt deleted",
            format!("DELETE FROM receipts WHERE seq = {second_receipt};"),
            format!("receipt row {third_receipt}: does not follow the receipt before it"),
        ),
        (
            "two receipts reordered",
            format!(
                "UPDATE receipts SET seq = -1 WHERE seq = {second_receipt}; \
                 UPDATE receipts SET seq = {second_receipt} WHERE seq = {third_receipt}; \
                 UPDATE receipts SET seq = {third_receipt} WHERE seq = -1;"
            ),
            format!("receipt row {second_receipt}: does not follow the receipt before it"),
        ),
        (
            "a receipt's id taken out of the tables of ids",
            format!(
                "DELETE FROM receipt_ids WHERE seq = {second_receipt}; \
                 DELETE FROM receipt_ids_recent WHERE seq = {second_receipt};"
            ),
            format!("receipt row {second_receipt}: not held once under its id"),
        ),
        (
            "a report taken back",
            format!("UPDATE receipts SET reported_at = NULL WHERE id = '{reported}';"),
            format!("reports receipt {reported}, which is not marked reported"),
        ),
        (
            "the head's signature replaced",
            "UPDATE heads SET signature = (SELECT signature FROM receipt_heads LIMIT 1);".into(),
            "the head's signature does not verify".into(),
        ),
    ];
    for (n, (what, sql, expected)) in cases.iter().enumerate() {
        let copy: PathBuf = stack.dir.path().join(format!("tampered-{n}.sqlite"));
        std::fs::copy(&original, &copy).unwrap();
        sqlite(&copy, &format!("{unlock} {sql}")).await;
        let (ok, report) = verify(&copy).await;
        assert!(!ok, "{what}: not found\n{report}");
        assert_eq!(report["intact"], false, "{what}: {report}");
        assert_eq!(report["error"], "history.tampered", "{what}: {report}");
        let message = report["message"].as_str().unwrap_or_default();
        assert!(
            message.contains(expected.as_str()),
            "{what}: expected {expected:?}, got {message:?}"
        );
    }

    // A key other than the one the app shows is refused.
    let (ok, out, _) = cli(
        &[
            "history",
            "verify",
            &original.display().to_string(),
            "--key-fingerprint",
            "not-the-key",
        ],
        &[],
    )
    .await;
    assert!(!ok);
    assert!(out.contains("history.key_mismatch"), "{out}");
    // Not a history at all.
    let (ok, _, err) = cli(&["history", "verify", "/nonexistent/history.sqlite"], &[]).await;
    assert!(!ok);
    assert!(err.contains("is not a file"), "{err}");
    stack.stop(Some(&principal)).await;
}
