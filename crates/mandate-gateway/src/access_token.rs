//! The broker's access tokens (RFC 9068 `at+jwt`), checked as
//! docs/oauth.md tells a resource server to: the token's header, its
//! signature under a key the broker publishes, its issuer, audience and
//! lifetime, and the DPoP proof that presents it (RFC 9449).
//!
//! Revocation is the caller's: the token carries its chain
//! (`mandate_chain`) and the user key at its root (`mandate_user_key`),
//! which the gateway looks up in the revocation set it follows.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use mandate_core::dpop::P256Key;
use mandate_core::scope::AuthorizationDetail;
use mandate_core::{Jwk, PublicKey, Thumbprint, TokenId, UnixTime, base64url};
use serde::Deserialize;
use serde_json::Value;
use sha2::{Digest as _, Sha256};

/// How often, at most, an unknown `kid` makes the gateway read the key
/// set again.
pub const JWKS_REFETCH: Duration = Duration::from_secs(10);

/// A key that verifies access tokens.
#[derive(Debug, Clone)]
enum TokenKey {
    EdDsa(PublicKey),
    Es256(P256Key),
}

/// The claims the gateway reads from a verified token.
#[derive(Debug, Clone, Deserialize)]
pub struct TokenClaims {
    /// The user, `ISSUER#SUBJECT`.
    pub sub: String,
    /// The client or agent that holds the token.
    pub client_id: String,
    /// When it ends.
    pub exp: UnixTime,
    /// What it grants at the resource.
    pub authorization_details: Vec<AuthorizationDetail>,
    /// The grants of its chain, root first.
    pub mandate_chain: Vec<TokenId>,
    /// The user key at the chain's root.
    pub mandate_user_key: Thumbprint,
    /// The DPoP key it is bound to.
    pub cnf: Option<Cnf>,
    /// The agents, as nested `act` claims.
    #[serde(default)]
    pub act: Value,
    /// The grants of its chain with a `max_calls` here, whose counts its
    /// calls draw on.
    #[serde(default)]
    pub mandate_limits: Vec<CountedGrant>,
}

/// A grant whose `max_calls` an access token's calls count against.
#[derive(Debug, Clone, Deserialize)]
pub struct CountedGrant {
    /// The grant's id.
    pub grant: TokenId,
    /// When it ends.
    pub exp: UnixTime,
    /// Its details at the resource.
    pub details: Vec<IndexedDetail>,
}

/// A detail of a grant, with its index there.
#[derive(Debug, Clone, Deserialize)]
pub struct IndexedDetail {
    /// Its index among the grant's details.
    pub index: usize,
    /// The detail.
    pub detail: AuthorizationDetail,
}

/// RFC 9449's confirmation claim.
#[derive(Debug, Clone, Deserialize)]
pub struct Cnf {
    /// The DPoP key's RFC 7638 thumbprint.
    pub jkt: Thumbprint,
}

/// The members of the token's claims checked here but not kept.
#[derive(Deserialize)]
struct Envelope {
    iss: String,
    aud: String,
}

/// Why a token is refused: for `error_description`, never repeating it.
pub type Refused = &'static str;

/// The broker's token keys for one resource, read from its key set.
pub struct TokenKeys {
    jwks_uri: String,
    alg: &'static str,
    http: reqwest::Client,
    keys: Mutex<Keys>,
}

struct Keys {
    by_kid: HashMap<String, Arc<TokenKey>>,
    fetched: Option<Instant>,
}

impl TokenKeys {
    /// The keys at `jwks_uri` that sign the resource's tokens with `alg`
    /// (`EdDSA` or `ES256`), read on first use.
    pub fn new(jwks_uri: String, alg: &'static str, http: reqwest::Client) -> TokenKeys {
        TokenKeys {
            jwks_uri,
            alg,
            http,
            keys: Mutex::new(Keys {
                by_kid: HashMap::new(),
                fetched: None,
            }),
        }
    }

