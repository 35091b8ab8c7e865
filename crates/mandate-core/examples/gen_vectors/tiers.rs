//! Vectors of the approval tiers: confirmations of one exact call (4.13,
//! 6.8), the `confirm` limit through attenuation (5.6, 5.8), and standing
//! rules matched against requests (4.12).

use mandate_core::scope::{AuthorizationDetail, Confirm};
use mandate_core::token::{
    AgentInfo, BindingCode, Claims as _, Confirmation, ConfirmationClaims, Effect, PolicyAgent,
    PolicyClaims, RequestClaims, body_hash, chain_hash,
};
use serde_json::json;

use super::fixture::*;
use super::valid::{valid, vector};

/// Where orders go, and what one order call is.
const ORDERS: &str = "https://erp.example/vendors/acme/orders";
const ORDER_URI: &str = "https://erp.example/vendors/acme/orders?dry_run=false";
const BODY: &[u8] = br#"{"sku":"SSD-2TB","quantity":4,"amount":"480.00","currency":"EUR"}"#;
/// [`BODY`] with one byte changed.
const BODY_CHANGED: &[u8] = br#"{"sku":"SSD-2TB","quantity":5,"amount":"480.00","currency":"EUR"}"#;

fn ordering(confirm: Option<Confirm>) -> Vec<AuthorizationDetail> {
    let mut d = limited(
        detail(
            "purchase_order",
            &["create"],
            &["https://erp.example/vendors/"],
        ),
        Some(20),
        Some(money("5000.00", "EUR")),
    );
    d.limits.confirm = confirm;
    vec![d]
}

fn every() -> Option<Confirm> {
    Some(Confirm { above: None })
}

fn above(amount: &str, currency: &str) -> Option<Confirm> {
    Some(Confirm {
        above: Some(money(amount, currency)),
    })
}

/// Alice's one-link grant of `scope` to agent 0.
fn granted(cast: &Cast, tag: &str, scope: Vec<AuthorizationDetail>) -> Chain {
    Chain::straight_with(cast, 1, tag, |_, c| c.authorization_details = scope.clone())
}

/// Alice's confirmation of the order call by agent 0 under `chain`.
fn confirmation(chain: &Chain, cast: &Cast, n: &str) -> ConfirmationClaims {
    ConfirmationClaims {
        sub: ALICE.to_string().try_into().expect("principal"),
        cnf: Confirmation {
            jkt: cast.agents[0].jkt(),
        },
        ath: chain_hash(&chain.tokens),
        htm: "POST".into(),
        htu: ORDER_URI.into(),
        bdh: body_hash(BODY),
        iat: NOW - 30,
        exp: NOW + 270,
        jti: jti(n),
    }
}

/// A vector for the order call under `chain`, confirmed by `token` when given.
fn order(
    cast: &Cast,
    description: &str,
    chain: &Chain,
    token: Option<String>,
    expect: &str,
) -> Vector {
    let mut v = if expect == "valid" {
        valid(cast, description, chain)
    } else {
        vector(cast, description, chain, expect)
    };
    v.call = Some(json!({
        "type": "purchase_order", "action": "create", "location": ORDERS,
        "amount": {"amount": "480.00", "currency": "EUR"}
    }));
    v.confirmation = token.map(|token| ConfirmationCase {
        token,
        htm: "POST".into(),
        htu: ORDER_URI.into(),
        body: mandate_core::base64url::encode(BODY),
        seen_before: false,
    });
    v
}

/// A rule of alice's about agent 0: read and list reports, an hour, one hop.
fn rule(n: &str) -> PolicyClaims {
    PolicyClaims {
        sub: ALICE.to_string().try_into().expect("principal"),
        effect: Effect::Approve,
        agent: PolicyAgent {
            jkt: Cast::new().agents[0].jkt(),
        },
        authorization_details: Some(vec![detail(
            "files",
            &["read", "list"],
            &["https://files.example/v1/reports/"],
        )]),
        max_lifetime: Some(3600),
        max_depth: Some(1),
        label: Some("Report bot reads reports".into()),
        iat: NOW - 86_400,
        exp: NOW + 30 * 86_400,
        jti: jti(n),
    }
}

/// Agent 0's request for alice: read Q3's reports for ten minutes, no hops.
fn request(n: &str) -> RequestClaims {
    RequestClaims {
        principal_hint: Some(ALICE.into()),
        agent: AgentInfo {
            name: "Report bot".into(),
            publisher: Some("Acme".into()),
            version: None,
        },
        authorization_details: vec![detail(
            "files",
            &["read"],
            &["https://files.example/v1/reports/2026/q3/"],
        )],
        purpose: "Read the Q3 reports and summarize them".into(),
        intent: Some("Summarize Q3".into()),
        lifetime: 600,
        max_depth: 0,
        parent_chain: vec![],
        binding_code: BindingCode::try_from("7K3Q-M9XD".to_string()).expect("code"),
        jti: jti(n),
        iat: NOW - 10,
        exp: NOW + 290,
        oauth_client: None,
    }
}

