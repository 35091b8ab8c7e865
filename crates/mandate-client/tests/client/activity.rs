//! What agents did, from the engine, against a real broker: the user's
//! grant to agent A, A's sub-delegation to B and B's to C, a receipt from
//! each. The engine reads them from the broker and checks them itself;
//! C's action traces back through A's decision to the user's intent; the
//! timeline filters and searches; an export re-verifies with `mandate
//! verify`; a forged receipt, or one made under a revoked grant, shows as
//! failed; a report lands in the signed history.

use mandate_client::activity::{ActivityFilter, ReceiptStatus};
use mandate_client::broker::ReceiptItem;
use mandate_client::export::ExportFormat;
use mandate_core::token::{Action, Outcome, ReceiptClaims};
use mandate_core::{Claims as _, SigningKey, TokenId};
use mandate_e2e::procs::cli;
use serde_json::Value;

use crate::delegations::{agent, approved, delegate};
use crate::engine::{Stack, keyring_ready};

/// `key` reports an action under `mandate`; returns the receipt's id.
pub(crate) async fn report(
    stack: &Stack,
    (key, mandate): (&str, &str),
    action: &str,
    summary: &str,
    rationale: &str,
    cause: Option<&str>,
) -> String {
    let env = [("MANDATE_BROKER", stack.broker.url.as_str())];
    let (key, mandate) = (stack.path(key), stack.path(mandate));
    let mut args = vec![
        "agent",
        "report",
        "--key",
        &key,
        "--mandate",
        &mandate,
        "--action",
        action,
        "--target",
        "https://files.example/reports/q3/revenue.txt",
        "--summary",
        summary,
        "--rationale",
        rationale,
    ];
    if let Some(cause) = cause {
        args.extend(["--cause", cause]);
    }
    let (ok, out, err) = cli(&args, &env).await;
    assert!(ok, "{err}");
    let v: Value = serde_json::from_str(out.trim()).unwrap();
    v["receipt"].as_str().unwrap().to_owned()
}

fn mandate_chain(stack: &Stack, file: &str) -> Vec<String> {
    let m: Value =
        serde_json::from_str(&std::fs::read_to_string(stack.path(file)).unwrap()).unwrap();
    serde_json::from_value(m["chain"].clone()).unwrap()
}

