//! JWS compact serialization (RFC 7515) restricted to what Mandate allows.
//!
//! Parsing is strict: exactly three canonical base64url parts, a header that
//! names an allowed `alg` and the exact `typ`, no `crit`, no key or key
//! reference except where a kind defines one, no repeated JSON members, and
//! at most [`MAX_TOKEN_BYTES`] in all. Signing always writes
//! `{"alg":"EdDSA","typ":...,"kid":...}`.

use std::borrow::Cow;
use std::fmt;

use serde::de::DeserializeOwned;
use serde::de::{IgnoredAny, MapAccess, Visitor};
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use crate::key::{Jwk, PublicKey, SigningKey, Thumbprint};
use crate::token::Claims;
use crate::{Error, b64};

/// The largest compact token accepted, in bytes.
pub const MAX_TOKEN_BYTES: usize = 16 * 1024;

/// The kinds of token, each with its own `typ`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TokenKind {
    /// `mandate-request+jwt`: an agent asks for authority.
    Request,
    /// `mandate-grant+jwt`: a user or a delegating agent grants authority.
    Grant,
    /// `mandate-denial+jwt`: a user refuses a request.
    Denial,
    /// `mandate-revocation+jwt`: an issuer withdraws grants.
    Revocation,
    /// `mandate-receipt+jwt`: an agent reports what it did.
    Receipt,
    /// `mandate-pop+jwt`: an agent proves possession of its key for one HTTP call.
    Pop,
    /// `mandate-binding+jwt`: a broker binds a user key to a principal.
    Binding,
    /// `mandate-checkpoint+jwt`: a broker states how far its revocation
    /// feed reached, and when.
    Checkpoint,
    /// `mandate-key-revocation+jwt`: a user removes one of their keys.
    KeyRevocation,
    /// `mandate-witness+jwt`: a resource server, trusted as a witness,
    /// reports a call an agent made to it.
    Witness,
    /// `mandate-witness-report+jwt`: a resource server, trusted as a
    /// witness, signs the head of a Merkle tree of its witness receipts.
    WitnessReport,
    /// `mandate-tools+jwt`: a resource server, trusted as a witness,
    /// relays what its MCP server says of its tools.
    Tools,
    /// `mandate-policy+jwt`: a user's standing rule about one agent key.
    Policy,
    /// `mandate-confirmation+jwt`: a user confirms one exact call.
    Confirmation,
}

impl TokenKind {
    /// The exact `typ` header value.
    pub fn typ(self) -> &'static str {
        match self {
            TokenKind::Request => "mandate-request+jwt",
            TokenKind::Grant => "mandate-grant+jwt",
            TokenKind::Denial => "mandate-denial+jwt",
            TokenKind::Revocation => "mandate-revocation+jwt",
            TokenKind::Receipt => "mandate-receipt+jwt",
            TokenKind::Pop => "mandate-pop+jwt",
            TokenKind::Binding => "mandate-binding+jwt",
            TokenKind::Checkpoint => "mandate-checkpoint+jwt",
            TokenKind::KeyRevocation => "mandate-key-revocation+jwt",
            TokenKind::Witness => "mandate-witness+jwt",
            TokenKind::WitnessReport => "mandate-witness-report+jwt",
            TokenKind::Tools => "mandate-tools+jwt",
            TokenKind::Policy => "mandate-policy+jwt",
            TokenKind::Confirmation => "mandate-confirmation+jwt",
        }
    }

    /// Whether the signer's public key travels in the `jwk` header.
    /// Only a request does: it is self-signed, and the key is the agent's identity.
    pub fn carries_key(self) -> bool {
        matches!(self, TokenKind::Request)
    }
}

/// A token's id: the SHA-256 of its compact form. Text form is 43 characters of base64url.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TokenId([u8; 32]);

impl TokenId {
    /// The id of a compact token.
    pub fn of(compact: &str) -> TokenId {
        TokenId(Sha256::digest(compact.as_bytes()).into())
    }

    /// The raw digest.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

b64::digest_text!(TokenId, "token id");

/// A token whose header passed the checks and whose parts are decoded,
/// but whose signature is not verified yet.
pub(crate) struct Unverified<'a> {
    pub id: TokenId,
    pub kid: Thumbprint,
    /// The key from the `jwk` header, for kinds that carry one.
    pub jwk: Option<PublicKey>,
    signing_input: &'a str,
    signature: [u8; 64],
    pub payload: Vec<u8>,
}

