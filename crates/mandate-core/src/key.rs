//! Keys, JWKs (RFC 8037), thumbprints (RFC 7638) and agent ids (RFC 9278).
//!
//! A [`SigningKey`] holds a secret: it has no `Debug`, no `Serialize`, and
//! its bytes are wiped on drop. A [`PublicKey`] is a decompressed,
//! non-weak Ed25519 point together with its thumbprint.

use std::fmt;
use std::str::FromStr;

use ed25519_dalek::{Signer as _, VerifyingKey};
use rand_core::CryptoRngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};
use zeroize::Zeroizing;

use crate::{Error, b64};

/// The RFC 9278 URI prefix of an agent id.
pub const AGENT_ID_PREFIX: &str = "urn:ietf:params:oauth:jwk-thumbprint:sha-256:";

/// The RFC 7638 SHA-256 thumbprint of an Ed25519 public key.
///
/// Its text form (`kid`, `cnf.jkt`) is 43 characters of base64url.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Thumbprint([u8; 32]);

impl Thumbprint {
    /// The raw digest.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// The thumbprint of an Ed25519 public key given as its 32 bytes.
    pub fn of_ed25519(public: &[u8; 32]) -> Thumbprint {
        // RFC 7638: the required members in lexicographic order, no whitespace.
        let mut x = [0u8; 43];
        let n = b64::encode_into(public, &mut x);
        let mut hasher = Sha256::new();
        hasher.update(br#"{"crv":"Ed25519","kty":"OKP","x":""#);
        hasher.update(&x[..n]);
        hasher.update(br#""}"#);
        Thumbprint(hasher.finalize().into())
    }

    /// The thumbprint of any JWK, given as RFC 7638's canonical JSON of its
    /// required members (in lexicographic order, no whitespace): for keys
    /// Mandate does not hold itself, such as an OAuth client's P-256 DPoP key.
    pub fn of_canonical_jwk(canonical: &[u8]) -> Thumbprint {
        Thumbprint(Sha256::digest(canonical).into())
    }
}

b64::digest_text!(Thumbprint, "thumbprint");

/// An agent's identity: the RFC 9278 thumbprint URI of its key.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AgentId(Thumbprint);

impl AgentId {
    /// The agent id of the key with this thumbprint.
    pub fn from_thumbprint(jkt: Thumbprint) -> AgentId {
        AgentId(jkt)
    }

    /// The thumbprint inside the URI.
    pub fn thumbprint(&self) -> Thumbprint {
        self.0
    }

    /// A short, human-comparable fingerprint: the first 16 base64url characters in groups of four.
    pub fn fingerprint(&self) -> String {
        let text = self.0.to_string();
        let head: Vec<&str> = (0..4).filter_map(|i| text.get(i * 4..i * 4 + 4)).collect();
        head.join("-")
    }
}

impl fmt::Display for AgentId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{AGENT_ID_PREFIX}{}", self.0)
    }
}

impl fmt::Debug for AgentId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "AgentId({})", self.0)
    }
}

impl FromStr for AgentId {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        let jkt = s
            .strip_prefix(AGENT_ID_PREFIX)
            .ok_or(Error::Malformed("agent id is not a jwk-thumbprint URI"))?;
        Ok(AgentId(jkt.parse()?))
    }
}

impl Serialize for AgentId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for AgentId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        s.parse()
            .map_err(|_| serde::de::Error::custom("invalid agent id"))
    }
}

/// A public OKP JWK for Ed25519 (RFC 8037), as it appears on the wire.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Jwk {
    /// Always `OKP`.
    pub kty: String,
    /// Always `Ed25519`.
    pub crv: String,
    /// The public key, base64url.
    pub x: String,
    /// Optional key id; when present it must equal the thumbprint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kid: Option<String>,
    /// Optional algorithm; when present it must be `EdDSA` or `Ed25519`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alg: Option<String>,
    /// Optional use; when present it must be `sig`.
    #[serde(default, rename = "use", skip_serializing_if = "Option::is_none")]
    pub use_: Option<String>,
}

