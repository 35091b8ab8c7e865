//! The fixture shared by the verification benchmarks: chains of each depth,
//! their keys and proofs, a biscuit of the same depth, and one function per
//! measured variant, so that every harness measures exactly the same work.

#![allow(dead_code)]

use std::cell::{Cell, RefCell};
use std::collections::{HashSet, VecDeque};
use std::hint::black_box;
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use biscuit_auth::builder::{Algorithm, BlockBuilder, fact, string};
use biscuit_auth::builder_ext::BuilderExt as _;
use biscuit_auth::{AuthorizerBuilder, Biscuit, KeyPair};
use ed25519_dalek::{Signature, VerifyingKey};
use mandate_core::scope::AuthorizationDetail;
use mandate_core::token::{Actor, Confirmation, GrantClaims, PopClaims};
use mandate_core::{
    BindingSet, Call, Claims as _, Context, Error, HttpCall, KeySet, MemoryReplayCache, Policy,
    PublicKey, ReplayCache, SigningKey, TokenId, UnixTime, Verifier, base64url,
};

pub const DEPTHS: [usize; 4] = [1, 2, 4, 8];
pub const HTU: &str = "https://files.example/v1/reports/2026/q3.pdf";

pub fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("after 1970")
        .as_secs() as i64
}

pub struct Fixture {
    pub chain: Vec<String>,
    pub key_bytes: Vec<[u8; 32]>,
    pub leaf: SigningKey,
    pub bindings: BindingSet,
    pub revoked: HashSet<TokenId>,
    /// (signing input, signature) of every grant.
    pub signed: Vec<(Vec<u8>, [u8; 64])>,
}

/// Each hop narrows: fewer actions, a deeper location, a smaller budget.
fn scope(hop: usize) -> Vec<AuthorizationDetail> {
    let actions: &[&str] = if hop == 0 {
        &["read", "write", "list"]
    } else {
        &["read", "list"]
    };
    let loc = if hop < 2 {
        "https://files.example/v1/reports/".to_string()
    } else {
        "https://files.example/v1/reports/2026/".to_string()
    };
    let mut po = AuthorizationDetail::new(
        "purchase_order",
        ["create"],
        ["https://erp.example/vendors/"],
    )
    .unwrap();
    po.limits.max_calls = Some(100 - hop as u64);
    vec![
        AuthorizationDetail::new("files", actions.iter().copied(), [loc]).unwrap(),
        po,
    ]
}

pub fn fixture(depth: usize) -> Fixture {
    let user = SigningKey::from_seed(&[200; 32]);
    let agents: Vec<SigningKey> = (0..depth)
        .map(|i| SigningKey::from_seed(&[i as u8 + 1; 32]))
        .collect();
    let sub: mandate_core::Principal = "https://idp.example#alice".to_string().try_into().unwrap();
    let t = now();
    let mut chain: Vec<String> = Vec::new();
    for (i, grantee) in agents.iter().enumerate() {
        let claims = GrantClaims {
            sub: sub.clone(),
            act: Actor {
                sub: grantee.public().agent_id(),
            },
            cnf: Confirmation {
                jkt: grantee.thumbprint(),
            },
            authorization_details: scope(i),
            purpose: "Prepare the Q3 report and order the hardware it calls for".into(),
            intent: (i == 0).then(|| "Get the Q3 report ready for Friday".into()),
            iat: t - 10,
            nbf: t - 10,
            exp: t + 86_400 - i as i64,
            jti: format!("bench-{depth}-{i}").try_into().unwrap(),
            max_depth: (depth - i) as u8,
            prf: chain.last().map(|p| TokenId::of(p)),
            req: (i == 0).then(|| TokenId::of("request")),
        };
        let signer = if i == 0 { &user } else { &agents[i - 1] };
        chain.push(claims.sign(signer));
    }
    let mut bindings = BindingSet::new();
    bindings.insert(sub, user.thumbprint()).unwrap();
    let revoked = (0..10_000u32)
        .map(|n| TokenId::of(&n.to_string()))
        .collect();
    let key_bytes = std::iter::once(&user)
        .chain(agents.iter())
        .map(|k| *k.public().as_bytes())
        .collect();
    let signed = chain
        .iter()
        .map(|t| {
            let cut = t.rfind('.').unwrap();
            let sig: [u8; 64] = base64url::decode(&t[cut + 1..])
                .unwrap()
                .try_into()
                .unwrap();
            (t.as_bytes()[..cut].to_vec(), sig)
        })
        .collect();
    let leaf = SigningKey::from_seed(&agents[depth - 1].to_seed());
    Fixture {
        chain,
        key_bytes,
        leaf,
        bindings,
        revoked,
        signed,
    }
}

