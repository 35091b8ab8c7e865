//! `mandate-receipt+jwt`: an agent's signed account of one thing it did and why.

use serde::{Deserialize, Serialize};

use super::{Claims, Jti, Policy, UnixTime};
use crate::Error;
use crate::json::{Plain, once};
use crate::jws::{TokenId, TokenKind};

/// What was done.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Action {
    /// The kind of action, such as `k8s.pods.list` or `delegate`.
    #[serde(rename = "type")]
    pub kind: String,
    /// What it was done to.
    pub target: String,
    /// A one-line summary for people.
    pub summary: String,
}

/// How it ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// It was done.
    Succeeded,
    /// It was tried and failed.
    Failed,
    /// A resource server or policy refused it.
    Refused,
}

/// The claims of a receipt.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReceiptClaims {
    /// The id of the leaf grant the agent acted under.
    pub grant: TokenId,
    /// What it did.
    pub action: Action,
    /// How it ended.
    pub outcome: Outcome,
    /// Why the agent decided to do it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rationale: Option<String>,
    /// The receipt or request that caused this action.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cause: Option<TokenId>,
    /// When.
    pub iat: UnixTime,
    /// Unique id.
    pub jti: Jti,
}

impl Claims for ReceiptClaims {
    const KIND: TokenKind = TokenKind::Receipt;

    fn read_plain(text: &str) -> Option<ReceiptClaims> {
        read_plain(text)
    }

    fn check(&self, policy: &Policy, now: UnixTime) -> Result<(), Error> {
        if self.iat > now.saturating_add(policy.clock_skew) {
            return Err(Error::NotYetValid);
        }
        Ok(())
    }
}

/// Reads claims in the plain form that Mandate signs (see [`Plain`]),
/// through the same constructors as deserialization; `None` leaves the
/// input to the full parser.
fn read_plain(text: &str) -> Option<ReceiptClaims> {
    let mut r = Plain::new(text);
    let (mut grant, mut action, mut outcome, mut rationale, mut cause, mut iat, mut jti) =
        (None, None, None, None, None, None, None);
    r.object(|r, name| match name {
        "grant" => once(&mut grant, r.string()?.parse().ok()),
        "action" => once(&mut action, read_action(r)),
        "outcome" => once(
            &mut outcome,
            match r.string()? {
                "succeeded" => Some(Outcome::Succeeded),
                "failed" => Some(Outcome::Failed),
                "refused" => Some(Outcome::Refused),
                _ => None,
            },
        ),
        "rationale" => once(&mut rationale, r.owned()),
        "cause" => once(&mut cause, r.string()?.parse().ok()),
        "iat" => once(&mut iat, r.int()),
        "jti" => once(&mut jti, Jti::try_from(r.owned()?).ok()),
        _ => None,
    })?;
    r.end()?;
    Some(ReceiptClaims {
        grant: grant?,
        action: action?,
        outcome: outcome?,
        rationale,
        cause,
        iat: iat?,
        jti: jti?,
    })
}

fn read_action(r: &mut Plain<'_>) -> Option<Action> {
    let (mut kind, mut target, mut summary) = (None, None, None);
    r.object(|r, name| match name {
        "type" => once(&mut kind, r.owned()),
        "target" => once(&mut target, r.owned()),
        "summary" => once(&mut summary, r.owned()),
        _ => None,
    })?;
    Some(Action {
        kind: kind?,
        target: target?,
        summary: summary?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::token::read_full;

    fn shapes() -> Vec<ReceiptClaims> {
        let base = ReceiptClaims {
            grant: TokenId::of("grant"),
            action: Action {
                kind: "purchase_order.create".into(),
                target: "https://erp.example/vendors/17/orders".into(),
                summary: "Ordered 3 laptops — 1,900 USD".into(),
            },
            outcome: Outcome::Refused,
            rationale: Some("The quote was the lowest of three".into()),
            cause: Some(TokenId::of("cause")),
            iat: 1_796_000_000,
            jti: "r-1".to_string().try_into().unwrap(),
        };
        let bare = ReceiptClaims {
            outcome: Outcome::Succeeded,
            rationale: None,
            cause: None,
            iat: 0,
            ..base.clone()
        };
        let failed = ReceiptClaims {
            outcome: Outcome::Failed,
            iat: i64::MAX,
            ..base.clone()
        };
        vec![base, bare, failed]
    }

    #[test]
    fn leaves_the_rest_to_the_full_parser() {
        let text = serde_json::to_string(&shapes()[1]).unwrap();
        let cases = [
            text.replace(r#""succeeded""#, r#""Succeeded""#),
            text.replace(r#""iat":0"#, r#""iat":0,"rationale":null"#),
            text.replace(r#""iat":0"#, r#""iat":0,"iat":1"#),
            text.replace(r#""type":"#, r#""type":"x","type":"#),
            text.replace(r#""type":"#, r#""kind":"#),
        ];
        for case in cases {
            assert_eq!(read_plain(&case), None, "{case}");
            let full = read_full::<ReceiptClaims>(&case);
            let ok = case.contains("null");
            assert_eq!(full.is_ok(), ok, "{case}: {full:?}");
        }
    }

    /// Whatever the shortcut reads, the full parser reads the same.
    #[test]
    fn never_accepts_more_than_the_full_parser() {
        crate::token::differential::<ReceiptClaims>(&shapes(), 12);
    }
}
