//! `mandate-grant+jwt`: authority handed from a user (at the root) or a
//! delegating agent (at each later hop) to a grantee agent.

use serde::{Deserialize, Serialize};

use super::{Claims, Jti, Policy, Principal, UnixTime};
use crate::Error;
use crate::json::{Plain, once};
use crate::jws::{TokenId, TokenKind};
use crate::key::{AgentId, Thumbprint};
use crate::scope::AuthorizationDetail;

/// The RFC 8693 `act` claim: who acts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Actor {
    /// The grantee agent.
    pub sub: AgentId,
}

/// The RFC 7800 `cnf` claim: the key the grantee must prove it holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Confirmation {
    /// The grantee key's RFC 7638 thumbprint.
    pub jkt: Thumbprint,
}

/// The claims of a grant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GrantClaims {
    /// The user principal, the same on every link of a chain.
    pub sub: Principal,
    /// The grantee agent.
    pub act: Actor,
    /// The grantee's key.
    pub cnf: Confirmation,
    /// What the grantee may do.
    pub authorization_details: Vec<AuthorizationDetail>,
    /// The grantee's interpretation of its task, as it asked and as signed here.
    pub purpose: String,
    /// The user's instruction, as the agent received it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub intent: Option<String>,
    /// Issued at.
    pub iat: UnixTime,
    /// Not valid before.
    pub nbf: UnixTime,
    /// Not valid from this instant on.
    pub exp: UnixTime,
    /// Unique id chosen by the issuer.
    pub jti: Jti,
    /// How many further hops the grantee may delegate.
    pub max_depth: u8,
    /// The parent grant's id; absent at the root.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prf: Option<TokenId>,
    /// The id of the request this grant answers, when it answers one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub req: Option<TokenId>,
}

impl Claims for GrantClaims {
    const KIND: TokenKind = TokenKind::Grant;

    fn read_plain(text: &str) -> Option<GrantClaims> {
        read_plain(text)
    }

    fn check(&self, policy: &Policy, now: UnixTime) -> Result<(), Error> {
        if self.authorization_details.is_empty() {
            return Err(Error::BadScope("a grant grants at least one scope"));
        }
        policy.check_window(self.iat, self.nbf, self.exp, now)
    }
}

impl GrantClaims {
    /// Whether `act.sub` names the key in `cnf.jkt`.
    pub fn actor_matches_key(&self) -> bool {
        self.act.sub.thumbprint() == self.cnf.jkt
    }
}

/// Reads claims in the plain form that Mandate signs (see [`Plain`]),
/// through the same constructors as deserialization; `None` leaves the
/// input to the full parser.
fn read_plain(text: &str) -> Option<GrantClaims> {
    let mut r = Plain::new(text);
    let (mut sub, mut act, mut cnf, mut details, mut purpose, mut intent) =
        (None, None, None, None, None, None);
    let (mut iat, mut nbf, mut exp, mut jti, mut max_depth, mut prf, mut req) =
        (None, None, None, None, None, None, None);
    r.object(|r, name| match name {
        "sub" => once(&mut sub, Principal::try_from(r.owned()?).ok()),
        "act" => once(&mut act, one_member(r, "sub")),
        "cnf" => once(&mut cnf, one_member(r, "jkt")),
        "authorization_details" => once(&mut details, r.array(AuthorizationDetail::read_plain)),
        "purpose" => once(&mut purpose, r.owned()),
        "intent" => once(&mut intent, r.owned()),
        "iat" => once(&mut iat, r.int()),
        "nbf" => once(&mut nbf, r.int()),
        "exp" => once(&mut exp, r.int()),
        "jti" => once(&mut jti, Jti::try_from(r.owned()?).ok()),
        "max_depth" => once(&mut max_depth, r.int()),
        "prf" => once(&mut prf, r.string()?.parse().ok()),
        "req" => once(&mut req, r.string()?.parse().ok()),
        _ => None,
    })?;
    r.end()?;
    Some(GrantClaims {
        sub: sub?,
        act: Actor { sub: act? },
        cnf: Confirmation { jkt: cnf? },
        authorization_details: details?,
        purpose: purpose?,
        intent,
        iat: iat?,
        nbf: nbf?,
        exp: exp?,
        jti: jti?,
        max_depth: max_depth?,
        prf,
        req,
    })
}

