//! DPoP proofs (RFC 9449, section 4.3), as the broker's token endpoint
//! and a resource server check them.
//!
//! A proof is a JWS with `typ` `dpop+jwt`, signed by the key in its own
//! `jwk` header: `EdDSA` with an Ed25519 key (Mandate's agents hold those),
//! or `ES256` with a P-256 key (what most OAuth clients make). The claims
//! are `jti`, `htm`, `htu` and `iat`, and `ath` exactly when the proof
//! presents an access token: a resource server's proofs carry it, the
//! token endpoint's do not.

use serde::Deserialize;

use crate::token::{Policy, same_htu};
use crate::{Jwk, PublicKey, Thumbprint, UnixTime, base64url};

/// A proof that passed every check but the replay check, which the caller
/// makes last.
#[derive(Debug, Clone)]
pub struct Proof {
    /// The proof key's RFC 7638 thumbprint: what `cnf.jkt` binds to.
    pub jkt: Thumbprint,
    /// The proof key, when it is an Ed25519 key (a Mandate agent's may
    /// be); `None` for a P-256 key.
    pub jwk: Option<Jwk>,
    /// Its `jti`.
    pub jti: String,
    /// Its `iat`.
    pub iat: UnixTime,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Header {
    typ: String,
    alg: String,
    jwk: serde_json::Value,
}

/// A P-256 public JWK: exactly these members.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EcJwk {
    kty: String,
    crv: String,
    x: String,
    y: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Claims {
    jti: String,
    htm: String,
    htu: String,
    iat: i64,
    #[serde(default)]
    ath: Option<String>,
}

/// Checks `proof` for a `method` call to `url` at `now`, presenting the
/// access token whose `ath` (base64url SHA-256) is `ath`, or none; an
/// error says why, for `error_description` (it never repeats the proof).
pub fn check(
    proof: &str,
    method: &str,
    url: &str,
    ath: Option<&str>,
    policy: &Policy,
    now: UnixTime,
) -> Result<Proof, &'static str> {
    if proof.len() > crate::MAX_TOKEN_BYTES {
        return Err("the DPoP proof is too large");
    }
    let mut parts = proof.split('.');
    let (Some(header), Some(claims), Some(signature), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err("the DPoP proof is not a compact JWS");
    };
    let decode = |part: &str| base64url::decode(part).ok_or("the DPoP proof is not base64url");
    let header: Header = serde_json::from_slice(&decode(header)?)
        .map_err(|_| "the DPoP proof's header must be exactly typ, alg and jwk")?;
    if header.typ != "dpop+jwt" {
        return Err("the DPoP proof's typ must be dpop+jwt");
    }
    let signature = decode(signature)?;
    let input = &proof[..proof.len() - proof.rsplit('.').next().map_or(0, str::len) - 1];
    let (jkt, jwk) = match header.alg.as_str() {
        "EdDSA" => {
            let jwk: Jwk = serde_json::from_value(header.jwk)
                .map_err(|_| "the DPoP proof's jwk is not a public Ed25519 key")?;
            let key = PublicKey::from_jwk(&jwk)
                .map_err(|_| "the DPoP proof's jwk is not a public Ed25519 key")?;
            let signature: [u8; 64] = signature
                .try_into()
                .map_err(|_| "the DPoP proof's signature is not 64 bytes")?;
            key.verify_strict(input.as_bytes(), &signature)
                .map_err(|_| "the DPoP proof's signature does not verify")?;
            (key.thumbprint(), Some(jwk))
        }
        "ES256" => {
            let not_p256 = "the DPoP proof's jwk is not a public P-256 key";
            let key = P256Key::from_jwk(header.jwk).ok_or(not_p256)?;
            if !key.verifies(input.as_bytes(), &signature) {
                return Err("the DPoP proof's signature does not verify");
            }
            (key.thumbprint(), None)
        }
        _ => return Err("the DPoP proof must be signed with EdDSA (Ed25519) or ES256 (P-256)"),
    };
    let claims: Claims = serde_json::from_slice(&decode(claims)?).map_err(|_| match ath {
        None => "the DPoP proof's claims must be exactly jti, htm, htu and iat",
        Some(_) => "the DPoP proof's claims must be exactly jti, htm, htu, iat and ath",
    })?;
    match (ath, claims.ath.as_deref()) {
        (None, None) => {}
        (None, Some(_)) => {
            return Err("the DPoP proof's claims must be exactly jti, htm, htu and iat");
        }
        (Some(_), None) => return Err("the DPoP proof has no ath: it must name the token"),
        (Some(want), Some(got)) if want == got => {}
        (Some(_), Some(_)) => return Err("the DPoP proof's ath is not this token's"),
    }
    if claims.jti.is_empty() || claims.jti.len() > 128 || claims.jti.chars().any(char::is_control) {
        return Err("the DPoP proof's jti must be 1 to 128 bytes, without control characters");
    }
    if claims.htm != method {
        return Err("the DPoP proof's htm is not this request's method");
    }
    if !same_htu(&claims.htu, url) {
        return Err("the DPoP proof's htu is not this endpoint's URL");
    }
    if claims.iat < now - policy.pop_max_age || claims.iat > now + policy.clock_skew {
        return Err("the DPoP proof's iat is too old or in the future");
    }
    Ok(Proof {
        jkt,
        jwk,
        jti: claims.jti,
        iat: claims.iat,
    })
}

