//! Properties over random chains.

use std::collections::HashSet;

use mandate_core::scope::{
    AuthorizationDetail, Call, Confirm, Limits, Money, needs_confirmation, permits, within,
};
use mandate_core::token::{
    Actor, AgentInfo, BindingCode, Confirmation, Effect, GrantClaims, PolicyAgent, PolicyClaims,
    RequestClaims,
};
use mandate_core::{
    BindingSet, Claims as _, Context, Error, KeySet, Policy, SigningKey, TokenId, Verifier,
    verify_chain,
};
use proptest::prelude::*;

const NOW: i64 = 1_767_225_600;
const TYPES: [&str; 2] = ["files", "purchase_order"];
const ACTIONS: [&str; 4] = ["read", "write", "list", "delete"];
const LOCATIONS: [&str; 6] = ["r/", "r/a/", "r/a/x", "r/b*", "r/bz", "s/"];

/// A random detail drawn from small pools, so that children often collide with parents.
fn detail() -> impl Strategy<Value = AuthorizationDetail> {
    (
        0..TYPES.len(),
        proptest::sample::subsequence(ACTIONS.to_vec(), 1..=ACTIONS.len()),
        proptest::sample::subsequence(LOCATIONS.to_vec(), 1..=3),
        proptest::option::of(0u64..20),
        proptest::option::of((0u32..10_000, proptest::bool::ANY)),
        confirm(),
    )
        .prop_map(|(t, actions, locations, calls, amount, confirm)| {
            let mut d = AuthorizationDetail::new(TYPES[t], actions, locations)
                .expect("pool values are valid");
            d.limits = Limits {
                max_calls: calls,
                max_amount: amount.map(|(a, eur)| Money {
                    amount: a.to_string().try_into().expect("amount"),
                    currency: if eur { "EUR" } else { "USD" }
                        .to_string()
                        .try_into()
                        .expect("currency"),
                }),
                confirm,
            };
            d
        })
}

/// No confirmation, one for every call, or one above an amount.
fn confirm() -> impl Strategy<Value = Option<Confirm>> {
    prop_oneof![
        2 => Just(None),
        1 => Just(Some(Confirm { above: None })),
        1 => (0u32..10_000, proptest::bool::ANY).prop_map(|(a, eur)| Some(Confirm {
            above: Some(Money {
                amount: a.to_string().try_into().expect("amount"),
                currency: if eur { "EUR" } else { "USD" }.to_string().try_into().expect("currency"),
            }),
        })),
    ]
}

/// How a child's scope derives from its parent's: mostly narrowing, sometimes escalating.
#[derive(Debug, Clone)]
enum Mutation {
    Keep,
    DropAction(usize),
    NarrowLocation(usize),
    LowerLimits(u8),
    SplitDetail,
    AddAction(usize),
    AddLocation(usize),
    RaiseLimit,
    DropLimits,
    SwapCurrency,
    DropConfirm,
    RaiseConfirm,
    ConfirmEvery,
    Replace(Box<AuthorizationDetail>),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        3 => Just(Mutation::Keep),
        4 => any::<usize>().prop_map(Mutation::DropAction),
        4 => any::<usize>().prop_map(Mutation::NarrowLocation),
        4 => (1u8..=100).prop_map(Mutation::LowerLimits),
        2 => Just(Mutation::SplitDetail),
        1 => any::<usize>().prop_map(Mutation::AddAction),
        1 => any::<usize>().prop_map(Mutation::AddLocation),
        1 => Just(Mutation::RaiseLimit),
        1 => Just(Mutation::DropLimits),
        1 => Just(Mutation::SwapCurrency),
        1 => Just(Mutation::DropConfirm),
        1 => Just(Mutation::RaiseConfirm),
        1 => Just(Mutation::ConfirmEvery),
        1 => detail().prop_map(|d| Mutation::Replace(Box::new(d))),
    ]
}

