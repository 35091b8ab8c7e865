//! `mandate-tools+jwt`: what an MCP server says of its tools (their
//! annotations), relayed by the gateway in front of it and signed with the
//! gateway's witness key, so that the app can show it beside a request
//! for those tools (docs/protocol.md, 4.11).
//!
//! The signature says who relays the claim, not that it is true: the
//! server can say anything of its tools, and the app shows it as the
//! server's claim.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use super::{Claims, Jti, Policy, UnixTime};
use crate::Error;
use crate::jws::TokenKind;

/// The most tools one statement describes.
pub const MAX_TOOLS: usize = 1024;

/// The longest tool name, in bytes.
pub const MAX_TOOL_NAME: usize = 128;

/// The longest title, in bytes.
pub const MAX_TITLE: usize = 256;

/// Whether `name` is in the tool-name grammar Mandate takes: MCP's
/// recommended one, 1 to 128 of `A-Z a-z 0-9 _ - .` (no look-alikes).
pub fn valid_tool_name(name: &str) -> bool {
    (1..=MAX_TOOL_NAME).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
}

/// What the server says of one tool: its MCP annotations, with MCP's
/// defaults where it says nothing (a tool that says nothing may write,
/// destroy, and reach the world).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ToolHints {
    /// The tool's name, in the grammar of [`valid_tool_name`].
    pub name: String,
    /// Its `title`, if it gives one: at most 256 bytes, no control
    /// characters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    /// `readOnlyHint`.
    pub read_only: bool,
    /// `destructiveHint`; false whenever `read_only` is true.
    pub destructive: bool,
    /// `idempotentHint`.
    pub idempotent: bool,
    /// `openWorldHint`.
    pub open_world: bool,
}

/// The claims of a tools statement.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ToolsClaims {
    /// The resource the tools are called at: the gateway's resource URL,
    /// the `locations` of an `mcp` scope.
    pub resource: String,
    /// The tools, each name once; at most [`MAX_TOOLS`].
    pub tools: Vec<ToolHints>,
    /// When the gateway signed it.
    pub iat: UnixTime,
    /// Unique id.
    pub jti: Jti,
}

impl Claims for ToolsClaims {
    const KIND: TokenKind = TokenKind::Tools;

    fn check(&self, policy: &Policy, now: UnixTime) -> Result<(), Error> {
        if self.iat > now.saturating_add(policy.clock_skew) {
            return Err(Error::NotYetValid);
        }
        if self.tools.len() > MAX_TOOLS {
            return Err(Error::Malformed("more than 1024 tools"));
        }
        let mut names = BTreeSet::new();
        for tool in &self.tools {
            if !valid_tool_name(&tool.name) {
                return Err(Error::Malformed("a tool's name is not in the grammar"));
            }
            if !names.insert(tool.name.as_str()) {
                return Err(Error::Malformed("a tool is named twice"));
            }
            if tool.title.as_deref().is_some_and(|t| {
                t.is_empty() || t.len() > MAX_TITLE || t.chars().any(char::is_control)
            }) {
                return Err(Error::Malformed(
                    "a tool's title is empty, too long, or has controls",
                ));
            }
            if tool.read_only && tool.destructive {
                return Err(Error::Malformed("a read-only tool is not destructive"));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::SigningKey;
    use crate::token::verify;

    fn hints(name: &str) -> ToolHints {
        ToolHints {
            name: name.into(),
            title: None,
            read_only: true,
            destructive: false,
            idempotent: true,
            open_world: false,
        }
    }

    fn claims() -> ToolsClaims {
        ToolsClaims {
            resource: "https://gw.example/mcp".into(),
            tools: vec![
                hints("read_file"),
                ToolHints {
                    title: Some("Run a command".into()),
                    read_only: false,
                    destructive: true,
                    idempotent: false,
                    open_world: true,
                    ..hints("run_command")
                },
            ],
            iat: 1_796_000_000,
            jti: "t-1".to_string().try_into().unwrap(),
        }
    }

    #[test]
    fn verifies_under_the_gateway_key_only() {
        let gateway = SigningKey::from_seed(&[9; 32]);
        let other = SigningKey::from_seed(&[8; 32]);
        let token = claims().sign(&gateway);
        let p = Policy::default();
        let v = verify::<ToolsClaims>(&token, gateway.public(), &p, 1_796_000_000).unwrap();
        assert_eq!(v.claims(), &claims());
        assert!(verify::<ToolsClaims>(&token, other.public(), &p, 1_796_000_000).is_err());
        // Another kind of token under the same key is not a statement.
        let witness = crate::jws::sign(TokenKind::Witness, &gateway, &claims());
        assert!(verify::<ToolsClaims>(&witness, gateway.public(), &p, 1_796_000_000).is_err());
    }

    #[test]
    fn every_rule_has_its_refusal() {
        let gateway = SigningKey::from_seed(&[9; 32]);
        let p = Policy::default();
        // More than MAX_TOOLS: refused by the claims' own rule (a token
        // that holds them all is also past the 16 KiB every token keeps to).
        let mut many = claims();
        many.tools = (0..=MAX_TOOLS).map(|i| hints(&format!("t{i}"))).collect();
        assert_eq!(
            many.check(&p, 1_796_000_000).map_err(|e| e.code()),
            Err("token.malformed")
        );
        let cases: Vec<(ToolsClaims, &str)> = vec![
            (
                ToolsClaims {
                    iat: 1_796_000_000 + 3600,
                    ..claims()
                },
                "time.not_yet_valid",
            ),
            (
                ToolsClaims {
                    tools: vec![hints("read_file"), hints("read_file")],
                    ..claims()
                },
                "token.malformed",
            ),
            (
                ToolsClaims {
                    tools: vec![hints("re\u{430}d_file")],
                    ..claims()
                },
                "token.malformed",
            ),
            (
                ToolsClaims {
                    tools: vec![hints("")],
                    ..claims()
                },
                "token.malformed",
            ),
            (
                ToolsClaims {
                    tools: vec![ToolHints {
                        title: Some("two\nlines".into()),
                        ..hints("a")
                    }],
                    ..claims()
                },
                "token.malformed",
            ),
            (
                ToolsClaims {
                    tools: vec![ToolHints {
                        destructive: true,
                        ..hints("a")
                    }],
                    ..claims()
                },
                "token.malformed",
            ),
        ];
        for (c, code) in cases {
            let token = c.sign(&gateway);
            let e =
                verify::<ToolsClaims>(&token, gateway.public(), &p, 1_796_000_000).expect_err(code);
            assert_eq!(e.code(), code, "{:?}", c.tools.first());
        }
    }

    #[test]
    fn the_grammar_is_an_allow_list() {
        assert!(valid_tool_name("read_file"));
        assert!(valid_tool_name("a.b-c_D9"));
        assert!(valid_tool_name(&"x".repeat(128)));
        for bad in ["", "a b", "a/b", "\u{200b}a", "é", &"x".repeat(129)] {
            assert!(!valid_tool_name(bad), "{bad:?}");
        }
    }
}
