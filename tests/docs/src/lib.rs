//! Writes two docs from the code, so that they cannot drift from it:
//!
//! - `docs/errors.md`, every stable error code with its status, meaning
//!   and remedy, from the code's own enums ([`errors_md`]);
//! - `docs/broker-api.md`, every endpoint of the broker with its
//!   parameters, bodies, replies, examples, statuses and codes, from the
//!   broker's OpenAPI document ([`broker_api_md`]).
//!
//! `make docs` rewrites them (`MANDATE_WRITE_DOCS=1 cargo test -p
//! mandate-docs`); without it, the tests fail while either is stale.

mod api;
mod errors;
mod examples;

pub use api::broker_api_md;
pub use errors::errors_md;

/// A table cell: one line, with `|` escaped.
fn cell(text: &str) -> String {
    text.split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .replace('|', "\\|")
}

/// The header every generated file starts with.
fn generated(source: &str) -> String {
    format!(
        "<!-- Generated from {source} by `make docs` (tests/docs). Edit the code, not this file: a test fails while this file is stale. -->\n\n"
    )
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;
    use std::path::PathBuf;

    use serde_json::Value;

    use super::*;

    fn docs_dir() -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../docs")
    }

    /// Compares `file` with `wanted`, or writes it under MANDATE_WRITE_DOCS=1.
    fn current(file: &str, wanted: &str) {
        let path = docs_dir().join(file);
        if std::env::var_os("MANDATE_WRITE_DOCS").is_some() {
            std::fs::write(&path, wanted).expect("writing the doc");
            return;
        }
        let have = std::fs::read_to_string(&path).unwrap_or_default();
        if have != wanted {
            let line = have
                .lines()
                .zip(wanted.lines())
                .position(|(a, b)| a != b)
                .unwrap_or_else(|| have.lines().count().min(wanted.lines().count()));
            panic!(
                "docs/{file} is stale from line {} on; run `make docs` and commit it",
                line + 1
            );
        }
    }

    #[test]
    fn errors_md_is_current() {
        current("errors.md", &errors_md());
    }

    #[test]
    fn broker_api_md_is_current() {
        current(
            "broker-api.md",
            &broker_api_md().expect("every body has an example"),
        );
    }

    #[test]
    fn codes_are_unique_within_each_table_and_well_formed() {
        for (heading, codes) in errors::tables() {
            let mut seen = HashSet::new();
            for doc in &codes {
                assert!(seen.insert(doc.code), "{heading}: {} twice", doc.code);
                let ok = doc.code.split('.').all(|part| {
                    !part.is_empty() && part.chars().all(|c| c.is_ascii_lowercase() || c == '_')
                });
                assert!(ok, "{heading}: {} is not a code", doc.code);
                assert!(
                    !doc.meaning.is_empty() && !doc.remedy.is_empty(),
                    "{}",
                    doc.code
                );
            }
        }
    }

    #[test]
    fn the_protocol_docs_cover_every_rule_in_order() {
        let documented: Vec<&str> = mandate_core::Error::DOCS.iter().map(|d| d.code).collect();
        assert_eq!(documented, mandate_core::Error::CODES);
    }

    #[test]
    fn protocol_md_section_9_lists_every_rule_and_no_other() {
        let text = std::fs::read_to_string(docs_dir().join("protocol.md")).expect("protocol.md");
        let start = text.find("## 9. Error codes").expect("section 9");
        let end = text[start..]
            .find("\n## 10.")
            .map_or(text.len(), |e| start + e);
        let listed: HashSet<&str> = text[start..end]
            .lines()
            .filter_map(|l| l.strip_prefix("| `"))
            .filter_map(|l| l.split('`').next())
            .collect();
        let codes: HashSet<&str> = mandate_core::Error::CODES.iter().copied().collect();
        assert_eq!(listed, codes);
    }

    #[test]
    fn every_broker_code_is_answered_somewhere_and_every_operation_is_listed() {
        let doc = api::document();
        let mut answered: HashSet<&str> = mandate_broker::openapi::ANY_PATH
            .iter()
            .map(|c| c.as_str())
            .collect();
        for (method, path, op) in api::operations(&doc) {
            let signed_in = op["security"].is_array();
            let (codes, _) = mandate_broker::openapi::answers(&method, &path, signed_in)
                .unwrap_or_else(|| panic!("{method} {path} is not in openapi::ANSWERS"));
            answered.extend(codes.iter().map(|c| c.as_str()));
            // And the document shows each code under its status.
            for code in codes {
                let status = code.doc().status.expect("a broker code has a status");
                let shown = op["responses"][status.to_string()]["description"]
                    .as_str()
                    .unwrap_or("");
                assert!(
                    shown.contains(code.as_str()),
                    "{method} {path}: {code} not under {status}"
                );
            }
        }
        // Codes answered per item of a batch are named in the
        // operation's description.
        for (method, path, codes) in mandate_broker::openapi::PER_ITEM {
            let op = &doc["paths"][*path][*method];
            let text = op["description"].as_str().unwrap_or("");
            for code in *codes {
                assert!(
                    text.contains(&format!("`{}`", code.as_str())),
                    "{method} {path}: the description does not name {code}"
                );
                answered.insert(code.as_str());
            }
        }
        for answers in mandate_broker::openapi::ANSWERS {
            assert!(
                api::operations(&doc)
                    .iter()
                    .any(|(m, p, _)| m == answers.method && p == answers.path),
                "ANSWERS lists {} {}, which the document lacks",
                answers.method,
                answers.path
            );
        }
        for code in mandate_broker::Code::ALL {
            assert!(
                answered.contains(code.as_str()),
                "no endpoint answers {code}"
            );
        }
    }

    /// utoipa names a schema after its type alone, and a second type of
    /// the same name silently replaces the first in the document: every
    /// type the broker documents must have a name of its own.
    #[test]
    fn no_two_documented_types_share_a_name() {
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../crates/mandate-broker/src");
        let mut seen: Vec<(String, String)> = Vec::new();
        let entries = std::fs::read_dir(&dir)
            .expect("the broker's sources")
            .chain(std::fs::read_dir(dir.join("oauth")).expect("the broker's oauth sources"));
        for entry in entries.flatten() {
            let text = std::fs::read_to_string(entry.path()).unwrap_or_default();
            let mut documented = false;
            for line in text.lines() {
                let line = line.trim();
                if line.starts_with("#[derive(") && line.contains("ToSchema") {
                    documented = true;
                } else if documented
                    && let Some(rest) = line
                        .strip_prefix("pub struct ")
                        .or_else(|| line.strip_prefix("pub enum "))
                        .or_else(|| line.strip_prefix("struct "))
                {
                    let name: String = rest
                        .chars()
                        .take_while(|c| c.is_alphanumeric() || *c == '_')
                        .collect();
                    let file = entry.file_name().to_string_lossy().into_owned();
                    if let Some((_, other)) = seen.iter().find(|(n, _)| *n == name) {
                        panic!("{name} is documented in {other} and in {file}");
                    }
                    seen.push((name, file));
                    documented = false;
                }
            }
        }
        let doc = api::document();
        let schemas = doc["components"]["schemas"].as_object().expect("schemas");
        assert_eq!(seen.len(), schemas.len(), "{seen:?}");
    }

    #[test]
    fn every_body_example_is_a_body_the_broker_takes() {
        use mandate_broker::handlers::{
            BlockBody, ConfirmBody, ConfirmDecisionBody, DecisionBody, EnrollBody, RemoveBody,
            ReportBody, RevokeBody, SubmitBody, ToolsBody, WitnessBody,
        };
        let doc = api::document();
        let check = |name: &str, parse: &dyn Fn(Value) -> bool| {
            let example = examples::example(&doc, name).expect("an example");
            assert!(parse(example.clone()), "{name}: {example}");
        };
        check("SubmitBody", &|v| {
            serde_json::from_value::<SubmitBody>(v).is_ok()
        });
        check("EnrollBody", &|v| {
            serde_json::from_value::<EnrollBody>(v).is_ok()
        });
        check("RemoveBody", &|v| {
            serde_json::from_value::<RemoveBody>(v).is_ok()
        });
        check("DecisionBody", &|v| {
            serde_json::from_value::<DecisionBody>(v).is_ok()
        });
        check("RevokeBody", &|v| {
            serde_json::from_value::<RevokeBody>(v).is_ok()
        });
        check("ReportBody", &|v| {
            serde_json::from_value::<ReportBody>(v).is_ok()
        });
        check("WitnessBody", &|v| {
            serde_json::from_value::<WitnessBody>(v).is_ok()
        });
        check("BlockBody", &|v| {
            serde_json::from_value::<BlockBody>(v).is_ok()
        });
        check("ConfirmBody", &|v| {
            serde_json::from_value::<ConfirmBody>(v).is_ok()
        });
        check("ConfirmDecisionBody", &|v| {
            serde_json::from_value::<ConfirmDecisionBody>(v).is_ok()
        });
        check("ToolsBody", &|v| {
            serde_json::from_value::<ToolsBody>(v).is_ok()
        });
        check("TokenForm", &|v| {
            serde_json::from_value::<mandate_broker::oauth::TokenForm>(v).is_ok()
        });
        check("IntrospectForm", &|v| {
            serde_json::from_value::<mandate_broker::oauth::IntrospectForm>(v).is_ok()
        });
        check("ClientMetadata", &|v| {
            serde_json::from_value::<mandate_broker::oauth::client::ClientMetadata>(v).is_ok()
        });
        // Every operation's body is one of these.
        for (method, path, op) in api::operations(&doc) {
            let content = &op["requestBody"]["content"];
            let json = examples::reference(&content["application/json"]["schema"]);
            let form = examples::reference(&content["application/x-www-form-urlencoded"]["schema"]);
            if let Some(name) = json.or(form) {
                assert!(
                    [
                        "SubmitBody",
                        "EnrollBody",
                        "RemoveBody",
                        "DecisionBody",
                        "RevokeBody",
                        "ToolsBody",
                        "BlockBody",
                        "ConfirmBody",
                        "ConfirmDecisionBody",
                        "ReportBody",
                        "WitnessBody",
                        "TokenForm",
                        "IntrospectForm",
                        "ClientMetadata"
                    ]
                    .contains(&name),
                    "{method} {path}: check that {name}'s example parses"
                );
            }
        }
    }

    #[test]
    fn the_example_key_and_its_thumbprint_agree() {
        let jwk: mandate_core::Jwk = serde_json::from_value(serde_json::json!({
            "kty": "OKP", "crv": "Ed25519", "x": examples::X
        }))
        .expect("a JWK");
        let key = mandate_core::PublicKey::from_jwk(&jwk).expect("a key");
        assert_eq!(key.thumbprint().to_string(), examples::JKT);
    }
}

