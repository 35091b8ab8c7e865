//! Vectors that must verify.

use serde_json::json;

use super::fixture::*;

/// A vector for `chain` with every key of the cast and the standard bindings.
pub fn vector(cast: &Cast, description: &str, chain: &Chain, expect: &str) -> Vector {
    let mut keys = std::collections::BTreeMap::new();
    for p in [&cast.alice, &cast.alice_laptop, &cast.bob, &cast.mallory]
        .into_iter()
        .chain(cast.agents.iter())
    {
        keys.insert(p.jkt().to_string(), p.jwk());
    }
    Vector {
        description: description.into(),
        now: NOW,
        keys,
        user_bindings: vec![
            Binding {
                sub: ALICE.into(),
                jkt: cast.alice.jkt().to_string(),
            },
            Binding {
                sub: ALICE.into(),
                jkt: cast.alice_laptop.jkt().to_string(),
            },
            Binding {
                sub: BOB.into(),
                jkt: cast.bob.jkt().to_string(),
            },
        ],
        chain: chain.tokens.clone(),
        revoked: vec![],
        revoked_keys: vec![],
        pop: None,
        call: None,
        confirmation: None,
        policy: None,
        witness: None,
        expect: expect.into(),
        verified: None,
    }
}

/// A valid vector, with the result a verifier must report, computed from the claims.
pub fn valid(cast: &Cast, description: &str, chain: &Chain) -> Vector {
    let leaf = chain.claims.last().expect("non-empty chain");
    let mut v = vector(cast, description, chain, "valid");
    v.verified = Some(json!({
        "principal": chain.claims[0].sub,
        "leaf_agent": leaf.act.sub,
        "expires_at": chain.claims.iter().map(|c| c.exp).min(),
        "depth_left": leaf.max_depth,
        "scopes": leaf.authorization_details,
    }));
    v
}

fn with_pop(mut v: Vector, chain: &Chain, leaf: &Party, n: &str) -> Vector {
    v.pop = Some(PopCase {
        token: chain.pop(leaf, "GET", HTU, NOW - 5, n),
        htm: "GET".into(),
        htu: HTU.into(),
        seen_before: false,
    });
    v
}

