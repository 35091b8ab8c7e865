//! Journeys through the public API: every token kind, bindings, revocation
//! authority, caches, attribution and error hygiene.

use std::collections::HashSet;

use mandate_core::scope::AuthorizationDetail;
use mandate_core::token::{
    self, Action, AgentInfo, BindingClaims, BindingCode, Confirmation, DenialClaims, Jti, Outcome,
    PopClaims, ReceiptClaims, RequestClaims, RevocationClaims,
};
use mandate_core::{
    BindingSet, Claims as _, Context, Error, KeySet, Ledger, MemoryReplayCache, Policy, Principal,
    Receipt, ReplayCache, SigningKey, Step, TokenId, Verifier, verify_chain,
};
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;

use crate::gen_vectors::fixture::{ALICE, Cast, Chain, NOW};
use crate::vectors::{Inputs, load_all, run};

const ISSUER: &str = "http://127.0.0.1:7700";

fn rng() -> ChaCha20Rng {
    ChaCha20Rng::seed_from_u64(7)
}

fn alice() -> Principal {
    ALICE.to_string().try_into().expect("principal")
}

fn jti(s: &str) -> Jti {
    s.to_string().try_into().expect("jti")
}

struct World {
    cast: Cast,
    keys: KeySet,
    bindings: BindingSet,
}

impl World {
    fn new() -> World {
        let cast = Cast::new();
        let keys = [&cast.alice, &cast.bob, &cast.mallory]
            .into_iter()
            .chain(cast.agents.iter())
            .map(|p| *p.key.public())
            .collect();
        let mut bindings = BindingSet::new();
        bindings.insert(alice(), cast.alice.jkt()).expect("binding");
        World {
            cast,
            keys,
            bindings,
        }
    }

    fn cx<'a>(&'a self, revoked: &'a HashSet<TokenId>, now: i64) -> Context<'a> {
        Context {
            now,
            policy: Policy::default(),
            keys: &self.keys,
            bindings: &self.bindings,
            revoked,
        }
    }
}

fn request() -> RequestClaims {
    RequestClaims {
        principal_hint: Some("alice@example.com".into()),
        agent: AgentInfo {
            name: "Report bot".into(),
            publisher: Some("Acme".into()),
            version: Some("1.2".into()),
        },
        authorization_details: vec![
            AuthorizationDetail::new("files", ["read"], ["https://f/r/"]).expect("detail"),
        ],
        purpose: "Read the reports".into(),
        intent: Some("Summarize Q3".into()),
        lifetime: 3600,
        max_depth: 1,
        parent_chain: vec![],
        binding_code: BindingCode::random(&mut rng()),
        jti: token::Jti::random(&mut rng()),
        iat: NOW,
        exp: NOW + 300,
        oauth_client: None,
    }
}

#[test]
fn a_request_verifies_under_the_key_it_carries() {
    let agent = SigningKey::generate(&mut rng());
    let claims = request();
    let compact = claims.sign(&agent);
    let verified = RequestClaims::verify(&compact, &Policy::default(), NOW).expect("valid request");
    assert_eq!(verified.signer(), agent.public());
    assert_eq!(verified.claims(), &claims);
    assert_eq!(verified.id(), TokenId::of(&compact));
    assert_eq!(verified.claims().binding_code.as_str().len(), 9);

    // The same request with the header key swapped for Mallory's fails.
    let mallory = SigningKey::from_seed(&[66; 32]);
    let forged = claims.sign(&mallory);
    let (h_forged, _) = forged.split_once('.').expect("compact");
    let (_, rest) = compact.split_once('.').expect("compact");
    let spliced = format!("{h_forged}.{rest}");
    assert_eq!(
        RequestClaims::verify(&spliced, &Policy::default(), NOW).err(),
        Some(Error::BadSignature)
    );
    assert_eq!(
        RequestClaims::verify(&compact, &Policy::default(), NOW + 301 + 60).err(),
        Some(Error::Expired)
    );
    // A request is not a grant, and a grant verifier will not take it.
    let as_grant =
        token::verify::<token::GrantClaims>(&compact, agent.public(), &Policy::default(), NOW);
    assert_eq!(as_grant.err().map(|e| e.code()), Some("header.wrong_typ"));
}

