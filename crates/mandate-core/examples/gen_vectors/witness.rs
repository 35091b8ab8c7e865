//! Witness receipts (docs/protocol.md 4.10), in both forms: a compact
//! `mandate-witness+jwt` signed on its own (`*-witness-*`), and a receipt
//! of a report, `REPORT~INDEX~PATH~PAYLOAD` (`*-witness-report-*`). Each
//! file's chain verifies; its `witness` is checked against the chain's leaf
//! under the witness key (10.2 step 4).

use mandate_core::token::{Action, Claims as _, Outcome, WitnessClaims, WitnessReportClaims};
use mandate_core::{base64url, merkle};
use serde_json::{Value, json};

use super::fixture::*;
use super::valid::{valid, vector};

/// The gateway's resource URL: under the files location of the root scope.
const TARGET: &str = "https://files.example/v1/reports/mcp";
const WITNESS: &str = "mandate-witness+jwt";
const REPORT: &str = "mandate-witness-report+jwt";

/// The witness: a key of its own, in the `*-witness-*` files only.
fn witness() -> Party {
    Party::new(5)
}

/// The receipt of call `n` under the chain's leaf, by the leaf's key.
fn receipt(chain: &Chain, holder: &Party, n: usize) -> WitnessClaims {
    WitnessClaims {
        grant: chain.id(chain.tokens.len() - 1),
        holder: holder.jkt(),
        action: Action {
            kind: "tools/call".into(),
            target: TARGET.into(),
            summary: "Called the tool read_file".into(),
        },
        name: Some("read_file".into()),
        dig: mandate_core::token::digest_of(format!(r#"{{"call":{n}}}"#).as_bytes()),
        outcome: Outcome::Succeeded,
        trace: Some("4bf92f3577b34da6a3ce929d0e0e4736".into()),
        iat: NOW - 120 + n as i64,
        jti: jti(&format!("witness-{n}")),
    }
}

/// The claims' JSON, for raw edits.
fn json_of(claims: &WitnessClaims) -> Value {
    serde_json::to_value(claims).expect("claims serialize")
}

/// A payload (the claims' JSON in base64url) from a JSON value.
fn encode(v: &Value) -> String {
    base64url::encode(v.to_string())
}

/// A report of `payloads`, signed by `by` with `claims` edited by `edit`,
/// and each receipt's text: `REPORT~INDEX~PATH~PAYLOAD`.
fn report_of(payloads: &[String], by: &Party, edit: impl FnOnce(&mut Value)) -> Vec<String> {
    let leaves: Vec<_> = payloads
        .iter()
        .map(|p| merkle::leaf_hash(p.as_bytes()))
        .collect();
    let (root, paths) = merkle::root_and_paths(&leaves);
    let mut claims = serde_json::to_value(WitnessReportClaims {
        root: base64url::encode(root),
        size: payloads.len() as u64,
        iat: NOW - 10,
        jti: jti("report"),
    })
    .expect("claims serialize");
    edit(&mut claims);
    let report = by.raw(&by.header(REPORT), &claims.to_string());
    payloads
        .iter()
        .zip(paths)
        .enumerate()
        .map(|(i, (payload, path))| {
            let path: Vec<String> = path.iter().map(base64url::encode).collect();
            format!("{report}~{i}~{}~{payload}", path.join("."))
        })
        .collect()
}

/// The payloads of five receipts under `chain`.
fn five(chain: &Chain, holder: &Party) -> Vec<String> {
    (0..5)
        .map(|n| encode(&json_of(&receipt(chain, holder, n))))
        .collect()
}

/// The parts of a receipt of a report.
fn parts(text: &str) -> Vec<String> {
    text.split('~').map(str::to_owned).collect()
}

/// A vector for `chain` checking `token` under the witness key `key`.
fn case(cast: &Cast, description: &str, chain: &Chain, token: String, expect: &str) -> Vector {
    let w = witness();
    let mut v = if expect == "valid" {
        valid(cast, description, chain)
    } else {
        vector(cast, description, chain, expect)
    };
    v.keys.insert(w.jkt().to_string(), w.jwk());
    v.witness = Some(WitnessCase {
        token,
        key: w.jkt().to_string(),
    });
    v
}

pub fn cases(cast: &Cast) -> Vec<(String, Vector)> {
    let w = witness();
    let chain = Chain::straight(cast, 2, "witness");
    let holder = &cast.agents[1];
    let one = receipt(&chain, holder, 0);
    let signed = |v: &Value, by: &Party| by.raw(&by.header(WITNESS), &v.to_string());
    let edited = |edit: &dyn Fn(&mut Value)| {
        let mut v = json_of(&one);
        edit(&mut v);
        v
    };
    let payloads = five(&chain, holder);
    let report = report_of(&payloads, &w, |_| {});
    // Receipt 2 of 5: a path of three hashes.
    let r2 = parts(&report[2]);
    let join = |p: &[String]| p.join("~");
    // Receipt 2 with its part `i` (0 REPORT, 1 INDEX, 2 PATH, 3 PAYLOAD)
    // replaced.
    let r2_with = |i: usize, part: String| {
        let mut p = r2.clone();
        p[i] = part;
        p.join("~")
    };
    let in_report = |edit: &dyn Fn(&mut Value)| {
        let mut payloads = payloads.clone();
        let mut v = json_of(&receipt(&chain, holder, 2));
        edit(&mut v);
        payloads[2] = encode(&v);
        report_of(&payloads, &w, |_| {})[2].clone()
    };
    let reported = |edit: &dyn Fn(&mut Value)| report_of(&payloads, &w, edit)[2].clone();
    let mut out: Vec<(String, String, String, &str)> = Vec::new();
    let mut add = |name: &str, description: &str, token: String, expect: &'static str| {
        let prefix = if expect == "valid" {
            "valid"
        } else {
            "invalid"
        };
        out.push((
            format!("{prefix}-{name}"),
            description.to_owned(),
            token,
            expect,
        ));
    };

    // Signed on its own.
    add(
        "witness",
        "A witness receipt signed on its own, of a call under the leaf grant, to a resource the \
         grant's locations cover (its type is a method, which no detail grants: not checked)",
        one.sign(&w.key),
        "valid",
    );
    add(
        "witness-iat-within-skew",
        "A witness receipt made 60 s ahead of the verifier's clock: within the skew",
        signed(&edited(&|v| v["iat"] = json!(NOW + 60)), &w),
        "valid",
    );
    add(
        "witness-without-name-or-trace",
        "A witness receipt with neither of its optional claims, name and trace",
        signed(
            &edited(&|v| {
                let o = v.as_object_mut().expect("object");
                o.remove("name");
                o.remove("trace");
            }),
            &w,
        ),
        "valid",
    );
    add(
        "witness-agent-receipt",
        "An agent's receipt (mandate-receipt+jwt), signed by the witness key, offered as a \
         witness receipt",
        w.raw(&w.header("mandate-receipt+jwt"), &json_of(&one).to_string()),
        "header.wrong_typ",
    );
    add(
        "witness-is-a-report",
        "A witness report (mandate-witness-report+jwt) offered as a compact witness receipt",
        r2[0].clone(),
        "header.wrong_typ",
    );
    add(
        "witness-kid-mismatch",
        "A witness receipt signed by Mallory's key, checked under the witness key",
        signed(&json_of(&one), &cast.mallory),
        "header.kid_mismatch",
    );
    let token = one.sign(&w.key);
    add(
        "witness-signature",
        "A witness receipt whose signature's first character is changed",
        flip_signature(&token),
        "signature.invalid",
    );
    add(
        "witness-payload-changed",
        "A witness receipt whose outcome was changed after signing",
        {
            let mut p: Vec<&str> = token.split('.').collect();
            let changed = encode(&edited(&|v| v["outcome"] = json!("failed")));
            p[1] = &changed;
            p.join(".")
        },
        "signature.invalid",
    );
    add(
        "witness-from-future",
        "A witness receipt made 61 s ahead of the verifier's clock: beyond the skew",
        signed(&edited(&|v| v["iat"] = json!(NOW + 61)), &w),
        "time.not_yet_valid",
    );
    add(
        "witness-from-future-dig-short",
        "A witness receipt made 61 s ahead whose dig has 42 characters: the own rules run in \
         order, the time first",
        signed(
            &edited(&|v| {
                v["iat"] = json!(NOW + 61);
                v["dig"] = json!("A".repeat(42));
            }),
            &w,
        ),
        "time.not_yet_valid",
    );
    add(
        "witness-from-future-holder-short",
        "A witness receipt made 61 s ahead whose holder has 42 characters: reading the claims \
         comes before the own rules",
        signed(
            &edited(&|v| {
                v["iat"] = json!(NOW + 61);
                v["holder"] = json!("A".repeat(42));
            }),
            &w,
        ),
        "token.malformed",
    );
    add(
        "witness-dig-short",
        "A dig of 42 characters",
        signed(&edited(&|v| v["dig"] = json!("A".repeat(42))), &w),
        "token.malformed",
    );
    add(
        "witness-dig-not-canonical",
        "A dig of 43 characters whose last carries bits past the 32 bytes: it does not encode \
         back to itself",
        signed(
            &edited(&|v| {
                let mut d = v["dig"].as_str().expect("dig").to_owned();
                d.pop();
                d.push('B');
                v["dig"] = json!(d);
            }),
            &w,
        ),
        "token.malformed",
    );
    add(
        "witness-trace-uppercase",
        "A trace id in uppercase hex",
        signed(
            &edited(&|v| v["trace"] = json!("4BF92F3577B34DA6A3CE929D0E0E4736")),
            &w,
        ),
        "token.malformed",
    );
    add(
        "witness-trace-zero",
        "A trace id of all zeros, which W3C Trace Context calls invalid",
        signed(&edited(&|v| v["trace"] = json!("0".repeat(32))), &w),
        "token.malformed",
    );
    add(
        "witness-name-empty",
        "An empty name",
        signed(&edited(&|v| v["name"] = json!("")), &w),
        "token.malformed",
    );
    add(
        "witness-name-control",
        "A name with a line feed in it",
        signed(
            &edited(&|v| v["name"] = json!("read_file\nrun_command")),
            &w,
        ),
        "token.malformed",
    );
    add(
        "witness-outcome-unknown",
        "An outcome outside succeeded, failed and refused",
        signed(&edited(&|v| v["outcome"] = json!("done")), &w),
        "token.malformed",
    );
    add(
        "witness-unknown-claim",
        "A claim the table does not list",
        signed(&edited(&|v| v["cost"] = json!(3)), &w),
        "token.malformed",
    );
    add(
        "witness-other-grant",
        "A witness receipt naming the chain's root, not its leaf",
        signed(&edited(&|v| v["grant"] = json!(chain.id(0))), &w),
        "token.malformed",
    );
    add(
        "witness-target-outside-grant",
        "A witness receipt of a resource that no location of the leaf grant covers",
        signed(
            &edited(&|v| v["action"]["target"] = json!("https://files.example/v1/other/mcp")),
            &w,
        ),
        "call.out_of_scope",
    );

    add(
        "witness-target-dot-segment",
        "A witness receipt of a target that starts with a location of the leaf grant but \
         climbs out of it with a dot segment: outside 5.3's grammar, as a call's location",
        signed(
            &edited(&|v| {
                v["action"]["target"] = json!("https://files.example/v1/reports/../payroll/mcp")
            }),
            &w,
        ),
        "call.out_of_scope",
    );

    // In a report.
    add(
        "witness-report",
        "Receipt 2 of a report of five: its path holds three hashes",
        report[2].clone(),
        "valid",
    );
    add(
        "witness-report-last",
        "Receipt 4, the last, of a report of five: its path holds one hash, the head of the \
         first four",
        report[4].clone(),
        "valid",
    );
    add(
        "witness-report-of-one",
        "The one receipt of a report of one: its path is empty, and the root is its leaf hash",
        report_of(&payloads[..1], &w, |_| {})[0].clone(),
        "valid",
    );
    add(
        "witness-report-of-100",
        "Receipt 99, the last, of a report of 100, the most a report holds",
        {
            let many: Vec<String> = (0..100)
                .map(|n| encode(&json_of(&receipt(&chain, holder, n))))
                .collect();
            report_of(&many, &w, |_| {})[99].clone()
        },
        "valid",
    );
    add(
        "witness-report-too-large",
        "A receipt of a report whose text is over 16,384 bytes (a summary of 16,000), though \
         its report and path hold it",
        in_report(&|v| v["action"]["summary"] = json!("x".repeat(16_000))),
        "token.too_large",
    );
    add(
        "witness-report-three-parts",
        "REPORT~INDEX~PAYLOAD, the path left out",
        join(&[r2[0].clone(), r2[1].clone(), r2[3].clone()]),
        "token.malformed",
    );
    add(
        "witness-report-five-parts",
        "A fifth part after the payload",
        format!("{}~", report[2]),
        "token.malformed",
    );
    for (name, index, what) in [
        ("index-leading-zero", "02", "2 with a leading zero"),
        ("index-100", "100", "100: three digits"),
        ("index-sign", "+2", "2 with a plus sign"),
        ("index-empty", "", "empty"),
    ] {
        add(
            &format!("witness-report-{name}"),
            &format!("Receipt 2 of a report of five, its INDEX {what}"),
            r2_with(1, index.into()),
            "token.malformed",
        );
    }
    let hashes: Vec<String> = r2[2].split('.').map(str::to_owned).collect();
    let mut path_case = |name: &str, what: &str, path: String, expect: &'static str| {
        add(
            &format!("witness-report-path-{name}"),
            &format!("Receipt 2 of a report of five, {what}"),
            r2_with(2, path),
            expect,
        );
    };
    path_case(
        "trailing-dot",
        "its path ending in a `.`",
        format!("{}.", r2[2]),
        "token.malformed",
    );
    path_case(
        "padded",
        "a hash of its path with base64 padding",
        format!("{}=.{}", hashes[0], hashes[1..].join(".")),
        "token.malformed",
    );
    path_case(
        "not-canonical",
        "a hash of its path whose last character carries bits past the 32 bytes",
        {
            let mut h = hashes.clone();
            let mut first = h[0].clone();
            let last = first.pop().expect("a hash");
            first.push(if last == 'B' { 'C' } else { 'B' });
            h[0] = first;
            h.join(".")
        },
        "token.malformed",
    );
    path_case(
        "short",
        "the last hash of its path left out",
        hashes[..2].join("."),
        "signature.invalid",
    );
    path_case(
        "long",
        "a fourth hash added to its path",
        format!("{}.{}", r2[2], hashes[0]),
        "signature.invalid",
    );
    path_case(
        "bent",
        "the first hash of its path replaced by another's",
        {
            let mut h = hashes.clone();
            h[0] = base64url::encode([7u8; 32]);
            h.join(".")
        },
        "signature.invalid",
    );
    path_case(
        "reordered",
        "the first two hashes of its path swapped",
        {
            let mut h = hashes.clone();
            h.swap(0, 1);
            h.join(".")
        },
        "signature.invalid",
    );
    add(
        "witness-report-index-moved",
        "Receipt 2 of a report of five, with its path, claiming to be receipt 3",
        r2_with(1, "3".into()),
        "signature.invalid",
    );
    add(
        "witness-report-index-outside",
        "Receipt 4 of a report of five, with its path, claiming to be receipt 5 of the five",
        {
            let mut p = parts(&report[4]);
            p[1] = "5".into();
            join(&p)
        },
        "token.malformed",
    );
    add(
        "witness-report-payload-swapped",
        "Receipt 2's report, index and path, with receipt 3's payload",
        r2_with(3, payloads[3].clone()),
        "signature.invalid",
    );
    add(
        "witness-report-payload-changed",
        "Receipt 2 of a report of five, its outcome changed after the report was signed",
        {
            let mut v = json_of(&receipt(&chain, holder, 2));
            v["outcome"] = json!("failed");
            r2_with(3, encode(&v))
        },
        "signature.invalid",
    );
    add(
        "witness-report-signature",
        "Receipt 2 of a report of five, the report's signature's first character changed",
        r2_with(0, flip_signature(&r2[0])),
        "signature.invalid",
    );
    add(
        "witness-report-kid-mismatch",
        "A report signed by Mallory's key, checked under the witness key",
        report_of(&payloads, &cast.mallory, |_| {})[2].clone(),
        "header.kid_mismatch",
    );
    add(
        "witness-report-receipt-as-report",
        "A receipt whose REPORT is a compact witness receipt, not a report",
        r2_with(0, one.sign(&w.key)),
        "header.wrong_typ",
    );
    add(
        "witness-report-from-future",
        "A report signed 61 s ahead of the verifier's clock",
        reported(&|c| c["iat"] = json!(NOW + 61)),
        "time.not_yet_valid",
    );
    add(
        "witness-report-size-zero",
        "A report whose size is 0",
        reported(&|c| c["size"] = json!(0)),
        "token.malformed",
    );
    add(
        "witness-report-size-101",
        "A report whose size is 101, over the most a report holds",
        reported(&|c| c["size"] = json!(101)),
        "token.malformed",
    );
    add(
        "witness-report-size-smaller",
        "A report of five signed as of three: receipt 2's path of three hashes is not a path \
         in a tree of three",
        reported(&|c| c["size"] = json!(3)),
        "signature.invalid",
    );
    add(
        "witness-report-from-future-size-negative",
        "A report signed 61 s ahead whose size is -1: the size is read as an unsigned integer \
         with the claims, before the own rules",
        reported(&|c| {
            c["iat"] = json!(NOW + 61);
            c["size"] = json!(-1);
        }),
        "token.malformed",
    );
    add(
        "witness-report-from-future-size-zero",
        "A report signed 61 s ahead whose size is 0: the own rules run in order, the time first",
        reported(&|c| {
            c["iat"] = json!(NOW + 61);
            c["size"] = json!(0);
        }),
        "time.not_yet_valid",
    );
    add(
        "witness-report-root-short",
        "A report whose root has 42 characters",
        reported(&|c| c["root"] = json!("A".repeat(42))),
        "token.malformed",
    );
    add(
        "witness-report-unknown-claim",
        "A report with a claim its table does not list",
        reported(&|c| c["count"] = json!(5)),
        "token.malformed",
    );
    add(
        "witness-report-payload-not-base64",
        "A receipt of a report whose payload, a leaf of the signed tree, is not base64url",
        {
            let mut payloads = payloads.clone();
            payloads[2] = format!("{}*", payloads[2]);
            report_of(&payloads, &w, |_| {})[2].clone()
        },
        "token.malformed",
    );
    add(
        "witness-report-payload-not-json",
        "A receipt of a report whose payload, a leaf of the signed tree, is not JSON",
        {
            let mut payloads = payloads.clone();
            payloads[2] = base64url::encode("not json");
            report_of(&payloads, &w, |_| {})[2].clone()
        },
        "token.malformed",
    );
    add(
        "witness-report-payload-dig-short",
        "A receipt of a report, in the signed tree, whose dig has 42 characters",
        in_report(&|v| v["dig"] = json!("A".repeat(42))),
        "token.malformed",
    );
    add(
        "witness-report-payload-from-future",
        "A receipt of a report, in the signed tree, made 61 s ahead of the verifier's clock",
        in_report(&|v| v["iat"] = json!(NOW + 61)),
        "time.not_yet_valid",
    );
    add(
        "witness-report-other-grant",
        "A receipt of a report, in the signed tree, naming the chain's root, not its leaf",
        in_report(&|v| v["grant"] = json!(chain.id(0))),
        "token.malformed",
    );
    add(
        "witness-report-target-outside-grant",
        "A receipt of a report, in the signed tree, of a resource no location of the leaf \
         grant covers",
        in_report(&|v| v["action"]["target"] = json!("https://erp.example/other/mcp")),
        "call.out_of_scope",
    );

    add(
        "witness-report-target-dot-segment",
        "A receipt of a report, in the signed tree, of a target that climbs out of the leaf \
         grant's location with a dot segment",
        in_report(&|v| {
            v["action"]["target"] = json!("https://files.example/v1/reports/../payroll/mcp")
        }),
        "call.out_of_scope",
    );

    out.into_iter()
        .map(|(name, description, token, expect)| {
            let v = case(cast, &description, &chain, token, expect);
            (name, v)
        })
        .collect()
}

/// A compact token with the first character of its signature changed.
fn flip_signature(token: &str) -> String {
    let cut = token.rfind('.').expect("compact token") + 1;
    let first = token[cut..].chars().next().expect("a signature");
    let other = if first == 'A' { 'B' } else { 'A' };
    format!("{}{other}{}", &token[..cut], &token[cut + 1..])
}
