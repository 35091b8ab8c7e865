//! The desktop app's history at scale (issue 5's goals), on a real SQLite
//! file:
//!
//! - ingesting 1,000,000 receipts, each checked (its chain, as it stood
//!   when the broker accepted it, and its signature), 5,000 to a
//!   transaction as the engine writes them: receipts a second (goal: at
//!   least 20,000);
//! - a filtered activity page over them: one agent, the last 30 days and a
//!   word of text, newest 200 (goal: p99 at most 20 ms);
//! - as a floor, in the same run: Ed25519 signature checks alone, one core;
//! - the same ingest again into a new file with a mix closer to real use:
//!   a new sub-agent (a new key and a new grant beneath the planner's) for
//!   every 10 receipts, so that most chains are checked for the first time
//!   rather than found among 20 already checked.
//!
//! `cargo bench -p mandate-client --bench history` (make bench-history).
//! `MANDATE_BENCH_RECEIPTS` sets how many (default 1,000,000; 10,000 when
//! `cargo test` runs it, as `make test` does, to show that it works).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

use std::time::{Duration, Instant};

use mandate_client::activity::{ActivityFilter, Checker, Ingest};
use mandate_client::broker::ReceiptItem;
use mandate_client::history::History;
use mandate_core::scope::AuthorizationDetail;
use mandate_core::token::{Action, Actor, Confirmation, GrantClaims, Outcome, ReceiptClaims};
use mandate_core::{Claims as _, Principal, SigningKey, TokenId};

/// Receipts per transaction: the engine writes ten of the feed's pages of
/// 500 at a time.
const PAGE: usize = 5000;
const AGENTS: usize = 20;
const DAY: i64 = 86_400;
const WORDS: &[&str] = &[
    "pods",
    "events",
    "logs",
    "invoice",
    "vendor",
    "quote",
    "report",
    "figures",
    "audit",
    "records",
    "namespace",
    "restart",
    "consent",
    "marketing",
    "supplier",
    "order",
    "budget",
    "summary",
    "drafts",
    "revenue",
];

fn key(seed: u8) -> SigningKey {
    SigningKey::from_seed(&[seed; 32])
}

fn grant(
    principal: &Principal,
    by: &SigningKey,
    to: &SigningKey,
    prf: Option<TokenId>,
    now: i64,
    n: usize,
) -> String {
    GrantClaims {
        sub: principal.clone(),
        act: Actor {
            sub: to.public().agent_id(),
        },
        cnf: Confirmation {
            jkt: to.thumbprint(),
        },
        authorization_details: vec![
            AuthorizationDetail::new("files", ["read"], ["https://files.example/"]).unwrap(),
        ],
        purpose: format!("Bench agent {n}"),
        intent: Some("Keep the books".into()),
        iat: now - 100 * DAY,
        nbf: now - 100 * DAY,
        exp: now + DAY,
        jti: format!("bench-grant-{n}").try_into().unwrap(),
        max_depth: u8::from(prf.is_none()),
        prf,
        req: None,
    }
    .sign(by)
}

/// The agents that sign the receipts, each under its chain (the user's
/// grant to the planner, and the planner's grant to the agent).
struct Fleet {
    agents: Vec<SigningKey>,
    chains: Vec<Vec<String>>,
    /// Each agent's grant's id.
    leaves: Vec<TokenId>,
    /// The keys that the feed sends with each agent's receipts.
    keys: Vec<Vec<mandate_core::Jwk>>,
    /// How many receipts in a row each agent signs before the next; 1 is
    /// round robin over all of them.
    run: usize,
}

impl Fleet {
    /// `n` agents under `root`, whose grantee is `planner`; agent `i`'s key
    /// comes from `seed(i)`.
    fn new(
        principal: &Principal,
        planner: &SigningKey,
        root: &str,
        now: i64,
        n: usize,
        run: usize,
        seed: impl Fn(usize) -> [u8; 32] + Sync,
    ) -> Fleet {
        let make = |i: usize| {
            let agent = SigningKey::from_seed(&seed(i));
            let leaf = grant(
                principal,
                planner,
                &agent,
                Some(TokenId::of(root)),
                now,
                i + 1,
            );
            (agent, leaf)
        };
        // Signed on both cores before any clock starts.
        let made: Vec<(SigningKey, String)> = std::thread::scope(|s| {
            let first = s.spawn(|| (0..n / 2).map(make).collect::<Vec<_>>());
            let mut all: Vec<_> = (n / 2..n).map(make).collect();
            let mut front = first.join().unwrap();
            front.append(&mut all);
            front
        });
        let planner_jwk = planner.public().to_jwk();
        Fleet {
            leaves: made.iter().map(|(_, g)| TokenId::of(g)).collect(),
            keys: made
                .iter()
                .map(|(a, _)| vec![planner_jwk.clone(), a.public().to_jwk()])
                .collect(),
            chains: made
                .iter()
                .map(|(_, g)| vec![root.to_owned(), g.clone()])
                .collect(),
            agents: made.into_iter().map(|(a, _)| a).collect(),
            run,
        }
    }

