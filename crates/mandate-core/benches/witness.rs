//! Verifying a page of witness receipts (docs/protocol.md 4.10), as the
//! app does when the receipt feed brings them, against its floor:
//!
//!     cargo bench -p mandate-core --bench witness
//!
//! - `report_page`: the 100 receipts of one report never seen before, each
//!   through `verify_witness` on its own (the report's signature checked
//!   for the first, remembered for the rest; each path folded, each
//!   payload read);
//! - `floor`: what that page cannot do without: one `verify_strict` of the
//!   report's signature, 100 RFC 9162 inclusion checks, and 100 payloads
//!   decoded and read by serde alone (no strictness pass, no own rules);
//! - `signed_page`: 100 receipts each signed on its own, each through
//!   `verify_witness`: one signature a receipt, the form before reports.

#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::time::Duration;

use criterion::{BatchSize, BenchmarkId, Criterion, criterion_group, criterion_main};
use mandate_core::token::{
    Action, Claims as _, Outcome, WitnessClaims, WitnessReport, digest_of, open_witness_report,
    verify_witness,
};
use mandate_core::{Policy, SigningKey, TokenId, base64url, merkle};

const NOW: i64 = 1_796_000_000;
const PAGE: usize = 100;

fn receipt(n: usize, round: u64) -> WitnessClaims {
    WitnessClaims {
        grant: TokenId::of("grant"),
        holder: SigningKey::from_seed(&[3; 32]).public().thumbprint(),
        action: Action {
            kind: "tools/call".into(),
            target: "http://127.0.0.1:7900/mcp".into(),
            summary: "Called the tool read_file".into(),
        },
        name: Some("read_file".into()),
        dig: digest_of(format!("{round}-{n}").as_bytes()),
        outcome: Outcome::Succeeded,
        trace: Some("4bf92f3577b34da6a3ce929d0e0e4736".into()),
        iat: NOW - 5,
        jti: format!("w-{round}-{n}").try_into().unwrap(),
    }
}

/// The texts of a fresh report's receipts, `REPORT~INDEX~PATH~PAYLOAD`.
fn page(key: &SigningKey, round: u64) -> Vec<String> {
    let claims: Vec<_> = (0..PAGE).map(|n| receipt(n, round)).collect();
    let report = WitnessReport::sign(
        &claims,
        key,
        NOW - 5,
        format!("r-{round}").try_into().unwrap(),
    );
    open_witness_report(
        &report.report,
        &report.receipts,
        key.public(),
        &Policy::default(),
        NOW,
    )
    .unwrap()
    .into_iter()
    .map(|o| o.text)
    .collect()
}

fn benches(c: &mut Criterion) {
    let key = SigningKey::from_seed(&[1; 32]);
    let policy = Policy::default();
    let mut round = 0u64;
    let mut group = c.benchmark_group(format!("witness-page-{PAGE}"));
    group.bench_function(BenchmarkId::from_parameter("report_page"), |b| {
        b.iter_batched(
            || {
                round += 1;
                page(&key, round)
            },
            |texts| {
                for t in &texts {
                    verify_witness(t, key.public(), &policy, NOW).unwrap();
                }
            },
            BatchSize::SmallInput,
        )
    });
    group.bench_function(BenchmarkId::from_parameter("floor"), |b| {
        b.iter_batched(
            || {
                round += 1;
                let texts = page(&key, round);
                let parts: Vec<(u64, Vec<merkle::Hash>, String)> = texts
                    .iter()
                    .map(|t| {
                        let p: Vec<&str> = t.split('~').collect();
                        let path = if p[2].is_empty() {
                            Vec::new()
                        } else {
                            p[2].split('.')
                                .map(|h| base64url::decode(h).unwrap().try_into().unwrap())
                                .collect()
                        };
                        (p[1].parse().unwrap(), path, p[3].to_owned())
                    })
                    .collect();
                let report = texts[0].split('~').next().unwrap().to_owned();
                (report, parts)
            },
            |(report, parts)| {
                let (input, sig) = report.rsplit_once('.').unwrap();
                let sig: [u8; 64] = base64url::decode(sig).unwrap().try_into().unwrap();
                key.public().verify_strict(input.as_bytes(), &sig).unwrap();
                let leaves: Vec<_> = parts
                    .iter()
                    .map(|(_, _, p)| merkle::leaf_hash(p.as_bytes()))
                    .collect();
                let root = merkle::root(&leaves);
                for ((index, path, payload), leaf) in parts.iter().zip(&leaves) {
                    assert!(merkle::included(leaf, *index, PAGE as u64, path, &root));
                    let json = base64url::decode(payload).unwrap();
                    let _: WitnessClaims = serde_json::from_slice(&json).unwrap();
                }
            },
            BatchSize::SmallInput,
        )
    });
    group.bench_function(BenchmarkId::from_parameter("signed_page"), |b| {
        b.iter_batched(
            || {
                round += 1;
                (0..PAGE)
                    .map(|n| receipt(n, round).sign(&key))
                    .collect::<Vec<_>>()
            },
            |texts| {
                for t in &texts {
                    verify_witness(t, key.public(), &policy, NOW).unwrap();
                }
            },
            BatchSize::SmallInput,
        )
    });
    group.finish();
}

criterion_group! {
    name = witness;
    config = Criterion::default().sample_size(30).warm_up_time(Duration::from_millis(500)).measurement_time(Duration::from_secs(3));
    targets = benches
}
criterion_main!(witness);