#[cfg(test)]
mod every_code_is_listed {
    use std::collections::BTreeSet;
    use std::path::{Path, PathBuf};

    /// String literals in the sources that look like codes but are not
    /// error codes: event kinds, action types, example names. A new
    /// literal of the shape `word.word` must be one of the documented codes
    /// or be added here, on purpose.
    const NOT_CODES: &[&str] = &[
        // The history's and the broker's event kinds.
        "binding.stored",
        "decision.delivered",
        "decision.refused",
        "denial.signed",
        "grant.reissued",
        "grant.signed",
        "grant.stored",
        "key.enrolled",
        "key.removed",
        "receipt.reported",
        "receipt.stored",
        "reissue.delivered",
        "reissue.refused",
        "request.created",
        "request.decided",
        "request.seen",
        "revocation.delivered",
        "revocation.refused",
        "revocation.signed",
        "block.stored",
        "confirmation.created",
        "confirmation.decided",
        "confirmation.refused",
        "confirmation.signed",
        "request.flagged",
        "rule.created",
        "rule.ended",
        "rule.matched",
        // Receipts' action types, in the demo and the tests.
        "audit_logs.read",
        "email.send",
        "files.read",
        "gdpr.finding",
        "market_data.read",
        "marketing_data.read",
        "oauth.token",
        "plan.outcome",
        "purchase_order.create",
        "purchase_order.place",
        "vendors.read",
        // The demo's resource servers' own refusals (docs/demo.md).
        "order.malformed",
        "order.unavailable",
        // Store errors no caller is answered with: the broker answers
        // `not_found` for a missing row, and the other two stop it at
        // start-up, before it serves anything.
        "store.not_found",
        "store.migration_failed",
        "store.unsupported_url",
        // Names: hosts, files, SQL aliases, and the macro's own example.
        "app.example",
        "broker.db",
        "broker.example",
        "history.sqlite",
        "localhost.example",
        "mandate.desktop",
        "mandate.example",
        "r.agent",
        "r.principal",
        "settings.json",
        "thing.slow",
        // OpenTelemetry attributes of the gateway's spans (docs/mcp.md).
        "error.type",
        "mandate.grant",
        "service.version",
    ];

    fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                sources(&path, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push(path);
            }
        }
    }

    /// Every `"word.word"` literal in `text`.
    fn literals(text: &str) -> BTreeSet<String> {
        let mut found = BTreeSet::new();
        for (i, piece) in text.split('"').enumerate() {
            let dotted = piece.split_once('.').is_some_and(|(a, b)| {
                !a.is_empty()
                    && !b.is_empty()
                    && piece
                        .chars()
                        .all(|c| c.is_ascii_lowercase() || c == '_' || c == '.')
                    && piece.matches('.').count() == 1
            });
            if i % 2 == 1 && dotted {
                found.insert(piece.to_owned());
            }
        }
        found
    }

    /// Every documented code.
    fn documented() -> BTreeSet<&'static str> {
        crate::errors::tables()
            .into_iter()
            .flat_map(|(_, codes)| codes.into_iter().map(|d| d.code))
            .collect()
    }

    #[test]
    fn every_code_in_the_sources_is_in_errors_md() {
        let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
        let mut files = Vec::new();
        let crates = std::fs::read_dir(root.join("crates")).expect("crates/");
        for krate in crates.flatten() {
            sources(&krate.path().join("src"), &mut files);
        }
        sources(&root.join("src-tauri/src"), &mut files);
        assert!(files.len() > 50, "read the sources: {}", files.len());
        let documented = documented();
        let mut missing = Vec::new();
        for file in &files {
            let text = std::fs::read_to_string(file).unwrap_or_default();
            for literal in literals(&text) {
                if !documented.contains(literal.as_str()) && !NOT_CODES.contains(&literal.as_str())
                {
                    missing.push(format!("{literal} in {}", file.display()));
                }
            }
        }
        assert!(
            missing.is_empty(),
            "codes missing from the enums of codes (and so from docs/errors.md), or literals to \
             add to NOT_CODES:\n{}",
            missing.join("\n")
        );
        // And no entry of NOT_CODES is a documented code.
        for literal in NOT_CODES.iter().chain(DOC_NAMES) {
            assert!(
                !documented.contains(literal),
                "{literal} is a documented code"
            );
        }
    }

    /// Names in the docs that look like codes but are not: files, and a
    /// token's first two parts.
    const DOC_NAMES: &[&str] = &["history.rs", "signin.rs", "header.payload"];

    /// The docs name no code that does not exist: every `` `word.word` ``
    /// whose first word is a family of codes (`auth`, `chain`, ...) is a
    /// documented code, or one of the names in NOT_CODES.
    #[test]
    fn the_docs_name_only_codes_that_exist() {
        let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
        let documented = documented();
        let families: BTreeSet<&str> = documented
            .iter()
            .filter_map(|c| c.split_once('.').map(|(f, _)| f))
            .collect();
        let mut files = vec![root.join("README.md")];
        for entry in std::fs::read_dir(root.join("docs"))
            .expect("docs/")
            .flatten()
        {
            if entry.path().extension().is_some_and(|e| e == "md") {
                files.push(entry.path());
            }
        }
        let mut unknown = Vec::new();
        for file in &files {
            let text = std::fs::read_to_string(file).unwrap_or_default();
            for (i, piece) in text.split('`').enumerate() {
                let Some((family, _)) = piece.split_once('.') else {
                    continue;
                };
                if i % 2 == 1
                    && literals(&format!("\"{piece}\"")).contains(piece)
                    && families.contains(family)
                    && !documented.contains(piece)
                    && !NOT_CODES.contains(&piece)
                    && !DOC_NAMES.contains(&piece)
                {
                    unknown.push(format!("{piece} in {}", file.display()));
                }
            }
        }
        assert!(
            unknown.is_empty(),
            "the docs name codes that do not exist:\n{}",
            unknown.join("\n")
        );
    }
}
