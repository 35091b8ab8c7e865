//! The keys that sign access tokens, one Ed25519 and one P-256 key per
//! day, derived from the broker's own key: every instance that holds the
//! broker's key signs with the same keys, with nothing stored.
//!
//! Rotation is by the clock. The key of day `d` signs from the start of
//! day `d` to its end. The key set publishes days `d - 1`, `d` and
//! `d + 1`: a token signed just before a rotation verifies for all of its
//! (at most 5-minute) life, and a verifier that caches the set for up to a
//! day already holds tomorrow's key.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use ed25519_dalek::Signer as _;
use mandate_core::base64url;
use mandate_core::{SigningKey, UnixTime};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

/// How long one key signs, in seconds.
pub const ROTATION: i64 = 86_400;

/// An access token's signature algorithm.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Alg {
    /// Ed25519 (RFC 8037).
    EdDsa,
    /// ECDSA on P-256 with SHA-256 (RFC 7518).
    Es256,
}

impl Alg {
    /// The JOSE name.
    pub fn as_str(self) -> &'static str {
        match self {
            Alg::EdDsa => "EdDSA",
            Alg::Es256 => "ES256",
        }
    }

    /// The algorithm named `name`, if the broker signs with it.
    pub fn named(name: &str) -> Option<Alg> {
        match name {
            "EdDSA" => Some(Alg::EdDsa),
            "ES256" => Some(Alg::Es256),
            _ => None,
        }
    }
}

/// The broker's access-token keys.
pub struct TokenKeys {
    /// The broker key's seed, which every day's keys are derived from.
    seed: Zeroizing<[u8; 32]>,
    /// The keys derived so far, with their JWKs: deriving one takes a
    /// scalar multiplication, and every token and key set needs them.
    derived: Mutex<HashMap<(Alg, i64), Arc<Derived>>>,
}

/// One day's key of one algorithm.
enum DayKey {
    EdDsa(ed25519_dalek::SigningKey),
    Es256(p256::ecdsa::SigningKey),
}

/// A day's key, and its public JWK (with `kid`).
struct Derived {
    key: DayKey,
    jwk: Value,
    kid: String,
}

impl TokenKeys {
    /// The keys derived from `broker`.
    pub fn of(broker: &SigningKey) -> TokenKeys {
        TokenKeys {
            seed: broker.to_seed(),
            derived: Mutex::new(HashMap::new()),
        }
    }

    /// The key of `alg` for `day`, derived once; keys of days long past
    /// are forgotten.
    fn key(&self, alg: Alg, day: i64) -> Arc<Derived> {
        let mut derived = self
            .derived
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(d) = derived.get(&(alg, day)) {
            return Arc::clone(d);
        }
        derived.retain(|(_, d), _| (*d - day).abs() <= 2);
        let key = self.derive(alg, day);
        let jwk = key.jwk();
        let kid = jwk["kid"].as_str().unwrap_or_default().to_owned();
        let d = Arc::new(Derived { key, jwk, kid });
        derived.insert((alg, day), Arc::clone(&d));
        d
    }

    /// Derives the key of `alg` for `day`.
    fn derive(&self, alg: Alg, day: i64) -> DayKey {
        for counter in 0u8.. {
            let mut h = Sha256::new();
            h.update(b"mandate-access-token-key/v1\0");
            h.update(alg.as_str().as_bytes());
            h.update([0]);
            h.update(day.to_be_bytes());
            h.update([counter]);
            h.update(self.seed.as_ref());
            let bytes = Zeroizing::new(<[u8; 32]>::from(h.finalize()));
            match alg {
                Alg::EdDsa => return DayKey::EdDsa(ed25519_dalek::SigningKey::from_bytes(&bytes)),
                Alg::Es256 => {
                    // A digest at or above the curve's order (about one in
                    // 2^32) is not a scalar: derive again.
                    if let Ok(key) = p256::ecdsa::SigningKey::from_bytes(bytes.as_ref().into()) {
                        return DayKey::Es256(key);
                    }
                }
            }
        }
        unreachable!("a P-256 scalar within 256 tries")
    }

    /// An Ed25519 key derived from the broker's seed for `purpose` and
    /// `input`: the key the broker holds for an OAuth client
    /// (`client-agent`, its `client_id`), and the keys that seal its
    /// registrations and refresh tokens. The same seed, purpose and input
    /// give the same key after a restart.
    pub fn derived(&self, purpose: &str, input: &[u8]) -> mandate_core::SigningKey {
        let mut h = Sha256::new();
        h.update(b"mandate-oauth-derived-key/v1\0");
        h.update(purpose.as_bytes());
        h.update([0]);
        h.update((input.len() as u64).to_be_bytes());
        h.update(input);
        h.update(self.seed.as_ref());
        let seed = Zeroizing::new(<[u8; 32]>::from(h.finalize()));
        mandate_core::SigningKey::from_seed(&seed)
    }

    /// The public JWKs of days `day - 1` to `day + 1`, for both algorithms.
    pub fn jwks(&self, now: UnixTime) -> Value {
        let today = now.div_euclid(ROTATION);
        let mut keys = Vec::new();
        for day in [today, today + 1, today - 1] {
            for alg in [Alg::EdDsa, Alg::Es256] {
                keys.push(self.key(alg, day).jwk.clone());
            }
        }
        json!({ "keys": keys })
    }

