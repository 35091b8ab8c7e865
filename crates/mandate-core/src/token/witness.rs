//! `mandate-witness+jwt`: a resource server's signed account of a call an
//! agent made to it, beside the agent's own receipt.
//!
//! The agent's receipt says what the agent meant to do; a witness receipt
//! says what reached the resource, under which grant, and how it ended.
//! Only a key the broker trusts as the witness for a resource signs one
//! (docs/protocol.md, 4.10).

use serde::{Deserialize, Serialize};
use sha2::Digest as _;

use super::{Action, Claims, Jti, Outcome, Policy, UnixTime};
use crate::Error;
use crate::jws::{TokenId, TokenKind};
use crate::key::Thumbprint;

/// The most seconds a witness receipt's `iat` may precede its arrival at
/// the broker; the app checks its chain no earlier than that before its
/// arrival (docs/protocol.md 4.10).
pub const MAX_AGE: i64 = 600;

/// The time a witness receipt's chain is checked at, for a receipt that
/// arrived at `at`: its `iat` if earlier (a call made just before a
/// revocation and reported just after it stands), but no earlier than
/// [`MAX_AGE`] before `at`, whatever the witness signed.
pub fn made_at(iat: UnixTime, at: UnixTime) -> UnixTime {
    iat.min(at).max(at.saturating_sub(MAX_AGE))
}

/// The longest `name` a witness receipt holds, in bytes.
pub const MAX_NAME: usize = 2048;

/// The claims of a witness receipt.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WitnessClaims {
    /// The id of the leaf grant the call was made under.
    pub grant: TokenId,
    /// The thumbprint of the key that made the call (its proof of
    /// possession, or the DPoP key its access token is bound to).
    pub holder: Thumbprint,
    /// What the call was: `type` the method, `target` the resource's URL.
    pub action: Action,
    /// The tool, prompt or resource the call named, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The SHA-256 of the request's body as received, in base64url: the
    /// caller can compute the same over what it sent.
    pub dig: String,
    /// How it ended.
    pub outcome: Outcome,
    /// The W3C trace id the call carried: 32 lowercase hex digits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trace: Option<String>,
    /// When.
    pub iat: UnixTime,
    /// Unique id.
    pub jti: Jti,
}

impl Claims for WitnessClaims {
    const KIND: TokenKind = TokenKind::Witness;

    fn check(&self, policy: &Policy, now: UnixTime) -> Result<(), Error> {
        if self.iat > now.saturating_add(policy.clock_skew) {
            return Err(Error::NotYetValid);
        }
        if !is_digest(&self.dig) {
            return Err(Error::Malformed("dig is not a base64url SHA-256"));
        }
        if self.trace.as_deref().is_some_and(|t| !valid_trace_id(t)) {
            return Err(Error::Malformed("trace is not a W3C trace id"));
        }
        if self
            .name
            .as_deref()
            .is_some_and(|n| n.is_empty() || n.len() > MAX_NAME || n.chars().any(char::is_control))
        {
            return Err(Error::Malformed("name is empty, too long, or has controls"));
        }
        Ok(())
    }
}

/// The `dig` of a request body: its SHA-256, in base64url.
pub fn digest_of(body: &[u8]) -> String {
    crate::b64::encode(sha2::Sha256::digest(body))
}

/// A W3C Trace Context trace id: 32 lowercase hex digits, not all zero.
pub fn valid_trace_id(t: &str) -> bool {
    t.len() == 32
        && t.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
        && t.bytes().any(|b| b != b'0')
}