/// A verified Ed25519 public key and its thumbprint.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct PublicKey {
    key: VerifyingKey,
    jkt: Thumbprint,
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey({})", self.jkt)
    }
}

impl PublicKey {
    /// Decompresses a 32-byte Ed25519 public key, refusing weak (small-order) points.
    ///
    /// A verifier meets the same few keys on call after call (a DPoP
    /// proof's `jwk`, the keys beside a chain), and decompressing one is a
    /// square root in the field: 5.8 µs with the checks and the
    /// thumbprint, against 0.02 µs for a key found (docs/benchmarks.md,
    /// "CPU a call, and three changes"). So the keys decompressed lately
    /// are kept, by their bytes, in a table of 256: a key found there is
    /// the same value this would compute again. Only keys that passed
    /// every check are kept.
    pub fn from_bytes(bytes: &[u8; 32]) -> Result<PublicKey, Error> {
        let slot = &RECENT_KEYS[recent_slot(bytes)];
        let lock = || {
            slot.lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
        };
        if let Some(key) = *lock()
            && key.as_bytes() == bytes
        {
            return Ok(key);
        }
        let key = PublicKey::decompress(bytes)?;
        *lock() = Some(key);
        Ok(key)
    }

    /// [`PublicKey::from_bytes`] without the table of recent keys: the
    /// same checks and result, always at the full cost. For measuring a
    /// key never seen before.
    pub fn decompress(bytes: &[u8; 32]) -> Result<PublicKey, Error> {
        if !canonical_y(bytes) {
            return Err(Error::BadKey);
        }
        let key = VerifyingKey::from_bytes(bytes).map_err(|_| Error::BadKey)?;
        if small_order(bytes) {
            return Err(Error::BadKey);
        }
        Ok(PublicKey {
            key,
            jkt: Thumbprint::of_ed25519(bytes),
        })
    }

    /// Parses a public JWK. A JWK with a private part (`d`) is refused.
    pub fn from_jwk(jwk: &Jwk) -> Result<PublicKey, Error> {
        if jwk.kty != "OKP" || jwk.crv != "Ed25519" {
            return Err(Error::BadKey);
        }
        if jwk
            .alg
            .as_deref()
            .is_some_and(|a| a != "EdDSA" && a != "Ed25519")
        {
            return Err(Error::BadKey);
        }
        if jwk.use_.as_deref().is_some_and(|u| u != "sig") {
            return Err(Error::BadKey);
        }
        let bytes = b64::decode_array::<32>(&jwk.x).ok_or(Error::BadKey)?;
        let key = PublicKey::from_bytes(&bytes)?;
        if jwk
            .kid
            .as_deref()
            .is_some_and(|kid| kid != key.jkt.to_string())
        {
            return Err(Error::BadKey);
        }
        Ok(key)
    }

    /// Parses a public JWK from JSON text.
    pub fn from_jwk_json(json: &str) -> Result<PublicKey, Error> {
        crate::json::check_object(json).map_err(|_| Error::BadKey)?;
        let jwk: Jwk = serde_json::from_str(json).map_err(|_| Error::BadKey)?;
        PublicKey::from_jwk(&jwk)
    }

    /// The public JWK, with `kid` set to the thumbprint.
    pub fn to_jwk(&self) -> Jwk {
        Jwk {
            kty: "OKP".into(),
            crv: "Ed25519".into(),
            x: b64::encode(self.key.as_bytes()),
            kid: Some(self.jkt.to_string()),
            alg: None,
            use_: None,
        }
    }

    /// The RFC 7638 thumbprint.
    pub fn thumbprint(&self) -> Thumbprint {
        self.jkt
    }

    /// The agent id of this key.
    pub fn agent_id(&self) -> AgentId {
        AgentId(self.jkt)
    }

    /// The 32 bytes of the compressed point.
    pub fn as_bytes(&self) -> &[u8; 32] {
        self.key.as_bytes()
    }