pub fn pop(f: &Fixture, jti: u64) -> String {
    pop_at(f, jti, now())
}

pub fn pop_at(f: &Fixture, jti: u64, iat: UnixTime) -> String {
    PopClaims {
        htm: "GET".into(),
        htu: HTU.into(),
        iat,
        jti: format!("pop-{jti}").try_into().unwrap(),
        ath: mandate_core::token::chain_hash(&f.chain),
    }
    .sign(&f.leaf)
}

/// A replay cache that does the work of a real one (hash and insert) but
/// forgets at once, so that one proof can be measured many times. The
/// `warm_call_real` variant measures the real cache instead.
pub struct Forgetful(Mutex<HashSet<[u8; 32]>>);

impl ReplayCache for Forgetful {
    fn first_use(&self, proof: &mandate_core::SpentProof, _now: i64) -> Result<(), Error> {
        let mut seen = self.0.lock().unwrap();
        seen.insert(proof.id);
        seen.remove(&proof.id);
        Ok(())
    }
}

pub const CALL: Call<'static> = Call {
    kind: "files",
    action: "read",
    location: HTU,
    identifier: None,
    amount: None,
};

pub fn biscuit_token(depth: usize, root: &KeyPair) -> Vec<u8> {
    let expiry = SystemTime::now() + Duration::from_secs(86_400);
    let mut token = Biscuit::builder()
        .fact(fact(
            "right",
            &[string("https://files.example/v1/reports/"), string("read")],
        ))
        .unwrap()
        .fact(fact(
            "right",
            &[string("https://files.example/v1/reports/"), string("write")],
        ))
        .unwrap()
        .fact(fact(
            "right",
            &[string("https://files.example/v1/reports/"), string("list")],
        ))
        .unwrap()
        .check_expiration_date(expiry)
        .build(root)
        .unwrap();
    for hop in 1..depth {
        let block = BlockBuilder::new()
            .code(r#"check if operation($op), ["read", "list"].contains($op)"#)
            .unwrap()
            .check_resource_prefix(if hop < 2 {
                "https://files.example/v1/reports/"
            } else {
                "https://files.example/v1/reports/2026/"
            })
            .check_expiration_date(expiry - Duration::from_secs(hop as u64));
        token = token.append(block).unwrap();
    }
    token.to_vec().unwrap()
}

/// One measured variant.
pub type Variant = fn(&Bench);

/// Calls a second of the synthetic clock that `warm_call_real` runs on:
/// proofs are kept for `pop_max_age` plus the skew (120 s by default), so
/// after two minutes of it the chain's partition holds about 1,200 live
/// proofs, and every call sweeps the ones that just went stale.
pub const CALLS_PER_SECOND: u64 = 10;

/// Fresh proofs of possession, and the real replay cache they are spent in.
struct RealCache {
    cache: MemoryReplayCache,
    /// The synthetic clock's start.
    clock0: UnixTime,
    /// Proofs made so far.
    minted: Cell<u64>,
    /// Proofs made ahead of the timed code, each with its instant.
    ready: RefCell<VecDeque<(UnixTime, String)>>,
}

/// Everything one depth's variants need, prepared outside the timed code.
pub struct Bench {
    pub depth: usize,
    pub f: Fixture,
    pub pop: String,
    pop_input: Vec<u8>,
    pop_sig: [u8; 64],
    pub keys: KeySet,
    pub verifier: Verifier,
    leaf_vk: VerifyingKey,
    leaf_pk: PublicKey,
    replay: Forgetful,
    real: RealCache,
    biscuit_root: KeyPair,
    biscuit: Vec<u8>,
    biscuit_revoked: HashSet<Vec<u8>>,
    allow: biscuit_auth::builder::Policy,
}

impl Bench {
    pub fn new(depth: usize) -> Bench {
        let f = fixture(depth);
        let pop = pop(&f, 0);
        let cut = pop.rfind('.').unwrap();
        let pop_input = pop.as_bytes()[..cut].to_vec();
        let pop_sig = base64url::decode(&pop[cut + 1..])
            .unwrap()
            .try_into()
            .unwrap();
        let keys: KeySet = f
            .key_bytes
            .iter()
            .map(|k| PublicKey::from_bytes(k).unwrap())
            .collect();
        let verifier = Verifier::new(4096);
        let policy = Policy::default();
        let cx = Context {
            now: now(),
            policy,
            keys: &keys,
            bindings: &f.bindings,
            revoked: &f.revoked,
        };
        verifier.verify_chain(&f.chain, &cx).unwrap();
        let leaf_vk = VerifyingKey::from_bytes(&f.key_bytes[depth]).unwrap();
        let leaf_pk = PublicKey::from_bytes(&f.key_bytes[depth]).unwrap();
        let biscuit_root = KeyPair::new_with_algorithm(Algorithm::Ed25519);
        let biscuit = biscuit_token(depth, &biscuit_root);
        let biscuit_revoked = (0..10_000u32).map(|n| n.to_be_bytes().repeat(16)).collect();
        // The scope check, compiled once as a resource server would.
        let allow = "allow if resource($r), operation($op), right($p, $op), $r.starts_with($p)"
            .try_into()
            .unwrap();
        Bench {
            depth,
            f,
            pop,
            pop_input,
            pop_sig,
            keys,
            verifier,
            leaf_vk,
            leaf_pk,
            replay: Forgetful(Mutex::new(HashSet::new())),
            // A resource server's cache: room for 100,000 proofs, 12,500
            // in any one partition.
            real: RealCache {
                cache: MemoryReplayCache::new(100_000),
                clock0: now(),
                minted: Cell::new(0),
                ready: RefCell::new(VecDeque::new()),
            },
            biscuit_root,
            biscuit,
            biscuit_revoked,
            allow,
        }
    }

    /// d key decompressions and d strict verifications.
    pub fn floor_chain(&self) {
        for ((input, sig), key) in self.f.signed.iter().zip(&self.f.key_bytes) {
            let vk = VerifyingKey::from_bytes(black_box(key)).unwrap();
            vk.verify_strict(input, &Signature::from_bytes(sig))
                .unwrap();
        }
    }

    /// The chain's floor plus the proof's key and signature.
    pub fn floor_call(&self) {
        self.floor_chain();
        let leaf = VerifyingKey::from_bytes(black_box(&self.f.key_bytes[self.depth])).unwrap();
        leaf.verify_strict(&self.pop_input, &Signature::from_bytes(&self.pop_sig))
            .unwrap();
    }

    /// The chain's floor with Mandate's own primitives: d keys parsed by
    /// `PublicKey::decompress` (decompression, the checks, a thumbprint;
    /// what `from_bytes` does for a key it has not seen lately)
    /// and d of its strict checks (the same verdict as `verify_strict`, for
    /// less work; docs/protocol.md 2.7).
    pub fn floor_chain_mandate(&self) {
        for ((input, sig), key) in self.f.signed.iter().zip(&self.f.key_bytes) {
            let pk = PublicKey::decompress(black_box(key)).unwrap();
            pk.verify_strict(input, sig).unwrap();
        }
    }

    /// `floor_chain_mandate` plus the proof's key and signature.
    pub fn floor_call_mandate(&self) {
        self.floor_chain_mandate();
        let leaf = PublicKey::decompress(black_box(&self.f.key_bytes[self.depth])).unwrap();
        leaf.verify_strict(&self.pop_input, &self.pop_sig).unwrap();
    }

    fn cold(&self, with_pop: bool) {
        let n = if with_pop { self.depth + 1 } else { self.depth };
        let keys: KeySet = self.f.key_bytes[..n]
            .iter()
            .map(|k| PublicKey::decompress(black_box(k)).unwrap())
            .collect();
        let cx = Context {
            now: now(),
            policy: Policy::default(),
            keys: &keys,
            bindings: &self.f.bindings,
            revoked: &self.f.revoked,
        };
        let verified = mandate_core::verify_chain(black_box(&self.f.chain), &cx).unwrap();
        if with_pop {
            let http = HttpCall {
                method: "GET",
                uri: HTU,
            };
            mandate_core::verify_pop(&verified, &self.pop, &http, &cx, &self.replay).unwrap();
        }
        assert!(mandate_core::scope::permits(verified.scopes(), &CALL));
    }

    /// A chain never seen before, and one call's scope.
    pub fn cold_chain(&self) {
        self.cold(false)
    }

    /// A chain never seen before, its proof of possession, and the call's scope.
    pub fn cold_call(&self) {
        self.cold(true)
    }

    /// The same chain again with a proof, through the link cache.
    pub fn warm_call(&self) {
        self.warm(now(), &self.pop, &self.replay);
    }

    /// The chain through the link cache, with proof `pop` at `now`, spent
    /// in `replay`: the work of both warm variants.
    fn warm(&self, now: UnixTime, pop: &str, replay: &dyn ReplayCache) {
        let cx = Context {
            now,
            policy: Policy::default(),
            keys: &self.keys,
            bindings: &self.f.bindings,
            revoked: &self.f.revoked,
        };
        let http = HttpCall {
            method: "GET",
            uri: HTU,
        };
        self.verifier
            .verify_call(
                black_box(&self.f.chain),
                Some(pop),
                &http,
                Some(&CALL),
                &cx,
                replay,
            )
            .unwrap();
    }

    /// A fresh proof for `warm_call_real_with`, `CALLS_PER_SECOND` to a
    /// second of the synthetic clock, with its instant.
    pub fn mint_pop(&self) -> (UnixTime, String) {
        let n = self.real.minted.get();
        self.real.minted.set(n + 1);
        let at = self.real.clock0 + (n / CALLS_PER_SECOND) as UnixTime;
        (at, pop_at(&self.f, n, at))
    }

    /// Makes proofs ahead, outside the timed code, so that at least `n`
    /// are ready for `warm_call_real`.
    pub fn top_up(&self, n: usize) {
        while self.real.ready.borrow().len() < n {
            let pop = self.mint_pop();
            self.real.ready.borrow_mut().push_back(pop);
        }
    }

    /// `warm_call` with a fresh proof each time, spent in the real replay
    /// cache (`MemoryReplayCache`) at the proof's instant of the synthetic
    /// clock; takes the next proof `top_up` made.
    pub fn warm_call_real(&self) {
        let pop = self
            .real
            .ready
            .borrow_mut()
            .pop_front()
            .expect("top_up before warm_call_real");
        self.warm_call_real_with(&pop);
    }

    /// `warm_call_real` with the proof given.
    pub fn warm_call_real_with(&self, (at, pop): &(UnixTime, String)) {
        self.warm(*at, pop, &self.real.cache);
    }

    /// Mandate's strict check of one signature, with a parsed key.
    pub fn one_mandate_strict(&self) {
        self.leaf_pk
            .verify_strict(black_box(&self.pop_input), &self.pop_sig)
            .unwrap();
    }

    /// One strict verification with a decompressed key.
    pub fn one_verify_strict(&self) {
        self.leaf_vk
            .verify_strict(
                black_box(&self.pop_input),
                &Signature::from_bytes(&self.pop_sig),
            )
            .unwrap();
    }

    /// biscuit-auth: parse and verify, revocation lookup, authorize.
    pub fn biscuit(&self) {
        let token = Biscuit::from(black_box(&self.biscuit), self.biscuit_root.public()).unwrap();
        assert!(
            !token
                .revocation_identifiers()
                .iter()
                .any(|id| self.biscuit_revoked.contains(id))
        );
        let mut authorizer = AuthorizerBuilder::new()
            .time()
            .operation("read")
            .resource(HTU)
            .policy(self.allow.clone())
            .unwrap()
            // The default 1 ms budget trips on this shared machine's pauses;
            // a generous one measures biscuit's work, not its timeout.
            .set_limits(biscuit_auth::AuthorizerLimits {
                max_time: Duration::from_secs(1),
                ..Default::default()
            })
            .build(&token)
            .unwrap();
        authorizer.authorize().unwrap();
    }
}
