//! A backlog written through the pipeline (each batch checked while the
//! one before it is written) ends up exactly as page-by-page ingestion
//! leaves it: the same rows in the same order, the same verdicts, the same
//! signed receipt chain and feed position. Real SQLite files, no broker.

use mandate_client::activity::{ActivityFilter, Checker, Ingest, Ingested};
use mandate_client::broker::ReceiptItem;
use mandate_client::history::History;
use mandate_core::scope::AuthorizationDetail;
use mandate_core::token::{Action, Actor, Confirmation, GrantClaims, Outcome, ReceiptClaims};
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
    let grant = GrantClaims {
        sub: principal.clone(),
        act: Actor {
            sub: agent.public().agent_id(),
        },
        cnf: Confirmation {
            jkt: agent.thumbprint(),
        },
        authorization_details: vec![
            AuthorizationDetail::new("files", ["read"], ["https://files.example/"]).unwrap(),
        ],
        purpose: "Read the files".into(),
        intent: None,
        iat: NOW - 10_000,
        nbf: NOW - 10_000,
        exp: NOW + 10_000,
        jti: "g-1".to_string().try_into().unwrap(),
        max_depth: 0,
        prf: None,
        req: None,
    }
    .sign(user);
    let id = TokenId::of(&grant);
    let item = |n: usize| ReceiptItem {
        seq: n as i64 + 1,
        receipt: receipt(if n % 17 == 3 { &stranger } else { &agent }, id, n),
        received_at: NOW - 1_000 + n as i64,
        chain: vec![grant.clone()],
        keys: vec![agent.public().to_jwk()],
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

    let piped = History::open(&dir.path().join("piped.sqlite"))
        .await
        .unwrap();
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
}