fn scaled(m: &Money, percent: u128) -> Money {
    let micros = m.amount.micros() * percent / 100;
    let text = format!("{}.{:06}", micros / 1_000_000, micros % 1_000_000);
    Money {
        amount: text.try_into().expect("amount"),
        currency: m.currency.clone(),
    }
}

fn apply(parent: &[AuthorizationDetail], m: &Mutation) -> Vec<AuthorizationDetail> {
    let mut child = parent.to_vec();
    let first = &mut child[0];
    match m {
        Mutation::Keep => {}
        Mutation::DropAction(i) => {
            if first.actions.len() > 1 {
                let a = first
                    .actions
                    .iter()
                    .nth(i % first.actions.len())
                    .cloned()
                    .expect("index in range");
                first.actions.remove(&a);
            }
        }
        Mutation::NarrowLocation(i) => {
            let candidates: Vec<_> = LOCATIONS
                .iter()
                .filter(|l| first.locations.iter().any(|p| p.covers(l)))
                .collect();
            let pick = candidates[i % candidates.len().max(1)];
            first.locations = vec![pick.to_string().try_into().expect("location")];
        }
        Mutation::LowerLimits(pct) => {
            first.limits.max_calls = first.limits.max_calls.map(|c| c * u64::from(*pct) / 100);
            first.limits.max_amount = first
                .limits
                .max_amount
                .as_ref()
                .map(|a| scaled(a, u128::from(*pct)));
        }
        Mutation::SplitDetail => {
            let mut half = first.clone();
            half.limits.max_calls = half.limits.max_calls.map(|c| c / 2);
            half.limits.max_amount = half.limits.max_amount.as_ref().map(|a| scaled(a, 50));
            *first = half.clone();
            child.push(half);
        }
        Mutation::AddAction(i) => {
            first.actions.insert(ACTIONS[i % ACTIONS.len()].to_string());
        }
        Mutation::AddLocation(i) => first.locations.push(
            LOCATIONS[i % LOCATIONS.len()]
                .to_string()
                .try_into()
                .expect("location"),
        ),
        Mutation::RaiseLimit => {
            first.limits.max_calls = first.limits.max_calls.map(|c| c + 1);
            first.limits.max_amount = first.limits.max_amount.as_ref().map(|a| scaled(a, 101));
        }
        Mutation::DropLimits => first.limits = Limits::default(),
        Mutation::SwapCurrency => {
            if let Some(a) = first.limits.max_amount.as_mut() {
                let other = if a.currency.clone() == "EUR".to_string().try_into().expect("c") {
                    "USD"
                } else {
                    "EUR"
                };
                a.currency = other.to_string().try_into().expect("currency");
            }
        }
        Mutation::DropConfirm => first.limits.confirm = None,
        Mutation::RaiseConfirm => {
            if let Some(Confirm { above: Some(a) }) = first.limits.confirm.as_mut() {
                *a = scaled(a, 200);
            }
        }
        Mutation::ConfirmEvery => first.limits.confirm = Some(Confirm { above: None }),
        Mutation::Replace(d) => *first = (**d).clone(),
    }
    child
}

/// A root scope and, for each later link, a scope derived from its parent's.
fn scopes() -> impl Strategy<Value = Vec<Vec<AuthorizationDetail>>> {
    (
        proptest::collection::vec(detail(), 1..=3),
        proptest::collection::vec(mutation(), 0..=5),
    )
        .prop_map(|(root, ms)| {
            let mut out = vec![root];
            for m in &ms {
                let next = apply(out.last().expect("non-empty"), m);
                out.push(next);
            }
            out
        })
}

struct Signed {
    tokens: Vec<String>,
    keys: KeySet,
    bindings: BindingSet,
    leaf: SigningKey,
}