impl Unverified<'_> {
    /// Verifies the signature under `key`, which the caller chose from a trusted source.
    pub fn verify(&self, key: &PublicKey) -> Result<(), Error> {
        if key.thumbprint() != self.kid {
            return Err(Error::KidMismatch);
        }
        key.verify_strict(self.signing_input.as_bytes(), &self.signature)
    }

    /// Reads the claims, mapping serde's errors onto stable codes.
    pub fn claims<C: Claims>(&self) -> Result<C, Error> {
        claims_of(&self.payload)
    }
}

/// Reads decoded claims, mapping serde's errors onto stable codes.
pub(crate) fn claims_of<C: Claims>(payload: &[u8]) -> Result<C, Error> {
    // One UTF-8 check of the whole payload is cheaper than serde_json's
    // check of every string in it.
    let text =
        std::str::from_utf8(payload).map_err(|_| Error::Malformed("claims are not UTF-8"))?;
    match C::read_plain(text) {
        Some(claims) => Ok(claims),
        None => read_claims(text),
    }
}

/// The full claims parser: the strictness pass, then serde.
pub(crate) fn read_claims<T: DeserializeOwned>(text: &str) -> Result<T, Error> {
    crate::json::check_object(text)?;
    serde_json::from_str(text).map_err(json_error)
}

/// Maps a serde_json error onto a stable code without echoing input.
pub(crate) fn json_error(e: serde_json::Error) -> Error {
    let message = e.to_string();
    // The strictness pass has already refused repeated members; what is
    // left to tell apart are the scope rules, whose messages are ours.
    if message.starts_with("scope:") {
        Error::BadScope("an authorization detail is malformed")
    } else {
        Error::Malformed("claims do not match the token kind")
    }
}

/// Splits and checks a compact token of the expected kind.
pub(crate) fn parse(compact: &str, expected: TokenKind) -> Result<Unverified<'_>, Error> {
    parse_with_id(compact, expected, TokenId::of(compact))
}

/// [`parse`], for a caller that has already hashed the token.
pub(crate) fn parse_with_id(
    compact: &str,
    expected: TokenKind,
    id: TokenId,
) -> Result<Unverified<'_>, Error> {
    if compact.len() > MAX_TOKEN_BYTES {
        return Err(Error::TokenTooLarge);
    }
    let mut parts = compact.split('.');
    let (Some(h), Some(p), Some(s), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(Error::Malformed("not three dot-separated parts"));
    };
    let header_json = b64::decode(h).ok_or(Error::Malformed("header is not base64url"))?;
    let (kid, jwk) = match plain_header(&header_json, expected) {
        Some(kid) => (kid, None),
        None => {
            let header = Header::parse(&header_json)?;
            header.check(expected)?;
            let kid = header.kid.ok_or(Error::KidMismatch)?;
            if header.jwk.is_some_and(|jwk| jwk.thumbprint() != kid) {
                return Err(Error::KidMismatch);
            }
            (kid, header.jwk)
        }
    };
    let signature = b64::decode_array::<64>(s)
        .ok_or(Error::Malformed("signature is not 64 bytes of base64url"))?;
    let payload = b64::decode(p).ok_or(Error::Malformed("payload is not base64url"))?;
    Ok(Unverified {
        id,
        kid,
        jwk,
        signing_input: &compact[..h.len() + 1 + p.len()],
        signature,
        payload,
    })
}

