//! docs/broker-api.md, from the broker's OpenAPI document and its table of
//! answers (`mandate_broker::openapi::answers`).

use std::fmt::Write as _;

use serde_json::Value;

use crate::examples::{example, reference};
use crate::{cell, generated};

/// The broker's OpenAPI document, as `/openapi.json` serves it.
pub fn document() -> Value {
    serde_json::to_value(<mandate_broker::openapi::ApiDoc as utoipa::OpenApi>::openapi())
        .unwrap_or_default()
}

/// Every operation of the document: (method, path, operation).
pub fn operations(doc: &Value) -> Vec<(String, String, Value)> {
    let mut out = Vec::new();
    if let Some(paths) = doc["paths"].as_object() {
        for (path, item) in paths {
            for method in ["get", "post", "delete"] {
                if let Some(op) = item.get(method) {
                    out.push((method.to_owned(), path.clone(), op.clone()));
                }
            }
        }
    }
    // In the order of the broker's table of answers, which follows a
    // reader: agents, then users, then revocations.
    let rank = |method: &str, path: &str| {
        mandate_broker::openapi::ANSWERS
            .iter()
            .position(|a| a.method == method && a.path == path)
            .unwrap_or(usize::MAX)
    };
    out.sort_by_key(|(method, path, _)| rank(method, path));
    out
}

/// The whole of docs/broker-api.md; an error names what lacks an example.
pub fn broker_api_md() -> Result<String, String> {
    let doc = document();
    let mut out = String::from("# The broker's HTTP API\n\n");
    out.push_str(&generated(
        "the broker's OpenAPI document (`crates/mandate-broker/src/openapi.rs` and the handlers' annotations; served at `GET /openapi.json`)",
    ));
    out.push_str(CONVENTIONS);
    out.push_str("## Endpoints\n\n| endpoint | who | what |\n|---|---|---|\n");
    let ops = operations(&doc);
    for (method, path, op) in &ops {
        let _ = writeln!(
            out,
            "| [`{} {path}`](#{}) | {} | {} |",
            method.to_uppercase(),
            op_anchor(method, path),
            who(op),
            cell(summary(op))
        );
    }
    out.push('\n');
    for (method, path, op) in &ops {
        endpoint(&mut out, &doc, method, path, op)?;
    }
    types(&mut out, &doc)?;
    Ok(out)
}

const CONVENTIONS: &str = "\
Every body, sent or answered, is JSON. A `POST` must say `Content-Type: application/json`. \
Times are Unix seconds. An id is a token id: the base64url (unpadded) SHA-256 of the token's \
compact form, 43 characters (protocol.md 2.4). A request's id is its request token's id, and \
a grant's id its grant token's. A reply may gain members in later versions: ignore those you \
do not know. A body you send must hold only the members shown: the broker refuses unknown \
ones (`body.malformed_json`).

A failure is answered with its status and `{\"code\", \"message\"}`; the codes are in \
[errors.md](errors.md). Every endpoint may also answer 400 `request.host_missing`, 421 \
`request.host` and 403 `request.origin` at the front door ([broker.md](broker.md#the-front-door)), \
and 503 with a `store.*` code while the broker's database fails; every `POST` may answer 415 \
`body.content_type`, 413 `body.too_large` and 400 `body.unreadable` or `body.malformed_json`. \
A path the broker does not serve is 404 `not_found`. The lists below include these.

Three kinds of caller:

- **Agents** sign in nowhere. What they send is signed by their own key: a request token \
(with its key in the `jwk` header), a receipt, a revocation, and on a poll a proof of \
possession in `Mandate-PoP`.
- **Users** (the app, `mandate-engine`) send `Authorization: Bearer` with their OIDC **ID \
token**, not an access token (`auth.malformed`). The user is `ISSUER#SUBJECT`: the ID \
token's `iss` and `sub`.
- **Anyone** may read the broker's metadata and follow its revocation feed.

A revocation (`POST /v1/revocations`) needs no bearer at all: its signature, by a key bound \
to the user or by an agent above the revoked grant, is its authority.

";

fn summary(op: &Value) -> &str {
    op["summary"].as_str().unwrap_or("")
}

fn who(op: &Value) -> &'static str {
    match op["tags"][0].as_str() {
        _ if op["operationId"] == "witness" => {
            "a resource server the broker trusts as a witness, by its key's signature"
        }
        Some("agents") => "an agent",
        Some("users") => "the user (bearer ID token)",
        Some("oauth") if op["operationId"] == "token" => {
            "an agent, with its chain and a DPoP proof by its key"
        }
        _ if op["operationId"] == "revoke" => "a user's or an agent's key, by signature",
        _ => "anyone",
    }
}

fn op_anchor(method: &str, path: &str) -> String {
    crate::errors::anchor(&format!("{} {path}", method.to_uppercase()))
}

fn status_name(status: &str) -> &'static str {
    match status {
        "200" => "OK",
        "201" => "Created",
        "400" => "Bad Request",
        "401" => "Unauthorized",
        "403" => "Forbidden",
        "404" => "Not Found",
        "409" => "Conflict",
        "413" => "Content Too Large",
        "415" => "Unsupported Media Type",
        "421" => "Misdirected Request",
        "422" => "Unprocessable Content",
        "429" => "Too Many Requests",
        "503" => "Service Unavailable",
        _ => "",
    }
}