fn is_digest(d: &str) -> bool {
    d.len() == 43 && crate::b64::decode_array::<32>(d).is_some_and(|b| crate::b64::encode(b) == d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::SigningKey;
    use crate::token::verify;

    fn claims() -> WitnessClaims {
        WitnessClaims {
            grant: TokenId::of("grant"),
            holder: SigningKey::from_seed(&[3; 32]).public().thumbprint(),
            action: Action {
                kind: "tools/call".into(),
                target: "https://gw.example/mcp".into(),
                summary: "Called the tool run_command".into(),
            },
            name: Some("run_command".into()),
            dig: digest_of(b"{}"),
            outcome: Outcome::Succeeded,
            trace: Some("4bf92f3577b34da6a3ce929d0e0e4736".into()),
            iat: 1_796_000_000,
            jti: "w-1".to_string().try_into().unwrap(),
        }
    }

    #[test]
    fn the_chain_is_checked_when_the_call_was_made_within_ten_minutes() {
        let at = 1_796_000_000;
        assert_eq!(made_at(at - 5, at), at - 5);
        assert_eq!(made_at(at + 30, at), at, "never after its arrival");
        assert_eq!(made_at(at - MAX_AGE, at), at - MAX_AGE);
        assert_eq!(made_at(at - 10_000, at), at - MAX_AGE);
    }

    #[test]
    fn verifies_under_the_witness_key_only() {
        let witness = SigningKey::from_seed(&[1; 32]);
        let other = SigningKey::from_seed(&[2; 32]);
        let token = claims().sign(&witness);
        let p = Policy::default();
        let v = verify::<WitnessClaims>(&token, witness.public(), &p, 1_796_000_000).unwrap();
        assert_eq!(v.claims(), &claims());
        assert_eq!(
            verify::<WitnessClaims>(&token, other.public(), &p, 1_796_000_000).err(),
            Some(Error::KidMismatch)
        );
        // Any other kind of token, even by the same key, is not a witness.
        let receipt = crate::token::ReceiptClaims {
            grant: TokenId::of("grant"),
            action: claims().action,
            outcome: Outcome::Succeeded,
            rationale: None,
            cause: None,
            iat: 1_796_000_000,
            jti: "w-1".to_string().try_into().unwrap(),
        }
        .sign(&witness);
        assert_eq!(
            verify::<WitnessClaims>(&receipt, witness.public(), &p, 1_796_000_000)
                .err()
                .map(|e| e.code()),
            Some("header.wrong_typ")
        );
    }

    #[test]
    fn refuses_claims_outside_their_grammar() {
        let witness = SigningKey::from_seed(&[1; 32]);
        let p = Policy::default();
        let now = 1_796_000_000;
        let cases: Vec<(WitnessClaims, &str)> = vec![
            (
                WitnessClaims {
                    iat: now + 61,
                    ..claims()
                },
                "time.not_yet_valid",
            ),
            (
                WitnessClaims {
                    dig: "abc".into(),
                    ..claims()
                },
                "token.malformed",
            ),
            (
                WitnessClaims {
                    dig: format!("{}=", &digest_of(b"")[..42]),
                    ..claims()
                },
                "token.malformed",
            ),
            (
                WitnessClaims {
                    trace: Some("4BF92F3577B34DA6A3CE929D0E0E4736".into()),
                    ..claims()
                },
                "token.malformed",
            ),
            (
                WitnessClaims {
                    trace: Some("0".repeat(32)),
                    ..claims()
                },
                "token.malformed",
            ),
            (
                WitnessClaims {
                    name: Some("a\nb".into()),
                    ..claims()
                },
                "token.malformed",
            ),
            (
                WitnessClaims {
                    name: Some("x".repeat(MAX_NAME + 1)),
                    ..claims()
                },
                "token.malformed",
            ),
        ];
        for (c, code) in cases {
            let token = c.sign(&witness);
            let got = verify::<WitnessClaims>(&token, witness.public(), &p, now)
                .err()
                .map(|e| e.code());
            assert_eq!(got, Some(code), "{c:?}");
        }
    }

    #[test]
    fn unknown_claims_are_refused() {
        let witness = SigningKey::from_seed(&[1; 32]);
        let mut v = serde_json::to_value(claims()).unwrap();
        v["extra"] = serde_json::json!(1);
        let token = crate::jws::sign(TokenKind::Witness, &witness, &v);
        let got =
            verify::<WitnessClaims>(&token, witness.public(), &Policy::default(), 1_796_000_000);
        assert_eq!(got.err().map(|e| e.code()), Some("token.malformed"));
    }
}
