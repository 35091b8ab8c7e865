//! The token kinds and what they share: typed claims that sign into a
//! compact JWS and verify back into a typed value.

mod binding;
mod checkpoint;
mod confirmation;
mod denial;
mod grant;
mod key_revocation;
mod policy;
mod pop;
mod receipt;
mod request;
mod revocation;
mod tools;
mod witness;

use std::fmt;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

pub use binding::BindingClaims;
pub use checkpoint::CheckpointClaims;
pub use confirmation::{ConfirmationClaims, MAX_CONFIRMATION_LIFETIME, body_hash, same_request};
pub use denial::DenialClaims;
pub use grant::{Actor, Confirmation, GrantClaims};
pub use key_revocation::{KeyRevocationClaims, MAX_REVOKED_KEYS};
pub use policy::{Effect, Excess, MAX_LABEL, MAX_POLICY_LIFETIME, PolicyAgent, PolicyClaims};
pub(crate) use pop::chain_hash_of_ids;
pub use pop::{PopClaims, chain_hash, same_htu};
pub use receipt::{Action, Outcome, ReceiptClaims};
pub use request::{
    AgentInfo, BindingCode, ClientVerification, MAX_LIFETIME_SECS, OAuthClient, RequestClaims,
};
pub use revocation::RevocationClaims;
pub use tools::{MAX_TOOLS, ToolHints, ToolsClaims, valid_tool_name};
pub use witness::{
    MAX_AGE as MAX_WITNESS_AGE, MAX_NAME as MAX_WITNESS_NAME, MAX_REPORT as MAX_WITNESS_REPORT,
    Opened as OpenedWitness, WitnessClaims, WitnessReport, WitnessReportClaims, digest_of,
    made_at as witness_made_at, open_report as open_witness_report, peek_witness, receipt_id,
    valid_trace_id, verify_witness,
};

use crate::Error;
use crate::jws::{self, TokenId, TokenKind};
use crate::key::{PublicKey, SigningKey};

/// Seconds since the Unix epoch, as in JWT `NumericDate` (integers only).
pub type UnixTime = i64;

/// The time rules a verifier applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    /// How far clocks may disagree, in seconds, when checking `exp` and `nbf`.
    pub clock_skew: i64,
    /// How old a proof of possession may be, in seconds.
    pub pop_max_age: i64,
}

impl Default for Policy {
    fn default() -> Policy {
        Policy {
            clock_skew: 60,
            pop_max_age: 60,
        }
    }
}

impl Policy {
    /// Checks a validity window `[nbf, exp)` against `now`, allowing the skew.
    pub fn check_window(
        &self,
        iat: UnixTime,
        nbf: UnixTime,
        exp: UnixTime,
        now: UnixTime,
    ) -> Result<(), Error> {
        if nbf >= exp || iat >= exp {
            return Err(Error::EmptyValidity);
        }
        if now >= exp.saturating_add(self.clock_skew) {
            return Err(Error::Expired);
        }
        if nbf > now.saturating_add(self.clock_skew) {
            return Err(Error::NotYetValid);
        }
        Ok(())
    }
}

/// The user principal: an opaque, non-empty string naming an OIDC identity.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Principal(String);

impl TryFrom<String> for Principal {
    type Error = &'static str;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        if s.is_empty() || s.len() > 512 || s.chars().any(char::is_control) {
            return Err("principal is empty, longer than 512 bytes, or has control characters");
        }
        Ok(Principal(s))
    }
}

impl From<Principal> for String {
    fn from(p: Principal) -> String {
        p.0
    }
}

impl Principal {
    /// The principal's text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Principal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Principal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Principal({:?})", self.0)
    }
}

/// A token id (`jti`): 1 to 128 printable characters.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Jti(String);

impl TryFrom<String> for Jti {
    type Error = &'static str;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        if s.is_empty() || s.len() > 128 || s.chars().any(char::is_control) {
            return Err("jti is empty, longer than 128 bytes, or has control characters");
        }
        Ok(Jti(s))
    }
}

impl From<Jti> for String {
    fn from(j: Jti) -> String {
        j.0
    }
}

impl Jti {
    /// 128 random bits as base64url.
    pub fn random(rng: &mut impl rand_core::CryptoRngCore) -> Jti {
        let mut bytes = [0u8; 16];
        rng.fill_bytes(&mut bytes);
        Jti(crate::b64::encode(bytes))
    }

    /// The text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Claims of one token kind.
pub trait Claims: Serialize + DeserializeOwned {
    /// The kind, and so the `typ`.
    const KIND: TokenKind;

    /// Checks the rules a token of this kind obeys on its own: its times
    /// against `now`, and constraints between its claims.
    fn check(&self, policy: &Policy, now: UnixTime) -> Result<(), Error>;

    /// Signs the claims into a compact token.
    fn sign(&self, key: &SigningKey) -> String {
        jws::sign(Self::KIND, key, self)
    }

    /// A shortcut for the plain form of the claims, the form Mandate signs:
    /// `None` hands the text to the full parser. Whatever it returns, the
    /// full parser returns for the same text (the `plain_claims` fuzz target
    /// holds it to that).
    #[doc(hidden)]
    fn read_plain(_text: &str) -> Option<Self> {
        None
    }
}

/// The full parser that [`Claims::read_plain`] stands in for: the
/// strictness pass, then serde. For the differential fuzz target.
#[doc(hidden)]
pub fn read_full<C: Claims>(text: &str) -> Result<C, Error> {
    jws::read_claims(text)
}

/// A token whose signature, header and own rules were checked. Only
/// verification makes one.
#[derive(Debug, Clone)]
pub struct Verified<C> {
    pub(crate) id: TokenId,
    pub(crate) signer: PublicKey,
    pub(crate) claims: C,
}

impl<C> Verified<C> {
    /// The token's id.
    pub fn id(&self) -> TokenId {
        self.id
    }

