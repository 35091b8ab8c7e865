//! A backlog written through the pipeline (each batch checked while the
//! one before it is written) ends up exactly as page-by-page ingestion
//! leaves it: the same rows in the same order, the same verdicts, the same
//! signed receipt chain and feed position. Real SQLite files, no broker.

use mandate_client::activity::{ActivityFilter, Checker, Ingest, Ingested};
use mandate_client::broker::ReceiptItem;
use mandate_client::history::History;
use mandate_core::scope::AuthorizationDetail;
use mandate_core::token::{Action, Outcome, ReceiptClaims};
use mandate_core::{Claims as _, Principal, SigningKey, TokenId};

const NOW: i64 = 1_800_000_000;

fn receipt(key: &SigningKey, grant: TokenId, n: usize) -> String {
    ReceiptClaims {
        grant,
        action: Action {
            kind: "files.read".into(),
            target: format!("https://files.example/{n}"),
            summary: format!("Read file {n}"),
        },
        outcome: Outcome::Succeeded,
        rationale: n
            .is_multiple_of(2)
            .then(|| format!("Step {n} of the report")),
        cause: None,
        iat: NOW - 1_000 + n as i64,
        jti: format!("r-{n}").try_into().unwrap(),
    }
    .sign(key)
}

/// Three batches of 100 (enough for the checks to spread over the cores):
/// every 17th receipt signed by a stranger, so it fails, and the first
/// receipt of the second batch repeated in the third.
fn backlog(principal: &Principal, user: &SigningKey) -> Vec<Vec<ReceiptItem>> {
    let agent = SigningKey::from_seed(&[5; 32]);
    let stranger = SigningKey::from_seed(&[6; 32]);
    let grant = crate::root_grant(
        user,
        principal,
        &agent,
        AuthorizationDetail::new("files", ["read"], ["https://files.example/"]).unwrap(),
        ("Read the files", None),
        (NOW, 10_000),
    );
    let id = TokenId::of(&grant);
    let item = |n: usize| ReceiptItem {
        seq: n as i64 + 1,
        receipt: receipt(if n % 17 == 3 { &stranger } else { &agent }, id, n),
        received_at: NOW - 1_000 + n as i64,
        chain: vec![grant.clone()],
        keys: vec![agent.public().to_jwk()],
        witness: None,
    };
    let mut batches: Vec<Vec<ReceiptItem>> = (0..3)
        .map(|b| (b * 100..(b + 1) * 100).map(item).collect())
        .collect();
    let repeated = batches[1][0].clone();
    batches[2].insert(0, repeated);
    batches
}