#[test]
fn requests_refuse_nonsense_lifetimes_and_depths() {
    let agent = SigningKey::generate(&mut rng());
    let mut claims = request();
    claims.lifetime = 0;
    assert!(RequestClaims::verify(&claims.sign(&agent), &Policy::default(), NOW).is_err());
    claims.lifetime = 3600;
    claims.max_depth = 16;
    assert_eq!(
        RequestClaims::verify(&claims.sign(&agent), &Policy::default(), NOW).err(),
        Some(Error::ChainTooLong)
    );
    claims.max_depth = 1;
    claims.authorization_details.clear();
    assert_eq!(
        RequestClaims::verify(&claims.sign(&agent), &Policy::default(), NOW)
            .err()
            .map(|e| e.code()),
        Some("scope.malformed")
    );
}

#[test]
fn denials_receipts_and_revocations_round_trip() {
    let user = SigningKey::from_seed(&[1; 32]);
    let p = Policy::default();
    let denial = DenialClaims {
        sub: alice(),
        req: TokenId::of("r"),
        reason: Some("not now".into()),
        iat: NOW,
        jti: jti("d"),
    };
    let v =
        token::verify::<DenialClaims>(&denial.sign(&user), user.public(), &p, NOW).expect("denial");
    assert_eq!(v.claims(), &denial);
    let revocation = RevocationClaims {
        sub: alice(),
        revokes: vec![TokenId::of("g")],
        reason: None,
        iat: NOW,
        jti: jti("r"),
    };
    let v = token::verify::<RevocationClaims>(&revocation.sign(&user), user.public(), &p, NOW)
        .expect("revocation");
    assert_eq!(v.claims(), &revocation);
    let empty = RevocationClaims {
        revokes: vec![],
        ..revocation
    };
    assert!(token::verify::<RevocationClaims>(&empty.sign(&user), user.public(), &p, NOW).is_err());
    let future = DenialClaims {
        iat: NOW + 3600,
        ..denial.clone()
    };
    assert_eq!(
        token::verify::<DenialClaims>(&future.sign(&user), user.public(), &p, NOW).err(),
        Some(Error::NotYetValid)
    );
    // A token verified under another key is refused before its signature is even tried.
    let other = SigningKey::from_seed(&[2; 32]);
    assert_eq!(
        token::verify::<DenialClaims>(&denial.sign(&user), other.public(), &p, NOW).err(),
        Some(Error::KidMismatch)
    );
}