/// An object of exactly one member, `name`, whose value is a string in the
/// text form of `T` (`act` and `cnf`).
fn one_member<T: std::str::FromStr>(r: &mut Plain<'_>, name: &str) -> Option<T> {
    let mut value = None;
    r.object(|r, member| {
        if member != name {
            return None;
        }
        once(&mut value, r.string()?.parse().ok())
    })?;
    value
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scope::{Limits, Money};
    use crate::token::read_full;

    /// Claims in every shape a grant takes: optional members present or
    /// not, identifiers, both kinds of limit, text that needs no escapes.
    fn shapes() -> Vec<GrantClaims> {
        let agent = crate::SigningKey::from_seed(&[3; 32]);
        let mut po = AuthorizationDetail::new(
            "purchase_order",
            ["create"],
            ["https://erp.example/vendors/*"],
        )
        .unwrap();
        po.identifier = Some("vendor-17".into());
        po.limits = Limits {
            max_calls: Some(u64::MAX),
            max_amount: Some(Money {
                amount: "20000.50".to_string().try_into().unwrap(),
                currency: "USD".to_string().try_into().unwrap(),
            }),
            confirm: Some(crate::scope::Confirm {
                above: Some(Money {
                    amount: "100".to_string().try_into().unwrap(),
                    currency: "USD".to_string().try_into().unwrap(),
                }),
            }),
        };
        let base = GrantClaims {
            sub: "https://idp.example#ålice".to_string().try_into().unwrap(),
            act: Actor {
                sub: agent.public().agent_id(),
            },
            cnf: Confirmation {
                jkt: agent.thumbprint(),
            },
            authorization_details: vec![
                AuthorizationDetail::new("files", ["read", "list"], ["reports/"]).unwrap(),
                po,
            ],
            purpose: "Order the hardware — 3 laptops".into(),
            intent: Some("Get the team set up".into()),
            iat: 0,
            nbf: 1_796_000_000,
            exp: i64::MAX,
            jti: "j-1".to_string().try_into().unwrap(),
            max_depth: 255,
            prf: Some(TokenId::of("parent")),
            req: Some(TokenId::of("request")),
        };
        let bare = GrantClaims {
            intent: None,
            prf: None,
            req: None,
            max_depth: 0,
            authorization_details: vec![
                AuthorizationDetail::new("k8s.pods", ["get"], ["ns/a"]).unwrap(),
            ],
            ..base.clone()
        };
        vec![base, bare]
    }

    #[test]
    fn reads_what_mandate_signs() {
        for claims in shapes() {
            let text = serde_json::to_string(&claims).unwrap();
            assert_eq!(read_plain(&text).as_ref(), Some(&claims), "{text}");
            // And with whitespace between every token, as another signer may write.
            let spaced = serde_json::to_string_pretty(&claims).unwrap();
            assert_eq!(read_plain(&spaced).as_ref(), Some(&claims), "{spaced}");
        }
    }

    /// Texts the shortcut hands to the full parser, and what that parser says.
    #[test]
    fn leaves_the_rest_to_the_full_parser() {
        let text = serde_json::to_string(&shapes()[1]).unwrap();
        let body = &text[1..text.len() - 1];
        let cases: Vec<(String, Option<&str>)> = vec![
            (
                format!(r#"{{{body},"jti":"again"}}"#),
                Some("token.duplicate_key"),
            ),
            (format!(r#"{{{body},"zip":1}}"#), Some("token.malformed")),
            (format!(r#"{{{body},"intent":null}}"#), None),
            (format!(r#"{{{body},"intent":"say \"hi\""}}"#), None),
            (format!(r#"{{{body},"inten\u0074":"x"}}"#), None),
            (
                format!("{{{body},\"intent\":\"two\nlines\"}}"),
                Some("token.malformed"),
            ),
            (format!("{{{body}}} x"), Some("token.malformed")),
            (format!("[{body}]"), Some("token.malformed")),
            (
                text.replace(r#""max_depth":0"#, r#""max_depth":00"#),
                Some("token.malformed"),
            ),
            (
                text.replace(r#""max_depth":0"#, r#""max_depth":0.0"#),
                Some("token.malformed"),
            ),
            (
                text.replace(r#""max_depth":0"#, r#""max_depth":256"#),
                Some("token.malformed"),
            ),
            (
                text.replace(r#""max_depth":0"#, r#""max_depth":-0"#),
                Some("token.malformed"),
            ),
            (text.replace(r#""iat":0"#, r#""iat":-1"#), None),
            (
                text.replace(r#""iat":0"#, r#""iat":9223372036854775808"#),
                Some("token.malformed"),
            ),
            (
                text.replace(r#""actions":["get"]"#, r#""actions":[["get"]]"#),
                Some("token.malformed"),
            ),
            (
                text.replace(r#""actions":["get"]"#, r#""actions":[]"#),
                Some("scope.malformed"),
            ),
            (
                text.replace(r#""ns/a""#, r#""ns/../a""#),
                Some("scope.malformed"),
            ),
            (
                text.replace(r#"{"sub":"urn"#, r#"{"sub":"urn:x","sub":"urn"#),
                Some("token.duplicate_key"),
            ),
        ];
        for (case, code) in cases {
            assert_eq!(read_plain(&case), None, "{case}");
            let full = read_full::<GrantClaims>(&case);
            assert_eq!(full.as_ref().err().map(|e| e.code()), code, "{case}");
        }
    }

    /// Whatever the shortcut reads, the full parser reads the same.
    #[test]
    fn never_accepts_more_than_the_full_parser() {
        crate::token::differential::<GrantClaims>(&shapes(), 11);
    }
}