    /// Checks a signature from [`SigningKey::sign_detached`] for the same
    /// `context` and `message`, strictly.
    pub fn verify_detached(
        &self,
        context: &str,
        message: &[u8],
        signature: &[u8; 64],
    ) -> Result<(), Error> {
        self.verify_strict(&detached_input(context, message), signature)
    }

    /// Strict Ed25519 verification of a raw message, such as a JWS signing
    /// input (no malleable or small-order signatures): the verdict of
    /// ed25519-dalek's `verify_strict`, for less work. Public so that the
    /// benchmarks can measure it as a floor of its own.
    ///
    /// `verify_strict` decompresses R, refuses it and A if either has small
    /// order, then recomputes R as [s]B - [k]A and compares its canonical
    /// encoding with the signature's. Both parse s the same way (below ℓ).
    /// Here the comparison comes alone: when it holds, R is the canonical
    /// encoding of a point, so whether that point has small order can be
    /// read off the encoding ([`small_order`]) without decompressing it; A
    /// was refused at construction if it had small order, and a key made
    /// from a seed never has. That saves a square root and two
    /// multiplications by the cofactor, about a seventh of a verification.
    /// A test holds the two to the same verdict.
    pub fn verify_strict(&self, message: &[u8], signature: &[u8; 64]) -> Result<(), Error> {
        use ed25519_dalek::Verifier as _;
        let (r, _) = signature
            .split_first_chunk::<32>()
            .ok_or(Error::BadSignature)?;
        if small_order(r) {
            return Err(Error::BadSignature);
        }
        let sig = ed25519_dalek::Signature::from_bytes(signature);
        self.key
            .verify(message, &sig)
            .map_err(|_| Error::BadSignature)
    }
}

/// How many keys [`PublicKey::from_bytes`] keeps: a direct-mapped table,
/// each slot behind its own lock. A key that maps to a taken slot evicts
/// the one there, so a caller who sends many keys costs only the
/// decompressions it would have cost without the table.
const RECENT_KEY_SLOTS: usize = 256;

/// The keys decompressed lately; see [`PublicKey::from_bytes`].
static RECENT_KEYS: [std::sync::Mutex<Option<PublicKey>>; RECENT_KEY_SLOTS] =
    [const { std::sync::Mutex::new(None) }; RECENT_KEY_SLOTS];

/// The slot of `bytes` in [`RECENT_KEYS`]: its first byte, since a public
/// key's bytes are uniform (a chosen key can only evict another).
fn recent_slot(bytes: &[u8; 32]) -> usize {
    usize::from(bytes[0]) % RECENT_KEY_SLOTS
}

/// The y coordinates of the eight points of small order, the torsion
/// subgroup E[8]: 1 (the identity), p - 1 (order 2), 0 (order 4, x = ±√-1)
/// and the two of order 8. Each stands for both signs of x.
const SMALL_ORDER_Y: [[u8; 32]; 5] = [
    {
        let mut y = [0; 32];
        y[0] = 1;
        y
    },
    {
        let mut y = [0xff; 32];
        y[0] = 0xec;
        y[31] = 0x7f;
        y
    },
    [0; 32],
    [
        0xc7, 0x17, 0x6a, 0x70, 0x3d, 0x4d, 0xd8, 0x4f, 0xba, 0x3c, 0x0b, 0x76, 0x0d, 0x10, 0x67,
        0x0f, 0x2a, 0x20, 0x53, 0xfa, 0x2c, 0x39, 0xcc, 0xc6, 0x4e, 0xc7, 0xfd, 0x77, 0x92, 0xac,
        0x03, 0x7a,
    ],
    [
        0x26, 0xe8, 0x95, 0x8f, 0xc2, 0xb2, 0x27, 0xb0, 0x45, 0xc3, 0xf4, 0x89, 0xf2, 0xef, 0x98,
        0xf0, 0xd5, 0xdf, 0xac, 0x05, 0xd3, 0xc6, 0x33, 0x39, 0xb1, 0x38, 0x02, 0x88, 0x6d, 0x53,
        0xfc, 0x05,
    ],
];

