//! Chain verification against its floor and against biscuit-auth.
//!
//!     cargo bench -p mandate-core --bench verify
//!
//! A chain of depth d carries d grant signatures under d keys (the user's
//! and d - 1 agents'); a call adds one proof-of-possession signature under
//! the leaf agent's key. Every group measures, on the same bytes:
//! - `floor_chain`: d key decompressions and d `verify_strict` calls;
//! - `cold_chain`: a chain never seen before: its d keys decompressed from
//!   their bytes, then the chain verified (attenuation and a lookup in
//!   10,000 revoked ids included) and one call's scope checked;
//! - `biscuit`: biscuit-auth with an authority block and d - 1 attenuation
//!   blocks carrying the equivalent checks (actions, location prefix,
//!   expiry): parse and signatures, revocation lookup, then authorize;
//! - `floor_call`: d + 1 key decompressions and d + 1 `verify_strict` calls;
//! - `cold_call`: `cold_chain` plus the leaf key and the proof of possession;
//! - `warm_call`: the same chain presented again with a proof, through a
//!   `Verifier` whose cache holds the links; all time, revocation, linkage
//!   and scope checks still run;
//! - `warm_call_real`: `warm_call` with a fresh proof each time, spent in
//!   the real replay cache on a synthetic clock (10 calls a second, so the
//!   chain's partition holds about 1,200 live proofs and expiry runs);
//! - `one_verify_strict`: the warm path's floor;
//! - `floor_chain_mandate`, `floor_call_mandate`, `one_mandate_strict`: the
//!   same floors with Mandate's own key parsing and strict check, which
//!   reaches `verify_strict`'s verdict for less work.

#![allow(clippy::expect_used, clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::{Bench, DEPTHS, Variant};
use criterion::{BatchSize, BenchmarkId, Criterion, criterion_group, criterion_main};

fn benches(c: &mut Criterion) {
    for depth in DEPTHS {
        let bench = Bench::new(depth);
        let mut group = c.benchmark_group(format!("depth-{depth}"));
        let variants: [(&str, Variant); 10] = [
            ("floor_chain", Bench::floor_chain),
            ("floor_chain_mandate", Bench::floor_chain_mandate),
            ("cold_chain", Bench::cold_chain),
            ("biscuit", Bench::biscuit),
            ("floor_call", Bench::floor_call),
            ("floor_call_mandate", Bench::floor_call_mandate),
            ("cold_call", Bench::cold_call),
            ("warm_call", Bench::warm_call),
            ("one_verify_strict", Bench::one_verify_strict),
            ("one_mandate_strict", Bench::one_mandate_strict),
        ];
        for (name, run) in variants {
            group.bench_function(BenchmarkId::from_parameter(name), |b| {
                b.iter(|| run(&bench))
            });
        }
        // A fresh proof per call, made outside the timed code.
        group.bench_function(BenchmarkId::from_parameter("warm_call_real"), |b| {
            b.iter_batched(
                || bench.mint_pop(),
                |pop| bench.warm_call_real_with(&pop),
                BatchSize::SmallInput,
            )
        });
        group.finish();
    }
}

criterion_group! {
    name = verify;
    config = Criterion::default().sample_size(30).warm_up_time(Duration::from_millis(500)).measurement_time(Duration::from_secs(2));
    targets = benches
}
criterion_main!(verify);