    /// A compact JWS of `claims` with header `typ`, signed at `now` with
    /// that day's key of `alg`.
    pub fn sign(&self, alg: Alg, typ: &str, claims: &Value, now: UnixTime) -> String {
        let key = self.key(alg, now.div_euclid(ROTATION));
        let header = json!({ "alg": alg.as_str(), "typ": typ, "kid": key.kid });
        let input = format!(
            "{}.{}",
            base64url::encode(header.to_string().as_bytes()),
            base64url::encode(claims.to_string().as_bytes())
        );
        let signature = match &key.key {
            DayKey::EdDsa(k) => k.sign(input.as_bytes()).to_bytes().to_vec(),
            DayKey::Es256(k) => {
                let s: p256::ecdsa::Signature = k.sign(input.as_bytes());
                s.to_bytes().to_vec()
            }
        };
        format!("{input}.{}", base64url::encode(&signature))
    }

    /// The claims of `token`, an access token this broker signed with a
    /// key it still publishes at `now`; `None` for any other token. (The
    /// broker reads its own tokens back at introspection.)
    pub fn verify(&self, token: &str, now: UnixTime) -> Option<Value> {
        let (input, signature) = token.rsplit_once('.')?;
        let (header, claims) = input.split_once('.')?;
        let header: Value = serde_json::from_slice(&base64url::decode(header)?).ok()?;
        let alg = Alg::named(header["alg"].as_str()?)?;
        let kid = header["kid"].as_str()?;
        let signature = base64url::decode(signature)?;
        let today = now.div_euclid(ROTATION);
        let key = [today, today - 1, today + 1]
            .into_iter()
            .map(|day| self.key(alg, day))
            .find(|k| k.kid == kid)?;
        let good = match &key.key {
            DayKey::EdDsa(k) => {
                let signature = ed25519_dalek::Signature::from_slice(&signature).ok()?;
                k.verifying_key()
                    .verify_strict(input.as_bytes(), &signature)
                    .is_ok()
            }
            DayKey::Es256(k) => {
                use p256::ecdsa::signature::Verifier as _;
                let signature = p256::ecdsa::Signature::from_slice(&signature).ok()?;
                k.verifying_key()
                    .verify(input.as_bytes(), &signature)
                    .is_ok()
            }
        };
        if !good || header["typ"] != "at+jwt" {
            return None;
        }
        serde_json::from_slice(&base64url::decode(claims)?).ok()
    }
}

impl DayKey {
    /// The public JWK, with `kid` its RFC 7638 thumbprint.
    fn jwk(&self) -> Value {
        let (mut jwk, alg) = match self {
            DayKey::EdDsa(k) => (
                json!({
                    "crv": "Ed25519",
                    "kty": "OKP",
                    "x": base64url::encode(k.verifying_key().as_bytes()),
                }),
                "EdDSA",
            ),
            DayKey::Es256(k) => {
                let point = k.verifying_key().to_encoded_point(false);
                (
                    json!({
                        "crv": "P-256",
                        "kty": "EC",
                        "x": base64url::encode(point.x().map_or(&[][..], |x| &x[..])),
                        "y": base64url::encode(point.y().map_or(&[][..], |y| &y[..])),
                    }),
                    "ES256",
                )
            }
        };
        let kid = thumbprint(&jwk);
        jwk["kid"] = json!(kid);
        jwk["alg"] = json!(alg);
        jwk["use"] = json!("sig");
        jwk
    }
}

/// The RFC 7638 thumbprint of a public JWK holding only its required
/// members: serde_json writes object members in sorted order, and with no
/// whitespace, which is the canonical form.
fn thumbprint(required: &Value) -> String {
    base64url::encode(Sha256::digest(required.to_string().as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys() -> TokenKeys {
        TokenKeys::of(&SigningKey::from_seed(&[7; 32]))
    }

    #[test]
    fn a_token_verifies_for_its_day_and_the_next_but_not_after() {
        for alg in [Alg::EdDsa, Alg::Es256] {
            let now = 10 * ROTATION - 60;
            let token = keys().sign(alg, "at+jwt", &json!({ "sub": "a" }), now);
            assert_eq!(keys().verify(&token, now).unwrap()["sub"], "a");
            // After the rotation, yesterday's key is still published.
            assert!(keys().verify(&token, now + 120).is_some());
            // Two days on, it is gone.
            assert!(keys().verify(&token, now + 2 * ROTATION).is_none());
            // Another broker's keys do not verify it.
            let other = TokenKeys::of(&SigningKey::from_seed(&[8; 32]));
            assert!(other.verify(&token, now).is_none());
            // Nor does one bit changed.
            let mut bad = token.clone().into_bytes();
            let i = bad.len() / 2;
            bad[i] = if bad[i] == b'A' { b'B' } else { b'A' };
            assert!(
                keys()
                    .verify(&String::from_utf8(bad).unwrap(), now)
                    .is_none()
            );
        }
    }

    #[test]
    fn the_key_set_publishes_three_days_of_both_algorithms_without_private_parts() {
        let set = keys().jwks(5 * ROTATION);
        let keys = set["keys"].as_array().unwrap();
        assert_eq!(keys.len(), 6);
        let mut kids: Vec<&str> = keys.iter().map(|k| k["kid"].as_str().unwrap()).collect();
        kids.sort_unstable();
        kids.dedup();
        assert_eq!(kids.len(), 6, "each key its own kid");
        for k in keys {
            assert!(k.get("d").is_none());
            assert!(["EdDSA", "ES256"].contains(&k["alg"].as_str().unwrap()));
        }
    }

    #[test]
    fn the_okp_thumbprint_is_rfc_8037s() {
        // RFC 8037, appendix A.3.
        let jwk = json!({ "crv": "Ed25519", "kty": "OKP", "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo" });
        assert_eq!(
            thumbprint(&jwk),
            "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k"
        );
    }
}