/// Whether a point that decompressed from `bytes`, whose y is canonical,
/// has small order: the test of `VerifyingKey::is_weak` (multiply by the
/// cofactor, compare with the identity) read off the encoding instead,
/// as libsodium does. The weak-key test below holds the two to agreement.
fn small_order(bytes: &[u8; 32]) -> bool {
    let mut y = *bytes;
    y[31] &= 0x7f;
    SMALL_ORDER_Y.contains(&y)
}

/// Whether the y coordinate of a compressed point is below p = 2^255 - 19.
/// A larger y names the same point as y - p, so one key would have two
/// encodings and two thumbprints.
fn canonical_y(bytes: &[u8; 32]) -> bool {
    let top = bytes[31] & 0x7f;
    !(top == 0x7f && bytes[1..31].iter().all(|&b| b == 0xff) && bytes[0] >= 0xed)
}

/// An Ed25519 secret key. It has no `Debug` and no `Serialize`; its bytes are wiped on drop.
pub struct SigningKey {
    key: ed25519_dalek::SigningKey,
    public: PublicKey,
}

impl SigningKey {
    /// Generates a key from a cryptographic random source.
    pub fn generate(rng: &mut impl CryptoRngCore) -> SigningKey {
        let mut seed = Zeroizing::new([0u8; 32]);
        rng.fill_bytes(seed.as_mut());
        SigningKey::from_seed(&seed)
    }

    /// Rebuilds a key from its 32-byte seed (as stored in a keyring).
    pub fn from_seed(seed: &[u8; 32]) -> SigningKey {
        let key = ed25519_dalek::SigningKey::from_bytes(seed);
        let public_bytes = key.verifying_key().to_bytes();
        let public = PublicKey {
            key: key.verifying_key(),
            jkt: Thumbprint::of_ed25519(&public_bytes),
        };
        SigningKey { key, public }
    }

    /// The seed, for storage in a keyring. The buffer is wiped when dropped.
    pub fn to_seed(&self) -> Zeroizing<[u8; 32]> {
        Zeroizing::new(self.key.to_bytes())
    }

    /// The public half.
    pub fn public(&self) -> &PublicKey {
        &self.public
    }

    /// The thumbprint of the public half, used as `kid`.
    pub fn thumbprint(&self) -> Thumbprint {
        self.public.jkt
    }

    pub(crate) fn sign(&self, message: &[u8]) -> [u8; 64] {
        self.key.sign(message).to_bytes()
    }

    /// A detached signature over `message` for one purpose, named by
    /// `context` (such as `mandate-history-head/v1`). What is signed is
    /// `mandate-context:`, the context's length in bytes (4 bytes, big
    /// endian), the context, then the message: it can never be read as a
    /// JWS signing input (base64url has no `:`), nor as a message of
    /// another context.
    pub fn sign_detached(&self, context: &str, message: &[u8]) -> [u8; 64] {
        self.sign(&detached_input(context, message))
    }
}

fn detached_input(context: &str, message: &[u8]) -> Vec<u8> {
    let mut input = Vec::with_capacity(20 + context.len() + message.len());
    input.extend_from_slice(b"mandate-context:");
    // A context longer than 4 GiB cannot exist in memory alongside this.
    input.extend_from_slice(
        &u32::try_from(context.len())
            .unwrap_or(u32::MAX)
            .to_be_bytes(),
    );
    input.extend_from_slice(context.as_bytes());
    input.extend_from_slice(message);
    input
}

#[cfg(test)]
mod tests {
    use super::*;

    // RFC 8037 appendix A.1 / A.3: the Ed25519 example key and its thumbprint.
    const RFC8037_X: &str = "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo";
    const RFC8037_JKT: &str = "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k";

