//! Vectors that must fail, each named after the rule it breaks.

use hmac::{Hmac, Mac as _};
use mandate_core::token::GrantClaims;
use mandate_core::{Claims as _, TokenId, base64url};
use serde_json::json;
use sha2::Sha256;

use super::fixture::*;
use super::valid::vector;

const GRANT: &str = "mandate-grant+jwt";

struct Out<'a> {
    cast: &'a Cast,
    cases: Vec<(String, Vector)>,
}

impl Out<'_> {
    fn add(&mut self, name: &str, description: &str, chain: &Chain, expect: &str) -> &mut Vector {
        let v = vector(self.cast, description, chain, expect);
        self.cases.push((format!("invalid-{name}"), v));
        &mut self.cases.last_mut().expect("just pushed").1
    }

    /// A chain of `depth` links whose link `at` is replaced by `token`.
    fn with_link(
        &mut self,
        name: &str,
        description: &str,
        depth: usize,
        at: usize,
        make: impl FnOnce(&Chain) -> String,
        expect: &str,
    ) {
        let mut chain = Chain::straight(self.cast, depth, name);
        chain.tokens[at] = make(&chain);
        self.add(name, description, &chain, expect);
    }

    /// A straight chain of `depth` links with `tweak` applied to link `at` before signing.
    fn tweaked(
        &mut self,
        name: &str,
        description: &str,
        depth: usize,
        at: usize,
        tweak: impl Fn(&mut GrantClaims),
        expect: &str,
    ) {
        let chain = Chain::straight_with(self.cast, depth, name, |i, c| {
            if i == at {
                tweak(c)
            }
        });
        self.add(name, description, &chain, expect);
    }
}

fn payload(chain: &Chain, i: usize) -> String {
    claims_json(&chain.claims[i])
}

/// Replaces the last part of a compact token.
fn with_signature(token: &str, sig: &[u8]) -> String {
    let cut = token.rfind('.').expect("compact token");
    format!("{}.{}", &token[..cut], base64url::encode(sig))
}