    /// The key that signed it.
    pub fn signer(&self) -> &PublicKey {
        &self.signer
    }

    /// The claims.
    pub fn claims(&self) -> &C {
        &self.claims
    }

    /// The claims, taking them.
    pub fn into_claims(self) -> C {
        self.claims
    }
}

/// Verifies one token of kind `C` under `key`, chosen by the caller from a trusted source.
///
/// For a request, whose key travels in its header, use [`RequestClaims::verify`].
pub fn verify<C: Claims>(
    compact: &str,
    key: &PublicKey,
    policy: &Policy,
    now: UnixTime,
) -> Result<Verified<C>, Error> {
    let token = jws::parse(compact, C::KIND)?;
    if token.kid != key.thumbprint() {
        return Err(Error::KidMismatch);
    }
    token.verify(key)?;
    let claims: C = token.claims()?;
    claims.check(policy, now)?;
    Ok(Verified {
        id: token.id,
        signer: *key,
        claims,
    })
}

/// Reads a token's `kid` and claims without verifying anything but the header.
///
/// Use it only to choose which trusted key to verify with, never to act on the claims.
pub fn peek<C: Claims>(compact: &str) -> Result<(crate::key::Thumbprint, C), Error> {
    let token = jws::parse(compact, C::KIND)?;
    let claims = token.claims()?;
    Ok((token.kid, claims))
}

/// Holds a kind's [`Claims::read_plain`] to the full parser: 20,000 texts,
/// each one to three random edits away from one of `shapes` as serde
/// writes it (compact or pretty), must be read the same by both wherever
/// the shortcut reads them at all.
#[cfg(test)]
pub(crate) fn differential<C: Claims + PartialEq + fmt::Debug>(shapes: &[C], seed: u64) {
    use rand_core::{RngCore as _, SeedableRng as _};
    let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(seed);
    let texts: Vec<String> = shapes
        .iter()
        .flat_map(|c| [serde_json::to_string(c), serde_json::to_string_pretty(c)])
        .map(|t| t.unwrap_or_default())
        .collect();
    for text in &texts {
        assert!(
            C::read_plain(text).is_some(),
            "the shortcut reads what serde writes: {text}"
        );
    }
    let (mut read, mut left) = (0, 0);
    for _ in 0..20_000 {
        let text = &texts[rng.next_u32() as usize % texts.len()];
        let edits: Vec<(usize, u8, u8)> = (0..1 + rng.next_u32() % 3)
            .map(|_| {
                (
                    rng.next_u32() as usize,
                    rng.next_u32() as u8,
                    rng.next_u32() as u8,
                )
            })
            .collect();
        let text = mutate(text, &edits);
        match C::read_plain(&text) {
            Some(plain) => {
                read += 1;
                assert_eq!(read_full::<C>(&text), Ok(plain), "{text}");
            }
            None => left += 1,
        }
    }
    // Both branches ran often enough for the comparison to mean something.
    assert!(read > 1_000 && left > 1_000, "read {read}, left {left}");
}

#[cfg(test)]
fn mutate(text: &str, edits: &[(usize, u8, u8)]) -> String {
    // JSON's structural bytes, digits, escapes and a multi-byte letter.
    const ALPHABET: &[&str] = &[
        "{", "}", "[", "]", "\"", ":", ",", " ", "\\", "\n", "0", "1", "9", "-", ".", "e", "a",
        "null", "é", "\u{7f}",
    ];
    let mut bytes = text.as_bytes().to_vec();
    for &(at, op, pick) in edits {
        let at = at % (bytes.len() + 1);
        let insert = ALPHABET[pick as usize % ALPHABET.len()].as_bytes();
        match op % 3 {
            0 => drop(bytes.splice(at..at, insert.iter().copied())),
            1 if at < bytes.len() => drop(bytes.remove(at)),
            _ if at < bytes.len() => drop(bytes.splice(at..=at, insert.iter().copied())),
            _ => {}
        }
    }
    String::from_utf8_lossy(&bytes).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_rules() {
        let p = Policy {
            clock_skew: 10,
            pop_max_age: 60,
        };
        assert_eq!(p.check_window(100, 100, 200, 150), Ok(()));
        assert_eq!(p.check_window(100, 100, 200, 209), Ok(()));
        assert_eq!(p.check_window(100, 100, 200, 210), Err(Error::Expired));
        assert_eq!(p.check_window(100, 100, 200, 90), Ok(()));
        assert_eq!(p.check_window(100, 100, 200, 89), Err(Error::NotYetValid));
        assert_eq!(
            p.check_window(100, 200, 200, 150),
            Err(Error::EmptyValidity)
        );
        assert_eq!(
            p.check_window(300, 100, 200, 150),
            Err(Error::EmptyValidity)
        );
        assert_eq!(p.check_window(0, i64::MIN, i64::MAX, 0), Ok(()));
    }

    #[test]
    fn principals_and_jtis_parse_strictly() {
        assert!(Principal::try_from(String::new()).is_err());
        assert!(Principal::try_from("a\nb".to_string()).is_err());
        assert!(Principal::try_from("https://idp.example#alice".to_string()).is_ok());
        assert!(Jti::try_from("x".repeat(129)).is_err());
    }
}
