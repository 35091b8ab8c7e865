//! The OIDC verifier against a real HTTP issuer on loopback: discovery and
//! a JWKS served by a local server, ID tokens signed with its key.

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use mandate_broker::oidc::{OidcVerifier, TrustedIssuer};
use mandate_core::SigningKey;
use serde_json::{Value, json};

pub const NOW: i64 = 1_767_225_600;

/// A minimal OpenID Provider: discovery and one Ed25519 key, on 127.0.0.1.
pub struct TestIssuer {
    pub url: String,
    key: SigningKey,
    _server: tokio::task::JoinHandle<()>,
}

impl TestIssuer {
    pub async fn start() -> TestIssuer {
        let key = SigningKey::from_seed(&[42; 32]);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let x = mandate_core::base64url::encode(key.public().as_bytes());
        let discovery = json!({ "issuer": url, "jwks_uri": format!("{url}/jwks") });
        let jwks = json!({ "keys": [{ "kty": "OKP", "crv": "Ed25519", "x": x, "kid": "k1", "alg": "EdDSA", "use": "sig" }] });
        let app = axum::Router::new()
            .route(
                "/.well-known/openid-configuration",
                axum::routing::get(move || async move { axum::Json(discovery) }),
            )
            .route(
                "/jwks",
                axum::routing::get(move || async move { axum::Json(jwks) }),
            );
        let server = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        TestIssuer {
            url,
            key,
            _server: server,
        }
    }

    /// An ID token signed with `seed`'s key under `kid` and `alg`.
    pub fn token_with(&self, claims: &Value, seed: [u8; 32], kid: &str, alg: Algorithm) -> String {
        let mut der = vec![
            0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22,
            0x04, 0x20,
        ];
        der.extend_from_slice(&seed);
        let key = match alg {
            Algorithm::HS256 => EncodingKey::from_secret(self.key.public().as_bytes()),
            _ => EncodingKey::from_ed_der(&der),
        };
        let mut header = Header::new(alg);
        header.kid = Some(kid.into());
        jsonwebtoken::encode(&header, claims, &key).unwrap()
    }

    /// A valid ID token for `sub`, with `extra` claims replacing the defaults.
    pub fn token(&self, sub: &str, extra: Value) -> String {
        let mut claims = json!({ "iss": self.url, "sub": sub, "aud": "mandate-app", "iat": NOW, "exp": NOW + 600 });
        for (k, v) in extra.as_object().unwrap() {
            if v.is_null() {
                claims.as_object_mut().unwrap().remove(k);
            } else {
                claims[k] = v.clone();
            }
        }
        self.token_with(&claims, [42; 32], "k1", Algorithm::EdDSA)
    }

    pub fn trusted(&self) -> TrustedIssuer {
        TrustedIssuer {
            issuer: self.url.clone(),
            audiences: vec!["mandate-app".into()],
        }
    }
}

#[tokio::test]
async fn id_tokens_verify_only_when_every_rule_holds() {
    let idp = TestIssuer::start().await;
    let verifier = OidcVerifier::new(vec![idp.trusted()]).unwrap();
    let signed_in = verifier
        .verify(&idp.token("alice", json!({})), NOW)
        .await
        .unwrap();
    assert_eq!(signed_in.principal.as_str(), format!("{}#alice", idp.url));
    // The sign-in's time is `auth_time` when the token has one, else `iat`;
    // the nonce is the app's.
    let fresh = verifier
        .verify(
            &idp.token("alice", json!({ "auth_time": NOW - 30, "nonce": "n-1" })),
            NOW,
        )
        .await
        .unwrap();
    assert_eq!(
        (fresh.authenticated_at, fresh.nonce.as_deref()),
        (Some(NOW - 30), Some("n-1"))
    );
    assert_eq!(
        signed_in.authenticated_at,
        Some(NOW),
        "iat, without auth_time"
    );

    let other_key = idp.token_with(
        &json!({ "iss": idp.url, "sub": "alice", "aud": "mandate-app", "exp": NOW + 600 }),
        [7; 32],
        "k1",
        Algorithm::EdDSA,
    );
    let hmac = idp.token_with(
        &json!({ "iss": idp.url, "sub": "alice", "aud": "mandate-app", "exp": NOW + 600 }),
        [0; 32],
        "k1",
        Algorithm::HS256,
    );
    let none = format!(
        "eyJhbGciOiJub25lIn0.{}.",
        mandate_core::base64url::encode(json!({ "iss": idp.url, "sub": "a" }).to_string())
    );
    let cases: Vec<(String, &str)> = vec![
        (
            idp.token("alice", json!({ "exp": NOW - 61 })),
            "auth.expired",
        ),
        (
            idp.token("alice", json!({ "nbf": NOW + 3600 })),
            "auth.not_yet_valid",
        ),
        (
            idp.token("alice", json!({ "aud": "another-app" })),
            "auth.audience",
        ),
        (
            idp.token("alice", json!({ "iss": "https://evil.example" })),
            "auth.unknown_issuer",
        ),
        (idp.token("alice", json!({ "sub": null })), "auth.malformed"),
        (
            idp.token_with(
                &json!({ "iss": idp.url, "sub": "a", "aud": "mandate-app", "exp": NOW + 600 }),
                [42; 32],
                "k9",
                Algorithm::EdDSA,
            ),
            "auth.unknown_key",
        ),
        (other_key, "auth.signature"),
        (hmac, "auth.algorithm"),
        (none, "auth.malformed"),
        ("not a jwt".into(), "auth.malformed"),
    ];
    for (token, code) in cases {
        let err = verifier.verify(&token, NOW).await.expect_err(code);
        assert_eq!(err.code().as_str(), code);
    }
}

#[tokio::test]
async fn an_unreachable_issuer_is_reported_not_trusted_blindly() {
    // A port nothing listens on: bind, note it, close.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let issuer = format!("http://127.0.0.1:{port}");
    let verifier = OidcVerifier::new(vec![TrustedIssuer {
        issuer: issuer.clone(),
        audiences: vec!["a".into()],
    }])
    .unwrap();
    let idp = TestIssuer::start().await;
    let token = idp.token_with(
        &json!({ "iss": issuer, "sub": "a", "aud": "a", "exp": NOW + 600 }),
        [42; 32],
        "k1",
        Algorithm::EdDSA,
    );
    assert_eq!(
        verifier
            .verify(&token, NOW)
            .await
            .expect_err("unreachable")
            .code()
            .as_str(),
        "auth.issuer_unavailable"
    );
    // And an issuer over plain HTTP on a non-loopback host is never fetched.
    let remote = OidcVerifier::new(vec![TrustedIssuer {
        issuer: "http://idp.example".into(),
        audiences: vec!["a".into()],
    }])
    .unwrap();
    let token = idp.token_with(
        &json!({ "iss": "http://idp.example", "sub": "a", "aud": "a", "exp": NOW + 600 }),
        [42; 32],
        "k1",
        Algorithm::EdDSA,
    );
    assert_eq!(
        remote
            .verify(&token, NOW)
            .await
            .expect_err("insecure")
            .code()
            .as_str(),
        "auth.issuer_unavailable"
    );
}
