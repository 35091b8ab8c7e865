//! Chains built from fuzzed tokens, one per line, verified against the keys
//! and bindings of the test vectors. Nothing may panic, and the link cache
//! must never change an outcome: cold and warm verification agree.

#![no_main]

use std::collections::HashSet;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use mandate_core::{BindingSet, Context, HttpCall, KeySet, MemoryReplayCache, Policy, SigningKey, Verifier};

/// 2026-01-01T00:00:00Z, the vectors' `now`.
const NOW: i64 = 1_767_225_600;

struct World {
    keys: KeySet,
    bindings: BindingSet,
    verifier: Verifier,
}

/// The parties of `examples/gen_vectors/fixture.rs`: the same seeds.
fn world() -> &'static World {
    static WORLD: OnceLock<World> = OnceLock::new();
    WORLD.get_or_init(|| {
        let party = |n: u8| {
            let mut seed = [0u8; 32];
            seed[0] = n;
            seed[31] = 0x4d;
            SigningKey::from_seed(&seed)
        };
        let mut keys = KeySet::new();
        for n in [1, 2, 3, 4].into_iter().chain(10..27) {
            keys.insert(*party(n).public());
        }
        let mut bindings = BindingSet::new();
        let alice = "https://idp.example#alice".to_string().try_into().expect("principal");
        let bob = "https://idp.example#bob".to_string().try_into().expect("principal");
        bindings.insert(alice, party(1).thumbprint()).expect("binding");
        let alice = "https://idp.example#alice".to_string().try_into().expect("principal");
        bindings.insert(alice, party(2).thumbprint()).expect("binding");
        bindings.insert(bob, party(3).thumbprint()).expect("binding");
        World { keys, bindings, verifier: Verifier::new(64) }
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let mut lines: Vec<&str> = text.lines().collect();
    // A last line starting with "pop " is a proof for the chain above it.
    let pop = lines.last().and_then(|l| l.strip_prefix("pop ")).map(str::to_owned);
    if pop.is_some() {
        lines.pop();
    }
    let w = world();
    let revoked = HashSet::new();
    let cx = Context { now: NOW, policy: Policy::default(), keys: &w.keys, bindings: &w.bindings, revoked: &revoked };
    let cold = mandate_core::verify_chain(&lines, &cx);
    let warm = w.verifier.verify_chain(&lines, &cx);
    let again = w.verifier.verify_chain(&lines, &cx);
    let code = |r: &Result<mandate_core::VerifiedChain, mandate_core::Error>| r.as_ref().err().map(|e| e.code());
    assert_eq!(code(&cold), code(&warm), "the cache changed an outcome");
    assert_eq!(code(&warm), code(&again), "the cache changed an outcome");
    if let (Ok(chain), Some(pop)) = (cold, pop) {
        let replay = MemoryReplayCache::new(8);
        let http = HttpCall { method: "GET", uri: "https://files.example/v1/reports/q3" };
        let _ = mandate_core::verify_pop(&chain, &pop, &http, &cx, &replay);
    }
});
