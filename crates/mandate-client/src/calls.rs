//! Calls agents ask the user to confirm, one exact call at a time
//! (docs/protocol.md 4.13): each checked here (its chain rooted in this
//! user's key, the body hashed from its bytes), shown as the call itself,
//! and confirmed with a `mandate-confirmation+jwt` signed by the user's
//! key, or refused.

use std::collections::BTreeMap;

use mandate_core::token::{Confirmation, ConfirmationClaims, Jti, body_hash};
use mandate_core::{
    BindingSet, Claims as _, Context, KeySet, Policy, Principal, PublicKey, Revoked, SigningKey,
    UnixTime, VerifiedChain, verify_chain,
};
use rand_core::CryptoRngCore;
use serde::Serialize;

use crate::ClientError;
use crate::broker::CallItem;
use crate::view::{ScopeView, scope_view};

/// How long a confirmation the user signs is good for: 5 minutes.
pub const CONFIRMATION_LIFETIME: i64 = 300;

/// A call to confirm, ready to show: what the agent will send.
#[derive(Debug, Clone, Serialize, ts_rs::TS)]
pub struct CallView {
    /// Its id at the broker.
    pub id: String,
    /// The agent's name, as it gave it when it asked the user before.
    pub agent_name: Option<String>,
    /// The agent key's fingerprint.
    pub agent_fingerprint: String,
    /// The method.
    pub method: String,
    /// The URI, with its query.
    pub uri: String,
    /// The body as text: JSON pretty-printed from the very bytes that are
    /// hashed, other UTF-8 as it is; `None` for a body that is not text.
    pub body_text: Option<String>,
    /// The body's length in bytes.
    pub body_bytes: usize,
    /// base64url SHA-256 of the body: what the confirmation signs.
    pub body_hash: String,
    /// The agent's own account of the call.
    pub summary: String,
    /// What the agent's grant allows, the scopes that ask for confirmation
    /// among them.
    pub scopes: Vec<ScopeView>,
    /// When it arrived.
    pub received_at: i64,
    /// When it lapses.
    pub expires_at: i64,
}

/// A call whose chain verified: its view, and what to sign.
pub struct Checked {
    /// What the page shows.
    pub view: CallView,
    chain: VerifiedChain,
    body: Vec<u8>,
    method: String,
    uri: String,
}

/// Checks `item` for `principal`, whose key is `user_key`: the chain
/// verifies, rooted in that key, and the body decodes. `names` maps agent
/// ids to the names they gave.
pub fn check(
    item: &CallItem,
    principal: &Principal,
    user_key: &PublicKey,
    names: &BTreeMap<String, String>,
    now: UnixTime,
) -> Result<Checked, ClientError> {
    let mut keys = KeySet::new();
    keys.insert(*user_key);
    for jwk in &item.keys {
        keys.insert_jwk(jwk)?;
    }
    let mut bindings = BindingSet::new();
    bindings.insert(principal.clone(), user_key.thumbprint())?;
    let revoked = Revoked::default();
    let cx = Context {
        now,
        policy: Policy::default(),
        keys: &keys,
        bindings: &bindings,
        revoked: &revoked,
    };
    let chain = verify_chain(&item.chain, &cx)?;
    let body = mandate_core::base64url::decode(&item.body)
        .ok_or_else(|| ClientError::Invalid("the call's body is not base64url".into()))?;
    let body_text = std::str::from_utf8(&body).ok().map(|text| {
        if serde_json::from_str::<serde::de::IgnoredAny>(text).is_ok() {
            reindent(text)
        } else {
            text.to_owned()
        }
    });
    let agent = chain.leaf_agent();
    let view = CallView {
        id: item.id.clone(),
        agent_name: names.get(&agent.to_string()).cloned(),
        agent_fingerprint: agent.fingerprint(),
        method: item.method.clone(),
        uri: item.uri.clone(),
        body_text,
        body_bytes: body.len(),
        body_hash: body_hash(&body),
        summary: item.summary.clone(),
        scopes: chain.scopes().iter().map(scope_view).collect(),
        received_at: item.received_at,
        expires_at: item.expires_at,
    };
    Ok(Checked {
        view,
        chain,
        body,
        method: item.method.clone(),
        uri: item.uri.clone(),
    })
}

impl Checked {
    /// The user's confirmation of exactly this call, signed with `key`.
    pub fn confirm(
        &self,
        principal: &Principal,
        key: &SigningKey,
        now: UnixTime,
        rng: &mut impl CryptoRngCore,
    ) -> String {
        ConfirmationClaims {
            sub: principal.clone(),
            cnf: Confirmation {
                jkt: self.chain.leaf_key(),
            },
            ath: self.chain.ath().to_owned(),
            htm: self.method.clone(),
            htu: self.uri.clone(),
            bdh: body_hash(&self.body),
            iat: now,
            exp: now + CONFIRMATION_LIFETIME,
            jti: Jti::random(rng),
        }
        .sign(key)
    }
}

/// `json` (valid JSON) laid out two spaces an indent, every member and
/// element as written, in the order written, repeats included: only the
/// whitespace between tokens changes. A parser would reorder the members
/// or drop a repeated one, and the user would not see what is signed.
fn reindent(json: &str) -> String {
    let mut out = String::with_capacity(json.len() * 2);
    let (mut depth, mut in_string, mut escaped) = (0usize, false, false);
    let newline = |out: &mut String, depth: usize| {
        out.push('\n');
        out.push_str(&"  ".repeat(depth));
    };
    let mut chars = json.chars().peekable();
    while let Some(c) = chars.next() {
        if in_string {
            out.push(c);
            match (escaped, c) {
                (true, _) => escaped = false,
                (false, '\\') => escaped = true,
                (false, '"') => in_string = false,
                _ => {}
            }
            continue;
        }
        match c {
            '"' => {
                in_string = true;
                out.push(c);
            }
            '{' | '[' => {
                out.push(c);
                // An empty object or array stays on one line.
                while chars.peek().is_some_and(|n| n.is_ascii_whitespace()) {
                    chars.next();
                }
                if matches!(chars.peek(), Some('}' | ']')) {
                    if let Some(close) = chars.next() {
                        out.push(close);
                    }
                } else {
                    depth += 1;
                    newline(&mut out, depth);
                }
            }
            '}' | ']' => {
                depth = depth.saturating_sub(1);
                newline(&mut out, depth);
                out.push(c);
            }
            ',' => {
                out.push(c);
                newline(&mut out, depth);
            }
            ':' => out.push_str(": "),
            c if c.is_ascii_whitespace() => {}
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::reindent;

    #[test]
    fn a_body_is_laid_out_as_written() {
        let body = r#"{"title":"Q3 \"draft\", {not}","b":[1, 2,{}],"a":{},"b":null}"#;
        assert_eq!(
            reindent(body),
            "{\n  \"title\": \"Q3 \\\"draft\\\", {not}\",\n  \"b\": [\n    1,\n    2,\n    {}\n  ],\n  \"a\": {},\n  \"b\": null\n}"
        );
        assert_eq!(reindent("[]"), "[]");
        assert_eq!(reindent(" 42 "), "42");
    }
}
