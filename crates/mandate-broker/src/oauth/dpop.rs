//! DPoP proofs (RFC 9449, section 4.3), as the token endpoint checks them.
//!
//! A proof is a JWS with `typ` `dpop+jwt`, signed by the key in its own
//! `jwk` header. Mandate's agents hold Ed25519 keys, so the algorithm is
//! `EdDSA`. The claims are `jti`, `htm`, `htu` and `iat`; `ath` belongs to
//! proofs that present an access token, not to the token endpoint's.

use mandate_core::token::{Policy, same_htu};
use mandate_core::{Jwk, PublicKey, Thumbprint, UnixTime, base64url};
use serde::Deserialize;

/// A proof that passed every check but the replay check, which the caller
/// makes last.
#[derive(Debug, Clone)]
pub struct Proof {
    /// The proof key's RFC 7638 thumbprint: what `cnf.jkt` binds to.
    pub jkt: Thumbprint,
    /// The proof key, as its `jwk` header gave it.
    pub jwk: Jwk,
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
    jwk: Jwk,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Claims {
    jti: String,
    htm: String,
    htu: String,
    iat: i64,
}

/// Checks `proof` for a `method` call to `url` at `now`; an error says
/// why, for `error_description` (it never repeats the proof).
pub fn check(
    proof: &str,
    method: &str,
    url: &str,
    policy: &Policy,
    now: UnixTime,
) -> Result<Proof, &'static str> {
    if proof.len() > mandate_core::MAX_TOKEN_BYTES {
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
    if header.alg != "EdDSA" {
        return Err("the DPoP proof must be signed with EdDSA (Ed25519)");
    }
    let key = PublicKey::from_jwk(&header.jwk)
        .map_err(|_| "the DPoP proof's jwk is not a public Ed25519 key")?;
    let signature: [u8; 64] = decode(signature)?
        .try_into()
        .map_err(|_| "the DPoP proof's signature is not 64 bytes")?;
    let input = &proof[..proof.len() - proof.rsplit('.').next().map_or(0, str::len) - 1];
    key.verify_strict(input.as_bytes(), &signature)
        .map_err(|_| "the DPoP proof's signature does not verify")?;
    let claims: Claims = serde_json::from_slice(&decode(claims)?)
        .map_err(|_| "the DPoP proof's claims must be exactly jti, htm, htu and iat")?;
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
        jkt: key.thumbprint(),
        jwk: header.jwk,
        jti: claims.jti,
        iat: claims.iat,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use mandate_core::SigningKey;
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
        let proof = check(&sign(&key, &h, &c), "POST", URL, &Policy::default(), NOW).unwrap();
        assert_eq!(proof.jkt, key.thumbprint());
        assert_eq!(proof.jti, "j1");
        // htu may carry a query; the case of the scheme and host is free.
        let mut c2 = c.clone();
        c2["htu"] = json!("HTTPS://Broker.Example/oauth/token?x=1");
        assert!(check(&sign(&key, &h, &c2), "POST", URL, &Policy::default(), NOW).is_ok());
    }

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
            (with("alg", json!("ES256"), true), "EdDSA"),
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
            let e = check(&proof, "POST", URL, &Policy::default(), NOW).unwrap_err();
            assert!(e.contains(why), "{why}: {e}");
        }
        // A private key in the header is refused.
        let mut private = serde_json::to_value(key.public().to_jwk()).unwrap();
        private["d"] = json!(base64url::encode(&key.to_seed()[..]));
        let h2 = json!({ "typ": "dpop+jwt", "alg": "EdDSA", "jwk": private });
        assert!(check(&sign(&key, &h2, &c), "POST", URL, &Policy::default(), NOW).is_err());
    }
}