    /// The algorithm the resource's tokens are signed with.
    pub fn alg(&self) -> &'static str {
        self.alg
    }

    /// The key `kid`, reading the key set again when it is unknown (at
    /// most every [`JWKS_REFETCH`]).
    async fn key(&self, kid: &str) -> Option<Arc<TokenKey>> {
        let stale = {
            let keys = self.lock();
            if let Some(key) = keys.by_kid.get(kid) {
                return Some(key.clone());
            }
            keys.fetched.is_none_or(|t| t.elapsed() >= JWKS_REFETCH)
        };
        if !stale {
            return None;
        }
        self.lock().fetched = Some(Instant::now());
        let fetched = self.fetch().await;
        let mut keys = self.lock();
        match fetched {
            Some(by_kid) => keys.by_kid = by_kid,
            None => tracing::warn!("the broker's key set could not be read"),
        }
        keys.by_kid.get(kid).cloned()
    }

    async fn fetch(&self) -> Option<HashMap<String, Arc<TokenKey>>> {
        let res = self
            .http
            .get(&self.jwks_uri)
            .timeout(Duration::from_secs(5))
            .send()
            .await
            .ok()?;
        if !res.status().is_success() {
            return None;
        }
        let set: Value = serde_json::from_slice(&res.bytes().await.ok()?).ok()?;
        let mut by_kid = HashMap::new();
        for jwk in set["keys"].as_array()? {
            if jwk["alg"].as_str() != Some(self.alg) || jwk["use"].as_str() != Some("sig") {
                continue;
            }
            let (Some(kid), Some(key)) = (jwk["kid"].as_str(), token_key(jwk)) else {
                continue;
            };
            by_kid.insert(kid.to_owned(), Arc::new(key));
        }
        Some(by_kid)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Keys> {
        self.keys.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Checks `token` for `resource`, issued by `issuer`, at `now`: its
    /// claims, or why it is refused.
    pub async fn verify(
        &self,
        token: &str,
        issuer: &str,
        resource: &str,
        now: UnixTime,
    ) -> Result<TokenClaims, Refused> {
        if token.len() > mandate_core::MAX_TOKEN_BYTES {
            return Err("the access token is too large");
        }
        let mut parts = token.split('.');
        let (Some(header), Some(claims), Some(signature), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err("the access token is not a compact JWS");
        };
        let decode = |p: &str| base64url::decode(p).ok_or("the access token is not base64url");
        let header: Value =
            serde_json::from_slice(&decode(header)?).map_err(|_| "the access token is not JSON")?;
        if header["typ"] != "at+jwt" {
            return Err("the access token's typ must be at+jwt");
        }
        if header["alg"].as_str() != Some(self.alg) {
            return Err("the access token is not signed with this resource's algorithm");
        }
        let kid = header["kid"]
            .as_str()
            .ok_or("the access token names no kid")?;
        let key = self
            .key(kid)
            .await
            .ok_or("the access token's key is not one the broker publishes")?;
        let input = &token[..token.len() - signature.len() - 1];
        let signature = decode(signature)?;
        let verifies = match &*key {
            TokenKey::EdDsa(k) => <[u8; 64]>::try_from(signature.as_slice())
                .is_ok_and(|s| k.verify_strict(input.as_bytes(), &s).is_ok()),
            TokenKey::Es256(k) => k.verifies(input.as_bytes(), &signature),
        };
        if !verifies {
            return Err("the access token's signature does not verify");
        }
        let claims = decode(claims)?;
        let envelope: Envelope = serde_json::from_slice(&claims)
            .map_err(|_| "the access token's iss and aud must be strings")?;
        if envelope.iss != issuer {
            return Err("the access token is from another issuer");
        }
        if envelope.aud != resource {
            return Err("the access token is for another resource");
        }
        let claims: TokenClaims = serde_json::from_slice(&claims)
            .map_err(|_| "the access token's claims are not the broker's")?;
        if claims.exp <= now {
            return Err("the access token has expired");
        }
        Ok(claims)
    }
}

/// A key set's entry as a token key: an Ed25519 or a P-256 public key.
fn token_key(jwk: &Value) -> Option<TokenKey> {
    match jwk["kty"].as_str()? {
        "OKP" => {
            let jwk: Jwk = serde_json::from_value(jwk.clone()).ok()?;
            // The key set's kid is the RFC 7638 thumbprint, as for any JWK.
            PublicKey::from_jwk(&jwk).ok().map(TokenKey::EdDsa)
        }
        "EC" => P256Key::of(
            jwk["kty"].as_str()?,
            jwk["crv"].as_str()?,
            jwk["x"].as_str()?,
            jwk["y"].as_str()?,
        )
        .map(TokenKey::Es256),
        _ => None,
    }
}

/// The `ath` of `token`: the base64url SHA-256 of its text (RFC 9449).
pub fn ath(token: &str) -> String {
    base64url::encode(Sha256::digest(token.as_bytes()))
}