/// A DPoP proof by `key` (`EdDSA`) for a `method` call to `url` at `iat`,
/// with `jti`, presenting the access token whose `ath` is `ath` (none at
/// a token endpoint): the header exactly `typ`, `alg` and `jwk`, the
/// claims exactly `jti`, `htm`, `htu`, `iat` and, with a token, `ath`.
pub fn sign(
    key: &crate::SigningKey,
    method: &str,
    url: &str,
    ath: Option<&str>,
    iat: UnixTime,
    jti: &str,
) -> String {
    let mut jwk = key.public().to_jwk();
    jwk.kid = None;
    let header = serde_json::json!({ "typ": "dpop+jwt", "alg": "EdDSA", "jwk": jwk });
    let mut claims = serde_json::json!({ "jti": jti, "htm": method, "htu": url, "iat": iat });
    if let Some(ath) = ath {
        claims["ath"] = serde_json::json!(ath);
    }
    let mut compact = base64url::encode(header.to_string().as_bytes());
    compact.push('.');
    compact.push_str(&base64url::encode(claims.to_string().as_bytes()));
    let signature = key.sign(compact.as_bytes());
    compact.push('.');
    compact.push_str(&base64url::encode(signature));
    compact
}

/// A P-256 public key, as a JWK names it.
#[derive(Debug, Clone)]
pub struct P256Key {
    key: p256::ecdsa::VerifyingKey,
    /// The RFC 7638 canonical JWK, from the coordinates as they were sent.
    canonical: String,
}

impl P256Key {
    /// The key of a public P-256 JWK: exactly `kty` `EC`, `crv` `P-256`,
    /// `x` and `y` (32 bytes each, base64url). `None` for anything else, a
    /// private key included.
    pub fn from_jwk(jwk: serde_json::Value) -> Option<P256Key> {
        let jwk: EcJwk = serde_json::from_value(jwk).ok()?;
        P256Key::of(&jwk.kty, &jwk.crv, &jwk.x, &jwk.y)
    }