    /// Which agent signs receipt `n`.
    fn of(&self, n: usize) -> usize {
        (n / self.run) % self.agents.len()
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

/// Signs `total` receipts over the last 90 days, oldest first, each by
/// the agent `fleet` names, on both cores before any clock starts.
fn sign_receipts(fleet: &Fleet, total: usize, now: i64) -> Vec<(String, i64)> {
    let span = 90 * DAY;
    let make = |n: usize| {
        let a = fleet.of(n);
        let at = now - span + (n as i64 * span) / total as i64;
        let w = |k: usize| WORDS[(n / 7 + k * 13) % WORDS.len()];
        let claims = ReceiptClaims {
            grant: fleet.leaves[a],
            action: Action {
                kind: "files.read".into(),
                target: format!("https://files.example/{}/{n}", w(0)),
                summary: format!("Read the {} {} for {}", w(0), w(1), w(2)),
            },
            outcome: Outcome::Succeeded,
            rationale: Some(format!("The {} needs the {}", w(3), w(4))),
            cause: None,
            iat: at,
            jti: format!("bench-receipt-{n}").try_into().unwrap(),
        };
        (claims.sign(&fleet.agents[a]), at)
    };
    let half = total / 2;
    std::thread::scope(|s| {
        let first = s.spawn(|| (0..half).map(make).collect::<Vec<_>>());
        let second = s.spawn(|| (half..total).map(make).collect::<Vec<_>>());
        let mut all = first.join().unwrap();
        all.extend(second.join().unwrap());
        all
    })
}

/// Page `page_no` of the signed receipts, as the broker's feed serves it.
fn feed_page(fleet: &Fleet, page_no: usize, page: &[(String, i64)]) -> Vec<ReceiptItem> {
    page.iter()
        .enumerate()
        .map(|(k, (token, at))| {
            let n = page_no * PAGE + k;
            ReceiptItem {
                seq: n as i64 + 1,
                receipt: token.clone(),
                received_at: *at,
                chain: fleet.chains[fleet.of(n)].clone(),
                keys: fleet.keys[fleet.of(n)].clone(),
                witness: None,
            }
        })
        .collect()
}

/// The checks alone, no database, on both cores, over the first 8 pages:
/// receipts a second.
fn checks_alone(fleet: &Fleet, signed: &[(String, i64)], checker: &mut Checker) -> f64 {
    let pages: Vec<Vec<ReceiptItem>> = signed
        .chunks(PAGE)
        .enumerate()
        .map(|(page_no, page)| feed_page(fleet, page_no, page))
        .take(8)
        .collect();
    let start = Instant::now();
    let mut checked = 0;
    for page in &pages {
        checked += checker.receipts(page).iter().filter(|r| r.is_ok()).count();
    }
    checked as f64 / start.elapsed().as_secs_f64()
}

/// Ingests the receipts as the engine syncs a backlog: each page is
/// checked while the one before it is written. The clock runs only inside
/// `push` and `finish`, which return with no work left in the background,
/// so building the feed's pages is not counted. Returns receipts a second
/// and the time the last batch and the log's cutting back took.
async fn ingest(
    history: &History,
    principal: &str,
    user: &SigningKey,
    checker: Checker,
    fleet: &Fleet,
    signed: &[(String, i64)],
) -> (f64, Duration) {
    let mut busy = Duration::ZERO;
    let mut ingest = Ingest::new(history, principal, user, checker);
    for (page_no, page) in signed.chunks(PAGE).enumerate() {
        let items = feed_page(fleet, page_no, page);
        let start = Instant::now();
        ingest.push(items).await.unwrap();
        busy += start.elapsed();
    }
    let start = Instant::now();
    let got = ingest.finish().await.unwrap();
    let last = start.elapsed();
    busy += last;
    assert_eq!((got.new, got.failed), (signed.len(), 0));
    (signed.len() as f64 / busy.as_secs_f64(), last)
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test` (make test) runs this
    // once through, at a size that shows it works, not how fast.
    let measuring = std::env::args().any(|a| a == "--bench");
    let total: usize = std::env::var("MANDATE_BENCH_RECEIPTS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(if measuring { 1_000_000 } else { 10_000 });
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    // MANDATE_BENCH_KEEP=1 keeps the database, to look at its query plans.
    if std::env::var_os("MANDATE_BENCH_KEEP").is_some() {
        println!("keeping {}", dir.path().display());
    }
    let now = 1_800_000_000;
    let principal: Principal = "https://idp.example#bench".to_owned().try_into().unwrap();
    let user = key(1);
    let planner = key(2);
    // The user's grant to a planner, and the planner's to each of 20 agents.
    let root = grant(&principal, &user, &planner, None, now, 0);
    let fleet = Fleet::new(&principal, &planner, &root, now, AGENTS, 1, |i| {
        [10 + i as u8; 32]
    });
    let agents = &fleet.agents;
    println!("signing {total} receipts…");
    let signed = sign_receipts(&fleet, total, now);

    runtime.block_on(async {
        let history = History::open(&dir.path().join("history.sqlite"))
            .await
            .unwrap();
        let p = principal.as_str();
        let checker = || Checker::new(principal.clone(), user.public()).unwrap();

        println!(
            "checks alone (no database), both cores: {:.0} receipts/s",
            checks_alone(&fleet, &signed, &mut checker())
        );
        let (rate, last) = ingest(&history, p, &user, checker(), &fleet, &signed).await;
        println!(
            "ingest: {total} receipts, 20 agents: {rate:.0} receipts/s (goal 20000: {}); the last batch and the log's cutting back took {:.2} s",
            if rate >= 20_000.0 { "met" } else { "MISSED" },
            last.as_secs_f64()
        );
        // A backlog of 10,000 or more leaves no write-ahead log behind.
        let wal = dir.path().join("history.sqlite-wal");
        if total >= 10_000 {
            assert_eq!(std::fs::metadata(&wal).map_or(0, |m| m.len()), 0);
        }

        // The floor, in the same run: each receipt parsed and its signature
        // checked against its (already verified) grant, one core, no
        // database.
        let sample = 20_000.min(total);
        let mut c = checker();
        let mut keyset = mandate_core::KeySet::new();
        for k in fleet.keys.iter().flatten() {
            c.add_key(k).unwrap();
            keyset.insert_jwk(k).unwrap();
        }
        let leaf_links: Vec<mandate_core::Link> = fleet
            .chains
            .iter()
            .map(|ch| c.chain(ch, now - DAY).unwrap().leaf().clone())
            .collect();
        let policy = mandate_core::Policy::default();
        let start = Instant::now();
        for (n, (token, at)) in signed[..sample].iter().enumerate() {
            mandate_core::Receipt::verify(token, &leaf_links[fleet.of(n)], &keyset, &policy, *at)
                .unwrap();
        }
        let floor = sample as f64 / start.elapsed().as_secs_f64();
        println!(
            "floor: {floor:.0} receipts parsed and signature-checked a second, one core, no database; ingest is {:.2}x of it",
            rate / floor
        );

        // A filtered page: one agent, the last 30 days, a word.
        let mut times = Vec::new();
        let mut sizes = Vec::new();
        let queries = std::env::var("MANDATE_BENCH_QUERIES").ok().and_then(|n| n.parse().ok()).unwrap_or(1000);
        for q in 0..queries {
            let filter = ActivityFilter {
                agent: Some(agents[q % AGENTS].public().agent_id().to_string()),
                from: Some(now - 30 * DAY),
                text: Some(WORDS[q % WORDS.len()].into()),
                ..ActivityFilter::default()
            };
            let start = Instant::now();
            let rows = history.activity(p, &filter).await.unwrap();
            times.push(start.elapsed());
            sizes.push(rows.len());
        }
        times.sort();
        sizes.sort_unstable();
        let p99 = percentile(&times, 0.99);
        println!(
            "filtered page (agent, 30 days, text; up to 200 rows, median {} rows): p50 {:.2} ms, p99 {:.2} ms (goal 20 ms: {})",
            sizes[sizes.len() / 2],
            percentile(&times, 0.5).as_secs_f64() * 1e3,
            p99.as_secs_f64() * 1e3,
            if p99 <= Duration::from_millis(20) { "met" } else { "MISSED" }
        );
        let mib = |name: &str| {
            std::fs::metadata(dir.path().join(name)).map_or(0.0, |m| m.len() as f64 / 1048576.0)
        };
        println!(
            "history file: {:.0} MiB, and its write-ahead log {:.0} MiB",
            mib("history.sqlite"),
            mib("history.sqlite-wal")
        );
        history.close().await;
    });
    drop(signed);

    // The mix closer to real use: a new sub-agent for every 10 receipts,
    // into a history of its own.
    const RUN: usize = 10;
    let churn = Fleet::new(
        &principal,
        &planner,
        &root,
        now,
        total.div_ceil(RUN),
        RUN,
        |i| {
            let mut seed = [7; 32];
            seed[..8].copy_from_slice(&(i as u64).to_le_bytes());
            seed
        },
    );
    println!("signing {total} receipts by {} agents…", churn.agents.len());
    let signed = sign_receipts(&churn, total, now);
    runtime.block_on(async {
        let history = History::open(&dir.path().join("history-churn.sqlite"))
            .await
            .unwrap();
        let checker = || Checker::new(principal.clone(), user.public()).unwrap();
        println!(
            "checks alone (no database), both cores, a new agent every {RUN} receipts: {:.0} receipts/s",
            checks_alone(&churn, &signed, &mut checker())
        );
        let (rate, last) =
            ingest(&history, principal.as_str(), &user, checker(), &churn, &signed).await;
        println!(
            "ingest: {total} receipts, a new agent every {RUN} ({} agents): {rate:.0} receipts/s (goal 20000: {}); the last batch and the log's cutting back took {:.2} s",
            churn.agents.len(),
            if rate >= 20_000.0 { "met" } else { "MISSED" },
            last.as_secs_f64()
        );
        history.close().await;
    });
    if std::env::var_os("MANDATE_BENCH_KEEP").is_some() {
        std::mem::forget(dir);
    }
}