async fn rows(history: &History, principal: &str) -> Vec<(i64, String, String, Option<String>)> {
    let filter = ActivityFilter {
        limit: Some(1000),
        ..ActivityFilter::default()
    };
    history
        .activity(principal, &filter)
        .await
        .unwrap()
        .into_iter()
        .map(|r| (r.seq, r.id, format!("{:?}", r.status), r.error))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pipelined_backlog_is_written_as_page_by_page_ingestion_writes_it() {
    let dir = tempfile::tempdir().unwrap();
    let principal: Principal = "https://idp.example#pipeline"
        .to_owned()
        .try_into()
        .unwrap();
    let p = principal.as_str();
    let user = SigningKey::from_seed(&[4; 32]);
    let batches = backlog(&principal, &user);

    // The pipelined history moves new ids to the main table of ids after
    // every batch, so that the repeat is found there; the other keeps them
    // all among the recent ones.
    let piped = History::open(&dir.path().join("piped.sqlite"))
        .await
        .unwrap()
        .with_recent_ids(64);
    let checker = Checker::new(principal.clone(), user.public()).unwrap();
    let mut ingest = Ingest::new(&piped, p, &user, checker);
    for batch in &batches {
        ingest.push(batch.clone()).await.unwrap();
    }
    let got = ingest.finish().await.unwrap();

    let paged = History::open(&dir.path().join("paged.sqlite"))
        .await
        .unwrap();
    let mut checker = Checker::new(principal.clone(), user.public()).unwrap();
    let mut want = Ingested::default();
    for batch in &batches {
        let page = paged.ingest(p, &user, &mut checker, batch).await.unwrap();
        want.new += page.new;
        want.failed += page.failed;
    }

    // 300 receipts, the repeat skipped; 18 signed by the stranger.
    assert_eq!(
        want,
        Ingested {
            new: 300,
            failed: 18
        }
    );
    assert_eq!(got, want);
    let (piped_rows, paged_rows) = (rows(&piped, p).await, rows(&paged, p).await);
    assert_eq!(piped_rows.len(), 300);
    assert_eq!(piped_rows, paged_rows);
    let failed: Vec<_> = piped_rows.iter().filter(|r| r.3.is_some()).collect();
    assert_eq!(failed.len(), 18);
    assert!(
        failed
            .iter()
            .all(|r| r.3.as_deref() == Some("header.kid_mismatch")),
        "{failed:?}"
    );
    // Each history's receipt chain holds, under a head the user key signed,
    // and the feed's position is after the last receipt.
    for history in [&piped, &paged] {
        assert_eq!(
            history.verify_receipts(p, user.public()).await.unwrap(),
            300
        );
        assert_eq!(history.receipts_cursor(p).await.unwrap(), 300);
    }
    // Any receipt is found by its id, wherever its id is held; an id that
    // shares its key (the first 10 characters) with a held one is not.
    for history in [&piped, &paged] {
        for (_, id, _, _) in piped_rows.iter().step_by(37) {
            let (row, token) = history.receipt_row(p, id).await.unwrap().unwrap();
            assert_eq!(&row.id, id);
            assert_eq!(TokenId::of(&token).to_string(), *id);
            let mut twin = id.clone();
            twin.replace_range(10.., &"A".repeat(id.len() - 10));
            assert!(history.receipt_row(p, &twin).await.unwrap().is_none());
        }
        let (_, last, _, _) = &piped_rows[0];
        assert!(
            history
                .report_receipt(&user, p, last, None, NOW)
                .await
                .unwrap()
        );
        assert!(
            !history
                .report_receipt(&user, p, last, None, NOW)
                .await
                .unwrap()
        );
    }
}

/// A history written before migration 0005 (receipts with a unique index
/// on `id`, no tables of ids) is upgraded in place: the same rows and
/// chain, every receipt found by id and by its words, a repeat still
/// skipped, and the receipts still append-only.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_history_from_before_the_tables_of_ids_is_upgraded_in_place() {
    let dir = tempfile::tempdir().unwrap();
    let current = dir.path().join("current.sqlite");
    let path = dir.path().join("old.sqlite");
    let principal: Principal = "https://idp.example#upgrade".to_owned().try_into().unwrap();
    let p = principal.as_str();
    let user = SigningKey::from_seed(&[4; 32]);
    let batches = backlog(&principal, &user);
    let history = History::open(&current).await.unwrap();
    let mut checker = Checker::new(principal.clone(), user.public()).unwrap();
    for batch in &batches[..2] {
        history.ingest(p, &user, &mut checker, batch).await.unwrap();
    }
    let before = rows(&history, p).await;
    history.close().await;
    // The same history in the shape migrations 0001 to 0004 give it, as if
    // 0005 had never run: those migrations' own files, then every row (the
    // full-text index fills itself as the receipts go in).
    let migrations = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations");
    let mut files: Vec<std::path::PathBuf> = std::fs::read_dir(&migrations)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|file| file.file_name().is_some_and(|name| *name < *"0005"))
        .collect();
    files.sort();
    assert_eq!(files.len(), 4, "{files:?}");
    let schema: Vec<String> = files
        .iter()
        .map(|file| std::fs::read_to_string(file).unwrap())
        .collect();
    crate::tamper::sqlite(&path, &format!("BEGIN;\n{}\nCOMMIT;", schema.join("\n"))).await;
    let tables = crate::tamper::sqlite(
        &path,
        "SELECT group_concat(name, ' ') FROM sqlite_master
         WHERE type = 'table' AND name NOT LIKE 'sqlite_%' AND name NOT LIKE 'receipts_text%'",
    )
    .await;
    assert!(tables.split(' ').any(|t| t == "receipts"), "{tables}");
    let applied = crate::tamper::sqlite(
        &current,
        "SELECT sql FROM sqlite_master WHERE name = '_sqlx_migrations'",
    )
    .await;
    // Each table's columns as the old schema has them: later migrations
    // (0006's `requests.parent_keys`) add columns the old one lacks.
    let mut copy = String::new();
    for t in tables.split(' ') {
        let columns = crate::tamper::sqlite(
            &path,
            &format!("SELECT group_concat(name, ', ') FROM pragma_table_info('{t}')"),
        )
        .await;
        copy.push_str(&format!(
            "INSERT INTO {t} ({columns}) SELECT {columns} FROM current.{t};"
        ));
    }
    crate::tamper::sqlite(
        &path,
        &format!(
            "ATTACH '{}' AS current; {applied};
             INSERT INTO _sqlx_migrations SELECT * FROM current._sqlx_migrations WHERE version < 5;
             {copy}",
            current.display()
        ),
    )
    .await;
    assert_eq!(
        crate::tamper::sqlite(
            &path,
            "SELECT count(*) FROM sqlite_master WHERE name LIKE 'receipt_ids%'"
        )
        .await,
        "0"
    );

    let history = History::open(&path).await.unwrap();
    assert_eq!(rows(&history, p).await, before);
    assert_eq!(
        history.verify_receipts(p, user.public()).await.unwrap(),
        200
    );
    for (_, id, _, _) in before.iter().step_by(23) {
        let (row, _) = history.receipt_row(p, id).await.unwrap().unwrap();
        assert_eq!(&row.id, id);
    }
    let found = history
        .activity(
            p,
            &ActivityFilter {
                text: Some("Step".into()),
                limit: Some(1000),
                ..ActivityFilter::default()
            },
        )
        .await
        .unwrap();
    // Even-numbered receipts have a rationale ("Step n of the report").
    assert_eq!(found.len(), 100);
    // The third batch repeats the first receipt of the second: skipped.
    let got = history
        .ingest(p, &user, &mut checker, &batches[2])
        .await
        .unwrap();
    assert_eq!((batches[2].len(), got.new), (101, 100));
    assert_eq!(
        history.verify_receipts(p, user.public()).await.unwrap(),
        300
    );
    history.close().await;
    let refused = tokio::process::Command::new("sqlite3")
        .arg(&path)
        .arg("DELETE FROM receipts WHERE seq = 1;")
        .output()
        .await
        .unwrap();
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("append-only"));
}