    /// The key with these JWK members (a key set's entry adds `kid`,
    /// `alg` and `use`, which the caller reads).
    pub fn of(kty: &str, crv: &str, x: &str, y: &str) -> Option<P256Key> {
        if kty != "EC" || crv != "P-256" {
            return None;
        }
        let coordinate = |c: &str| base64url::decode(c).and_then(|b| <[u8; 32]>::try_from(b).ok());
        let (xb, yb) = (coordinate(x)?, coordinate(y)?);
        let point = p256::EncodedPoint::from_affine_coordinates(&xb.into(), &yb.into(), false);
        let key = p256::ecdsa::VerifyingKey::from_encoded_point(&point).ok()?;
        // RFC 7638: the required members in lexicographic order, no
        // whitespace; x and y as they were sent, which decoded to 32 bytes.
        let canonical = format!(r#"{{"crv":"P-256","kty":"EC","x":"{x}","y":"{y}"}}"#);
        Some(P256Key { key, canonical })
    }

    /// Whether `signature` (64 bytes of r and s, as JWS has it) is this
    /// key's ES256 signature of `input`.
    pub fn verifies(&self, input: &[u8], signature: &[u8]) -> bool {
        use p256::ecdsa::signature::Verifier as _;
        p256::ecdsa::Signature::from_slice(signature)
            .is_ok_and(|s| self.key.verify(input, &s).is_ok())
    }

    /// Its RFC 7638 thumbprint.
    pub fn thumbprint(&self) -> Thumbprint {
        Thumbprint::of_canonical_jwk(self.canonical.as_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::SigningKey;
    use serde_json::{Value, json};

    const URL: &str = "https://broker.example/oauth/token";
    const NOW: i64 = 1_796_320_000;

    /// A proof by `key` with this header and these claims.
    pub fn sign(key: &SigningKey, header: &Value, claims: &Value) -> String {
        let input = format!(
            "{}.{}",
            base64url::encode(header.to_string().as_bytes()),
            base64url::encode(claims.to_string().as_bytes())
        );
        let signature = ed25519_dalek::SigningKey::from_bytes(&key.to_seed())
            .sign(input.as_bytes())
            .to_bytes();
        format!("{input}.{}", base64url::encode(signature))
    }

    use ed25519_dalek::Signer as _;

    fn good(key: &SigningKey) -> (Value, Value) {
        (
            json!({ "typ": "dpop+jwt", "alg": "EdDSA", "jwk": key.public().to_jwk() }),
            json!({ "jti": "j1", "htm": "POST", "htu": URL, "iat": NOW }),
        )
    }

    #[test]
    fn a_good_proof_names_its_key() {
        let key = SigningKey::from_seed(&[3; 32]);
        let (h, c) = good(&key);
        let proof = check(
            &sign(&key, &h, &c),
            "POST",
            URL,
            None,
            &Policy::default(),
            NOW,
        )
        .unwrap();
        assert_eq!(proof.jkt, key.thumbprint());
        assert_eq!(proof.jti, "j1");
        // htu may carry a query; the case of the scheme and host is free.
        let mut c2 = c.clone();
        c2["htu"] = json!("HTTPS://Broker.Example/oauth/token?x=1");
        assert!(
            check(
                &sign(&key, &h, &c2),
                "POST",
                URL,
                None,
                &Policy::default(),
                NOW
            )
            .is_ok()
        );
    }

    /// An ES256 proof by `key` with these claims, and its key's JWK.
    fn es256_proof(key: &p256::ecdsa::SigningKey, claims: &Value) -> (String, Value) {
        use p256::ecdsa::signature::Signer as _;
        let point = key.verifying_key().to_encoded_point(false);
        let jwk = json!({
            "kty": "EC", "crv": "P-256",
            "x": base64url::encode(point.x().unwrap()),
            "y": base64url::encode(point.y().unwrap()),
        });
        let header = json!({ "typ": "dpop+jwt", "alg": "ES256", "jwk": jwk });
        let input = format!(
            "{}.{}",
            base64url::encode(header.to_string().as_bytes()),
            base64url::encode(claims.to_string().as_bytes())
        );
        let signature: p256::ecdsa::Signature = key.sign(input.as_bytes());
        (
            format!("{input}.{}", base64url::encode(signature.to_bytes())),
            jwk,
        )
    }

    #[test]
    fn an_es256_proof_names_its_p256_key_by_rfc_7638() {
        let key = p256::ecdsa::SigningKey::from_slice(&[7; 32]).unwrap();
        let (_, c) = good(&SigningKey::from_seed(&[3; 32]));
        let (proof, jwk) = es256_proof(&key, &c);
        let checked = check(&proof, "POST", URL, None, &Policy::default(), NOW).unwrap();
        assert!(checked.jwk.is_none(), "a P-256 key is no Mandate agent key");
        let canonical = format!(
            r#"{{"crv":"P-256","kty":"EC","x":{},"y":{}}}"#,
            jwk["x"], jwk["y"]
        );
        let digest: [u8; 32] = sha2::Sha256::digest(canonical.as_bytes()).into();
        assert_eq!(checked.jkt.to_string(), base64url::encode(digest));
        // Another key's signature, a tampered claim, or an extra member fail.
        let other = p256::ecdsa::SigningKey::from_slice(&[8; 32]).unwrap();
        let (foreign, _) = es256_proof(&other, &c);
        let mixed = format!(
            "{}.{}",
            proof.rsplit_once('.').unwrap().0,
            foreign.rsplit('.').next().unwrap()
        );
        assert!(
            check(&mixed, "POST", URL, None, &Policy::default(), NOW)
                .unwrap_err()
                .contains("verify")
        );
        let mut c2 = c.clone();
        c2["htm"] = json!("GET");
        let (wrong, _) = es256_proof(&key, &c2);
        assert!(
            check(&wrong, "POST", URL, None, &Policy::default(), NOW)
                .unwrap_err()
                .contains("htm")
        );
    }

    use sha2::Digest as _;

    #[test]
    fn every_rule_has_its_refusal() {
        let key = SigningKey::from_seed(&[3; 32]);
        let other = SigningKey::from_seed(&[4; 32]);
        let (h, c) = good(&key);
        let with = |path: &str, v: Value, header: bool| {
            let (mut h, mut c) = (h.clone(), c.clone());
            if header {
                h[path] = v;
            } else {
                c[path] = v;
            }
            sign(&key, &h, &c)
        };
        let cases = [
            (with("typ", json!("jwt"), true), "typ"),
            (with("alg", json!("ES256"), true), "P-256"),
            (with("alg", json!("none"), true), "EdDSA"),
            (
                with(
                    "jwk",
                    serde_json::to_value(other.public().to_jwk()).unwrap(),
                    true,
                ),
                "signature",
            ),
            (with("kid", json!("x"), true), "header"),
            (with("htm", json!("GET"), false), "htm"),
            (
                with("htu", json!("https://broker.example/oauth/other"), false),
                "htu",
            ),
            (
                with("htu", json!("https://evil.example/oauth/token"), false),
                "htu",
            ),
            (with("iat", json!(NOW - 61), false), "iat"),
            (with("iat", json!(NOW + 61), false), "iat"),
            (with("jti", json!(""), false), "jti"),
            (with("ath", json!("x"), false), "claims"),
            (["x", "y"].join("."), "compact"),
            (sign(&key, &h, &c).replace('.', "!."), "base64url"),
        ];
        for (proof, why) in cases {
            let e = check(&proof, "POST", URL, None, &Policy::default(), NOW).unwrap_err();
            assert!(e.contains(why), "{why}: {e}");
        }
        // A private key in the header is refused.
        let mut private = serde_json::to_value(key.public().to_jwk()).unwrap();
        private["d"] = json!(base64url::encode(&key.to_seed()[..]));
        let h2 = json!({ "typ": "dpop+jwt", "alg": "EdDSA", "jwk": private });
        assert!(
            check(
                &sign(&key, &h2, &c),
                "POST",
                URL,
                None,
                &Policy::default(),
                NOW
            )
            .is_err()
        );
    }

    #[test]
    fn a_proof_that_presents_a_token_names_it_by_ath() {
        let key = SigningKey::from_seed(&[3; 32]);
        let (h, mut c) = good(&key);
        let p = Policy::default();
        // The token endpoint's proofs carry no ath; a resource's must.
        let without = sign(&key, &h, &c);
        let e = check(&without, "POST", URL, Some("AAA"), &p, NOW).unwrap_err();
        assert!(e.contains("no ath"), "{e}");
        c["ath"] = json!("AAA");
        let with = sign(&key, &h, &c);
        assert!(check(&with, "POST", URL, Some("AAA"), &p, NOW).is_ok());
        let e = check(&with, "POST", URL, Some("BBB"), &p, NOW).unwrap_err();
        assert!(e.contains("not this token's"), "{e}");
        let e = check(&with, "POST", URL, None, &p, NOW).unwrap_err();
        assert!(e.contains("exactly jti, htm, htu and iat"), "{e}");
        c["extra"] = json!(1);
        let e = check(&sign(&key, &h, &c), "POST", URL, Some("AAA"), &p, NOW).unwrap_err();
        assert!(e.contains("and ath"), "{e}");
    }

    #[test]
    fn a_signed_proof_checks_out() {
        let key = SigningKey::from_seed(&[5; 32]);
        let p = Policy::default();
        let proof = super::sign(&key, "POST", URL, Some("AAA"), NOW, "j9");
        let checked = check(&proof, "POST", URL, Some("AAA"), &p, NOW).unwrap();
        assert_eq!(
            (checked.jkt, checked.jti.as_str()),
            (key.thumbprint(), "j9")
        );
        let bare = super::sign(&key, "POST", URL, None, NOW, "j9");
        assert!(check(&bare, "POST", URL, None, &p, NOW).is_ok());
    }
}