#[test]
fn broker_bindings_admit_a_user_key() {
    let w = World::new();
    let broker = SigningKey::from_seed(&[90; 32]);
    let binding = BindingClaims {
        iss: "http://127.0.0.1:7700".into(),
        sub: alice(),
        cnf: Confirmation {
            jkt: w.cast.alice_laptop.jkt(),
        },
        iat: NOW - 10,
        exp: NOW + 1200,
        jti: jti("b1"),
    };
    let mut bindings = BindingSet::new();
    let p = Policy::default();
    assert_eq!(
        bindings
            .insert_token(
                &binding.sign(&w.cast.mallory.key),
                broker.public(),
                ISSUER,
                &p,
                NOW
            )
            .err(),
        Some(Error::KidMismatch)
    );
    bindings
        .insert_token(&binding.sign(&broker), broker.public(), ISSUER, &p, NOW)
        .expect("binding");
    let foreign = bindings.insert_token(
        &binding.sign(&broker),
        broker.public(),
        "http://127.0.0.1:9999",
        &p,
        NOW,
    );
    assert_eq!(foreign.err().map(|e| e.code()), Some("binding.rejected"));
    let expired = BindingClaims {
        exp: NOW - 3600,
        iat: NOW - 7200,
        ..binding.clone()
    };
    assert_eq!(
        bindings
            .insert_token(&expired.sign(&broker), broker.public(), ISSUER, &p, NOW)
            .err(),
        Some(Error::Expired)
    );
    // A key already bound to Alice cannot be rebound to Bob.
    let to_bob = BindingClaims {
        sub: "https://idp.example#bob".to_string().try_into().expect("p"),
        ..binding
    };
    assert!(
        bindings
            .insert_token(&to_bob.sign(&broker), broker.public(), ISSUER, &p, NOW)
            .is_err()
    );

    let mut chain = Chain::default();
    let claims = crate::gen_vectors::fixture::root_claims(ALICE, &w.cast.agents[0], "laptop");
    chain.push(claims.sign(&w.cast.alice_laptop.key), claims);
    let keys: KeySet = [*w.cast.alice_laptop.key.public()].into_iter().collect();
    let revoked = HashSet::new();
    let cx = Context {
        now: NOW,
        policy: p,
        keys: &keys,
        bindings: &bindings,
        revoked: &revoked,
    };
    let verified = verify_chain(&chain.tokens, &cx).expect("bound key");
    assert_eq!(verified.principal(), &alice());
    // Once the binding lapses, the same root no longer verifies.
    let later = Context {
        now: NOW + 1800,
        ..cx
    };
    assert_eq!(
        verify_chain(&chain.tokens, &later).err(),
        Some(Error::RootNotBound(0))
    );
}

#[test]
fn revocation_authority_is_the_user_and_issuers_above() {
    let w = World::new();
    let chain = Chain::straight(&w.cast, 3, "authority");
    let revoked = HashSet::new();
    let verified = verify_chain(&chain.tokens, &w.cx(&revoked, NOW)).expect("valid");
    let links: Vec<_> = verified.links().collect();
    let ids: Vec<TokenId> = links.iter().map(|l| l.id()).collect();
    let revocation = |id| RevocationClaims {
        sub: alice(),
        revokes: vec![id],
        reason: None,
        iat: NOW,
        jti: jti("x"),
    };
    let check = |signer: &SigningKey, at: usize| {
        let r = revocation(ids[at]);
        let path: Vec<&mandate_core::Link> = links[..=at].to_vec();
        r.authorized(&signer.thumbprint(), &ids[at], &path, &w.bindings, NOW)
    };
    let (user, a0, a1, a2) = (
        &w.cast.alice.key,
        &w.cast.agents[0].key,
        &w.cast.agents[1].key,
        &w.cast.agents[2].key,
    );
    for at in 0..3 {
        assert_eq!(check(user, at), Ok(()), "the user revokes link {at}");
    }
    assert_eq!(
        check(a0, 0),
        Err(Error::RevocationNotAuthorized),
        "agent 0 cannot revoke its own grant"
    );
    assert_eq!(check(a0, 1), Ok(()));
    assert_eq!(check(a0, 2), Ok(()));
    assert_eq!(check(a1, 1), Err(Error::RevocationNotAuthorized));
    assert_eq!(check(a1, 2), Ok(()));
    assert_eq!(
        check(a2, 2),
        Err(Error::RevocationNotAuthorized),
        "the leaf's grantee issued nothing"
    );
    assert_eq!(
        check(&w.cast.mallory.key, 2),
        Err(Error::RevocationNotAuthorized)
    );
    // The user's second device may revoke too, once its key is bound.
    assert_eq!(
        check(&w.cast.alice_laptop.key, 1),
        Err(Error::RevocationNotAuthorized)
    );
    let mut two_devices = w.bindings.clone();
    two_devices
        .insert(alice(), w.cast.alice_laptop.jkt())
        .expect("binding");
    let r = revocation(ids[1]);
    // The key that signed the root may revoke even with no binding in force.
    assert_eq!(
        r.authorized(
            &w.cast.alice.jkt(),
            &ids[1],
            &links[..=1],
            &BindingSet::new(),
            NOW
        ),
        Ok(())
    );
    // Links that do not form one chain authorize nothing.
    let other = Chain::straight(&w.cast, 2, "authority-other");
    let other = verify_chain(&other.tokens, &w.cx(&revoked, NOW)).expect("valid");
    let mixed = [links[0], other.leaf()];
    let r2 = revocation(other.leaf().id());
    assert_eq!(
        r2.authorized(
            &w.cast.agents[0].jkt(),
            &other.leaf().id(),
            &mixed,
            &w.bindings,
            NOW
        ),
        Err(Error::RevocationNotAuthorized)
    );
    assert_eq!(
        r.authorized(
            &w.cast.alice_laptop.jkt(),
            &ids[1],
            &links[..=1],
            &two_devices,
            NOW
        ),
        Ok(())
    );
}

