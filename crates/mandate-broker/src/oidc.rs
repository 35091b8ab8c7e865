//! User authentication: an OIDC ID token as a bearer token, verified
//! against its issuer's JWKS.
//!
//! Only configured issuers are trusted, each with the audiences (client
//! ids) it may issue for. The JWKS is found through OIDC discovery,
//! fetched over HTTPS (plain HTTP only on loopback), cached, and fetched
//! again when a token names a key the cache lacks, at most once every
//! [`REFETCH_AFTER`]. Only asymmetric algorithms are accepted. Times are
//! checked against the broker's clock, with [`LEEWAY`] seconds of skew by
//! default ([`OidcVerifier::with_leeway`]).
//! The principal is `issuer#subject`.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use mandate_core::{Principal, UnixTime};
use serde::Deserialize;
use tokio::sync::Mutex;

/// Skew allowed on `exp`, `nbf` and `iat` by default, in seconds.
pub const LEEWAY: i64 = 60;
/// How long a fetched JWKS is used before it is fetched again.
pub const JWKS_TTL: Duration = Duration::from_secs(300);
/// The least time between two fetches for one issuer.
pub const REFETCH_AFTER: Duration = Duration::from_secs(30);

const ALLOWED: &[Algorithm] = &[
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
    Algorithm::ES256,
    Algorithm::ES384,
    Algorithm::EdDSA,
];

/// An issuer whose users may use the broker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrustedIssuer {
    /// The `iss` value, exactly.
    pub issuer: String,
    /// The client ids its tokens may be for.
    pub audiences: Vec<String>,
}

impl TrustedIssuer {
    /// Parses `ISSUER=AUDIENCE[,AUDIENCE...]` as given on the command line.
    pub fn parse(spec: &str) -> Option<TrustedIssuer> {
        let (issuer, audiences) = spec.split_once('=')?;
        let audiences: Vec<String> = audiences
            .split(',')
            .filter(|a| !a.is_empty())
            .map(str::to_owned)
            .collect();
        (!issuer.is_empty() && !audiences.is_empty()).then(|| TrustedIssuer {
            issuer: issuer.to_owned(),
            audiences,
        })
    }
}

/// Why a bearer token was refused. Each maps to a stable code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AuthError {
    /// No bearer token was presented.
    #[error("a bearer token is required")]
    Missing,
    /// The token is not a JWT, or its claims are missing or malformed.
    #[error("the bearer token is malformed")]
    Malformed,
    /// The token's algorithm is not an accepted asymmetric one.
    #[error("the token's algorithm is not accepted")]
    Algorithm,
    /// The token's issuer is not trusted here.
    #[error("the token's issuer is not trusted")]
    UnknownIssuer,
    /// The token is for another audience.
    #[error("the token is for another audience")]
    Audience,
    /// The token has expired.
    #[error("the token has expired")]
    Expired,
    /// The token is not valid yet, or claims to be issued in the future.
    #[error("the token is not valid yet")]
    NotYetValid,
    /// The issuer publishes no key with the token's `kid`.
    #[error("the issuer has no such key")]
    UnknownKey,
    /// The signature does not verify.
    #[error("the token's signature is invalid")]
    Signature,
    /// The issuer's keys could not be fetched.
    #[error("the issuer's keys cannot be fetched")]
    IssuerUnavailable,
}

impl AuthError {
    /// The stable code.
    pub fn code(&self) -> &'static str {
        match self {
            AuthError::Missing => "auth.missing",
            AuthError::Malformed => "auth.malformed",
            AuthError::Algorithm => "auth.algorithm",
            AuthError::UnknownIssuer => "auth.unknown_issuer",
            AuthError::Audience => "auth.audience",
            AuthError::Expired => "auth.expired",
            AuthError::NotYetValid => "auth.not_yet_valid",
            AuthError::UnknownKey => "auth.unknown_key",
            AuthError::Signature => "auth.signature",
            AuthError::IssuerUnavailable => "auth.issuer_unavailable",
        }
    }
}

#[derive(Deserialize)]
struct Peek {
    iss: String,
}

#[derive(Deserialize)]
struct IdClaims {
    iss: String,
    sub: String,
    exp: i64,
    #[serde(default)]
    nbf: Option<i64>,
    #[serde(default)]
    iat: Option<i64>,
    #[serde(default)]
    auth_time: Option<i64>,
    #[serde(default)]
    nonce: Option<String>,
}