    #[test]
    fn a_remembered_key_is_the_key_decompressed_again() {
        // Keys that share a slot of the table evict each other, and each
        // comes back as the value decompression gives, however often.
        let keys: Vec<[u8; 32]> = (0u8..=255)
            .map(|i| {
                SigningKey::from_seed(&[i; 32])
                    .public()
                    .as_bytes()
                    .to_owned()
            })
            .collect();
        let same_slot: Vec<&[u8; 32]> = keys
            .iter()
            .filter(|k| recent_slot(k) == recent_slot(&keys[0]))
            .collect();
        for _ in 0..3 {
            for bytes in keys.iter().chain(same_slot.iter().copied()) {
                let fresh = PublicKey::decompress(bytes).unwrap();
                let got = PublicKey::from_bytes(bytes).unwrap();
                assert_eq!(got, fresh);
                assert_eq!(got.as_bytes(), bytes);
                assert_eq!(got.thumbprint(), Thumbprint::of_ed25519(bytes));
            }
        }
        // A refused key stays refused, in a slot that holds a good key:
        // the identity (y = 1, small order) after a good key of its slot.
        let mut identity = [0u8; 32];
        identity[0] = 1;
        let neighbour = (0u16..=u16::MAX)
            .map(|i| {
                let mut seed = [0u8; 32];
                seed[..2].copy_from_slice(&i.to_le_bytes());
                *SigningKey::from_seed(&seed).public().as_bytes()
            })
            .find(|k| recent_slot(k) == recent_slot(&identity))
            .unwrap();
        for _ in 0..2 {
            assert!(PublicKey::from_bytes(&neighbour).is_ok());
            assert_eq!(PublicKey::from_bytes(&identity), Err(Error::BadKey));
        }
    }

    #[test]
    fn detached_signatures_are_bound_to_their_context_and_message() {
        let key = SigningKey::from_seed(&[7; 32]);
        let sig = key.sign_detached("mandate-test/v1", b"message");
        let public = key.public();
        assert!(
            public
                .verify_detached("mandate-test/v1", b"message", &sig)
                .is_ok()
        );
        assert!(matches!(
            public.verify_detached("mandate-test/v2", b"message", &sig),
            Err(Error::BadSignature)
        ));
        assert!(matches!(
            public.verify_detached("mandate-test/v1", b"messagf", &sig),
            Err(Error::BadSignature)
        ));
        // The length prefix keeps context and message apart.
        assert!(matches!(
            public.verify_detached("mandate-test/v1mess", b"age", &sig),
            Err(Error::BadSignature)
        ));
        let other = SigningKey::from_seed(&[8; 32]);
        assert!(matches!(
            other
                .public()
                .verify_detached("mandate-test/v1", b"message", &sig),
            Err(Error::BadSignature)
        ));
    }