/// Signs a chain whose link i carries `scopes[i]`; everything else is valid.
fn sign_chain(scopes: &[Vec<AuthorizationDetail>]) -> Signed {
    let user = SigningKey::from_seed(&[200; 32]);
    let agents: Vec<SigningKey> = (0..scopes.len())
        .map(|i| SigningKey::from_seed(&[i as u8 + 1; 32]))
        .collect();
    let sub: mandate_core::Principal = "https://idp.example#alice"
        .to_string()
        .try_into()
        .expect("principal");
    let mut tokens: Vec<String> = Vec::new();
    for (i, scope) in scopes.iter().enumerate() {
        let grantee = &agents[i];
        let claims = GrantClaims {
            sub: sub.clone(),
            act: Actor {
                sub: grantee.public().agent_id(),
            },
            cnf: Confirmation {
                jkt: grantee.thumbprint(),
            },
            authorization_details: scope.clone(),
            purpose: format!("link {i}"),
            intent: None,
            iat: NOW - 10,
            nbf: NOW - 10,
            exp: NOW + 3600,
            jti: format!("j{i}").try_into().expect("jti"),
            max_depth: (scopes.len() - i) as u8,
            prf: tokens.last().map(|t| TokenId::of(t)),
            req: None,
        };
        let signer = if i == 0 { &user } else { &agents[i - 1] };
        tokens.push(claims.sign(signer));
    }
    let mut bindings = BindingSet::new();
    bindings
        .insert(sub, user.thumbprint())
        .expect("fresh binding");
    let keys = std::iter::once(*user.public())
        .chain(agents.iter().map(|a| *a.public()))
        .collect();
    let leaf = SigningKey::from_seed(&agents[agents.len() - 1].to_seed());
    Signed {
        tokens,
        keys,
        bindings,
        leaf,
    }
}

fn context<'a>(s: &'a Signed, revoked: &'a HashSet<TokenId>) -> Context<'a> {
    Context {
        now: NOW,
        policy: Policy::default(),
        keys: &s.keys,
        bindings: &s.bindings,
        revoked,
    }
}

/// Every call the pools can express, with and without money.
fn probes() -> Vec<(String, String, String, Option<Money>)> {
    let mut out = Vec::new();
    let locations = [
        "r/", "r/a/", "r/a/x", "r/a/y", "r/b", "r/bz", "r/bzz", "r/c", "s/", "s/q", "t",
    ];
    for t in TYPES {
        for a in ACTIONS {
            for l in locations {
                out.push((t.to_string(), a.to_string(), l.to_string(), None));
                for amount in ["0", "500", "5000", "9999"] {
                    for cur in ["EUR", "USD"] {
                        let m = Money {
                            amount: amount.to_string().try_into().expect("amount"),
                            currency: cur.to_string().try_into().expect("currency"),
                        };
                        out.push((t.to_string(), a.to_string(), l.to_string(), Some(m)));
                    }
                }
            }
        }
    }
    out
}