/// A property's type, for people.
fn type_of(property: &Value) -> String {
    if let Some(name) = reference(property) {
        return format!("[{name}](#{})", name.to_lowercase());
    }
    let mut kinds: Vec<String> = match &property["type"] {
        Value::String(t) => vec![t.clone()],
        Value::Array(ts) => ts
            .iter()
            .filter_map(|t| t.as_str().map(str::to_owned))
            .collect(),
        _ => vec!["any".into()],
    };
    for kind in &mut kinds {
        if kind == "array" {
            *kind = format!("array of {}", type_of(&property["items"]));
        }
    }
    let nullable = kinds.iter().any(|k| k == "null");
    kinds.retain(|k| k != "null");
    let mut text = kinds.join(" or ");
    if nullable {
        text.push_str(" or null");
    }
    text
}

fn json_block(out: &mut String, value: &Value) {
    let _ = writeln!(
        out,
        "```json\n{}\n```\n",
        serde_json::to_string_pretty(value).unwrap_or_default()
    );
}

fn endpoint(
    out: &mut String,
    doc: &Value,
    method: &str,
    path: &str,
    op: &Value,
) -> Result<(), String> {
    let _ = writeln!(out, "## {} {path}\n", method.to_uppercase());
    let _ = writeln!(out, "{}\n", summary(op));
    if let Some(d) = op["description"].as_str() {
        let _ = writeln!(
            out,
            "{}\n",
            d.split_whitespace().collect::<Vec<_>>().join(" ")
        );
    }
    let _ = writeln!(out, "Called by: {}.\n", who(op));
    if let Some(params) = op["parameters"].as_array() {
        out.push_str("| parameter | in | required | type | meaning |\n|---|---|---|---|---|\n");
        for p in params {
            let name = p["name"].as_str().unwrap_or("");
            let shown = match p["in"].as_str() {
                Some("header") => header_name(name),
                _ => name.to_owned(),
            };
            let _ = writeln!(
                out,
                "| `{shown}` | {} | {} | {} | {} |",
                p["in"].as_str().unwrap_or(""),
                if p["required"] == true { "yes" } else { "no" },
                type_of(&p["schema"]),
                cell(p["description"].as_str().unwrap_or(""))
            );
        }
        out.push('\n');
    }
    if op["security"].is_array() {
        out.push_str("Header `Authorization: Bearer ID_TOKEN` (the user's OIDC ID token).\n\n");
    }
    let json_body = &op["requestBody"]["content"]["application/json"]["schema"];
    let form_body = &op["requestBody"]["content"]["application/x-www-form-urlencoded"]["schema"];
    for (body, form) in [(json_body, false), (form_body, true)] {
        if body.is_null() {
            continue;
        }
        let name = reference(body)
            .ok_or_else(|| format!("{method} {path}: the body has no named schema"))?;
        let example = example(doc, name)?;
        if form {
            let _ = writeln!(
                out,
                "Body: a form (`application/x-www-form-urlencoded`) of [{name}](#{}), for example:\n",
                name.to_lowercase()
            );
            let pairs: Vec<(String, String)> = example
                .as_object()
                .map(|o| {
                    o.iter()
                        .map(|(k, v)| {
                            (
                                k.clone(),
                                v.as_str().map_or_else(|| v.to_string(), str::to_owned),
                            )
                        })
                        .collect()
                })
                .unwrap_or_default();
            let text = pairs
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join("\n&");
            let _ = writeln!(
                out,
                "```text\n{text}\n```\n\n(one line, each value URL-encoded)\n"
            );
        } else {
            let _ = writeln!(
                out,
                "Body: [{name}](#{}), for example:\n",
                name.to_lowercase()
            );
            json_block(out, &example);
        }
    }
    out.push_str("Answers:\n\n");
    let Some(responses) = op["responses"].as_object() else {
        return Err(format!("{method} {path} has no responses"));
    };
    let mut statuses: Vec<&String> = responses.keys().collect();
    statuses.sort();
    let mut bodies = Vec::new();
    for status in statuses {
        let response = &responses[status];
        let schema = &response["content"]["application/json"]["schema"];
        let what = match reference(schema) {
            Some("ErrorBody" | "OAuthErrorBody") => {
                response["description"].as_str().unwrap_or("").to_owned()
            }
            Some(name) => {
                bodies.push((status.clone(), name.to_owned()));
                format!("[{name}](#{})", name.to_lowercase())
            }
            None => response["description"].as_str().unwrap_or("").to_owned(),
        };
        let _ = writeln!(
            out,
            "- **{status} {}**: {}",
            status_name(status),
            cell(&what)
        );
    }
    out.push('\n');
    let events = match op["operationId"].as_str() {
        Some("inbox_events") => mandate_broker::INBOX_EVENTS,
        Some("revocation_events") => mandate_broker::REVOCATION_EVENTS,
        _ => &[],
    };
    if !events.is_empty() {
        out.push_str(
            "The stream's events (and a keep-alive comment while it is idle; a client that \
             reconnects with `Last-Event-ID` gets what it missed, then live events):\n\n\
             | event | data | when |\n|---|---|---|\n",
        );
        for e in events {
            let _ = writeln!(out, "| `{}` | `{}` | {} |", e.event, e.data, cell(e.when));
        }
        out.push('\n');
    }
    for (status, name) in bodies {
        let _ = writeln!(out, "A {status} reply, for example:\n");
        json_block(out, &example(doc, &name)?);
    }
    Ok(())
}

