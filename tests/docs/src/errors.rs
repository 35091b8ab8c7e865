//! docs/errors.md, from the enums of codes.

use std::fmt::Write as _;

use mandate_core::codes::CodeDoc;

use crate::{cell, generated};

/// Every table of codes, by who gives them: (heading, anchor, codes).
pub fn tables() -> Vec<(&'static str, Vec<CodeDoc>)> {
    vec![
        (
            "The broker",
            mandate_broker::Code::ALL.iter().map(|c| c.doc()).collect(),
        ),
        (
            "Resource servers",
            mandate_agent::ResourceCode::ALL
                .iter()
                .map(|c| c.doc())
                .collect(),
        ),
        ("The protocol's rules", mandate_core::Error::DOCS.to_vec()),
        (
            "OAuth endpoints",
            mandate_broker::oauth::OAuthCode::ALL
                .iter()
                .map(|c| c.doc())
                .collect(),
        ),
        (
            "The MCP gateway",
            mandate_gateway::Code::ALL.iter().map(|c| c.doc()).collect(),
        ),
        (
            "The SDK and the `mandate` CLI",
            mandate_agent::LocalCode::ALL
                .iter()
                .map(|c| c.doc())
                .collect(),
        ),
        (
            "The desktop app and `mandate-engine`",
            mandate_client::EngineCode::ALL
                .iter()
                .map(|c| c.doc())
                .collect(),
        ),
    ]
}

/// The whole of docs/errors.md.
pub fn errors_md() -> String {
    let mut out = String::from("# Error codes\n\n");
    out.push_str(&generated(
        "the code's enums of codes (`mandate_broker::Code`, `mandate_agent::ResourceCode`, `mandate_core::Error::DOCS`, `mandate_gateway::Code`, `mandate_agent::LocalCode`, `mandate_client::EngineCode`)",
    ));
    out.push_str(
        "Every failure in Mandate has a stable code, such as `chain.revoked`. Codes never \
         change once published, and new failures get new codes. Branch on the code, never on \
         the message: messages are for people, and never hold a token, a key or a secret.\n\n\
         Over HTTP, the broker and resource servers answer a failure with its status and a \
         JSON body:\n\n\
         ```json\n{\"code\": \"request.no_principal\", \"message\": \"the request names no principal_hint\"}\n```\n\n\
         No input gets a 500. The command-line tools print `error CODE: message` on standard \
         error and exit with 1.\n\n",
    );
    let tables = tables();
    for (heading, _) in &tables {
        let _ = writeln!(out, "- [{heading}](#{})", anchor(heading));
    }
    out.push('\n');
    for (heading, codes) in &tables {
        let _ = writeln!(out, "## {heading}\n");
        out.push_str(intro(heading));
        out.push('\n');
        if *heading == "The protocol's rules" {
            out.push_str(
                "| code | at a resource server | meaning | what to do |\n|---|---|---|---|\n",
            );
            for doc in codes {
                let status = mandate_agent::rule_status(doc.code);
                let _ = writeln!(
                    out,
                    "| `{}` | {} | {} | {} |",
                    doc.code,
                    status.as_u16(),
                    cell(doc.meaning),
                    cell(doc.remedy)
                );
            }
        } else if codes.iter().all(|d| d.status.is_some()) {
            out.push_str("| code | status | meaning | what to do |\n|---|---|---|---|\n");
            for doc in codes {
                let _ = writeln!(
                    out,
                    "| `{}` | {} | {} | {} |",
                    doc.code,
                    doc.status.unwrap_or_default(),
                    cell(doc.meaning),
                    cell(doc.remedy)
                );
            }
        } else {
            out.push_str("| code | meaning | what to do |\n|---|---|---|\n");
            for doc in codes {
                let _ = writeln!(
                    out,
                    "| `{}` | {} | {} |",
                    doc.code,
                    cell(doc.meaning),
                    cell(doc.remedy)
                );
            }
        }
        out.push('\n');
    }
    out
}

/// What precedes each table.
fn intro(heading: &str) -> &'static str {
    match heading {
        "The broker" => {
            "The broker's own codes, each always with the status shown. Which endpoint gives \
             which is in [broker-api.md](broker-api.md). The broker also answers the \
             [protocol's codes](#the-protocols-rules): 400 when a token of the body breaks a \
             rule, 401 when the caller's own proof does (a `Mandate-PoP`, an enrollment's \
             `proof`, an endorsement), 403 for `revocation.not_authorized`, and 503 for \
             `pop.cache_full`, when its cache of spent proofs is full.\n"
        }
        "Resource servers" => {
            "What a resource server that uses the verifier middleware \
             (`mandate_agent::ResourceVerifier`, and `mandate-resource-example`) answers, \
             besides the [protocol's codes](#the-protocols-rules), whose statuses are in \
             that table. Other resource servers should answer the same.\n"
        }
        "The protocol's rules" => {
            "A token, a chain or a proof that breaks a rule of \
             [protocol.md](protocol.md#9-error-codes) gets the rule's code wherever it is \
             checked: at the broker (400 for a token of the body, 401 for the caller's own \
             proof, 503 for `pop.cache_full`), at a resource server (the status below), and in the SDK, the CLI and the \
             app, which print it. Section 9 of protocol.md gives each rule exactly.\n"
        }
        "OAuth endpoints" => {
            "The broker's OAuth endpoints (`/oauth/token`, `/oauth/introspect`; \
             [broker-api.md](broker-api.md)) answer past the front door as RFC 6749 does: \
             `{\"error\": \"invalid_grant\", \"error_description\": \"…\"}`, with \
             `Cache-Control: no-store`. For `invalid_grant`, the description starts with the \
             Mandate code of the rule that failed, such as `chain.revoked`.\n"
        }
        "The MCP gateway" => {
            "What `mandate-gateway` answers ([mcp.md](mcp.md)): the status shown, with a \
             JSON-RPC error whose `error.data.code` is the code, such as \
             `{\"jsonrpc\": \"2.0\", \"id\": 1, \"error\": {\"code\": -32001, \"message\": \"…\", \
             \"data\": {\"code\": \"gateway.insufficient_scope\", …}}}`. The JSON-RPC `code` is \
             -32001 for a refusal of authority, and JSON-RPC's or MCP's own for a message the \
             gateway does not pass on (`gateway.bad_request`): -32700, -32600, -32601 (with \
             404), -32602, -32020 (`HeaderMismatch`) or -32022 (an unsupported protocol \
             version).\n"
        }
        "The SDK and the `mandate` CLI" => {
            "Codes the agent SDK (`mandate_agent::AgentError::code`) and the `mandate` CLI \
             give on their own. They pass the broker's and the protocol's codes on as they \
             are.\n"
        }
        _ => {
            "Codes the desktop app and `mandate-engine` give on their own \
             (`mandate_client::ClientError::code`). They pass the broker's, the SDK's and the \
             protocol's codes on as they are.\n"
        }
    }
}

/// The anchor GitHub gives a heading.
pub fn anchor(heading: &str) -> String {
    heading
        .to_lowercase()
        .chars()
        .filter_map(|c| match c {
            'a'..='z' | '0'..='9' | '-' | '_' => Some(c),
            ' ' => Some('-'),
            _ => None,
        })
        .collect()
}