pub fn cases(cast: &Cast) -> Vec<(String, Vector)> {
    let mut out = Vec::new();
    for depth in 1..=8 {
        let chain = Chain::straight(cast, depth, &format!("valid-depth-{depth}"));
        let mut v = valid(
            cast,
            &format!("A straight chain of {depth} link(s), each as wide as its parent"),
            &chain,
        );
        if depth % 2 == 0 {
            v = with_pop(
                v,
                &chain,
                &cast.agents[depth - 1],
                &format!("pop-depth-{depth}"),
            );
            v.description
                .push_str(", with a fresh proof of possession by the leaf");
        }
        out.push((format!("valid-depth-{depth}"), v));
    }

    let chain = Chain::straight_with(cast, 16, "valid-max-links", |i, c| {
        if i == 0 {
            c.max_depth = 15
        }
    });
    out.push((
        "valid-max-links".into(),
        valid(
            cast,
            "A chain of exactly 16 links, the most allowed, from a root that allows 15 hops",
            &chain,
        ),
    ));

    let chain = Chain::straight_with(cast, 3, "valid-narrowed-actions", |i, c| {
        if i > 0 {
            c.authorization_details = vec![detail(
                "files",
                &["read"],
                &["https://files.example/v1/reports/"],
            )];
        }
    });
    out.push((
        "valid-narrowed-actions".into(),
        valid(cast, "Sub-agents keep only the read action", &chain),
    ));

    let chain = Chain::straight_with(cast, 3, "valid-narrowed-locations", |i, c| match i {
        1 => {
            c.authorization_details = vec![detail(
                "files",
                &["read", "list"],
                &["https://files.example/v1/reports/2026/"],
            )]
        }
        2 => {
            c.authorization_details = vec![detail(
                "files",
                &["read"],
                &["https://files.example/v1/reports/2026/q3.pdf"],
            )]
        }
        _ => {}
    });
    out.push((
        "valid-narrowed-locations".into(),
        valid(
            cast,
            "Locations narrow from a directory to a subdirectory to one file",
            &chain,
        ),
    ));

    let chain = Chain::straight_with(cast, 3, "valid-wildcard", |i, c| match i {
        0 => {
            c.authorization_details =
                vec![detail("k8s.pods", &["get", "list"], &["cluster-1/ns/*"])]
        }
        1 => {
            c.authorization_details = vec![detail(
                "k8s.pods",
                &["get", "list"],
                &["cluster-1/ns/payments*"],
            )]
        }
        _ => {
            c.authorization_details =
                vec![detail("k8s.pods", &["get"], &["cluster-1/ns/payments-eu"])]
        }
    });
    out.push((
        "valid-wildcard-locations".into(),
        valid(
            cast,
            "A trailing * covers every location that starts with what precedes it",
            &chain,
        ),
    ));

    let chain = Chain::straight_with(cast, 3, "valid-limits", |i, c| match i {
        1 => {
            c.authorization_details = vec![limited(
                detail(
                    "purchase_order",
                    &["create"],
                    &["https://erp.example/vendors/"],
                ),
                Some(10),
                Some(money("1000", "EUR")),
            )]
        }
        2 => {
            c.authorization_details = vec![limited(
                detail(
                    "purchase_order",
                    &["create"],
                    &["https://erp.example/vendors/acme"],
                ),
                Some(2),
                Some(money("999.99", "EUR")),
            )]
        }
        _ => {}
    });
    out.push((
        "valid-narrowed-limits".into(),
        valid(
            cast,
            "Call and money limits shrink at each hop, in the same currency",
            &chain,
        ),
    ));

    let chain = Chain::straight_with(cast, 2, "valid-split-budget", |i, c| {
        if i == 1 {
            let half = |loc: &str| {
                limited(
                    detail("purchase_order", &["create"], &[loc]),
                    Some(10),
                    Some(money("2500", "EUR")),
                )
            };
            c.authorization_details = vec![
                half("https://erp.example/vendors/acme"),
                half("https://erp.example/vendors/globex"),
            ];
        }
    });
    out.push((
        "valid-split-budget".into(),
        valid(
            cast,
            "Two child details share their parent's budget and together use all of it",
            &chain,
        ),
    ));

    let chain = Chain::straight_with(cast, 2, "valid-identifier", |i, c| {
        if i == 1 {
            let mut d = detail("files", &["read"], &["https://files.example/v1/reports/"]);
            d.identifier = Some("q3-2026".into());
            c.authorization_details = vec![d];
        }
    });
    out.push((
        "valid-identifier-added".into(),
        valid(
            cast,
            "A child may pin an identifier its parent left open",
            &chain,
        ),
    ));

    let chain = Chain::straight_with(cast, 3, "valid-lifetime", |i, c| {
        c.exp -= 600 * i as i64;
        c.nbf += 60 * i as i64;
        c.iat = c.nbf;
    });
    out.push((
        "valid-shorter-lifetimes".into(),
        valid(
            cast,
            "Each hop starts later and ends sooner than its parent",
            &chain,
        ),
    ));

    let chain = Chain::straight_with(cast, 1, "valid-skew-exp", |_, c| c.exp = NOW - 30);
    out.push((
        "valid-expired-within-skew".into(),
        valid(cast, "Expired 30 s ago, within the 60 s clock skew", &chain),
    ));

    let chain = Chain::straight_with(cast, 1, "valid-skew-nbf", |_, c| {
        c.nbf = NOW + 30;
        c.iat = NOW + 30;
    });
    out.push((
        "valid-nbf-within-skew".into(),
        valid(
            cast,
            "Valid from 30 s from now, within the 60 s clock skew",
            &chain,
        ),
    ));

    let mut chain = Chain::default();
    let claims = root_claims(ALICE, &cast.agents[0], "valid-second-device");
    chain.push(
        mandate_core::Claims::sign(&claims, &cast.alice_laptop.key),
        claims,
    );
    out.push((
        "valid-second-user-key".into(),
        valid(
            cast,
            "The root is signed by the user's second bound key",
            &chain,
        ),
    ));

    let chain = Chain::straight(cast, 2, "valid-alg-ed25519");
    let mut rebuilt = Chain::default();
    let header = format!(
        r#"{{"alg":"Ed25519","typ":"mandate-grant+jwt","kid":"{}"}}"#,
        cast.alice.jkt()
    );
    let root = chain.claims[0].clone();
    rebuilt.push(cast.alice.raw(&header, &claims_json(&root)), root.clone());
    let mut child = child_claims(
        &root,
        &rebuilt.tokens[0],
        &cast.agents[1],
        "valid-alg-ed25519-1",
    );
    child.max_depth = 0;
    rebuilt.push(
        mandate_core::Claims::sign(&child, &cast.agents[0].key),
        child,
    );
    out.push(("valid-alg-ed25519".into(), valid(cast, "The fully-specified alg name Ed25519 is accepted like EdDSA; the leaf may not delegate further", &rebuilt)));

    let chain = Chain::straight(cast, 3, "valid-unrelated-revocation");
    let mut v = valid(
        cast,
        "The revocation set holds only an unrelated grant id",
        &chain,
    );
    v.revoked = vec![mandate_core::TokenId::of("an unrelated grant").to_string()];
    out.push(("valid-unrelated-revocation".into(), v));

    let chain = Chain::straight(cast, 2, "valid-other-key-removed");
    let mut v = valid(
        cast,
        "Alice removed her laptop's key; this chain is rooted in her other key",
        &chain,
    );
    v.revoked_keys = vec![cast.alice_laptop.jkt().to_string()];
    out.push(("valid-other-key-removed".into(), v));

    let chain = Chain::straight(cast, 2, "valid-pop-query");
    let mut v = with_pop(
        valid(
            cast,
            "The proof's htu ignores the query string of the call",
            &chain,
        ),
        &chain,
        &cast.agents[1],
        "pop-query",
    );
    if let Some(p) = v.pop.as_mut() {
        p.htu = format!("{HTU}?page=2");
    }
    out.push(("valid-pop-htu-query-ignored".into(), v));

    let chain = Chain::straight(cast, 2, "valid-call");
    let mut v = with_pop(
        valid(
            cast,
            "A purchase order within the leaf's money limit",
            &chain,
        ),
        &chain,
        &cast.agents[1],
        "pop-call",
    );
    v.call = Some(
        json!({"type": "purchase_order", "action": "create", "location": "https://erp.example/vendors/acme", "amount": {"amount": "4999.99", "currency": "EUR"}}),
    );
    out.push(("valid-call-within-scope".into(), v));

    let chain = Chain::straight(cast, 2, "valid-call-escapes");
    let mut v = with_pop(
        valid(
            cast,
            "A call whose location holds escapes the grammar allows: a space, UTF-8 and a ;",
            &chain,
        ),
        &chain,
        &cast.agents[1],
        "pop-call-escapes",
    );
    v.call = Some(
        json!({"type": "files", "action": "read", "location": "https://files.example/v1/reports/caf%C3%A9%20q3;v=2"}),
    );
    out.push(("valid-call-escaped-location".into(), v));
    out.push(("valid-scopes-canonical-form".into(), canonical_form(cast)));
    out
}

