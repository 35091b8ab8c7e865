//! What MCP servers say of their tools (their MCP annotations), as the
//! gateways in front of them relayed it in tools statements
//! (`mandate-tools+jwt`, docs/protocol.md 4.11) that the broker serves
//! beside a request for `mcp` scopes. A statement is used only if it
//! verifies under the key the broker served with it (the key the broker
//! trusts as the witness of that resource).
//!
//! The signature names who relays the claim; the claim itself is the
//! server's, and can lie: the app shows it as "the server says".

use std::collections::BTreeMap;

use mandate_core::scope::AuthorizationDetail;
use mandate_core::token::{ToolHints, ToolsClaims};
use mandate_core::{Policy, PublicKey};
use serde::{Deserialize, Serialize};

/// A tools statement as the broker serves it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolsStatement {
    /// The public key of the gateway that signed it.
    pub key: mandate_core::Jwk,
    /// The compact `mandate-tools+jwt`.
    pub statement: String,
}

/// What a server says of one tool, to show beside it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ts_rs::TS)]
pub struct ServerClaim {
    /// The tool's title, as the server gives it.
    pub title: Option<String>,
    /// It says the tool only reads.
    pub read_only: bool,
    /// It says the tool may destroy or overwrite.
    pub destructive: bool,
    /// It says calling the tool twice does no more than once.
    pub idempotent: bool,
    /// It says the tool reaches beyond the server (the web, other
    /// systems).
    pub open_world: bool,
    /// The fingerprint of the gateway's key that relayed it.
    pub relayed_by: String,
}

/// The tools statements of one request that verify, by resource.
#[derive(Debug, Default)]
pub struct ServerSays {
    by_resource: Vec<(String, String, BTreeMap<String, ToolHints>)>,
}

impl ServerSays {
    /// The statements among `statements` that verify, as of `at` (a
    /// statement signed later is not taken).
    pub fn of(statements: &[ToolsStatement], at: i64) -> ServerSays {
        let mut by_resource = Vec::new();
        for s in statements {
            let Ok(key) = PublicKey::from_jwk(&s.key) else {
                continue;
            };
            let Ok(v) = mandate_core::token::verify::<ToolsClaims>(
                &s.statement,
                &key,
                &Policy::default(),
                at,
            ) else {
                continue;
            };
            let claims = v.claims();
            let tools = claims
                .tools
                .iter()
                .map(|t| (t.name.clone(), t.clone()))
                .collect();
            by_resource.push((claims.resource.clone(), key.agent_id().fingerprint(), tools));
        }
        ServerSays { by_resource }
    }

    /// What the servers say of `tool`, an action of the `mcp` scope `d`:
    /// `None` unless every location of `d` reaches a statement that
    /// describes it. Where several do, the riskiest reading of each hint
    /// stands.
    pub fn claim(&self, d: &AuthorizationDetail, tool: &str) -> Option<ServerClaim> {
        if d.kind != "mcp" || d.locations.is_empty() {
            return None;
        }
        let mut said: Option<ServerClaim> = None;
        for location in &d.locations {
            let mut reached = false;
            for (resource, relayed_by, tools) in &self.by_resource {
                if !location.covers(resource) {
                    continue;
                }
                let h = tools.get(tool)?;
                reached = true;
                said = Some(match said {
                    None => ServerClaim {
                        title: h.title.clone(),
                        read_only: h.read_only,
                        destructive: h.destructive,
                        idempotent: h.idempotent,
                        open_world: h.open_world,
                        relayed_by: relayed_by.clone(),
                    },
                    Some(c) => ServerClaim {
                        title: c.title.filter(|t| Some(t) == h.title.as_ref()),
                        read_only: c.read_only && h.read_only,
                        destructive: c.destructive || h.destructive,
                        idempotent: c.idempotent && h.idempotent,
                        open_world: c.open_world || h.open_world,
                        relayed_by: c.relayed_by,
                    },
                });
            }
            if !reached {
                return None;
            }
        }
        said
    }
}

/// A statement by `key` for `resource`, signed at `iat`: `read_file`
/// read-only, `run_command` destructive.
#[cfg(test)]
pub(crate) fn statement(
    key: &mandate_core::SigningKey,
    resource: &str,
    iat: i64,
) -> ToolsStatement {
    use mandate_core::token::Claims as _;
    let hint = |name: &str, read_only: bool| ToolHints {
        name: name.into(),
        title: None,
        read_only,
        destructive: !read_only,
        idempotent: read_only,
        open_world: false,
    };
    let claims = ToolsClaims {
        resource: resource.into(),
        tools: vec![hint("read_file", true), hint("run_command", false)],
        iat,
        jti: "s-1".to_string().try_into().unwrap(),
    };
    ToolsStatement {
        key: key.public().to_jwk(),
        statement: claims.sign(key),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mandate_core::SigningKey;

    #[test]
    fn a_claim_stands_only_where_every_location_is_described() {
        let gw = SigningKey::from_seed(&[5; 32]);
        let at = 1_796_000_000;
        let said = ServerSays::of(&[statement(&gw, "https://gw.example/mcp", at)], at);
        let d = AuthorizationDetail::new(
            "mcp",
            ["read_file", "run_command", "other"],
            ["https://gw.example/mcp"],
        )
        .unwrap();
        let read = said.claim(&d, "read_file").unwrap();
        assert!(read.read_only && !read.destructive);
        assert_eq!(read.relayed_by, gw.public().agent_id().fingerprint());
        assert!(said.claim(&d, "run_command").unwrap().destructive);
        assert_eq!(said.claim(&d, "other"), None, "a tool it does not describe");
        // A second location with no statement: the server there says nothing.
        let two = AuthorizationDetail::new(
            "mcp",
            ["read_file"],
            ["https://gw.example/mcp", "https://other.example/mcp"],
        )
        .unwrap();
        assert_eq!(said.claim(&two, "read_file"), None);
        // Another type of scope is never described.
        let files =
            AuthorizationDetail::new("files", ["read_file"], ["https://gw.example/mcp"]).unwrap();
        assert_eq!(said.claim(&files, "read_file"), None);
    }

    #[test]
    fn a_statement_that_does_not_verify_is_not_taken() {
        let gw = SigningKey::from_seed(&[5; 32]);
        let other = SigningKey::from_seed(&[6; 32]);
        let at = 1_796_000_000;
        let d = AuthorizationDetail::new("mcp", ["read_file"], ["https://gw.example/mcp"]).unwrap();
        // Served with another key than the one that signed it.
        let mut forged = statement(&gw, "https://gw.example/mcp", at);
        forged.key = other.public().to_jwk();
        // Signed after the time it is read at.
        let later = statement(&gw, "https://gw.example/mcp", at + 3600);
        for s in [forged, later] {
            assert_eq!(ServerSays::of(&[s], at).claim(&d, "read_file"), None);
        }
    }
}