fn total_budget(scope: &[AuthorizationDetail], kind: &str, currency: &str) -> Option<u128> {
    let mut total = 0u128;
    for d in scope.iter().filter(|d| d.kind == kind) {
        match &d.limits.max_amount {
            Some(m) if m.currency.clone() == currency.to_string().try_into().expect("currency") => {
                total += m.amount.micros()
            }
            Some(_) => {}
            None => return None,
        }
    }
    Some(total)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, .. ProptestConfig::default() })]

    /// Whatever the leaf of a verified chain may do, the root may do, and the
    /// leaf's money budget per type never exceeds the root's.
    #[test]
    fn effective_scope_lies_within_the_root(scopes in scopes()) {
        let signed = sign_chain(&scopes);
        let revoked = HashSet::new();
        let Ok(chain) = verify_chain(&signed.tokens, &context(&signed, &revoked)) else {
            return Ok(());
        };
        let root = &scopes[0];
        let leaf = chain.scopes();
        prop_assert_eq!(leaf, scopes.last().expect("non-empty").as_slice());
        for (t, a, l, m) in probes() {
            let call = Call { kind: &t, action: &a, location: &l, identifier: None, amount: m.as_ref() };
            prop_assert!(!permits(leaf, &call) || permits(root, &call), "leaf permits {call:?} but the root does not");
            prop_assert!(
                !permits(leaf, &call) || needs_confirmation(leaf, &call) || !needs_confirmation(root, &call),
                "the leaf lets {call:?} through unconfirmed, the root does not"
            );
        }
        for kind in TYPES {
            for cur in ["EUR", "USD"] {
                if let (Some(r), Some(l)) = (total_budget(root, kind, cur), total_budget(leaf, kind, cur)) {
                    prop_assert!(l <= r, "{kind} {cur}: leaf budget {l} > root budget {r}");
                }
            }
        }
    }

    /// A standing rule never widens: a request it admits asks for a subset
    /// of the rule (every call, every unconfirmed call, every money budget),
    /// no longer and no deeper, by the rule's agent for the rule's user.
    #[test]
    fn a_rule_admits_only_requests_within_it(
        scopes in scopes(),
        rule_lifetime in 1u32..7200,
        rule_depth in 0u8..4,
        asked_lifetime in 1u32..7200,
        asked_depth in 0u8..4,
        same_agent in proptest::bool::weighted(0.9),
    ) {
        let rule_agent = SigningKey::from_seed(&[7; 32]);
        let asker = if same_agent { rule_agent.thumbprint() } else { SigningKey::from_seed(&[8; 32]).thumbprint() };
        let rule_scope = &scopes[0];
        let asked = scopes.last().expect("non-empty");
        let rule = PolicyClaims {
            sub: "https://idp.example#alice".to_string().try_into().expect("principal"),
            effect: Effect::Approve,
            agent: PolicyAgent { jkt: rule_agent.thumbprint() },
            authorization_details: Some(rule_scope.clone()),
            max_lifetime: Some(rule_lifetime),
            max_depth: Some(rule_depth),
            label: None,
            iat: NOW,
            exp: NOW + 86_400,
            jti: "rule".to_string().try_into().expect("jti"),
        };
        let request = RequestClaims {
            principal_hint: Some("https://idp.example#alice".into()),
            agent: AgentInfo { name: "a".into(), publisher: None, version: None },
            authorization_details: asked.clone(),
            purpose: "p".into(),
            intent: None,
            lifetime: asked_lifetime,
            max_depth: asked_depth,
            parent_chain: vec![],
            binding_code: BindingCode::try_from("7K3Q-M9XD".to_string()).expect("code"),
            jti: "req".to_string().try_into().expect("jti"),
            iat: NOW,
            exp: NOW + 300,
            oauth_client: None,
        };
        let admitted = rule.admits(&request, &asker).is_ok();
        // The admitted requests are exactly those within the rule's bounds.
        let inside = same_agent
            && within(asked, rule_scope).is_ok()
            && asked_lifetime <= rule_lifetime
            && asked_depth <= rule_depth;
        prop_assert_eq!(admitted, inside);
        if admitted {
            for (t, a, l, m) in probes() {
                let call = Call { kind: &t, action: &a, location: &l, identifier: None, amount: m.as_ref() };
                prop_assert!(!permits(asked, &call) || permits(rule_scope, &call), "the request permits {call:?}, the rule does not");
                prop_assert!(
                    !permits(asked, &call) || needs_confirmation(asked, &call) || !needs_confirmation(rule_scope, &call),
                    "the request lets {call:?} through unconfirmed, the rule does not"
                );
            }
            for kind in TYPES {
                for cur in ["EUR", "USD"] {
                    if let (Some(r), Some(l)) = (total_budget(rule_scope, kind, cur), total_budget(asked, kind, cur)) {
                        prop_assert!(l <= r, "{kind} {cur}: the request's budget {l} > the rule's {r}");
                    }
                }
            }
        }
    }

    /// Changing any byte of any token of a valid chain makes it fail, cold
    /// and through a warm cache that has seen the valid chain.
    #[test]
    fn flipping_any_byte_fails(depth in 1usize..=5, which in any::<prop::sample::Index>(), at in any::<prop::sample::Index>(), mask in 1u8..=255) {
        let scope = vec![AuthorizationDetail::new("files", ["read", "list"], ["r/"]).expect("detail")];
        let signed = sign_chain(&vec![scope; depth]);
        let revoked = HashSet::new();
        let cx = context(&signed, &revoked);
        let verifier = Verifier::new(64);
        prop_assert!(verifier.verify_chain(&signed.tokens, &cx).is_ok());

        let mut tokens = signed.tokens.clone();
        let t = which.index(tokens.len());
        let mut bytes = tokens[t].clone().into_bytes();
        let i = at.index(bytes.len());
        bytes[i] ^= mask;
        let Ok(flipped) = String::from_utf8(bytes) else {
            // Not UTF-8: no API can receive it as a token.
            return Ok(());
        };
        tokens[t] = flipped;
        let cold = verify_chain(&tokens, &cx);
        let warm = verifier.verify_chain(&tokens, &cx);
        prop_assert!(cold.is_err(), "cold verification accepted a flipped byte at {t}:{i}");
        prop_assert!(warm.is_err(), "warm verification accepted a flipped byte at {t}:{i}");
        prop_assert_eq!(cold.err().map(|e| e.code()), warm.err().map(|e| e.code()));
    }

    /// The same for a proof of possession.
    #[test]
    fn flipping_any_byte_of_a_proof_fails(at in any::<prop::sample::Index>(), mask in 1u8..=255) {
        let scope = vec![AuthorizationDetail::new("files", ["read"], ["r/"]).expect("detail")];
        let signed = sign_chain(&vec![scope; 2]);
        let revoked = HashSet::new();
        let cx = context(&signed, &revoked);
        let chain = verify_chain(&signed.tokens, &cx).expect("valid chain");
        let pop = mandate_core::token::PopClaims {
            htm: "GET".into(),
            htu: "https://r.example/r/".into(),
            iat: NOW,
            jti: "p".to_string().try_into().expect("jti"),
            ath: chain.ath().to_string(),
        }
        .sign(&signed.leaf);
        let http = mandate_core::HttpCall { method: "GET", uri: "https://r.example/r/" };
        let mut bytes = pop.into_bytes();
        let i = at.index(bytes.len());
        bytes[i] ^= mask;
        let Ok(flipped) = String::from_utf8(bytes) else { return Ok(()) };
        let replay = mandate_core::MemoryReplayCache::new(4);
        let result: Result<_, Error> = mandate_core::verify_pop(&chain, &flipped, &http, &cx, &replay);
        prop_assert!(result.is_err());
    }
}

/// The scope property is not vacuous: many random chains verify, and many
/// are refused for escalating.
#[test]
fn random_chains_both_verify_and_fail() {
    use proptest::strategy::ValueTree as _;
    let mut runner = proptest::test_runner::TestRunner::deterministic();
    let (mut ok, mut escalated, mut deep) = (0, 0, 0);
    for _ in 0..400 {
        let scopes = scopes().new_tree(&mut runner).expect("strategy").current();
        let signed = sign_chain(&scopes);
        let revoked = HashSet::new();
        match verify_chain(&signed.tokens, &context(&signed, &revoked)) {
            Ok(_) => {
                ok += 1;
                deep += usize::from(scopes.len() >= 3);
            }
            Err(e) if e.code().starts_with("scope.escalated") => escalated += 1,
            Err(e) => panic!("only scopes vary, but verification failed with {e:?}"),
        }
    }
    eprintln!("random chains: {ok} verified ({deep} deep), {escalated} escalated");
    assert!(
        ok >= 100 && escalated >= 40 && deep >= 40,
        "{ok} verified ({deep} deep), {escalated} escalated"
    );
}
