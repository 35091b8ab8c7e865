//! `mandate-receipt+jwt`: an agent's signed account of one thing it did and why.

use serde::{Deserialize, Serialize};

use super::{Claims, Jti, Policy, UnixTime};
use crate::Error;
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

    fn check(&self, policy: &Policy, now: UnixTime) -> Result<(), Error> {
        if self.iat > now.saturating_add(policy.clock_skew) {
            return Err(Error::NotYetValid);
        }
        Ok(())
    }
}