#[test]
fn the_cache_never_skips_time_or_revocation() {
    let w = World::new();
    let chain = Chain::straight(&w.cast, 4, "cache");
    let verifier = Verifier::new(8);
    let none = HashSet::new();
    verifier
        .verify_chain(&chain.tokens, &w.cx(&none, NOW))
        .expect("cold");
    verifier
        .verify_chain(&chain.tokens, &w.cx(&none, NOW))
        .expect("warm");
    let revoked: HashSet<TokenId> = [chain.id(2)].into();
    assert_eq!(
        verifier
            .verify_chain(&chain.tokens, &w.cx(&revoked, NOW))
            .err(),
        Some(Error::Revoked(2))
    );
    assert_eq!(
        verifier
            .verify_chain(&chain.tokens, &w.cx(&none, NOW + 7200))
            .err(),
        Some(Error::Expired)
    );
    // An unbound user key fails even when its root is cached.
    let mut unbound = World::new();
    unbound.bindings = BindingSet::new();
    assert_eq!(
        verifier
            .verify_chain(&chain.tokens, &unbound.cx(&none, NOW))
            .err(),
        Some(Error::RootNotBound(0))
    );
    // A cached middle link presented under another parent is still checked.
    let other = Chain::straight(&w.cast, 2, "cache-other");
    let spliced = vec![other.tokens[0].clone(), chain.tokens[1].clone()];
    assert_eq!(
        verifier.verify_chain(&spliced, &w.cx(&none, NOW)).err(),
        Some(Error::ParentMismatch(1))
    );
}

#[test]
fn only_chains_that_verify_fill_the_cache() {
    let w = World::new();
    let verifier = Verifier::new(64);
    let none = HashSet::new();
    // Mallory's self-signed root: its signature holds, its binding does not.
    let chain = Chain::straight(&w.cast, 2, "pollute");
    let mut forged = Chain::default();
    let claims = crate::gen_vectors::fixture::root_claims(ALICE, &w.cast.agents[0], "pollute-root");
    forged.push(claims.sign(&w.cast.mallory.key), claims);
    assert_eq!(
        verifier
            .verify_chain(&forged.tokens, &w.cx(&none, NOW))
            .err(),
        Some(Error::RootNotBound(0))
    );
    assert!(verifier.cache().is_empty());
    verifier
        .verify_chain(&chain.tokens, &w.cx(&none, NOW))
        .expect("valid");
    assert_eq!(verifier.cache().len(), 2);
}

#[test]
fn the_link_cache_stays_bounded() {
    let w = World::new();
    let verifier = Verifier::new(6);
    let none = HashSet::new();
    for n in 0..10 {
        let chain = Chain::straight(&w.cast, 3, &format!("bounded-{n}"));
        verifier
            .verify_chain(&chain.tokens, &w.cx(&none, NOW))
            .expect("valid");
        assert!(
            verifier.cache().len() <= 6,
            "{} cached",
            verifier.cache().len()
        );
    }
}