    #[test]
    fn thumbprint_matches_rfc8037_example() {
        let jwk = format!(r#"{{"kty":"OKP","crv":"Ed25519","x":"{RFC8037_X}"}}"#);
        let key = PublicKey::from_jwk_json(&jwk).unwrap();
        assert_eq!(key.thumbprint().to_string(), RFC8037_JKT);
        assert_eq!(
            key.agent_id().to_string(),
            format!("{AGENT_ID_PREFIX}{RFC8037_JKT}")
        );
    }

    #[test]
    fn rfc8037_seed_gives_rfc8037_public_key() {
        let seed = b64::decode_array::<32>("nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A").unwrap();
        let key = SigningKey::from_seed(&seed);
        assert_eq!(b64::encode(key.public().as_bytes()), RFC8037_X);
    }

    #[test]
    fn jwk_round_trips_and_refuses_private_or_foreign_keys() {
        let key = SigningKey::from_seed(&[7; 32]);
        let jwk = key.public().to_jwk();
        assert_eq!(PublicKey::from_jwk(&jwk).unwrap(), *key.public());
        let with_d = format!(
            r#"{{"kty":"OKP","crv":"Ed25519","x":"{}","d":"AAAA"}}"#,
            jwk.x
        );
        assert_eq!(PublicKey::from_jwk_json(&with_d), Err(Error::BadKey));
        let x25519 = format!(r#"{{"kty":"OKP","crv":"X25519","x":"{}"}}"#, jwk.x);
        assert_eq!(PublicKey::from_jwk_json(&x25519), Err(Error::BadKey));
        let wrong_kid = Jwk {
            kid: Some(RFC8037_JKT.into()),
            ..jwk
        };
        assert_eq!(PublicKey::from_jwk(&wrong_kid), Err(Error::BadKey));
    }

    #[test]
    fn weak_keys_are_refused() {
        // The identity point encodes as 1 followed by zeros: small order.
        let mut identity = [0u8; 32];
        identity[0] = 1;
        assert_eq!(PublicKey::from_bytes(&identity), Err(Error::BadKey));
    }

    /// The encoding test agrees with ed25519-dalek's `is_weak` on every
    /// small-order point, with either sign bit, and on points of large and
    /// of mixed order.
    #[test]
    fn small_order_is_read_off_the_encoding() {
        use curve25519_dalek::constants::{ED25519_BASEPOINT_POINT, EIGHT_TORSION};
        use curve25519_dalek::scalar::Scalar;
        let weak = |bytes: &[u8; 32]| VerifyingKey::from_bytes(bytes).ok().map(|k| k.is_weak());
        // E[8] has eight points; each one's y is listed, so any canonical
        // encoding of a small-order point is caught.
        let torsion: std::collections::BTreeSet<[u8; 32]> = EIGHT_TORSION
            .iter()
            .map(|p| p.compress().to_bytes())
            .collect();
        assert_eq!(torsion.len(), 8);
        for bytes in &torsion {
            assert!(small_order(bytes));
        }
        for y in SMALL_ORDER_Y {
            for sign in [0, 0x80] {
                let mut bytes = y;
                bytes[31] |= sign;
                assert_eq!(weak(&bytes), Some(true), "{bytes:02x?}");
                assert!(small_order(&bytes));
                assert_eq!(PublicKey::from_bytes(&bytes), Err(Error::BadKey));
            }
        }
        for n in 1..200u64 {
            let large = ED25519_BASEPOINT_POINT * Scalar::from(n);
            for point in [large, large + EIGHT_TORSION[(n % 8) as usize]] {
                let bytes = point.compress().to_bytes();
                assert_eq!(weak(&bytes), Some(false));
                assert!(!small_order(&bytes));
                assert!(PublicKey::from_bytes(&bytes).is_ok());
            }
        }
    }

    /// `PublicKey::verify_strict` gives ed25519-dalek's `verify_strict`
    /// verdict: on good signatures, on every one-bit change of signature
    /// and message, and on the signatures the shortcut could get wrong,
    /// those whose R has small order (each point of E[8], either sign bit,
    /// and a non-canonical identity), of mixed order, or with s ≥ ℓ. The
    /// identity R with s = k·a passes the plain check ([s]B - [k]A is the
    /// identity) and only the small-order test refuses it.
    #[test]
    fn strict_verification_agrees_with_ed25519_dalek() {
        use curve25519_dalek::constants::EIGHT_TORSION;
        use curve25519_dalek::scalar::Scalar;
        use ed25519_dalek::Verifier as _;
        use sha2::{Digest as _, Sha512};
        let agree = |key: &PublicKey, message: &[u8], sig: &[u8; 64]| {
            let theirs = key
                .key
                .verify_strict(message, &ed25519_dalek::Signature::from_bytes(sig))
                .is_ok();
            assert_eq!(
                key.verify_strict(message, sig).is_ok(),
                theirs,
                "{sig:02x?}"
            );
            theirs
        };
        use rand_chacha::rand_core::SeedableRng as _;
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(7);
        for n in 0..40u8 {
            let secret = SigningKey::generate(&mut rng);
            let key = secret.public();
            let message = format!("message {n}").into_bytes();
            let sig = secret.sign(&message);
            assert!(agree(key, &message, &sig));
            for bit in 0..512 {
                let mut bad = sig;
                bad[bit / 8] ^= 1 << (bit % 8);
                assert!(!agree(key, &message, &bad));
            }
            for bit in 0..message.len() * 8 {
                let mut bad = message.clone();
                bad[bit / 8] ^= 1 << (bit % 8);
                assert!(!agree(key, &bad, &sig));
            }
            // s + ℓ names the same scalar: refused as malleable.
            let s = Scalar::from_canonical_bytes(sig[32..].try_into().unwrap()).unwrap();
            let mut wide = sig;
            let sum = add_le(&s.to_bytes(), &ORDER);
            wide[32..].copy_from_slice(&sum);
            assert!(!agree(key, &message, &wide));
            // Signatures made with the secret scalar a and a chosen R:
            // s = r + k·a, where k hashes R, A and the message.
            let a = secret.key.to_scalar();
            let forge = |r_bytes: [u8; 32], r: Scalar| {
                let k = Scalar::from_hash(
                    Sha512::new()
                        .chain_update(r_bytes)
                        .chain_update(key.as_bytes())
                        .chain_update(&message),
                );
                let mut sig = [0u8; 64];
                sig[..32].copy_from_slice(&r_bytes);
                sig[32..].copy_from_slice(&(r + k * a).to_bytes());
                sig
            };
            let mut identity = [0u8; 32];
            identity[0] = 1;
            let plain_accepts = forge(identity, Scalar::ZERO);
            assert!(
                key.key
                    .verify(
                        &message,
                        &ed25519_dalek::Signature::from_bytes(&plain_accepts)
                    )
                    .is_ok()
            );
            assert!(!agree(key, &message, &plain_accepts));
            let mut signed_identity = identity;
            signed_identity[31] |= 0x80;
            assert!(!agree(key, &message, &forge(signed_identity, Scalar::ZERO)));
            for torsion in EIGHT_TORSION {
                for sign in [0, 0x80] {
                    let mut r_bytes = torsion.compress().to_bytes();
                    r_bytes[31] ^= sign;
                    assert!(!agree(key, &message, &forge(r_bytes, Scalar::ZERO)));
                }
                let r = Scalar::from(u64::from(n) + 1);
                let mixed = curve25519_dalek::constants::ED25519_BASEPOINT_POINT * r + torsion;
                let honest = forge(mixed.compress().to_bytes(), r);
                assert_eq!(
                    agree(key, &message, &honest),
                    torsion == EIGHT_TORSION[0],
                    "mixed-order R"
                );
            }
        }
    }

    /// ℓ, the order of the base point, little-endian.
    const ORDER: [u8; 32] = [
        0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58, 0xd6, 0x9c, 0xf7, 0xa2, 0xde, 0xf9, 0xde,
        0x14, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x10,
    ];

    /// Adds two 32-byte little-endian numbers, modulo 2^256.
    fn add_le(x: &[u8; 32], y: &[u8; 32]) -> [u8; 32] {
        let mut out = [0u8; 32];
        let mut carry = 0u16;
        for i in 0..32 {
            let sum = u16::from(x[i]) + u16::from(y[i]) + carry;
            out[i] = sum as u8;
            carry = sum >> 8;
        }
        out
    }

    #[test]
    fn non_canonical_encodings_are_refused() {
        // y = p + 1 encodes the same point as y = 1 (the identity): refused
        // as non-canonical before it could be refused as weak.
        let mut y = [0xffu8; 32];
        y[0] = 0xee;
        y[31] = 0x7f;
        assert!(!canonical_y(&y));
        y[0] = 0xec;
        assert!(canonical_y(&y), "p - 1 is canonical");
        assert!(canonical_y(
            SigningKey::from_seed(&[3; 32]).public().as_bytes()
        ));
    }

    #[test]
    fn agent_ids_parse_strictly() {
        let key = SigningKey::from_seed(&[9; 32]);
        let id = key.public().agent_id();
        assert_eq!(id.to_string().parse::<AgentId>().unwrap(), id);
        assert!("urn:x:y".parse::<AgentId>().is_err());
        assert!(format!("{AGENT_ID_PREFIX}abc").parse::<AgentId>().is_err());
        assert_eq!(id.fingerprint().len(), 19);
    }
}
