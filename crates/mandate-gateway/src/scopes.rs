//! The `mcp` scope type: what each MCP call needs of a grant.
//!
//! A detail of type `mcp` has the gateway's resource URL as its location
//! and, as actions:
//! - a tool's name: calling that tool (`tools/call`);
//! - `resources/read`: reading resources (`resources/read`,
//!   `resources/subscribe`), all of them, or the one its `identifier` (a
//!   resource URI) pins;
//! - `prompts/get`: getting prompts, all, or the one `identifier` names.
//!
//! Tool names never hold a `/` (the grammar of [`crate::tools`]), so no
//! tool is mistaken for the other two. Every other method (`initialize`,
//! the lists, completions, notifications) needs only some `mcp` detail at
//! the gateway: the lists then show only what the grant covers.

use mandate_core::scope::{AuthorizationDetail, Location};
use serde_json::{Value, json};

use crate::rpc::{Call, Method};

/// The scope type.
pub const MCP: &str = "mcp";

/// The action for reading resources.
pub const READ_RESOURCES: &str = "resources/read";

/// The action for getting prompts.
pub const GET_PROMPTS: &str = "prompts/get";

/// What one call needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Need {
    /// Some `mcp` detail at the gateway.
    Member,
    /// This action, for this identifier when the call names one.
    Action {
        /// The action: a tool's name, [`READ_RESOURCES`] or [`GET_PROMPTS`].
        action: String,
        /// The resource URI or prompt name, which a detail's identifier
        /// may pin; `None` for a tool.
        identifier: Option<String>,
    },
}

impl Need {
    /// What `call` needs.
    pub fn of(call: &Call) -> Need {
        let target = call.target.clone().unwrap_or_default();
        match call.method {
            Method::ToolsCall => Need::Action {
                action: target,
                identifier: None,
            },
            Method::ResourcesRead | Method::ResourcesSubscribe => Need::Action {
                action: READ_RESOURCES.into(),
                identifier: Some(target),
            },
            Method::PromptsGet => Need::Action {
                action: GET_PROMPTS.into(),
                identifier: Some(target),
            },
            _ => Need::Member,
        }
    }

    /// The detail that grants what this needs at `resource` (an
    /// identifier pins it only for prompts and resources).
    pub fn detail(&self, resource: &str) -> Option<AuthorizationDetail> {
        let Need::Action { action, identifier } = self else {
            return None;
        };
        serde_json::from_value(json!({
            "type": MCP,
            "actions": [action],
            "locations": [resource],
            "identifier": identifier,
        }))
        .ok()
    }
}

/// The `scope` words (`mcp:ACTION`) for a step-up to `need`, with what
/// `held` already grants at `resource`, so that the new token keeps it.
pub fn challenge_scope(held: &[AuthorizationDetail], resource: &str, need: &Need) -> String {
    let mut words: Vec<String> = held
        .iter()
        .filter(|d| d.kind == MCP && d.locations.iter().any(|l| l.covers(resource)))
        .flat_map(|d| d.actions.iter().map(|a| format!("{MCP}:{a}")))
        .collect();
    if let Need::Action { action, .. } = need {
        words.push(format!("{MCP}:{action}"));
    }
    words.sort();
    words.dedup();
    words.join(" ")
}

/// The scopes as JSON, for the body of a step-up.
pub fn details_json(need: &Need, resource: &str) -> Value {
    need.detail(resource)
        .map_or_else(|| json!([]), |d| json!([d]))
}

/// Whether `resource` is a valid scope location.
pub fn valid_location(resource: &str) -> bool {
    Location::try_from(resource.to_owned()).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rpc::{Message, read};

    fn need(body: &str) -> Need {
        let Message::Call(c) = read(body.as_bytes()).unwrap() else {
            panic!()
        };
        Need::of(&c)
    }

    const GW: &str = "http://127.0.0.1:9/mcp";

    #[test]
    fn each_method_needs_its_action() {
        assert_eq!(
            need(r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"run"}}"#),
            Need::Action {
                action: "run".into(),
                identifier: None
            }
        );
        let read_need = need(
            r#"{"jsonrpc":"2.0","id":1,"method":"resources/read","params":{"uri":"file:///a"}}"#,
        );
        assert_eq!(
            read_need,
            Need::Action {
                action: READ_RESOURCES.into(),
                identifier: Some("file:///a".into())
            }
        );
        assert_eq!(
            need(r#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#),
            Need::Member
        );
        let d = read_need.detail(GW).unwrap();
        assert_eq!(d.identifier.as_deref(), Some("file:///a"));
    }

    #[test]
    fn a_step_up_asks_for_what_is_held_and_what_is_needed() {
        let held: Vec<AuthorizationDetail> = serde_json::from_value(json!([
            { "type": "mcp", "actions": ["read_file"], "locations": [GW] },
            { "type": "mcp", "actions": ["elsewhere"], "locations": ["http://127.0.0.1:8/mcp"] },
            { "type": "files", "actions": ["read"], "locations": [GW] },
        ]))
        .unwrap();
        let run = Need::Action {
            action: "run_command".into(),
            identifier: None,
        };
        assert_eq!(
            challenge_scope(&held, GW, &run),
            "mcp:read_file mcp:run_command"
        );
    }
}