/// A header's name as it is usually written: `Mandate-PoP`, `Last-Event-ID`.
fn header_name(name: &str) -> String {
    match name {
        "mandate-pop" => "Mandate-PoP".into(),
        "last-event-id" => "Last-Event-ID".into(),
        "dpop" => "DPoP".into(),
        other => other.to_owned(),
    }
}

fn types(out: &mut String, doc: &Value) -> Result<(), String> {
    out.push_str("## Types\n\n");
    let Some(schemas) = doc["components"]["schemas"].as_object() else {
        return Err("the document has no schemas".into());
    };
    for (name, schema) in schemas {
        let _ = writeln!(out, "### {name}\n");
        if let Some(d) = schema["description"].as_str() {
            let _ = writeln!(
                out,
                "{}\n",
                d.split_whitespace().collect::<Vec<_>>().join(" ")
            );
        }
        let required: Vec<&str> = schema["required"]
            .as_array()
            .map(|r| r.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        out.push_str("| member | type | required | meaning |\n|---|---|---|---|\n");
        if let Some(properties) = schema["properties"].as_object() {
            for (field, property) in properties {
                let _ = writeln!(
                    out,
                    "| `{field}` | {} | {} | {} |",
                    type_of(property),
                    if required.contains(&field.as_str()) {
                        "yes"
                    } else {
                        "no"
                    },
                    cell(property["description"].as_str().unwrap_or(""))
                );
            }
        }
        out.push('\n');
    }
    Ok(())
}