pub fn cases(cast: &Cast) -> Vec<(String, Vector)> {
    let mut out = Out {
        cast,
        cases: Vec::new(),
    };
    let a = &cast.alice;
    let m = &cast.mallory;

    // Headers.
    out.with_link(
        "alg-none",
        "alg none with an empty signature",
        2,
        0,
        |c| {
            let h = r#"{"alg":"none","typ":"mandate-grant+jwt"}"#;
            format!(
                "{}.{}.",
                base64url::encode(h),
                base64url::encode(payload(c, 0))
            )
        },
        "header.alg_not_allowed",
    );
    out.with_link(
        "alg-hs256-public-key",
        "HS256 keyed with the user's public key bytes",
        2,
        0,
        |c| {
            let h = format!(
                r#"{{"alg":"HS256","typ":"mandate-grant+jwt","kid":"{}"}}"#,
                a.jkt()
            );
            let input = format!(
                "{}.{}",
                base64url::encode(h),
                base64url::encode(payload(c, 0))
            );
            let mut mac =
                <Hmac<Sha256>>::new_from_slice(a.key.public().as_bytes()).expect("hmac key");
            mac.update(input.as_bytes());
            format!("{input}.{}", base64url::encode(mac.finalize().into_bytes()))
        },
        "header.alg_not_allowed",
    );
    out.with_link(
        "alg-hs256-public-jwk",
        "HS256 keyed with the user's public JWK text",
        1,
        0,
        |c| {
            let h = format!(
                r#"{{"alg":"HS256","typ":"mandate-grant+jwt","kid":"{}"}}"#,
                a.jkt()
            );
            let input = format!(
                "{}.{}",
                base64url::encode(h),
                base64url::encode(payload(c, 0))
            );
            let jwk = serde_json::to_string(&a.jwk()).expect("jwk");
            let mut mac = <Hmac<Sha256>>::new_from_slice(jwk.as_bytes()).expect("hmac key");
            mac.update(input.as_bytes());
            format!("{input}.{}", base64url::encode(mac.finalize().into_bytes()))
        },
        "header.alg_not_allowed",
    );
    out.with_link(
        "alg-es256",
        "An ECDSA alg on an Ed25519 signature",
        1,
        0,
        |c| {
            a.raw(
                &format!(
                    r#"{{"alg":"ES256","typ":"mandate-grant+jwt","kid":"{}"}}"#,
                    a.jkt()
                ),
                &payload(c, 0),
            )
        },
        "header.alg_not_allowed",
    );
    out.with_link(
        "alg-missing",
        "No alg header at all",
        1,
        0,
        |c| {
            a.raw(
                &format!(r#"{{"typ":"mandate-grant+jwt","kid":"{}"}}"#, a.jkt()),
                &payload(c, 0),
            )
        },
        "header.alg_not_allowed",
    );
    out.with_link(
        "crit-unknown",
        "A crit header naming an extension Mandate does not define",
        2,
        1,
        |c| {
            let h = format!(
                r#"{{"alg":"EdDSA","typ":"mandate-grant+jwt","kid":"{}","crit":["exp"]}}"#,
                cast.agents[0].jkt()
            );
            cast.agents[0].raw(&h, &payload(c, 1))
        },
        "header.crit_unsupported",
    );
    out.with_link(
        "jwk-header-untrusted",
        "Mallory signs a middle link and puts her own key in a jwk header",
        3,
        1,
        |c| {
            let jwk = serde_json::to_string(&m.jwk()).expect("jwk");
            let h = format!(
                r#"{{"alg":"EdDSA","typ":"mandate-grant+jwt","kid":"{}","jwk":{jwk}}}"#,
                m.jkt()
            );
            m.raw(&h, &payload(c, 1))
        },
        "header.untrusted_key",
    );
    out.with_link("jku-header", "A jku header pointing at a key set", 1, 0, |c| {
        let h = format!(r#"{{"alg":"EdDSA","typ":"mandate-grant+jwt","kid":"{}","jku":"https://evil.example/jwks"}}"#, a.jkt());
        a.raw(&h, &payload(c, 0))
    }, "header.untrusted_key");
    out.with_link(
        "x5c-header",
        "An x5c certificate chain header",
        1,
        0,
        |c| {
            let h = format!(
                r#"{{"alg":"EdDSA","typ":"mandate-grant+jwt","kid":"{}","x5c":["MIIB"]}}"#,
                a.jkt()
            );
            a.raw(&h, &payload(c, 0))
        },
        "header.untrusted_key",
    );
    out.with_link(
        "header-unknown-member",
        "A header member Mandate does not define",
        1,
        0,
        |c| {
            let h = format!(
                r#"{{"alg":"EdDSA","typ":"mandate-grant+jwt","kid":"{}","zip":"DEF"}}"#,
                a.jkt()
            );
            a.raw(&h, &payload(c, 0))
        },
        "header.unknown_member",
    );
    out.with_link(
        "kid-missing",
        "No kid, so no way to pick a bound user key",
        1,
        0,
        |c| {
            a.raw(
                r#"{"alg":"EdDSA","typ":"mandate-grant+jwt"}"#,
                &payload(c, 0),
            )
        },
        "header.kid_mismatch",
    );
    out.with_link(
        "typ-jwt",
        "typ JWT instead of mandate-grant+jwt",
        2,
        0,
        |c| a.raw(&a.header("JWT"), &payload(c, 0)),
        "header.wrong_typ",
    );
    out.with_link(
        "typ-missing",
        "No typ header",
        1,
        0,
        |c| {
            a.raw(
                &format!(r#"{{"alg":"EdDSA","kid":"{}"}}"#, a.jkt()),
                &payload(c, 0),
            )
        },
        "header.wrong_typ",
    );
    out.with_link(
        "typ-other-kind",
        "A receipt typ on a grant",
        2,
        1,
        |c| {
            cast.agents[0].raw(
                &cast.agents[0].header("mandate-receipt+jwt"),
                &payload(c, 1),
            )
        },
        "header.wrong_typ",
    );
    out.with_link(
        "typ-case-changed",
        "typ in capitals: Mandate compares typ exactly",
        1,
        0,
        |c| a.raw(&a.header("MANDATE-GRANT+JWT"), &payload(c, 0)),
        "header.wrong_typ",
    );
    out.with_link(
        "duplicate-header-member",
        "The header repeats alg",
        1,
        0,
        |c| {
            a.raw(
                &format!(
                    r#"{{"alg":"EdDSA","typ":"mandate-grant+jwt","kid":"{}","alg":"none"}}"#,
                    a.jkt()
                ),
                &payload(c, 0),
            )
        },
        "token.duplicate_key",
    );

    // Signatures and keys.
    out.with_link(
        "signature-bit-flipped",
        "One bit of the root's signature flipped",
        2,
        0,
        |c| {
            let t = &c.tokens[0];
            let mut sig = base64url::decode(&t[t.rfind('.').expect("dot") + 1..]).expect("sig");
            sig[10] ^= 0x01;
            with_signature(t, &sig)
        },
        "signature.invalid",
    );
    out.with_link(
        "signature-by-wrong-key",
        "The header names agent 0's key but Mallory signed",
        2,
        1,
        |c| m.raw(&cast.agents[0].header(GRANT), &payload(c, 1)),
        "signature.invalid",
    );
    out.with_link(
        "signature-payload-swapped",
        "A valid signature moved onto another payload",
        2,
        1,
        |c| {
            let mut other = c.claims[1].clone();
            other.purpose = "Exfiltrate everything".into();
            let forged = cast.agents[0].raw(&cast.agents[0].header(GRANT), &claims_json(&other));
            let sig = &c.tokens[1][c.tokens[1].rfind('.').expect("dot")..];
            format!("{}{sig}", &forged[..forged.rfind('.').expect("dot")])
        },
        "signature.invalid",
    );
    out.with_link(
        "signature-truncated",
        "The signature is 63 bytes",
        1,
        0,
        |c| {
            let t = &c.tokens[0];
            let sig = base64url::decode(&t[t.rfind('.').expect("dot") + 1..]).expect("sig");
            with_signature(t, &sig[..63])
        },
        "token.malformed",
    );
    out.with_link(
        "signer-not-parent-grantee",
        "Mallory signs link 1 as herself, but link 0 granted agent 0",
        3,
        1,
        |c| m.raw(&m.header(GRANT), &payload(c, 1)),
        "chain.wrong_signer",
    );
    out.with_link(
        "root-signed-by-unbound-key",
        "Mallory signs a root grant in Alice's name",
        2,
        0,
        |c| m.raw(&m.header(GRANT), &payload(c, 0)),
        "chain.root_not_bound",
    );
    out.with_link(
        "root-key-bound-to-another-user",
        "Bob's key signs a root grant whose sub is Alice",
        1,
        0,
        |c| cast.bob.raw(&cast.bob.header(GRANT), &payload(c, 0)),
        "chain.root_not_bound",
    );
    let chain = Chain::straight(cast, 3, "key-unknown");
    let v = out.add(
        "key-unknown",
        "The key of agent 1, who signs link 2, is not supplied",
        &chain,
        "key.unknown",
    );
    v.keys.remove(&cast.agents[1].jkt().to_string());
    let chain = Chain::straight(cast, 2, "key-substituted");
    let v = out.add("key-substituted-under-thumbprint", "Mallory's key is filed under agent 0's thumbprint; verifiers index keys by the thumbprint they compute", &chain, "key.unknown");
    v.keys.insert(cast.agents[0].jkt().to_string(), m.jwk());

    // Time.
    out.tweaked(
        "expired-root",
        "The root expired an hour ago",
        2,
        0,
        |c| {
            c.iat = NOW - 7200;
            c.nbf = NOW - 7200;
            c.exp = NOW - 3600;
        },
        "time.expired",
    );
    out.tweaked(
        "expired-leaf",
        "The leaf expired just beyond the clock skew",
        3,
        2,
        |c| c.exp = NOW - 60,
        "time.expired",
    );
    out.tweaked(
        "nbf-in-future",
        "The root is not valid for another hour",
        1,
        0,
        |c| {
            c.nbf = NOW + 3600;
            c.iat = NOW + 3600;
            c.exp = NOW + 7200;
        },
        "time.not_yet_valid",
    );
    out.tweaked(
        "empty-validity-window",
        "nbf equals exp",
        1,
        0,
        |c| c.nbf = c.exp,
        "time.empty_window",
    );
    out.tweaked(
        "child-outlives-parent",
        "Link 1 expires a second after link 0",
        2,
        1,
        |c| c.exp += 1,
        "chain.outlives_parent",
    );
    out.tweaked(
        "child-precedes-parent",
        "Link 1 becomes valid a second before link 0",
        2,
        1,
        |c| c.nbf -= 1,
        "chain.precedes_parent",
    );

    // Attenuation.
    let files = |actions: &[&str], loc: &str| detail("files", actions, &[loc]);
    out.tweaked(
        "escalated-action",
        "Link 1 adds delete",
        2,
        1,
        |c| {
            c.authorization_details = vec![files(
                &["read", "delete"],
                "https://files.example/v1/reports/",
            )]
        },
        "scope.escalated_action",
    );
    out.tweaked(
        "escalated-location-sibling",
        "Link 1 moves to a sibling directory",
        2,
        1,
        |c| c.authorization_details = vec![files(&["read"], "https://files.example/v1/payroll/")],
        "scope.escalated_location",
    );
    out.tweaked(
        "escalated-location-prefix-trick",
        "reports-archive is not under reports/",
        2,
        1,
        |c| {
            c.authorization_details = vec![files(
                &["read"],
                "https://files.example/v1/reports-archive/",
            )]
        },
        "scope.escalated_location",
    );
    out.tweaked(
        "escalated-location-wildcard",
        "Link 1 widens reports/ to v1/*",
        2,
        1,
        |c| c.authorization_details = vec![files(&["read"], "https://files.example/v1/*")],
        "scope.escalated_location",
    );
    let chain = Chain::straight_with(cast, 3, "escalated-location-exact", |i, c| match i {
        1 => {
            c.authorization_details = vec![files(&["read"], "https://files.example/v1/reports/q3")]
        }
        2 => {
            c.authorization_details =
                vec![files(&["read"], "https://files.example/v1/reports/q3/raw")]
        }
        _ => {}
    });
    out.add(
        "escalated-location-below-exact",
        "An exact location (no trailing / or *) covers nothing below it",
        &chain,
        "scope.escalated_location",
    );
    out.tweaked(
        "escalated-type",
        "Link 1 asks for mail",
        2,
        1,
        |c| {
            c.authorization_details = vec![detail(
                "mail",
                &["read"],
                &["https://files.example/v1/reports/"],
            )]
        },
        "scope.escalated_type",
    );
    let chain = Chain::straight_with(cast, 3, "escalated-identifier", |i, c| {
        let mut d = files(&["read"], "https://files.example/v1/reports/");
        d.identifier = match i {
            0 => None,
            1 => Some("q3".into()),
            _ => Some("q4".into()),
        };
        c.authorization_details = vec![d];
    });
    out.add(
        "escalated-identifier",
        "Link 2 swaps the identifier its parent pinned",
        &chain,
        "scope.escalated_type",
    );
    let po = |calls, amount: &str, cur: &str| {
        limited(
            detail(
                "purchase_order",
                &["create"],
                &["https://erp.example/vendors/"],
            ),
            Some(calls),
            Some(money(amount, cur)),
        )
    };
    out.tweaked(
        "escalated-limit-amount",
        "Link 1 raises the money limit by a cent",
        2,
        1,
        move |c| c.authorization_details = vec![po(20, "5000.01", "EUR")],
        "scope.escalated_limit",
    );
    out.tweaked(
        "escalated-limit-calls",
        "Link 1 raises max_calls",
        2,
        1,
        move |c| c.authorization_details = vec![po(21, "5000", "EUR")],
        "scope.escalated_limit",
    );
    out.tweaked(
        "escalated-limit-dropped",
        "Link 1 drops the limits altogether",
        2,
        1,
        |c| {
            c.authorization_details = vec![detail(
                "purchase_order",
                &["create"],
                &["https://erp.example/vendors/"],
            )]
        },
        "scope.escalated_limit",
    );
    out.tweaked(
        "escalated-limit-split",
        "Two child details of 3000 EUR each draw on one 5000 EUR budget",
        2,
        1,
        move |c| c.authorization_details = vec![po(5, "3000", "EUR"), po(5, "3000", "EUR")],
        "scope.escalated_limit",
    );
    out.tweaked(
        "escalated-currency",
        "Link 1 switches the limit to USD",
        2,
        1,
        move |c| c.authorization_details = vec![po(20, "10", "USD")],
        "scope.escalated_currency",
    );
    out.with_link(
        "malformed-scope-dot-segment",
        "A location with a .. segment",
        2,
        1,
        |c| {
            let p = payload(c, 1).replace(
                "https://files.example/v1/reports/",
                "https://files.example/v1/reports/../payroll/",
            );
            cast.agents[0].raw(&cast.agents[0].header(GRANT), &p)
        },
        "scope.malformed",
    );
    out.with_link(
        "malformed-scope-no-actions",
        "An authorization detail with no actions",
        1,
        0,
        |c| {
            let p = payload(c, 0).replace(r#"["list","read","write"]"#, "[]");
            a.raw(&a.header(GRANT), &p)
        },
        "scope.malformed",
    );

    // Linkage and depth.
    out.tweaked(
        "depth-not-decreasing",
        "Link 1 keeps its parent's max_depth",
        2,
        1,
        |c| c.max_depth = 8,
        "chain.depth_exceeded",
    );
    let chain = Chain::straight_with(cast, 3, "depth-exhausted", |i, c| {
        if i == 0 {
            c.max_depth = 1
        }
    });
    out.add(
        "depth-exhausted",
        "The root allows one hop; the chain makes two",
        &chain,
        "chain.depth_exceeded",
    );
    out.tweaked(
        "prf-mismatch",
        "Link 2 names a grant other than its parent",
        3,
        2,
        |c| c.prf = Some(TokenId::of("another grant")),
        "chain.prf_mismatch",
    );
    out.tweaked(
        "prf-missing",
        "Link 1 has no prf",
        2,
        1,
        |c| c.prf = None,
        "chain.prf_mismatch",
    );
    out.tweaked(
        "prf-at-root",
        "The root claims a parent",
        2,
        0,
        |c| c.prf = Some(TokenId::of("nothing")),
        "chain.prf_mismatch",
    );
    out.tweaked(
        "sub-changed",
        "Link 1 switches the principal to Bob",
        2,
        1,
        |c| c.sub = BOB.to_string().try_into().expect("principal"),
        "chain.sub_changed",
    );
    out.tweaked(
        "act-not-cnf",
        "act.sub names agent 5 but cnf.jkt is agent 1's key",
        2,
        1,
        |c| c.act.sub = cast.agents[5].key.public().agent_id(),
        "chain.act_mismatch",
    );
    let mut chain = Chain::straight(cast, 2, "loop-repeated-token");
    chain.tokens.push(chain.tokens[0].clone());
    out.add(
        "loop-repeated-token",
        "The root appears again as link 2",
        &chain,
        "chain.loop",
    );
    let chain = Chain::straight_with(cast, 3, "loop-agent", |i, c| {
        if i == 2 {
            c.act.sub = cast.agents[0].key.public().agent_id();
            c.cnf.jkt = cast.agents[0].jkt();
        }
    });
    out.add(
        "loop-agent-returns",
        "Agent 1 delegates back to agent 0, who granted it",
        &chain,
        "chain.loop",
    );
    let chain = Chain::straight_with(cast, 2, "loop-self", |i, c| {
        if i == 1 {
            c.act.sub = cast.agents[0].key.public().agent_id();
            c.cnf.jkt = cast.agents[0].jkt();
        }
    });
    out.add(
        "loop-self-delegation",
        "Agent 0 delegates to itself",
        &chain,
        "chain.loop",
    );
    let chain = Chain::straight(cast, 17, "too-many-links");
    out.add(
        "too-many-links",
        "17 links, one more than allowed",
        &chain,
        "chain.too_long",
    );
    out.add(
        "empty-chain",
        "No links at all",
        &Chain::default(),
        "chain.empty",
    );

    // Revocation.
    for (name, desc, depth, at) in [
        (
            "revoked-root",
            "The root is revoked; everything below falls",
            3,
            0,
        ),
        ("revoked-middle", "The middle link is revoked", 3, 1),
        ("revoked-leaf", "The leaf is revoked", 3, 2),
    ] {
        let chain = Chain::straight(cast, depth, name);
        let v = out.add(name, desc, &chain, "chain.revoked");
        v.revoked = vec![chain.id(at).to_string()];
    }
    let chain = Chain::straight(cast, 3, "key-removed");
    let v = out.add(
        "key-removed",
        "Alice removed the key that signed the root: every chain rooted in it falls",
        &chain,
        "chain.key_revoked",
    );
    v.revoked_keys = vec![cast.alice.jkt().to_string()];

    // Encoding and size.
    out.with_link(
        "oversized-token",
        "A purpose long enough to push the token past 16 KiB",
        1,
        0,
        |c| {
            let mut claims = c.claims[0].clone();
            claims.purpose = "x".repeat(13_000);
            claims.sign(&a.key)
        },
        "token.too_large",
    );
    out.with_link(
        "duplicate-claim",
        "The payload repeats exp, later and larger",
        1,
        0,
        |c| {
            let p = payload(c, 0);
            a.raw(
                &a.header(GRANT),
                &format!("{},\"exp\":{}}}", &p[..p.len() - 1], NOW + 999_999),
            )
        },
        "token.duplicate_key",
    );
    out.with_link(
        "duplicate-nested-claim",
        "An authorization detail repeats its actions",
        1,
        0,
        |c| {
            let p = payload(c, 0).replacen(
                r#""actions":["list","read","write"]"#,
                r#""actions":["read"],"actions":["list","read","write"]"#,
                1,
            );
            a.raw(&a.header(GRANT), &p)
        },
        "token.duplicate_key",
    );
    out.with_link(
        "unknown-claim",
        "A claim Mandate does not define",
        1,
        0,
        |c| {
            let p = payload(c, 0);
            a.raw(
                &a.header(GRANT),
                &format!("{},\"admin\":true}}", &p[..p.len() - 1]),
            )
        },
        "token.malformed",
    );
    out.with_link(
        "float-time",
        "exp as a float",
        1,
        0,
        |c| {
            let p = payload(c, 0).replace(
                &format!("\"exp\":{}", NOW + 3600),
                &format!("\"exp\":{}.5", NOW + 3600),
            );
            a.raw(&a.header(GRANT), &p)
        },
        "token.malformed",
    );
    out.with_link(
        "four-parts",
        "A fourth dot-separated part",
        1,
        0,
        |c| format!("{}.e30", c.tokens[0]),
        "token.malformed",
    );
    out.with_link(
        "base64-padding",
        "Padding on the signature part",
        1,
        0,
        |c| format!("{}==", c.tokens[0]),
        "token.malformed",
    );
    out.with_link(
        "payload-not-json",
        "The payload is not JSON",
        1,
        0,
        |_| a.raw(&a.header(GRANT), "not json"),
        "token.malformed",
    );

    out.with_link(
        "claims-member-as-array",
        "act written as an array: serde would read a struct from it, Mandate does not",
        2,
        1,
        |c| {
            let agent = c.claims[1].act.sub.to_string();
            let p = payload(c, 1).replace(
                &format!(r#""act":{{"sub":"{agent}"}}"#),
                &format!(r#""act":["{agent}"]"#),
            );
            cast.agents[0].raw(&cast.agents[0].header(GRANT), &p)
        },
        "token.malformed",
    );
    out.with_link(
        "claims-as-array",
        "The whole payload is a JSON array",
        1,
        0,
        |_| a.raw(&a.header(GRANT), r#"["https://idp.example#alice"]"#),
        "token.malformed",
    );
    out.with_link(
        "duplicate-escaped-claim",
        "exp repeated, the second spelled with a JSON escape",
        1,
        0,
        |c| {
            let p = payload(c, 0);
            a.raw(
                &a.header(GRANT),
                &format!("{},\"\\u0065xp\":{}}}", &p[..p.len() - 1], NOW + 999_999),
            )
        },
        "token.duplicate_key",
    );
    out.with_link(
        "jwk-header-with-private-key",
        "A jwk header that even carries a private part",
        1,
        0,
        |c| {
            let h = format!(
                r#"{{"alg":"EdDSA","typ":"mandate-grant+jwt","kid":"{}","jwk":{{"kty":"OKP","crv":"Ed25519","x":"{}","d":"AAAA"}}}}"#,
                a.jkt(),
                a.jwk().x
            );
            a.raw(&h, &payload(c, 0))
        },
        "header.untrusted_key",
    );
    out.with_link(
        "malformed-scope-lookalike",
        "A location hiding ../ behind fullwidth full stops (U+FF0E), .. after NFKC",
        2,
        1,
        |c| {
            let p = payload(c, 1).replace(
                "https://files.example/v1/reports/",
                "https://files.example/v1/reports/%EF%BC%8E%EF%BC%8E/payroll/",
            );
            cast.agents[0].raw(&cast.agents[0].header(GRANT), &p)
        },
        "scope.malformed",
    );
    out.with_link(
        "malformed-scope-escape",
        "A location with a % that is not an escape",
        2,
        1,
        |c| {
            let p = payload(c, 1).replace(
                "https://files.example/v1/reports/",
                "https://files.example/v1/reports/%%32%65%%32%65/",
            );
            cast.agents[0].raw(&cast.agents[0].header(GRANT), &p)
        },
        "scope.malformed",
    );
    out.tweaked(
        "empty-scope",
        "A grant with no authorization details",
        2,
        1,
        |c| c.authorization_details.clear(),
        "scope.malformed",
    );
    out.with_link(
        "malformed-scope-double-encoded",
        "A location hiding ../ behind a double percent-encoding",
        2,
        1,
        |c| {
            let p = payload(c, 1).replace(
                "https://files.example/v1/reports/",
                "https://files.example/v1/reports/%252e%252e/payroll/",
            );
            cast.agents[0].raw(&cast.agents[0].header(GRANT), &p)
        },
        "scope.malformed",
    );

    // Proofs of possession and calls.
    let pop_case = |out: &mut Out,
                    name: &str,
                    desc: &str,
                    token: &dyn Fn(&Chain) -> String,
                    htm: &str,
                    htu: &str,
                    expect: &str| {
        let chain = Chain::straight(cast, 2, name);
        let t = token(&chain);
        let v = out.add(name, desc, &chain, expect);
        v.pop = Some(PopCase {
            token: t,
            htm: htm.into(),
            htu: htu.into(),
            seen_before: false,
        });
    };
    let leaf = &cast.agents[1];
    pop_case(
        &mut out,
        "pop-wrong-key",
        "The proof is made by agent 0, not the leaf agent 1",
        &|c| c.pop(&cast.agents[0], "GET", HTU, NOW, "p1"),
        "GET",
        HTU,
        "pop.wrong_key",
    );
    pop_case(
        &mut out,
        "pop-forged-signature",
        "The proof names the leaf's key but Mallory signed it",
        &|c| {
            let claims = format!(
                r#"{{"htm":"GET","htu":"{HTU}","iat":{NOW},"jti":"p2","ath":"{}"}}"#,
                mandate_core::token::chain_hash(&c.tokens)
            );
            m.raw(
                &format!(
                    r#"{{"alg":"EdDSA","typ":"mandate-pop+jwt","kid":"{}"}}"#,
                    leaf.jkt()
                ),
                &claims,
            )
        },
        "GET",
        HTU,
        "signature.invalid",
    );
    pop_case(
        &mut out,
        "pop-stale",
        "The proof was made five minutes ago",
        &|c| c.pop(leaf, "GET", HTU, NOW - 300, "p3"),
        "GET",
        HTU,
        "pop.stale",
    );
    pop_case(
        &mut out,
        "pop-from-future",
        "The proof claims to be made five minutes from now",
        &|c| c.pop(leaf, "GET", HTU, NOW + 300, "p4"),
        "GET",
        HTU,
        "pop.stale",
    );
    let malformed = "https://files.example/v1/reports/%%32%65%%32%65/payroll";
    pop_case(
        &mut out,
        "pop-htu-malformed",
        "The proof and the call name the same URI, but its escapes are malformed",
        &|c| c.pop(leaf, "GET", malformed, NOW, "p-malformed"),
        "GET",
        malformed,
        "pop.htu_mismatch",
    );
    pop_case(
        &mut out,
        "pop-other-htu",
        "The proof is for another URI",
        &|c| c.pop(leaf, "GET", "https://files.example/v1/payroll", NOW, "p5"),
        "GET",
        HTU,
        "pop.htu_mismatch",
    );
    pop_case(
        &mut out,
        "pop-other-host",
        "The proof is for the same path on another host",
        &|c| {
            c.pop(
                leaf,
                "GET",
                "https://files.example.evil/v1/reports/q3",
                NOW,
                "p6",
            )
        },
        "GET",
        HTU,
        "pop.htu_mismatch",
    );
    pop_case(
        &mut out,
        "pop-other-method",
        "The proof is for GET, the call is DELETE",
        &|c| c.pop(leaf, "GET", HTU, NOW, "p7"),
        "DELETE",
        HTU,
        "pop.htm_mismatch",
    );
    pop_case(
        &mut out,
        "pop-other-chain",
        "The proof is bound to a different chain",
        &|_| Chain::straight(cast, 2, "pop-other-chain-b").pop(leaf, "GET", HTU, NOW, "p8"),
        "GET",
        HTU,
        "pop.ath_mismatch",
    );
    pop_case(
        &mut out,
        "pop-wrong-typ",
        "A grant presented as the proof",
        &|c| c.tokens[1].clone(),
        "GET",
        HTU,
        "header.wrong_typ",
    );
    let chain = Chain::straight(cast, 2, "pop-replayed");
    let t = chain.pop(leaf, "GET", HTU, NOW - 1, "p9");
    let v = out.add(
        "pop-replayed",
        "The same proof presented a second time",
        &chain,
        "pop.replayed",
    );
    v.pop = Some(PopCase {
        token: t,
        htm: "GET".into(),
        htu: HTU.into(),
        seen_before: true,
    });
    let call_case = |out: &mut Out, name: &str, desc: &str, call: serde_json::Value| {
        let chain = Chain::straight(cast, 2, name);
        let t = chain.pop(leaf, "POST", HTU, NOW, name);
        let v = out.add(name, desc, &chain, "call.out_of_scope");
        v.pop = Some(PopCase {
            token: t,
            htm: "POST".into(),
            htu: HTU.into(),
            seen_before: false,
        });
        v.call = Some(call);
    };
    call_case(
        &mut out,
        "call-action-not-granted",
        "The call deletes; the leaf may read, write and list",
        json!({"type": "files", "action": "delete", "location": "https://files.example/v1/reports/q3"}),
    );
    call_case(
        &mut out,
        "call-over-money-limit",
        "A 5000.01 EUR order against a 5000 EUR limit",
        json!({"type": "purchase_order", "action": "create", "location": "https://erp.example/vendors/acme", "amount": {"amount": "5000.01", "currency": "EUR"}}),
    );
    // The location grammar (protocol 5.3), one call per class: each names
    // a place outside `https://files.example/v1/reports/` to a server that
    // decodes leniently, twice, or normalizes.
    for (name, desc, location) in [
        (
            "call-location-malformed-escape",
            "A % not followed by two hex digits: %%32%65 is %2e to a double decoder",
            "https://files.example/v1/reports/%%32%65%%32%65/payroll",
        ),
        (
            "call-location-truncated-escape",
            "A % with one hex digit at the end",
            "https://files.example/v1/reports/q3%2",
        ),
        (
            "call-location-character",
            "A character RFC 3986 does not allow in a path",
            "https://files.example/v1/reports/q3|payroll",
        ),
        (
            "call-location-encoded-dot",
            "An escaped dot segment",
            "https://files.example/v1/reports/%2E%2E/payroll",
        ),
        (
            "call-location-encoded-control",
            "An escaped line feed",
            "https://files.example/v1/reports/q3%0Apayroll",
        ),
        (
            "call-location-encoded-semicolon",
            "An escaped ; after .., which path-parameter servers strip",
            "https://files.example/v1/reports/..%3B/payroll",
        ),
        (
            "call-location-overlong",
            "An overlong UTF-8 dot, %C0%AE",
            "https://files.example/v1/reports/%C0%AE%C0%AE/payroll",
        ),
        (
            "call-location-not-utf8",
            "An escape that starts a UTF-8 sequence and never ends it",
            "https://files.example/v1/reports/%E9/payroll",
        ),
        (
            "call-location-lookalike",
            "U+FF0F FULLWIDTH SOLIDUS, a / after NFKC",
            "https://files.example/v1/reports/..%EF%BC%8Fpayroll",
        ),
        (
            "call-location-path-parameter-dots",
            "A ..;x segment, which path-parameter servers read as ..",
            "https://files.example/v1/reports/..;x/payroll",
        ),
    ] {
        call_case(
            &mut out,
            name,
            desc,
            json!({"type": "files", "action": "read", "location": location}),
        );
    }
    call_case(
        &mut out,
        "call-location-traversal",
        "The call's location climbs out with ..",
        json!({"type": "files", "action": "read", "location": "https://files.example/v1/reports/../payroll"}),
    );
    silent_rules(&mut out);
    out.cases
}

/// A one-link chain whose root Alice signs under `header` over its payload
/// as `edit` rewrites it.
fn root_signed(
    out: &mut Out,
    name: &str,
    description: &str,
    header: &str,
    edit: impl FnOnce(String) -> String,
    expect: &str,
) {
    let cast = out.cast;
    out.with_link(
        name,
        description,
        1,
        0,
        |c| cast.alice.raw(header, &edit(payload(c, 0))),
        expect,
    );
}

/// [`root_signed`] under the standard header with `extra` members appended.
fn root_edited(
    out: &mut Out,
    name: &str,
    description: &str,
    extra: &str,
    edit: impl FnOnce(String) -> String,
    expect: &str,
) {
    let header = format!(
        r#"{{"alg":"EdDSA","typ":"{GRANT}","kid":"{}"{extra}}}"#,
        out.cast.alice.jkt()
    );
    root_signed(out, name, description, &header, edit, expect);
}

/// Appends `member` (`"name":value`) to the claims object.
fn with_member(p: String, member: &str) -> String {
    format!("{},{member}}}", &p[..p.len() - 1])
}

/// An object nested `depth` deep counting itself, whose innermost object
/// repeats a member name.
fn nested_repeat(depth: usize) -> String {
    let wrappers = depth - 1;
    format!(
        "{}{}{}",
        r#"{"x":"#.repeat(wrappers),
        r#"{"a":1,"a":1}"#,
        "}".repeat(wrappers)
    )
}

/// Cases where docs/protocol.md once left the answer open and the second
/// implementation (tests/second-impl) had to guess: repeats and escapes
/// inside header values (3.1, 3.2), `-0`, lone surrogates and nesting depth
/// in the claims (2.5), and when a detail's scope errors are noticed (5.1).
fn silent_rules(out: &mut Out) {
    let x = out.cast.alice.jwk().x;
    let files = r#""locations":["https://files.example/v1/reports/"]}"#;

    // Repeats inside header values: only the header's own members count.
    root_edited(
        out,
        "header-nested-repeat",
        "An unknown header member whose object value repeats a name: only the header's own member names are checked for repeats",
        r#","zip":{"a":1,"a":2}"#,
        |p| p,
        "header.unknown_member",
    );
    root_edited(
        out,
        "header-nested-repeat-crit",
        "crit with a value that repeats a name: crit is refused for being there, its value is not read",
        r#","crit":{"exp":1,"exp":2}"#,
        |p| p,
        "header.crit_unsupported",
    );
    root_edited(
        out,
        "jwk-header-repeated-member",
        "A jwk header that repeats x: the key is unusable, and a grant refuses jwk usable or not",
        &format!(r#","jwk":{{"kty":"OKP","crv":"Ed25519","x":"{x}","x":"{x}"}}"#),
        |p| p,
        "header.untrusted_key",
    );

    // Escapes that decode to a lone surrogate.
    root_edited(
        out,
        "header-lone-surrogate-name",
        "A header member name that is a lone surrogate escape",
        r#","\ud800":1"#,
        |p| p,
        "token.malformed",
    );
    root_signed(
        out,
        "header-lone-surrogate-kid",
        "A kid that is a lone surrogate escape: the header is malformed, before kid is checked",
        &format!(r#"{{"alg":"EdDSA","typ":"{GRANT}","kid":"\udc00"}}"#),
        |p| p,
        "token.malformed",
    );
    root_edited(
        out,
        "header-lone-surrogate-unknown-member",
        "An unknown header member whose string value is a lone surrogate escape: that value is not read",
        r#","zip":"\udc00""#,
        |p| p,
        "header.unknown_member",
    );
    root_edited(
        out,
        "jwk-header-lone-surrogate",
        "A jwk header whose kid is a lone surrogate escape: the key is unusable, not the header malformed",
        &format!(r#","jwk":{{"kty":"OKP","crv":"Ed25519","x":"{x}","kid":"\ud800"}}"#),
        |p| p,
        "header.untrusted_key",
    );
    let cast = out.cast;
    let mut not_utf8 = format!(
        r#"{{"alg":"EdDSA","typ":"{GRANT}","kid":"{}","jwk":{{"kty":"OKP","crv":"Ed25519","x":"{x}","kid":""#,
        cast.alice.jkt()
    )
    .into_bytes();
    not_utf8.extend_from_slice(b"\xed\xa0\x80\"}}");
    out.with_link(
        "jwk-header-not-utf8",
        "A jwk header whose kid holds bytes that are not UTF-8 (a surrogate encoded raw): unlike an escape, that stops the header parser",
        1,
        0,
        |c| cast.alice.raw_bytes(&not_utf8, &payload(c, 0)),
        "token.malformed",
    );
    root_edited(
        out,
        "claims-lone-surrogate",
        "purpose holds a lone surrogate escape",
        "",
        |p| p.replacen(r#""purpose":"Prepare"#, r#""purpose":"\ud800Prepare"#, 1),
        "token.malformed",
    );

    // -0 is not an integer.
    root_edited(
        out,
        "claims-negative-zero-max-depth",
        "max_depth written -0: not an integer, though 0 would be valid here",
        "",
        |p| p.replacen(r#""max_depth":8"#, r#""max_depth":-0"#, 1),
        "token.malformed",
    );
    root_edited(
        out,
        "claims-negative-zero-time",
        "iat written -0: not an integer, though 0 would be valid here",
        "",
        |p| p.replacen(&format!(r#""iat":{}"#, NOW - 600), r#""iat":-0"#, 1),
        "token.malformed",
    );

    // Nesting depth: the claims object is depth 1; depth 128 is refused.
    root_edited(
        out,
        "duplicate-claim-127-deep",
        "A repeated name in an object 127 deep: depth 127 is still read, so the repeat decides",
        "",
        |p| with_member(p, &format!(r#""x":{}"#, nested_repeat(126))),
        "token.duplicate_key",
    );
    root_edited(
        out,
        "claims-nested-128-deep",
        "An object 128 deep, whose members repeat a name: the depth is refused before the repeat is read",
        "",
        |p| with_member(p, &format!(r#""x":{}"#, nested_repeat(127))),
        "token.malformed",
    );
    root_edited(
        out,
        "header-nested-3000-deep",
        "An unknown header member holding arrays 3000 deep: the header has no depth limit",
        &format!(r#","zip":{}{}"#, "[".repeat(3000), "]".repeat(3000)),
        |p| p,
        "header.unknown_member",
    );

    // When a detail's scope errors are noticed (5.1).
    root_edited(
        out,
        "scope-empty-actions-then-unknown-member",
        "A detail with no actions and, later, an unknown member: emptiness is checked when the detail ends",
        "",
        |p| {
            p.replacen(r#"["list","read","write"]"#, "[]", 1).replacen(
                files,
                r#""locations":["https://files.example/v1/reports/"],"datatypes":"report"}"#,
                1,
            )
        },
        "token.malformed",
    );
    root_edited(
        out,
        "scope-empty-type-then-unknown-member",
        "A detail with an empty type and, later, an unknown member: names are checked when the detail ends",
        "",
        |p| {
            p.replacen(r#""type":"files""#, r#""type":"""#, 1).replacen(
                files,
                r#""locations":["https://files.example/v1/reports/"],"datatypes":"report"}"#,
                1,
            )
        },
        "token.malformed",
    );
    root_edited(
        out,
        "scope-empty-actions-missing-locations",
        "A detail with no actions and no locations member: the missing member is noticed first",
        "",
        |p| {
            p.replacen(
                r#""actions":["list","read","write"],"locations":["https://files.example/v1/reports/"]"#,
                r#""actions":[]"#,
                1,
            )
        },
        "token.malformed",
    );
    root_edited(
        out,
        "scope-bad-location-then-unknown-member",
        "A detail with a dot segment in a location and, later, an unknown member: a location is checked where it stands",
        "",
        |p| {
            p.replacen(
                files,
                r#""locations":["https://files.example/v1/reports/../payroll/"],"datatypes":"report"}"#,
                1,
            )
        },
        "scope.malformed",
    );
    root_edited(
        out,
        "scope-bad-amount-then-unknown-member",
        "A money limit whose amount has a grouping comma and, later in the detail, an unknown member: an amount is checked where it stands",
        "",
        |p| {
            p.replacen(r#""amount":"5000.00""#, r#""amount":"5,000.00""#, 1)
                .replacen(
                    r#""currency":"EUR"}}}"#,
                    r#""currency":"EUR"}},"datatypes":"order"}"#,
                    1,
                )
        },
        "scope.malformed",
    );
    root_edited(
        out,
        "scope-empty-actions-then-unknown-claim",
        "A detail with no actions, then an unknown claim after authorization_details: the detail's end comes first",
        "",
        |p| {
            with_member(
                p.replacen(r#"["list","read","write"]"#, "[]", 1),
                r#""admin":true"#,
            )
        },
        "scope.malformed",
    );
}