#[test]
fn the_replay_cache_refuses_rather_than_forgets() {
    let key = SigningKey::from_seed(&[9; 32]).public().thumbprint();
    let cache = MemoryReplayCache::with_partition_capacity(1_000, 2);
    let proof = |jti: &str, keep_until| mandate_core::SpentProof::new(&key, "ath", jti, keep_until);
    assert_eq!(cache.first_use(&proof("a", NOW + 60), NOW), Ok(()));
    assert_eq!(
        cache.first_use(&proof("a", NOW + 60), NOW),
        Err(Error::PopReplayed)
    );
    assert_eq!(cache.first_use(&proof("b", NOW + 60), NOW), Ok(()));
    assert_eq!(
        cache.first_use(&proof("c", NOW + 60), NOW),
        Err(Error::PopCacheFull)
    );
    // Once the entries can no longer be fresh, they make room.
    assert_eq!(cache.first_use(&proof("c", NOW + 200), NOW + 61), Ok(()));
}

#[test]
fn a_call_needs_a_proof_and_a_scope() {
    let w = World::new();
    let chain = Chain::straight(&w.cast, 2, "call");
    let none = HashSet::new();
    let cx = w.cx(&none, NOW);
    let verifier = Verifier::new(8);
    let replay = MemoryReplayCache::new(8);
    let http = mandate_core::HttpCall {
        method: "GET",
        uri: "https://files.example/v1/reports/q3",
    };
    let read = mandate_core::Call {
        kind: "files",
        action: "read",
        location: "https://files.example/v1/reports/q3",
        identifier: None,
        amount: None,
    };
    let delete = mandate_core::Call {
        action: "delete",
        ..read.clone()
    };
    assert_eq!(
        verifier
            .verify_call(&chain.tokens, None, &http, Some(&read), &cx, &replay)
            .err(),
        Some(Error::PopMissing)
    );
    let pop = |n: &str| chain.pop(&w.cast.agents[1], "GET", http.uri, NOW, n);
    verifier
        .verify_call(
            &chain.tokens,
            Some(&pop("1")),
            &http,
            Some(&read),
            &cx,
            &replay,
        )
        .expect("in scope");
    assert_eq!(
        verifier
            .verify_call(
                &chain.tokens,
                Some(&pop("1")),
                &http,
                Some(&read),
                &cx,
                &replay
            )
            .err(),
        Some(Error::PopReplayed)
    );
    assert_eq!(
        verifier
            .verify_call(
                &chain.tokens,
                Some(&pop("2")),
                &http,
                Some(&delete),
                &cx,
                &replay
            )
            .err(),
        Some(Error::OutOfScope)
    );
    // A proof for a call out of scope took no room: it still works once.
    assert_eq!(replay.len(), 1);
    verifier
        .verify_call(
            &chain.tokens,
            Some(&pop("2")),
            &http,
            Some(&read),
            &cx,
            &replay,
        )
        .expect("the refused call recorded nothing");
    let stale = PopClaims {
        htm: "GET".into(),
        htu: http.uri.into(),
        iat: NOW - 61,
        jti: jti("s"),
        ath: mandate_core::token::chain_hash(&chain.tokens),
    };
    assert_eq!(
        verifier
            .verify_call(
                &chain.tokens,
                Some(&stale.sign(&w.cast.agents[1].key)),
                &http,
                None,
                &cx,
                &replay
            )
            .err(),
        Some(Error::PopStale)
    );
}

