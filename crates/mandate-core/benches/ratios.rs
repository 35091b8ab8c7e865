//! Paired ratios for the verification benchmarks.
//!
//!     cargo bench -p mandate-core --bench ratios
//!
//! Criterion measures each variant on its own, minutes apart, so a ratio of
//! two of its figures carries the machine's drift. This harness interleaves
//! the variants: each round runs a block of every variant back to back, and
//! the reported ratio is the median over rounds of the per-round ratio, with
//! its interquartile range. The variants are those of `verify.rs`.

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::print_stdout)]

mod common;

use std::time::Instant;

use common::{Bench, DEPTHS, Variant};

const ROUNDS: usize = 120;
const BLOCK: usize = 12;

fn time_block(bench: &Bench, run: Variant) -> f64 {
    // Fresh proofs for `warm_call_real`, made before the clock starts.
    bench.top_up(BLOCK);
    let start = Instant::now();
    for _ in 0..BLOCK {
        run(bench);
    }
    start.elapsed().as_secs_f64() * 1e6 / BLOCK as f64
}

fn quartiles(mut v: Vec<f64>) -> (f64, f64, f64) {
    v.sort_by(f64::total_cmp);
    let q = |p: f64| v[((v.len() - 1) as f64 * p).round() as usize];
    (q(0.25), q(0.5), q(0.75))
}

/// Microseconds per call of `f`, the median of 31 runs of `n` calls.
fn per_call(n: usize, mut f: impl FnMut()) -> f64 {
    let mut runs: Vec<f64> = (0..31)
        .map(|_| {
            let start = Instant::now();
            for _ in 0..n {
                f();
            }
            start.elapsed().as_secs_f64() * 1e6 / n as f64
        })
        .collect();
    runs.sort_by(f64::total_cmp);
    runs[15]
}

/// Where the cold path's time goes, per grant of the depth-4 chain.
fn components() {
    use std::hint::black_box;
    let bench = Bench::new(4);
    let token = bench.f.chain[1].clone();
    let key = bench.f.key_bytes[1];
    let (input, sig) = &bench.f.signed[1];
    let rows: [(&str, f64); 6] = [
        (
            "token id (SHA-256 of the compact form)",
            per_call(2000, || {
                black_box(mandate_core::TokenId::of(black_box(&token)));
            }),
        ),
        (
            "parse: header, base64, claims",
            per_call(2000, || {
                black_box(
                    mandate_core::token::peek::<mandate_core::token::GrantClaims>(black_box(
                        &token,
                    ))
                    .unwrap(),
                );
            }),
        ),
        (
            "PublicKey::decompress (decompress, checks, thumbprint)",
            per_call(2000, || {
                black_box(mandate_core::PublicKey::decompress(black_box(&key)).unwrap());
            }),
        ),
        (
            "  of which ed25519-dalek VerifyingKey::from_bytes",
            per_call(2000, || {
                black_box(ed25519_dalek::VerifyingKey::from_bytes(black_box(&key)).unwrap());
            }),
        ),
        (
            "PublicKey::from_bytes of a key seen lately (the recent keys)",
            per_call(2000, || {
                black_box(mandate_core::PublicKey::from_bytes(black_box(&key)).unwrap());
            }),
        ),
        (
            "verify_strict",
            per_call(500, || {
                let vk = ed25519_dalek::VerifyingKey::from_bytes(&key).unwrap();
                vk.verify_strict(black_box(input), &ed25519_dalek::Signature::from_bytes(sig))
                    .unwrap();
            }) - per_call(2000, || {
                black_box(ed25519_dalek::VerifyingKey::from_bytes(black_box(&key)).unwrap());
            }),
        ),
    ];
    println!(
        "\nPer grant of the depth-4 chain ({} bytes), median µs:\n",
        token.len()
    );
    println!("| step | µs |");
    println!("|---|---:|");
    for (name, us) in rows {
        println!("| {name} | {us:.2} |");
    }
}

fn main() {
    // `cargo bench` passes --bench; `cargo test --benches` passes nothing and
    // expects a quick exit.
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    // Each cost against both floors: ed25519-dalek's `verify_strict`, and
    // Mandate's own strict check, which reaches the same verdict for less.
    let pairs: [(&str, Variant, Variant); 8] = [
        (
            "cold chain / floor (chain)",
            Bench::cold_chain,
            Bench::floor_chain,
        ),
        (
            "cold chain / Mandate's floor (chain)",
            Bench::cold_chain,
            Bench::floor_chain_mandate,
        ),
        (
            "biscuit / floor (chain)",
            Bench::biscuit,
            Bench::floor_chain,
        ),
        (
            "cold call / floor (call)",
            Bench::cold_call,
            Bench::floor_call,
        ),
        (
            "cold call / Mandate's floor (call)",
            Bench::cold_call,
            Bench::floor_call_mandate,
        ),
        (
            "warm call / one verify_strict",
            Bench::warm_call,
            Bench::one_verify_strict,
        ),
        (
            "warm call, real cache / one verify_strict",
            Bench::warm_call_real,
            Bench::one_verify_strict,
        ),
        (
            "warm call, real cache / one Mandate check",
            Bench::warm_call_real,
            Bench::one_mandate_strict,
        ),
    ];
    println!(
        "Median per-round ratio [interquartile range], {ROUNDS} rounds of {BLOCK} iterations, variants interleaved.\n"
    );
    println!("| depth | {} |", pairs.map(|p| p.0).join(" | "));
    println!("|---:|{}", "---:|".repeat(pairs.len()));
    for depth in DEPTHS {
        let bench = Bench::new(depth);
        let mut ratios = vec![Vec::with_capacity(ROUNDS); pairs.len()];
        for _ in 0..ROUNDS {
            for (i, (_, a, b)) in pairs.iter().enumerate() {
                let (ta, tb) = (time_block(&bench, *a), time_block(&bench, *b));
                ratios[i].push(ta / tb);
            }
        }
        let cells: Vec<String> = ratios
            .into_iter()
            .map(|r| {
                let (lo, mid, hi) = quartiles(r);
                format!("{mid:.3} [{lo:.3}-{hi:.3}]")
            })
            .collect();
        println!("| {depth} | {} |", cells.join(" | "));
    }
    components();
}