/// A root whose details are written the long way round: `verified.scopes`
/// gives their canonical form (protocol 10.2 step 7).
fn canonical_form(cast: &Cast) -> Vector {
    let root = root_claims(ALICE, &cast.agents[0], "valid-scopes-canonical-form");
    let plain = serde_json::to_string(&root.authorization_details).expect("details");
    let written = concat!(
        r#"[{"type":"files","actions":["write","read","Write","read","ｒead","🔒lock"],"#,
        r#""locations":["https://files.example/v1/reports/b/","https://files.example/v1/reports/a/","https://files.example/v1/reports/b/"],"#,
        r#""limits":{}},"#,
        r#"{"type":"purchase_order","actions":["create"],"locations":["https://erp.example/vendors/"],"#,
        r#""identifier":null,"limits":{"max_calls":null,"max_amount":{"amount":"0050.50","currency":"EUR"}}}]"#,
    );
    let payload = claims_json(&root).replacen(&plain, written, 1);
    let claims: mandate_core::token::GrantClaims =
        serde_json::from_str(&payload).expect("the claims read");
    let mut chain = Chain::default();
    chain.push(
        cast.alice
            .raw(&cast.alice.header("mandate-grant+jwt"), &payload),
        claims,
    );
    valid(
        cast,
        "Details as written: actions unsorted and repeated, locations unsorted and repeated, a limits object that sets no limit, null for absent members, an amount with leading zeros",
        &chain,
    )
}