/// What a verified ID token says of the sign-in behind it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignIn {
    /// `issuer#subject`.
    pub principal: Principal,
    /// When the person authenticated: `auth_time`, or else `iat`.
    pub authenticated_at: Option<UnixTime>,
    /// The token's `nonce`, as the app chose it.
    pub nonce: Option<String>,
    /// When the token expires.
    pub expires_at: UnixTime,
}

struct Fetched {
    keys: JwkSet,
    at: Instant,
}

/// Verifies bearer tokens from the trusted issuers.
pub struct OidcVerifier {
    issuers: Vec<TrustedIssuer>,
    http: reqwest::Client,
    cache: Mutex<HashMap<String, Fetched>>,
    leeway: i64,
}

impl std::fmt::Debug for OidcVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OidcVerifier")
            .field("issuers", &self.issuers)
            .finish_non_exhaustive()
    }
}

/// Whether `url` may be fetched: HTTPS, or HTTP to a loopback host.
fn fetchable(url: &str) -> bool {
    if url.starts_with("https://") {
        return true;
    }
    let Some(rest) = url.strip_prefix("http://") else {
        return false;
    };
    let host = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let host = host.rsplit_once(':').map_or(host, |(h, _)| h);
    matches!(host, "127.0.0.1" | "localhost" | "[::1]")
}

impl OidcVerifier {
    /// A verifier for these issuers.
    pub fn new(issuers: Vec<TrustedIssuer>) -> Result<OidcVerifier, reqwest::Error> {
        // reqwest is built without a default crypto provider; install ring's
        // once per process. A second install fails harmlessly.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .redirect(reqwest::redirect::Policy::none())
            .build()?;
        Ok(OidcVerifier {
            issuers,
            http,
            cache: Mutex::new(HashMap::new()),
            leeway: LEEWAY,
        })
    }

    /// The same verifier allowing `seconds` of clock skew (negative is 0).
    pub fn with_leeway(mut self, seconds: i64) -> OidcVerifier {
        self.leeway = seconds.max(0);
        self
    }

    /// The trusted issuers.
    pub fn issuers(&self) -> &[TrustedIssuer] {
        &self.issuers
    }