fn policy_case(
    cast: &Cast,
    description: &str,
    policy: String,
    request: String,
    expect: &str,
) -> Vector {
    let mut v = vector(cast, description, &Chain::default(), expect);
    v.policy = Some(PolicyCase {
        token: policy,
        request,
    });
    v
}

pub fn cases(cast: &Cast) -> Vec<(String, Vector)> {
    let mut out: Vec<(String, Vector)> = Vec::new();
    let alice = &cast.alice.key;
    let agent = &cast.agents[0].key;

    // Confirmations (4.13, 6.8) and the `confirm` limit (5.8).
    let chain = granted(cast, "valid-confirmation", ordering(every()));
    let token = confirmation(&chain, cast, "confirm-1").sign(alice);
    out.push((
        "valid-confirmation".into(),
        order(
            cast,
            "A scope that confirms every call; the order comes with alice's confirmation of its \
             method, URI with query, and body",
            &chain,
            Some(token),
            "valid",
        ),
    ));
    let chain = granted(
        cast,
        "valid-confirmation-waived",
        ordering(above("500", "EUR")),
    );
    out.push((
        "valid-confirmation-waived".into(),
        order(
            cast,
            "Calls above 500 EUR need a confirmation; this order of 480.00 EUR needs none",
            &chain,
            None,
            "valid",
        ),
    ));
    let chain = granted(cast, "valid-confirmation-other-detail", {
        let mut scope = ordering(every());
        scope.extend(ordering(None));
        scope
    });
    out.push((
        "valid-confirmation-other-detail".into(),
        order(
            cast,
            "Of two details that permit the order, one confirms every call and one does not: the \
             user granted it unconfirmed, so no confirmation is needed",
            &chain,
            None,
            "valid",
        ),
    ));
    let chain = granted(cast, "invalid-confirmation-required", ordering(every()));
    out.push((
        "invalid-confirmation-required".into(),
        order(
            cast,
            "A scope that confirms every call, and an order without a confirmation",
            &chain,
            None,
            "confirm.required",
        ),
    ));
    let chain = granted(
        cast,
        "invalid-confirmation-required-above",
        ordering(above("400", "EUR")),
    );
    out.push((
        "invalid-confirmation-required-above".into(),
        order(
            cast,
            "Calls above 400 EUR need a confirmation; this order of 480.00 EUR has none",
            &chain,
            None,
            "confirm.required",
        ),
    ));
    let chain = granted(
        cast,
        "invalid-confirmation-required-currency",
        ordering(above("5000", "USD")),
    );
    out.push((
        "invalid-confirmation-required-currency".into(),
        order(
            cast,
            "Calls above 5000 USD need a confirmation, and so does an order in EUR",
            &chain,
            None,
            "confirm.required",
        ),
    ));

    type Edit = fn(&mut ConfirmationClaims, &Cast);
    let broken: [(&str, &str, Edit, &str); 8] = [
        (
            "body-changed",
            "The body sent differs from the confirmed one by one byte (quantity 4 became 5)",
            |c, _| c.bdh = body_hash(BODY_CHANGED),
            "confirm.body_mismatch",
        ),
        (
            "other-query",
            "The confirmation names the URI with ?dry_run=true; the call has ?dry_run=false",
            |c, _| c.htu = ORDER_URI.replace("false", "true"),
            "confirm.mismatch",
        ),
        (
            "other-method",
            "The confirmation is for PUT; the call is a POST",
            |c, _| c.htm = "PUT".into(),
            "confirm.mismatch",
        ),
        (
            "other-agent",
            "The confirmation names agent 1's key; agent 0 makes the call",
            |c, cast| c.cnf.jkt = cast.agents[1].jkt(),
            "confirm.mismatch",
        ),
        (
            "other-chain",
            "The confirmation's ath is the hash of another chain",
            |c, _| c.ath = chain_hash(&["another chain"]),
            "confirm.mismatch",
        ),
        (
            "other-principal",
            "The confirmation is bob's, signed by his bound key, for alice's chain",
            |c, _| c.sub = BOB.to_string().try_into().expect("principal"),
            "confirm.mismatch",
        ),
        (
            "expired",
            "The confirmation expired two minutes ago, past the 60 s skew",
            |c, _| {
                c.iat = NOW - 420;
                c.exp = NOW - 120;
            },
            "time.expired",
        ),
        (
            "too-long",
            "The confirmation would live 601 seconds; 600 is the most",
            |c, _| c.exp = c.iat + 601,
            "token.malformed",
        ),
    ];
    for (name, description, edit, expect) in broken {
        let tag = format!("invalid-confirmation-{name}");
        let chain = granted(cast, &tag, ordering(every()));
        let mut claims = confirmation(&chain, cast, &tag);
        edit(&mut claims, cast);
        let signer = if claims.sub.as_str() == BOB {
            &cast.bob.key
        } else {
            alice
        };
        out.push((
            tag,
            order(cast, description, &chain, Some(claims.sign(signer)), expect),
        ));
    }
    let tag = "invalid-confirmation-replayed";
    let chain = granted(cast, tag, ordering(every()));
    let mut v = order(
        cast,
        "The same confirmation, presented a second time",
        &chain,
        Some(confirmation(&chain, cast, tag).sign(alice)),
        "confirm.replayed",
    );
    if let Some(c) = v.confirmation.as_mut() {
        c.seen_before = true;
    }
    out.push((tag.into(), v));
    for (name, description, signer, expect) in [
        (
            "signer-not-bound",
            "The confirmation names alice but is signed by mallory's key, bound to nobody",
            &cast.mallory,
            "signer.not_bound",
        ),
        (
            "signed-by-agent",
            "The agent confirms its own call with its own key",
            &cast.agents[0],
            "signer.not_bound",
        ),
        (
            "signed-by-bob",
            "The confirmation names alice but is signed by bob's key, bound to bob",
            &cast.bob,
            "signer.not_bound",
        ),
    ] {
        let tag = format!("invalid-confirmation-{name}");
        let chain = granted(cast, &tag, ordering(every()));
        let token = confirmation(&chain, cast, &tag).sign(&signer.key);
        out.push((tag, order(cast, description, &chain, Some(token), expect)));
    }
    let tag = "invalid-confirmation-removed-key";
    let chain = granted(cast, tag, ordering(every()));
    let mut v = order(
        cast,
        "The confirmation is signed by alice's laptop key, which she removed",
        &chain,
        Some(confirmation(&chain, cast, tag).sign(&cast.alice_laptop.key)),
        "signer.not_bound",
    );
    v.revoked_keys = vec![cast.alice_laptop.jkt().to_string()];
    out.push((tag.into(), v));
    let tag = "invalid-confirmation-as-grant";
    let chain = granted(cast, tag, ordering(every()));
    let token = chain.tokens[0].clone();
    out.push((
        tag.into(),
        order(
            cast,
            "The root grant, presented as the confirmation",
            &chain,
            Some(token),
            "header.wrong_typ",
        ),
    ));

    // The `confirm` limit through attenuation (5.6).
    let two_hops = |tag: &str, parent: Option<Confirm>, child: Option<Confirm>| {
        Chain::straight_with(cast, 2, tag, |i, c| {
            c.authorization_details = ordering(if i == 0 {
                parent.clone()
            } else {
                child.clone()
            })
        })
    };
    for (name, description, parent, child, expect) in [
        (
            "valid-scope-confirm-tightened",
            "The root confirms orders above 100 EUR; the sub-agent's grant confirms every order",
            above("100", "EUR"),
            every(),
            "valid",
        ),
        (
            "valid-scope-confirm-lowered",
            "The root confirms orders above 100 EUR; the sub-agent's, above 50 EUR",
            above("100", "EUR"),
            above("50", "EUR"),
            "valid",
        ),
        (
            "invalid-scope-confirm-dropped",
            "The root confirms every order; the sub-agent's grant drops the confirmation",
            every(),
            None,
            "scope.escalated_limit",
        ),
        (
            "invalid-scope-confirm-raised",
            "The root confirms orders above 100 EUR; the sub-agent's grant only above 200 EUR",
            above("100", "EUR"),
            above("200", "EUR"),
            "scope.escalated_limit",
        ),
        (
            "invalid-scope-confirm-every-to-above",
            "The root confirms every order; the sub-agent's grant only those above 1 EUR",
            every(),
            above("1", "EUR"),
            "scope.escalated_limit",
        ),
        (
            "invalid-scope-confirm-currency",
            "The root confirms orders above 100 EUR; the sub-agent's grant above 50 USD",
            above("100", "EUR"),
            above("50", "USD"),
            "scope.escalated_currency",
        ),
    ] {
        let chain = two_hops(name, parent, child);
        let v = if expect == "valid" {
            valid(cast, description, &chain)
        } else {
            vector(cast, description, &chain, expect)
        };
        out.push((name.into(), v));
    }

    // Standing rules (4.12).
    let fits = request("policy-request").sign(agent);
    out.push((
        "valid-policy-fits".into(),
        policy_case(
            cast,
            "Alice's rule lets agent 0 read and list reports for up to an hour, one hop deep; its \
             request to read Q3's reports for ten minutes fits",
            rule("policy-fits").sign(alice),
            fits.clone(),
            "valid",
        ),
    ));
    let mut budget = rule("policy-budget");
    budget.authorization_details = Some(ordering(None));
    let mut asks = request("policy-budget-request");
    asks.authorization_details = {
        let mut two = ordering(None);
        two.extend(ordering(None));
        for d in &mut two {
            d.limits.max_amount = Some(money("3000.00", "EUR"));
            d.limits.max_calls = Some(10);
        }
        two
    };
    out.push((
        "invalid-policy-budget-split".into(),
        policy_case(
            cast,
            "The rule allows orders up to 5000 EUR in all; the request asks for two details of \
             3000 EUR each, which would draw 6000 from that budget",
            budget.sign(alice),
            asks.sign(agent),
            "scope.escalated_limit",
        ),
    ));

    type RuleEdit = fn(&mut PolicyClaims, &mut RequestClaims, &Cast);
    let rules: [(&str, &str, RuleEdit, &str); 12] = [
        (
            "wrong-agent",
            "The rule is about agent 1's key; agent 0 asks",
            |p, _, cast| p.agent.jkt = cast.agents[1].jkt(),
            "policy.mismatch",
        ),
        (
            "other-principal",
            "The request is for bob; the rule is alice's",
            |_, r, _| r.principal_hint = Some(BOB.into()),
            "policy.mismatch",
        ),
        (
            "denies",
            "Alice's rule denies agent 0 always",
            |p, _, _| {
                p.effect = Effect::Deny;
                p.authorization_details = None;
                p.max_lifetime = None;
                p.max_depth = None;
            },
            "policy.mismatch",
        ),
        (
            "wider-action",
            "The request also asks to write",
            |_, r, _| {
                r.authorization_details[0] = detail(
                    "files",
                    &["read", "write"],
                    &["https://files.example/v1/reports/2026/q3/"],
                )
            },
            "scope.escalated_action",
        ),
        (
            "wider-location",
            "The request reaches past the reports, to every file",
            |_, r, _| {
                r.authorization_details[0] =
                    detail("files", &["read"], &["https://files.example/v1/"])
            },
            "scope.escalated_location",
        ),
        (
            "other-type",
            "The request asks for another type of scope",
            |_, r, _| {
                r.authorization_details
                    .push(detail("email", &["send"], &["mailto:*"]))
            },
            "scope.escalated_type",
        ),
        (
            "longer-lifetime",
            "The request asks for two hours; the rule allows one",
            |_, r, _| r.lifetime = 7200,
            "policy.exceeded",
        ),
        (
            "deeper",
            "The request asks to delegate two hops deep; the rule allows one",
            |_, r, _| r.max_depth = 2,
            "policy.exceeded",
        ),
        (
            "expired",
            "The rule ended two minutes ago",
            |p, _, _| {
                p.iat = NOW - 3 * 86_400;
                p.exp = NOW - 120;
            },
            "time.expired",
        ),
        (
            "too-long",
            "The rule would stand 91 days; 90 is the most",
            |p, _, _| p.exp = p.iat + 91 * 86_400,
            "token.malformed",
        ),
        (
            "deny-with-bounds",
            "A denying rule that also names scopes",
            |p, _, _| p.effect = Effect::Deny,
            "token.malformed",
        ),
        (
            "approve-without-bounds",
            "An approving rule without max_depth",
            |p, _, _| p.max_depth = None,
            "token.malformed",
        ),
    ];
    for (name, description, edit, expect) in rules {
        let tag = format!("invalid-policy-{name}");
        let (mut p, mut r) = (rule(&tag), request(&format!("{tag}-request")));
        edit(&mut p, &mut r, cast);
        out.push((
            tag,
            policy_case(cast, description, p.sign(alice), r.sign(agent), expect),
        ));
    }
    for (name, description, signer, expect) in [
        (
            "signer-not-bound",
            "Alice's rule, signed by bob's key",
            &cast.bob,
            "signer.not_bound",
        ),
        (
            "signed-by-agent",
            "The agent writes itself a rule, signed with its own key",
            &cast.agents[0],
            "signer.not_bound",
        ),
    ] {
        let tag = format!("invalid-policy-{name}");
        out.push((
            tag.clone(),
            policy_case(
                cast,
                description,
                rule(&tag).sign(&signer.key),
                request(&format!("{tag}-request")).sign(agent),
                expect,
            ),
        ));
    }
    let tag = "invalid-policy-request-expired";
    let mut r = request(tag);
    r.iat = NOW - 600;
    r.exp = NOW - 300;
    out.push((
        tag.into(),
        policy_case(
            cast,
            "The request lapsed five minutes ago; a rule approves only live requests",
            rule(tag).sign(alice),
            r.sign(agent),
            "time.expired",
        ),
    ));
    out
}