fn receipt_by(key: &SigningKey, grant: TokenId, summary: &str, iat: i64) -> String {
    ReceiptClaims {
        grant,
        action: Action {
            kind: "files.read".into(),
            target: "https://files.example/reports/q4/".into(),
            summary: summary.into(),
        },
        outcome: Outcome::Succeeded,
        rationale: None,
        cause: None,
        iat,
        jti: format!("forged-{summary}").try_into().unwrap(),
    }
    .sign(key)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_activity_traces_a_sub_agents_action_to_the_users_intent() {
    if !keyring_ready() {
        return;
    }
    let stack = Stack::start().await;
    let (engine, principal) = stack.signed_in("alice").await;
    let mut updates = engine.subscribe();
    engine.follow();

    agent(&stack, "a.key").await;
    let b = agent(&stack, "b.key").await;
    let c = agent(&stack, "c.key").await;
    approved(&stack, &engine, &mut updates, &principal, "a.json").await;
    delegate(&stack, ("a.key", "a.json"), &b, "b.json", "1").await;
    delegate(&stack, ("b.key", "b.json"), &c, "c.json", "0").await;

    // A decides to split the work; B acts on that and hands a part to C;
    // C acts. Each signs a receipt naming the one before as its cause.
    let ra = report(
        &stack,
        ("a.key", "a.json"),
        "delegate",
        "Split the quarterly tidy-up",
        "Reading and filing are separate jobs",
        None,
    )
    .await;
    let rb = report(
        &stack,
        ("b.key", "b.json"),
        "delegate",
        "Asked C to read the revenue file",
        "C holds the parser",
        Some(&ra),
    )
    .await;
    let rc = report(
        &stack,
        ("c.key", "c.json"),
        "files.read",
        "Read the quarterly revenue file",
        "The summary needs the figures",
        Some(&rb),
    )
    .await;

    // The engine reads them, checks them, and records them (following the
    // broker, it may already have).
    engine.sync_activity().await.unwrap();
    let all = engine.activity(&ActivityFilter::default()).await.unwrap();
    assert_eq!(all.len(), 3, "{all:?}");
    assert!(
        all.iter().all(|r| r.status == ReceiptStatus::Verified),
        "{all:?}"
    );
    let again = engine.sync_activity().await.unwrap();
    assert_eq!(again.new, 0, "nothing is recorded twice");
    // B and C never asked the user: B is named by A, who did; C's
    // delegator B has no name the user saw either.
    let by_summary = |s: &str| all.iter().find(|r| r.summary == s).unwrap();
    assert_eq!(
        by_summary("Asked C to read the revenue file").agent_name,
        None
    );
    assert_eq!(
        by_summary("Asked C to read the revenue file")
            .delegated_by
            .as_deref(),
        Some("mandate CLI")
    );
    assert_eq!(
        by_summary("Read the quarterly revenue file").delegated_by,
        None
    );

    // Filter by agent: C's one action.
    let only_c = engine
        .activity(&ActivityFilter {
            agent: Some(c.clone()),
            ..ActivityFilter::default()
        })
        .await
        .unwrap();
    assert_eq!(
        only_c.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(),
        [rc.as_str()]
    );
    // Full-text search over summaries and rationales, by word prefix.
    let found = |text: &str| {
        let engine = engine.clone();
        let text = text.to_owned();
        async move {
            let mut ids: Vec<String> = engine
                .activity(&ActivityFilter {
                    text: Some(text),
                    ..ActivityFilter::default()
                })
                .await
                .unwrap()
                .into_iter()
                .map(|r| r.id)
                .collect();
            ids.sort();
            ids
        }
    };
    let mut quarterly = vec![ra.clone(), rc.clone()];
    quarterly.sort();
    assert_eq!(found("quarterly").await, quarterly);
    assert_eq!(
        found("quarter*").await,
        quarterly,
        "a word ending in * is a prefix"
    );
    assert!(
        found("quarter").await.is_empty(),
        "otherwise words are whole"
    );
    assert_eq!(found("parser").await, std::slice::from_ref(&rb));
    assert!(
        found("\"unbalanced OR").await.is_empty(),
        "no FTS syntax error"
    );
    // Words and an agent together (the full-text index leads).
    let c_quarterly = engine
        .activity(&ActivityFilter {
            agent: Some(c.clone()),
            text: Some("quarter*".into()),
            ..ActivityFilter::default()
        })
        .await
        .unwrap();
    assert_eq!(
        c_quarterly
            .iter()
            .map(|r| r.id.as_str())
            .collect::<Vec<_>>(),
        [rc.as_str()]
    );

    // C's action, traced back: the user's intent, A's interpretation, A's
    // decision, B's, then C's action, each verified.
    let why = engine.attribution(&rc).await.unwrap();
    let steps: Vec<(&str, &str)> = why
        .steps
        .iter()
        .map(|s| (s.step.as_str(), s.text.as_str()))
        .collect();
    assert_eq!(
        steps,
        [
            ("intent", "Tidy my reports"),
            ("interpretation", "Tidy the reports"),
            ("decision", "Split the quarterly tidy-up"),
            ("interpretation", "Read the reports"),
            ("decision", "Asked C to read the revenue file"),
            ("interpretation", "Read the reports"),
            ("action", "Read the quarterly revenue file"),
        ],
        "{why:#?}"
    );
    assert!(why.complete);
    assert!(
        why.steps
            .iter()
            .all(|s| s.signature == ReceiptStatus::Verified)
    );
    assert_eq!(why.steps[1].detail.as_deref(), Some("granted by you"));

    // The delegations: A's, B's and C's grants, by agent, with usage
    // rolled up to the grants above; A's write was never used.
    let delegations = engine.delegations().await.unwrap();
    assert!(delegations.ended.is_empty());
    let grants: Vec<_> = delegations
        .active
        .iter()
        .flat_map(|a| a.grants.iter())
        .map(|g| {
            let used: Vec<_> = g.scopes.iter().flat_map(|s| s.used.clone()).collect();
            let unused: Vec<_> = g.scopes.iter().flat_map(|s| s.unused.clone()).collect();
            (g.depth, g.issued_by.clone(), g.actions, used, unused)
        })
        .collect();
    assert_eq!(grants.len(), 3, "{delegations:#?}");
    assert_eq!(
        (grants[0].0, grants[0].1.as_str(), grants[0].2),
        (0, "you", 3),
        "{grants:?}"
    );
    assert_eq!(
        (grants[0].3.clone(), grants[0].4.clone()),
        (vec!["read".to_owned()], vec!["write".to_owned()])
    );
    assert_eq!((grants[1].0, grants[1].2), (1, 2), "{grants:?}");
    assert_eq!((grants[2].0, grants[2].2), (2, 1), "{grants:?}");
    assert!(
        delegations.active[2].grants[0].last_used.is_some(),
        "{delegations:#?}"
    );
    // Reminders: within two hours, A's grant (one hour) lapses, and B's and
    // C's with it; nothing lapses within a minute.
    assert_eq!(engine.expiring(2 * 3600).await.unwrap().len(), 3);
    assert!(engine.expiring(60).await.unwrap().is_empty());
    let a_grant = delegations.active[0].grants[0].id.clone();
    let preview = engine.revoke_preview(&a_grant).await.unwrap();
    assert_eq!(
        preview
            .falls
            .iter()
            .map(|g| g.agent.as_str())
            .collect::<Vec<_>>(),
        [b.as_str(), c.as_str()],
        "B's and C's grants fall with A's"
    );
    let c_grant = delegations.active[2].grants[0].id.clone();
    assert!(
        engine
            .revoke_preview(&c_grant)
            .await
            .unwrap()
            .falls
            .is_empty()
    );
    assert_eq!(
        engine
            .revoke_preview("no-such-grant")
            .await
            .unwrap_err()
            .code(),
        "request.not_found"
    );

    // Export, then verify the file elsewhere with `mandate verify`.
    let jsonl = stack.dir.path().join("activity.jsonl");
    let n = engine
        .export(&ActivityFilter::default(), ExportFormat::Jsonl, &jsonl)
        .await
        .unwrap();
    assert_eq!(n, 3);
    let env = [("MANDATE_BROKER", stack.broker.url.as_str())];
    let path = jsonl.display().to_string();
    let (ok, out, err) = cli(&["verify", "--receipts", &path], &env).await;
    assert!(ok, "{out}{err}");
    assert_eq!(
        out.lines().filter(|l| l.contains("\"valid\":true")).count(),
        3,
        "{out}"
    );
    // A record altered after export fails there.
    let text = std::fs::read_to_string(&jsonl).unwrap();
    let first: Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
    let receipt = first["receipt"].as_str().unwrap();
    // One character of the signature, well inside it, changed.
    let at = receipt.len() - 10;
    let swap = if &receipt[at..=at] == "A" { "B" } else { "A" };
    let altered = format!("{}{swap}{}", &receipt[..at], &receipt[at + 1..]);
    let forged = text.replacen(receipt, &altered, 1);
    let forged_path = stack.dir.path().join("forged.jsonl");
    std::fs::write(&forged_path, forged).unwrap();
    let (ok, out, _) = cli(
        &["verify", "--receipts", &forged_path.display().to_string()],
        &env,
    )
    .await;
    assert!(!ok, "{out}");
    assert!(out.contains("\"valid\":false"), "{out}");
    let csv = stack.dir.path().join("activity.csv");
    let filter = ActivityFilter {
        agent: Some(c.clone()),
        ..ActivityFilter::default()
    };
    assert_eq!(
        engine
            .export(&filter, ExportFormat::Csv, &csv)
            .await
            .unwrap(),
        1
    );
    let csv = std::fs::read_to_string(&csv).unwrap();
    assert!(csv.starts_with("id,at,agent,"), "{csv}");
    assert!(csv.contains(&rc), "the signed receipt is in the CSV");

    // A receipt with a forged signature, and one made under a revoked
    // grant, are shown as failed, not dropped.
    let c_chain = mandate_chain(&stack, "c.json");
    let c_leaf = TokenId::of(c_chain.last().unwrap());
    let c_key = mandate_keyfile::load(std::path::Path::new(&stack.path("c.key"))).unwrap();
    let now = crate::unix_now();
    let stranger = SigningKey::generate(&mut rand_core::OsRng);
    let forged = receipt_by(&stranger, c_leaf, "forged", now);
    let root = engine
        .grants()
        .await
        .unwrap()
        .into_iter()
        .find(|g| g.parent.is_none())
        .unwrap()
        .id;
    engine.revoke(&[root], Some("done")).await.unwrap();
    engine.sync_activity().await.unwrap();
    let after = engine.delegations().await.unwrap();
    assert!(after.active.is_empty(), "{after:#?}");
    assert_eq!(after.ended.len(), 3, "all three ended with A's");
    let revoked_at = engine
        .grants()
        .await
        .unwrap()
        .into_iter()
        .find_map(|g| g.revoked_at)
        .unwrap();
    let late = receipt_by(&c_key, c_leaf, "late", revoked_at + 1);
    // Accepted in the revocation's own second: the broker's order stands
    // (it accepts nothing under a revoked grant), so it came before.
    let same_second = receipt_by(&c_key, c_leaf, "same second", revoked_at);
    let keys = vec![c_key.public().to_jwk(), stranger.public().to_jwk()];
    let page = [
        ReceiptItem {
            seq: 1000,
            receipt: forged.clone(),
            // Before the revocation: it fails for its signature alone.
            received_at: now - 1,
            chain: c_chain.clone(),
            keys: keys.clone(),
            witness: None,
        },
        ReceiptItem {
            seq: 1001,
            receipt: late.clone(),
            received_at: revoked_at + 1,
            chain: c_chain.clone(),
            keys: keys.clone(),
            witness: None,
        },
        ReceiptItem {
            seq: 1002,
            receipt: same_second,
            received_at: revoked_at,
            chain: c_chain.clone(),
            keys,
            witness: None,
        },
    ];
    let got = engine.ingest(&page).await.unwrap();
    assert_eq!((got.new, got.failed), (3, 2));
    let failed = engine
        .activity(&ActivityFilter {
            status: Some(ReceiptStatus::Failed),
            ..ActivityFilter::default()
        })
        .await
        .unwrap();
    let codes: Vec<(String, Option<String>)> = failed
        .iter()
        .map(|r| (r.summary.clone(), r.error.clone()))
        .collect();
    assert_eq!(
        codes,
        [
            ("late".into(), Some("chain.revoked".into())),
            ("forged".into(), Some("header.kid_mismatch".into())),
        ]
    );
    let forged_id = TokenId::of(&forged).to_string();
    let why = engine.attribution(&forged_id).await.unwrap();
    assert_eq!(why.steps.len(), 1);
    assert_eq!(why.steps[0].signature, ReceiptStatus::Failed);

    // Report C's action: marked, recorded in the signed history, once.
    engine
        .report(&rc, Some("not expected"), false)
        .await
        .unwrap();
    engine.report(&rc, None, false).await.unwrap();
    let reported = engine
        .activity(&ActivityFilter {
            agent: Some(c),
            status: Some(ReceiptStatus::Verified),
            ..ActivityFilter::default()
        })
        .await
        .unwrap();
    let marked: Vec<(&str, bool)> = reported
        .iter()
        .map(|r| (r.summary.as_str(), r.reported_at.is_some()))
        .collect();
    assert_eq!(
        marked,
        [
            ("same second", false),
            ("Read the quarterly revenue file", true)
        ]
    );
    let events = engine.history().events(&principal).await.unwrap();
    assert_eq!(
        events
            .iter()
            .filter(|e| e.kind == "receipt.reported")
            .map(|e| (e.subject.as_str(), e.token.as_deref()))
            .collect::<Vec<_>>(),
        [(rc.as_str(), Some("not expected"))]
    );
    let verified = engine.verify_history().await.unwrap();
    assert_eq!(
        verified.receipts, 6,
        "the receipts' own chain holds all six"
    );

    engine.shutdown().await;
    stack.stop(Some(&principal)).await;
}