    /// Verifies `token` at `now` and returns what it says of the sign-in.
    pub async fn verify(&self, token: &str, now: UnixTime) -> Result<SignIn, AuthError> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| AuthError::Malformed)?;
        if !ALLOWED.contains(&header.alg) {
            return Err(AuthError::Algorithm);
        }
        let payload = token.split('.').nth(1).ok_or(AuthError::Malformed)?;
        let peek: Peek = mandate_core::base64url::decode(payload)
            .and_then(|bytes| serde_json::from_slice(&bytes).ok())
            .ok_or(AuthError::Malformed)?;
        let trusted = self
            .issuers
            .iter()
            .find(|i| i.issuer == peek.iss)
            .ok_or(AuthError::UnknownIssuer)?;
        let jwk = self
            .key(&trusted.issuer, header.kid.as_deref(), header.alg)
            .await?;
        let key = DecodingKey::from_jwk(&jwk).map_err(|_| AuthError::UnknownKey)?;

        let mut validation = Validation::new(header.alg);
        validation.set_issuer(&[&trusted.issuer]);
        validation.set_audience(&trusted.audiences);
        validation.set_required_spec_claims(&["iss", "aud", "sub", "exp"]);
        // Times are checked below, against the broker's clock.
        validation.validate_exp = false;
        validation.validate_nbf = false;
        let data = jsonwebtoken::decode::<IdClaims>(token, &key, &validation).map_err(|e| {
            use jsonwebtoken::errors::ErrorKind;
            match e.kind() {
                ErrorKind::InvalidSignature => AuthError::Signature,
                ErrorKind::InvalidAudience => AuthError::Audience,
                ErrorKind::InvalidIssuer => AuthError::UnknownIssuer,
                ErrorKind::InvalidAlgorithm | ErrorKind::InvalidAlgorithmName => {
                    AuthError::Algorithm
                }
                _ => AuthError::Malformed,
            }
        })?;
        let c = data.claims;
        if now >= c.exp.saturating_add(self.leeway) {
            return Err(AuthError::Expired);
        }
        if c.nbf
            .is_some_and(|nbf| nbf > now.saturating_add(self.leeway))
            || c.iat
                .is_some_and(|iat| iat > now.saturating_add(self.leeway))
        {
            return Err(AuthError::NotYetValid);
        }
        let principal = format!("{}#{}", c.iss, c.sub)
            .try_into()
            .map_err(|_| AuthError::Malformed)?;
        Ok(SignIn {
            principal,
            authenticated_at: c.auth_time.or(c.iat),
            nonce: c.nonce,
            expires_at: c.exp,
        })
    }

    /// The issuer's key for `kid` (or its only key for `alg` when the token names none).
    async fn key(
        &self,
        issuer: &str,
        kid: Option<&str>,
        alg: Algorithm,
    ) -> Result<jsonwebtoken::jwk::Jwk, AuthError> {
        let pick = |set: &JwkSet| match kid {
            Some(kid) => set.find(kid).cloned(),
            None => {
                let mut fitting = set.keys.iter().filter(|k| {
                    k.common
                        .key_algorithm
                        .is_none_or(|a| a.to_string() == format!("{alg:?}"))
                });
                match (fitting.next(), fitting.next()) {
                    (Some(only), None) => Some(only.clone()),
                    _ => None,
                }
            }
        };
        let mut cache = self.cache.lock().await;
        if let Some(fetched) = cache.get(issuer) {
            let fresh = fetched.at.elapsed() < JWKS_TTL;
            if let Some(jwk) = pick(&fetched.keys).filter(|_| fresh) {
                return Ok(jwk);
            }
            if fetched.at.elapsed() < REFETCH_AFTER {
                return pick(&fetched.keys).ok_or(AuthError::UnknownKey);
            }
        }
        let keys = self.fetch(issuer).await?;
        let found = pick(&keys);
        cache.insert(
            issuer.to_owned(),
            Fetched {
                keys,
                at: Instant::now(),
            },
        );
        found.ok_or(AuthError::UnknownKey)
    }

    /// Discovery, then the JWKS.
    async fn fetch(&self, issuer: &str) -> Result<JwkSet, AuthError> {
        #[derive(Deserialize)]
        struct Discovery {
            issuer: String,
            jwks_uri: String,
        }
        let discovery_url = format!(
            "{}/.well-known/openid-configuration",
            issuer.trim_end_matches('/')
        );
        if !fetchable(&discovery_url) {
            return Err(AuthError::IssuerUnavailable);
        }
        let discovery: Discovery = self.get_json(issuer, &discovery_url).await?;
        if discovery.issuer != issuer || !fetchable(&discovery.jwks_uri) {
            tracing::warn!(%issuer, "discovery names another issuer or an unsafe jwks_uri");
            return Err(AuthError::IssuerUnavailable);
        }
        self.get_json(issuer, &discovery.jwks_uri).await
    }

    /// GETs `url` and reads its JSON body; any failure is the issuer being unavailable.
    async fn get_json<T: serde::de::DeserializeOwned>(
        &self,
        issuer: &str,
        url: &str,
    ) -> Result<T, AuthError> {
        let unavailable = |e: reqwest::Error| {
            tracing::warn!(%issuer, error = %e, "fetching the issuer's keys failed");
            AuthError::IssuerUnavailable
        };
        self.http
            .get(url)
            .send()
            .await
            .and_then(reqwest::Response::error_for_status)
            .map_err(unavailable)?
            .json()
            .await
            .map_err(unavailable)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issuer_specs_and_fetchable_urls() {
        assert_eq!(
            TrustedIssuer::parse("https://idp.example=app,cli"),
            Some(TrustedIssuer {
                issuer: "https://idp.example".into(),
                audiences: vec!["app".into(), "cli".into()]
            })
        );
        assert_eq!(TrustedIssuer::parse("https://idp.example"), None);
        assert_eq!(TrustedIssuer::parse("https://idp.example="), None);
        assert!(fetchable("https://idp.example/jwks"));
        assert!(fetchable("http://127.0.0.1:9000/jwks"));
        assert!(fetchable("http://localhost/jwks"));
        assert!(!fetchable("http://idp.example/jwks"));
        assert!(!fetchable("http://127.0.0.1.evil.example/jwks"));
        assert!(!fetchable("file:///etc/passwd"));
    }
}