#[test]
fn attribution_traces_a_sub_agent_action_to_the_user_intent() {
    let w = World::new();
    let chain = Chain::straight(&w.cast, 3, "attr");
    let none = HashSet::new();
    let verified = verify_chain(&chain.tokens, &w.cx(&none, NOW)).expect("valid");
    let links: Vec<_> = verified.links().collect();
    let receipt = |at: usize, kind: &str, cause: Option<TokenId>, why: &str| {
        let claims = ReceiptClaims {
            grant: links[at].id(),
            action: Action {
                kind: kind.into(),
                target: format!("t{at}"),
                summary: format!("did {kind}"),
            },
            outcome: Outcome::Succeeded,
            rationale: Some(why.into()),
            cause,
            iat: NOW,
            jti: jti(&format!("rc{at}")),
        };
        let compact = claims.sign(&w.cast.agents[at].key);
        Receipt::verify(&compact, links[at], &w.keys, &Policy::default(), NOW)
            .expect("receipt verifies")
    };
    // The first decision answers the request the root grant answered.
    let r0 = receipt(0, "delegate", chain.claims[0].req, "needs market data");
    let r1 = receipt(1, "delegate", Some(r0.id()), "vendor list is stale");
    let r2 = receipt(
        2,
        "purchase_order.create",
        Some(r1.id()),
        "cheapest compliant vendor",
    );
    let receipts = [r0.clone(), r1.clone(), r2.clone()];
    let ledger = Ledger::new(links.iter().copied(), receipts.iter());
    let a = ledger.attribute(&r2.id()).expect("known receipt");
    assert!(a.complete);
    let kinds: Vec<&str> = a
        .steps
        .iter()
        .map(|s| match s {
            Step::Intent { .. } => "intent",
            Step::Interpretation { .. } => "interpretation",
            Step::Decision(_) => "decision",
            Step::Action(_) => "action",
            Step::Missing { .. } => "missing",
        })
        .collect();
    assert_eq!(
        kinds,
        [
            "intent",
            "interpretation",
            "decision",
            "interpretation",
            "decision",
            "interpretation",
            "action"
        ]
    );
    match &a.steps[0] {
        Step::Intent { text, .. } => {
            assert_eq!(text.as_deref(), Some("Get the Q3 report ready for Friday"))
        }
        other => panic!("expected intent, got {other:?}"),
    }
    // A cause that is neither a known receipt nor the request is missing.
    let stray = receipt(2, "read", Some(TokenId::of("unknown")), "why not");
    let with_stray = [r0.clone(), stray.clone()];
    let c = Ledger::new(links.iter().copied(), with_stray.iter())
        .attribute(&stray.id())
        .expect("known");
    assert!(!c.complete);
    assert!(c.steps.contains(&Step::Missing {
        id: TokenId::of("unknown")
    }));

    // Without the middle grant, the trace says what is missing.
    let partial = Ledger::new([links[2]], receipts.iter());
    let b = partial.attribute(&r2.id()).expect("known receipt");
    assert!(!b.complete);
    assert!(matches!(b.steps[0], Step::Missing { id } if id == links[1].id()));

    // A receipt signed by another agent, or naming another grant, is refused.
    let forged = ReceiptClaims {
        grant: links[2].id(),
        action: r2.claims().action.clone(),
        outcome: Outcome::Succeeded,
        rationale: None,
        cause: None,
        iat: NOW,
        jti: jti("f"),
    };
    assert!(
        Receipt::verify(
            &forged.sign(&w.cast.mallory.key),
            links[2],
            &w.keys,
            &Policy::default(),
            NOW
        )
        .is_err()
    );
    assert!(
        Receipt::verify(
            &forged.sign(&w.cast.agents[2].key),
            links[1],
            &w.keys,
            &Policy::default(),
            NOW
        )
        .is_err()
    );
}

#[test]
fn errors_never_echo_token_material() {
    for (name, v) in load_all() {
        if v.expect == "valid" {
            continue;
        }
        let inputs = Inputs::of(&v);
        let err = run(&v, &inputs, None).expect_err("invalid vector");
        let text = format!("{err} {err:?}");
        for token in v.chain.iter().chain(v.pop.iter().map(|p| &p.token)) {
            for part in token.split('.').filter(|p| p.len() >= 12) {
                for window in part.as_bytes().chunks(12) {
                    let w = std::str::from_utf8(window).expect("ascii");
                    assert!(!text.contains(w), "{name}: error text echoes token bytes");
                }
            }
        }
    }
}
