//! Runs every file in tests/vectors through the verifier, cold and warm,
//! and checks that the committed files are what the generator writes.

use std::collections::{BTreeMap, HashSet};
use std::path::PathBuf;

use mandate_core::scope::{self, Call, Money, permits};
use mandate_core::token::{ConfirmationClaims, PolicyClaims, RequestClaims};
use mandate_core::{
    BindingSet, Context, Error, HttpCall, Jwk, KeySet, MemoryReplayCache, Policy, Receipt, Revoked,
    VerifiedChain, Verifier, verify_chain, verify_pop,
};
use serde::Deserialize;
use serde_json::Value;

use crate::gen_vectors::{fixture, invalid, tiers, valid, witness};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VectorFile {
    pub description: String,
    pub now: i64,
    pub keys: BTreeMap<String, Jwk>,
    pub user_bindings: Vec<BindingIn>,
    pub chain: Vec<String>,
    pub revoked: Vec<String>,
    #[serde(default)]
    pub revoked_keys: Vec<String>,
    #[serde(default)]
    pub pop: Option<PopIn>,
    #[serde(default)]
    pub call: Option<CallIn>,
    #[serde(default)]
    pub confirmation: Option<ConfirmationIn>,
    #[serde(default)]
    pub policy: Option<PolicyIn>,
    #[serde(default)]
    pub witness: Option<WitnessIn>,
    pub expect: String,
    #[serde(default)]
    pub verified: Option<Value>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BindingIn {
    sub: String,
    jkt: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PopIn {
    pub token: String,
    pub htm: String,
    pub htu: String,
    #[serde(default)]
    pub seen_before: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfirmationIn {
    pub token: String,
    pub htm: String,
    pub htu: String,
    pub body: String,
    #[serde(default)]
    pub seen_before: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyIn {
    pub token: String,
    pub request: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WitnessIn {
    pub token: String,
    pub key: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CallIn {
    #[serde(rename = "type")]
    kind: String,
    action: String,
    location: String,
    #[serde(default)]
    identifier: Option<String>,
    #[serde(default)]
    amount: Option<Money>,
}

pub fn vector_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/vectors")
}

pub fn load_all() -> Vec<(String, VectorFile)> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(vector_dir()).expect("tests/vectors exists") {
        let path = entry.expect("dir entry").path();
        if path.extension().is_some_and(|e| e == "json") {
            let text = std::fs::read_to_string(&path).expect("readable vector");
            let name = path
                .file_stem()
                .expect("file name")
                .to_string_lossy()
                .into_owned();
            let v: VectorFile =
                serde_json::from_str(&text).unwrap_or_else(|e| panic!("{name}: {e}"));
            out.push((name, v));
        }
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

/// The inputs of a vector, parsed. Keys are indexed by the thumbprint the
/// verifier computes, never by the file's map keys.
pub struct Inputs {
    pub keys: KeySet,
    pub bindings: BindingSet,
    pub revoked: Revoked,
}

impl Inputs {
    pub fn of(v: &VectorFile) -> Inputs {
        let mut keys = KeySet::new();
        for jwk in v.keys.values() {
            keys.insert_jwk(jwk).expect("vector keys are valid JWKs");
        }
        let mut bindings = BindingSet::new();
        for b in &v.user_bindings {
            bindings
                .insert(
                    b.sub.clone().try_into().expect("principal"),
                    b.jkt.parse().expect("jkt"),
                )
                .expect("consistent bindings");
        }
        let revoked = Revoked {
            grants: v
                .revoked
                .iter()
                .map(|id| id.parse().expect("grant id"))
                .collect(),
            keys: v
                .revoked_keys
                .iter()
                .map(|jkt| jkt.parse().expect("key thumbprint"))
                .collect(),
        };
        Inputs {
            keys,
            bindings,
            revoked,
        }
    }

    pub fn context(&self, now: i64) -> Context<'_> {
        Context {
            now,
            policy: Policy::default(),
            keys: &self.keys,
            bindings: &self.bindings,
            revoked: &self.revoked,
        }
    }
}

/// Verifies a vector: the chain (through `verifier` when given), the
/// proof, the call and its confirmation; or, for a policy case, the rule
/// and the request (10.2).
pub fn run(
    v: &VectorFile,
    inputs: &Inputs,
    verifier: Option<&Verifier>,
) -> Result<Option<VerifiedChain>, Error> {
    let cx = inputs.context(v.now);
    if let Some(p) = &v.policy {
        let rule = PolicyClaims::verify(&p.token, &cx)?;
        let request = RequestClaims::verify(&p.request, &cx.policy, cx.now)?;
        rule.claims()
            .admits(request.claims(), &request.signer().thumbprint())?;
        return Ok(None);
    }
    let chain = match verifier {
        Some(verifier) => verifier.verify_chain(&v.chain, &cx)?,
        None => verify_chain(&v.chain, &cx)?,
    };
    if let Some(w) = &v.witness {
        assert!(
            v.pop.is_none() && v.call.is_none() && v.confirmation.is_none(),
            "a witness case has a chain and nothing else to check (10.1)"
        );
        let key = inputs
            .keys
            .get(&w.key.parse().expect("a thumbprint"))
            .expect("the witness key is in keys");
        Receipt::witnessed(&w.token, chain.leaf(), key, &cx.policy, cx.now)?;
        return Ok(Some(chain));
    }
    if let Some(pop) = &v.pop {
        let replay = MemoryReplayCache::new(16);
        let http = HttpCall {
            method: &pop.htm,
            uri: &pop.htu,
        };
        if pop.seen_before {
            verify_pop(&chain, &pop.token, &http, &cx, &replay)
                .expect("the first presentation is accepted");
        }
        verify_pop(&chain, &pop.token, &http, &cx, &replay)?;
    }
    let mut needs_confirmation = false;
    if let Some(c) = &v.call {
        let call = Call {
            kind: &c.kind,
            action: &c.action,
            location: &c.location,
            identifier: c.identifier.as_deref(),
            amount: c.amount.as_ref(),
        };
        if !permits(chain.scopes(), &call) {
            return Err(Error::OutOfScope);
        }
        needs_confirmation = scope::needs_confirmation(chain.scopes(), &call);
    }
    assert!(
        v.confirmation.is_none() || needs_confirmation,
        "a vector with a confirmation has a call that needs one (10.2)"
    );
    match &v.confirmation {
        None if needs_confirmation => return Err(Error::ConfirmationRequired),
        None => {}
        Some(c) => {
            let replay = MemoryReplayCache::new(16);
            let body = mandate_core::base64url::decode(&c.body).expect("a base64url body");
            let http = HttpCall {
                method: &c.htm,
                uri: &c.htu,
            };
            let check = || ConfirmationClaims::verify(&c.token, &chain, &http, &body, &cx, &replay);
            if c.seen_before {
                check().expect("the first presentation is accepted");
            }
            check()?;
        }
    }
    Ok(Some(chain))
}

fn outcome(r: &Result<Option<VerifiedChain>, Error>) -> &'static str {
    match r {
        Ok(_) => "valid",
        Err(e) => e.code(),
    }
}

#[test]
fn every_vector_gives_its_expected_answer_cold_and_warm() {
    let vectors = load_all();
    let mut failures = Vec::new();
    let verifier = Verifier::new(1024);
    for (name, v) in &vectors {
        let inputs = Inputs::of(v);
        let cold = run(v, &inputs, None);
        let first = run(v, &inputs, Some(&verifier));
        let warm = run(v, &inputs, Some(&verifier));
        for (pass, r) in [("cold", &cold), ("first", &first), ("warm", &warm)] {
            if outcome(r) != v.expect {
                failures.push(format!(
                    "{name} ({pass}): expected {}, got {}",
                    v.expect,
                    outcome(r)
                ));
            }
        }
        if let (Ok(Some(chain)), Some(expected)) = (&cold, &v.verified) {
            let got = serde_json::json!({
                "principal": chain.principal(),
                "leaf_agent": chain.leaf_agent(),
                "expires_at": chain.expires_at(),
                "depth_left": chain.depth_left(),
                "scopes": chain.scopes(),
            });
            if &got != expected {
                failures.push(format!("{name}: verified {got} != {expected}"));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn the_table_covers_enough_cases_and_only_known_codes() {
    let vectors = load_all();
    let valid = vectors.iter().filter(|(_, v)| v.expect == "valid").count();
    let invalid = vectors.len() - valid;
    assert!(valid >= 15, "{valid} valid vectors");
    assert!(invalid >= 45, "{invalid} invalid vectors");
    for (name, v) in &vectors {
        assert_eq!(
            name.starts_with("valid-"),
            v.expect == "valid",
            "{name} is named after its outcome"
        );
        assert!(
            v.expect == "valid" || Error::CODES.contains(&v.expect.as_str()),
            "{name}: unknown code {}",
            v.expect
        );
        assert!(!v.description.is_empty(), "{name} has a description");
        if v.expect == "valid" {
            assert_eq!(
                v.verified.is_some(),
                v.policy.is_none(),
                "{name} states the verified result, unless it is a policy case"
            );
        }
        if v.policy.is_some() {
            assert!(v.chain.is_empty(), "{name}: a policy case has no chain");
        }
    }
    let depths: HashSet<usize> = vectors
        .iter()
        .filter(|(_, v)| v.expect == "valid" && v.policy.is_none())
        .map(|(_, v)| v.chain.len())
        .collect();
    for depth in 1..=8 {
        assert!(depths.contains(&depth), "a valid vector of depth {depth}");
    }
}

#[test]
fn vectors_are_stable() {
    let cast = fixture::Cast::new();
    let generated: BTreeMap<String, String> = valid::cases(&cast)
        .into_iter()
        .chain(invalid::cases(&cast))
        .chain(tiers::cases(&cast))
        .chain(witness::cases(&cast))
        .map(|(name, v)| {
            (
                name,
                serde_json::to_string_pretty(&v).expect("serializes") + "\n",
            )
        })
        .collect();
    let mut on_disk = BTreeMap::new();
    for entry in std::fs::read_dir(vector_dir()).expect("tests/vectors exists") {
        let path = entry.expect("entry").path();
        if path.extension().is_some_and(|e| e == "json") {
            let name = path
                .file_stem()
                .expect("stem")
                .to_string_lossy()
                .into_owned();
            on_disk.insert(name, std::fs::read_to_string(&path).expect("readable"));
        }
    }
    let stale: Vec<_> = generated
        .iter()
        .filter(|(k, v)| on_disk.get(*k) != Some(v))
        .map(|(k, _)| k)
        .collect();
    let extra: Vec<_> = on_disk
        .keys()
        .filter(|k| !generated.contains_key(*k))
        .collect();
    assert!(
        stale.is_empty() && extra.is_empty(),
        "tests/vectors differs from the generator (stale {stale:?}, extra {extra:?}); run \
         `cargo run -p mandate-core --example gen_vectors -- tests/vectors`"
    );
}