/// The `kid` of a header that is byte for byte the one [`sign`] writes for
/// a kind without a `jwk`; `None` for any other header, which then goes
/// through [`Header::parse`] and [`Header::check`]. Those accept this form
/// with the same `kid`, so the shortcut changes no answer.
fn plain_header(json: &[u8], expected: TokenKind) -> Option<Thumbprint> {
    if expected.carries_key() {
        return None;
    }
    let rest = json.strip_prefix(br#"{"alg":"EdDSA","typ":""#)?;
    let rest = rest.strip_prefix(expected.typ().as_bytes())?;
    let kid = rest.strip_prefix(br#"","kid":""#)?.strip_suffix(br#""}"#)?;
    std::str::from_utf8(kid).ok()?.parse().ok()
}

/// Signs claims as a compact token of `kind`.
pub(crate) fn sign<T: Serialize>(kind: TokenKind, key: &SigningKey, claims: &T) -> String {
    #[derive(Serialize)]
    struct Out {
        alg: &'static str,
        typ: &'static str,
        kid: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        jwk: Option<Jwk>,
    }
    let jwk = kind.carries_key().then(|| {
        let mut jwk = key.public().to_jwk();
        jwk.kid = None;
        jwk
    });
    let header = Out {
        alg: "EdDSA",
        typ: kind.typ(),
        kid: key.thumbprint().to_string(),
        jwk,
    };
    let header = to_json(&header);
    let payload = to_json(claims);
    let mut compact = b64::encode(header);
    compact.push('.');
    compact.push_str(&b64::encode(payload));
    let signature = key.sign(compact.as_bytes());
    compact.push('.');
    compact.push_str(&b64::encode(signature));
    compact
}

/// Serializes one of this crate's claim types.
#[allow(clippy::expect_used)]
pub(crate) fn to_json<T: Serialize>(value: &T) -> Vec<u8> {
    // Invariant: every type signed here is a plain struct of strings, integers,
    // sequences and string-keyed maps, which serde_json always serializes.
    serde_json::to_vec(value).expect("claims serialize")
}

/// What the header said, collected without trusting it.
#[derive(Default)]
struct Header {
    duplicate: bool,
    alg_ok: bool,
    typ: Option<String>,
    kid: Option<Thumbprint>,
    kid_bad: bool,
    jwk: Option<PublicKey>,
    jwk_bad: bool,
    crit: bool,
    key_reference: bool,
    unknown: bool,
}

impl Header {
    fn parse(json: &[u8]) -> Result<Header, Error> {
        let mut de = serde_json::Deserializer::from_slice(json);
        let header = serde::Deserializer::deserialize_map(&mut de, HeaderVisitor)
            .map_err(|_| Error::Malformed("header is not a JSON object"))?;
        de.end()
            .map_err(|_| Error::Malformed("header has trailing data"))?;
        Ok(header)
    }

    /// The header rules, in a fixed order so that each vector has one answer.
    fn check(&self, expected: TokenKind) -> Result<(), Error> {
        if self.duplicate {
            return Err(Error::DuplicateKey);
        }
        if !self.alg_ok {
            return Err(Error::AlgNotAllowed);
        }
        if self.crit {
            return Err(Error::CritUnsupported);
        }
        if self.typ.as_deref() != Some(expected.typ()) {
            return Err(Error::WrongType { expected });
        }
        if self.key_reference || (self.jwk.is_some() || self.jwk_bad) && !expected.carries_key() {
            return Err(Error::UntrustedHeaderKey);
        }
        if self.unknown {
            return Err(Error::UnknownHeader);
        }
        if self.kid_bad || self.kid.is_none() {
            return Err(Error::KidMismatch);
        }
        if expected.carries_key() && self.jwk.is_none() {
            return Err(if self.jwk_bad {
                Error::BadKey
            } else {
                Error::Malformed("request header lacks its jwk")
            });
        }
        Ok(())
    }
}

struct HeaderVisitor;

impl<'de> Visitor<'de> for HeaderVisitor {
    type Value = Header;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JOSE header object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Header, A::Error> {
        let mut h = Header::default();
        let mut seen: Vec<Cow<'de, str>> = Vec::with_capacity(4);
        while let Some(name) = map.next_key::<Cow<'de, str>>()? {
            if seen.contains(&name) {
                h.duplicate = true;
            }
            match name.as_ref() {
                "alg" => {
                    let alg = map.next_value::<Cow<'de, str>>()?;
                    h.alg_ok = alg == "EdDSA" || alg == "Ed25519";
                }
                "typ" => h.typ = Some(map.next_value::<String>()?),
                "kid" => {
                    let kid = map.next_value::<Cow<'de, str>>()?;
                    match kid.parse() {
                        Ok(k) => h.kid = Some(k),
                        Err(_) => h.kid_bad = true,
                    }
                }
                "jwk" => {
                    // Read the whole value first, so that a bad key cannot
                    // leave the parser inside it.
                    let raw = map.next_value::<&'de serde_json::value::RawValue>()?;
                    let key = crate::json::check_object(raw.get())
                        .ok()
                        .and_then(|()| serde_json::from_str::<Jwk>(raw.get()).ok())
                        .and_then(|jwk| PublicKey::from_jwk(&jwk).ok());
                    match key {
                        Some(k) => h.jwk = Some(k),
                        None => h.jwk_bad = true,
                    }
                }
                "crit" => {
                    map.next_value::<IgnoredAny>()?;
                    h.crit = true;
                }
                "jku" | "x5c" | "x5u" | "x5t" | "x5t#S256" => {
                    map.next_value::<IgnoredAny>()?;
                    h.key_reference = true;
                }
                _ => {
                    map.next_value::<IgnoredAny>()?;
                    h.unknown = true;
                }
            }
            seen.push(name);
        }
        Ok(h)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token(header: &str, payload: &str, key: &SigningKey) -> String {
        let input = format!("{}.{}", b64::encode(header), b64::encode(payload));
        format!("{input}.{}", b64::encode(key.sign(input.as_bytes())))
    }

    fn header(extra: &str, key: &SigningKey) -> String {
        format!(
            r#"{{"alg":"EdDSA","typ":"mandate-grant+jwt","kid":"{}"{extra}}}"#,
            key.thumbprint()
        )
    }

    #[test]
    fn signs_and_verifies() {
        let key = SigningKey::from_seed(&[1; 32]);
        let t = sign(TokenKind::Grant, &key, &serde_json::json!({"a": 1}));
        let u = parse(&t, TokenKind::Grant).unwrap();
        u.verify(key.public()).unwrap();
        assert_eq!(u.id, TokenId::of(&t));
        let other = SigningKey::from_seed(&[2; 32]);
        assert_eq!(u.verify(other.public()), Err(Error::KidMismatch));
    }

    #[test]
    fn header_rules_have_stable_answers() {
        let key = SigningKey::from_seed(&[1; 32]);
        let case = |h: String| {
            parse(&token(&h, "{}", &key), TokenKind::Grant)
                .err()
                .map(|e| e.code())
        };
        assert_eq!(case(header("", &key)), None);
        assert_eq!(
            case(header(r#","alg":"EdDSA""#, &key)),
            Some("token.duplicate_key")
        );
        assert_eq!(
            case(header(r#","crit":["exp"]"#, &key)),
            Some("header.crit_unsupported")
        );
        assert_eq!(
            case(header(r#","jku":"https://x""#, &key)),
            Some("header.untrusted_key")
        );
        assert_eq!(
            case(header(r#","zip":"DEF""#, &key)),
            Some("header.unknown_member")
        );
        assert_eq!(
            case(r#"{"alg":"none","typ":"mandate-grant+jwt"}"#.into()),
            Some("header.alg_not_allowed")
        );
        assert_eq!(
            case(r#"{"typ":"mandate-grant+jwt"}"#.into()),
            Some("header.alg_not_allowed")
        );
        assert_eq!(
            case(r#"{"alg":"EdDSA","typ":"JWT"}"#.into()),
            Some("header.wrong_typ")
        );
        assert_eq!(
            case(r#"{"alg":"EdDSA","typ":"mandate-grant+jwt"}"#.into()),
            Some("header.kid_mismatch")
        );
        assert_eq!(
            case(r#"{"alg":"EdDSA","typ":"mandate-grant+jwt","kid":"x"}"#.into()),
            Some("header.kid_mismatch")
        );
        assert_eq!(case("[1]".into()), Some("token.malformed"));
    }

    #[test]
    fn shape_rules() {
        let key = SigningKey::from_seed(&[1; 32]);
        let good = sign(TokenKind::Grant, &key, &serde_json::json!({}));
        assert_eq!(
            parse(&format!("{good}."), TokenKind::Grant).err(),
            Some(Error::Malformed("not three dot-separated parts"))
        );
        assert_eq!(
            parse(&good.replace('.', ""), TokenKind::Grant)
                .err()
                .map(|e| e.code()),
            Some("token.malformed")
        );
        let big = "a".repeat(MAX_TOKEN_BYTES + 1);
        assert_eq!(
            parse(&big, TokenKind::Grant).err(),
            Some(Error::TokenTooLarge)
        );
    }
}
