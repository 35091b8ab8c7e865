//! OIDC sign-in for a native app (RFC 8252): Authorization Code with PKCE
//! (S256) in the system browser, a loopback redirect on an ephemeral port
//! of 127.0.0.1, `state` and `nonce` checked, the ID token validated
//! (signature under the provider's JWKS, `iss`, `aud`, `exp`), refresh.

use std::time::Duration;

use mandate_core::Secret;
use openidconnect::core::{
    CoreAuthDisplay, CoreAuthenticationFlow, CoreClaimName, CoreClaimType, CoreClient,
    CoreClientAuthMethod, CoreGrantType, CoreJsonWebKey, CoreJweContentEncryptionAlgorithm,
    CoreJweKeyManagementAlgorithm, CoreResponseMode, CoreResponseType, CoreSubjectIdentifierType,
};
use openidconnect::{
    AdditionalProviderMetadata, AuthorizationCode, ClaimsVerificationError, ClientId, CsrfToken,
    IssuerUrl, Nonce, OAuth2TokenResponse as _, PkceCodeChallenge, ProviderMetadata, RedirectUrl,
    RefreshToken, Scope, TokenResponse as _,
};
use serde::{Deserialize, Serialize};
use tokio::net::TcpListener;

use crate::http::Http;

mod browser;
mod callback;

pub use browser::{Browser, CommandBrowser, host_environment};
use callback::callback;

/// Why a sign-in failed. Each has a stable [`SignInError::code`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SignInError {
    /// The provider's discovery document or keys could not be read.
    #[error("cannot read the provider's configuration: {0}")]
    Discovery(String),
    /// The loopback listener could not be opened.
    #[error("cannot listen for the provider's answer on 127.0.0.1: {0}")]
    Listener(String),
    /// The browser could not be opened.
    #[error("cannot open the browser: {0}")]
    Browser(String),
    /// No answer came from the browser in time.
    #[error("the sign-in was not completed in time")]
    TimedOut,
    /// The provider refused, with an OAuth error code.
    #[error("the provider refused the sign-in: {0}")]
    Refused(String),
    /// The answer carried no code.
    #[error("the provider's answer is malformed")]
    Malformed,
    /// Exchanging the code (or a refresh token) failed.
    #[error("the provider did not issue tokens: {0}")]
    Exchange(String),
    /// The token response had no ID token.
    #[error("the provider issued no ID token")]
    NoIdToken,
    /// The ID token's nonce is not this sign-in's.
    #[error("the ID token belongs to another sign-in (nonce mismatch)")]
    NonceMismatch,
    /// The ID token has expired.
    #[error("the ID token has expired")]
    Expired,
    /// The ID token failed validation otherwise (signature, issuer,
    /// audience, subject).
    #[error("the ID token is not valid: {0}")]
    InvalidIdToken(String),
}

impl SignInError {
    /// A stable code for the UI.
    pub fn code(&self) -> &'static str {
        match self {
            SignInError::Discovery(_) => crate::EngineCode::SignInDiscovery.as_str(),
            SignInError::Listener(_) => crate::EngineCode::SignInListener.as_str(),
            SignInError::Browser(_) => crate::EngineCode::SignInBrowser.as_str(),
            SignInError::TimedOut => crate::EngineCode::SignInTimedOut.as_str(),
            SignInError::Refused(_) => crate::EngineCode::SignInRefused.as_str(),
            SignInError::Malformed => crate::EngineCode::SignInMalformed.as_str(),
            SignInError::Exchange(_) => crate::EngineCode::SignInExchange.as_str(),
            SignInError::NoIdToken => crate::EngineCode::SignInNoIdToken.as_str(),
            SignInError::NonceMismatch => crate::EngineCode::SignInNonceMismatch.as_str(),
            SignInError::Expired => crate::EngineCode::SignInExpired.as_str(),
            SignInError::InvalidIdToken(_) => crate::EngineCode::SignInInvalid.as_str(),
        }
    }

    fn from_claims(e: ClaimsVerificationError) -> SignInError {
        match e {
            ClaimsVerificationError::Expired(_) => SignInError::Expired,
            ClaimsVerificationError::InvalidNonce(_) => SignInError::NonceMismatch,
            other => SignInError::InvalidIdToken(other.to_string()),
        }
    }
}

/// A signed-in user.
pub struct Session {
    /// The provider (`iss`).
    pub issuer: String,
    /// The user at the provider (`sub`).
    pub subject: String,
    /// `issuer#subject`, the broker's name for the user.
    pub principal: String,
    /// The e-mail address, if the provider gave one.
    pub email: Option<String>,
    /// The display name, if the provider gave one.
    pub name: Option<String>,
    /// The ID token: the bearer token for the broker.
    pub id_token: Secret,
    /// When the ID token expires.
    pub expires_at: i64,
    refresh_token: Option<Secret>,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("principal", &self.principal)
            .field("email", &self.email)
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

impl Session {
    /// The refresh token, if the provider issued one. Keep it in the
    /// keyring, nowhere else.
    pub fn refresh_token(&self) -> Option<&str> {
        self.refresh_token.as_ref().map(Secret::expose)
    }
}

/// What discovery may add to the standard metadata: the RFC 7009 token
/// revocation endpoint (RFC 8414), where sign-out revokes the refresh
/// token.
#[derive(Debug, Clone, Deserialize, Serialize)]
struct Revocation {
    #[serde(default)]
    revocation_endpoint: Option<String>,
}

impl AdditionalProviderMetadata for Revocation {}

type Metadata = ProviderMetadata<
    Revocation,
    CoreAuthDisplay,
    CoreClientAuthMethod,
    CoreClaimName,
    CoreClaimType,
    CoreGrantType,
    CoreJweContentEncryptionAlgorithm,
    CoreJweKeyManagementAlgorithm,
    CoreJsonWebKey,
    CoreResponseMode,
    CoreResponseType,
    CoreSubjectIdentifierType,
>;

/// An OpenID Provider, discovered, and this app's client id at it.
#[derive(Debug, Clone)]
pub struct Provider {
    metadata: Metadata,
    client_id: String,
    http: Http,
}

/// How long one sign-in may take, from opening the browser.
pub const SIGN_IN_TIMEOUT: Duration = Duration::from_secs(300);

impl Provider {
    /// Reads the provider's discovery document and keys. The issuer must
    /// be HTTPS, or HTTP on loopback.
    pub async fn discover(issuer: &str, client_id: &str) -> Result<Provider, SignInError> {
        if !secure_or_loopback(issuer) {
            return Err(SignInError::Discovery(
                "the issuer must be an HTTPS URL, or HTTP on 127.0.0.1, ::1 or localhost".into(),
            ));
        }
        let http = Http::new().map_err(SignInError::Discovery)?;
        let issuer =
            IssuerUrl::new(issuer.to_owned()).map_err(|e| SignInError::Discovery(e.to_string()))?;
        let metadata = Metadata::discover_async(issuer, &http)
            .await
            .map_err(|e| SignInError::Discovery(e.to_string()))?;
        Ok(Provider {
            metadata,
            client_id: client_id.to_owned(),
            http,
        })
    }

    /// The issuer URL.
    pub fn issuer(&self) -> &str {
        self.metadata.issuer().as_str()
    }

    fn client(&self, redirect: &str) -> Result<CoreClientSet, SignInError> {
        let redirect = RedirectUrl::new(redirect.to_owned())
            .map_err(|e| SignInError::Listener(e.to_string()))?;
        Ok(CoreClient::from_provider_metadata(
            self.metadata.clone(),
            ClientId::new(self.client_id.clone()),
            None,
        )
        .set_redirect_uri(redirect))
    }

    /// Signs a person in through `browser`, asking for `scopes` besides
    /// `openid`. With `offline_access` among them the provider is asked
    /// for consent, so that it issues a refresh token.
    pub async fn sign_in(
        &self,
        browser: &dyn Browser,
        scopes: &[&str],
        timeout: Duration,
    ) -> Result<Session, SignInError> {
        self.sign_in_with_nonce(browser, scopes, timeout, None)
            .await
    }

    /// As [`Provider::sign_in`], with the ID token's `nonce` chosen by the
    /// caller (random when `None`). Enrolling a new user key needs a
    /// sign-in whose nonce is the thumbprint of a session key made for it
    /// (see the broker's `POST /v1/keys`); the nonce must be unpredictable.
    pub async fn sign_in_with_nonce(
        &self,
        browser: &dyn Browser,
        scopes: &[&str],
        timeout: Duration,
        nonce: Option<String>,
    ) -> Result<Session, SignInError> {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .map_err(|e| SignInError::Listener(e.to_string()))?;
        let port = listener
            .local_addr()
            .map_err(|e| SignInError::Listener(e.to_string()))?
            .port();
        let redirect = format!("http://127.0.0.1:{port}/callback");
        let client = self.client(&redirect)?;
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        let mut request = client
            .authorize_url(
                CoreAuthenticationFlow::AuthorizationCode,
                CsrfToken::new_random,
                move || nonce.map_or_else(Nonce::new_random, Nonce::new),
            )
            .set_pkce_challenge(challenge);
        for scope in scopes {
            request = request.add_scope(Scope::new((*scope).to_owned()));
        }
        if scopes.contains(&"offline_access") {
            request = request.add_prompt(openidconnect::core::CoreAuthPrompt::Consent);
        }
        let (url, state, nonce) = request.url();
        browser.open(url.as_str()).map_err(SignInError::Browser)?;
        let answer = tokio::time::timeout(timeout, callback(&listener, state.secret()))
            .await
            .map_err(|_| SignInError::TimedOut)??;
        if let Some(error) = answer.error {
            return Err(SignInError::Refused(error));
        }
        let code = answer.code.ok_or(SignInError::Malformed)?;
        let tokens = client
            .exchange_code(AuthorizationCode::new(code))
            .map_err(|e| SignInError::Exchange(e.to_string()))?
            .set_pkce_verifier(verifier)
            .request_async(&self.http)
            .await
            .map_err(|e| SignInError::Exchange(e.to_string()))?;
        let id_token = tokens.id_token().ok_or(SignInError::NoIdToken)?;
        let claims = id_token
            .claims(&client.id_token_verifier(), &nonce)
            .map_err(SignInError::from_claims)?;
        Ok(self.session(
            id_token.to_string(),
            claims,
            tokens.refresh_token().map(|t| t.secret().clone()),
        ))
    }

    /// Exchanges a refresh token for a fresh session. The new ID token is
    /// validated as at sign-in (a refreshed token keeps its original
    /// `nonce`, which is not checked again) and must name `subject`.
    pub async fn refresh(
        &self,
        refresh_token: &str,
        subject: &str,
    ) -> Result<Session, SignInError> {
        let client = self.client("http://127.0.0.1/callback")?;
        let token = RefreshToken::new(refresh_token.to_owned());
        let tokens = client
            .exchange_refresh_token(&token)
            .map_err(|e| SignInError::Exchange(e.to_string()))?
            .request_async(&self.http)
            .await
            .map_err(|e| SignInError::Exchange(e.to_string()))?;
        let id_token = tokens.id_token().ok_or(SignInError::NoIdToken)?;
        let claims = id_token
            .claims(&client.id_token_verifier(), |_: Option<&Nonce>| Ok(()))
            .map_err(SignInError::from_claims)?;
        if claims.subject().as_str() != subject {
            return Err(SignInError::InvalidIdToken(
                "the refreshed token names another user".into(),
            ));
        }
        let rotated = tokens
            .refresh_token()
            .map_or_else(|| refresh_token.to_owned(), |t| t.secret().clone());
        Ok(self.session(id_token.to_string(), claims, Some(rotated)))
    }

    /// Revokes `refresh_token` at the provider (RFC 7009), so that a copy
    /// of it left anywhere is worthless. Returns `false` when the provider
    /// has no revocation endpoint.
    pub async fn revoke(&self, refresh_token: &str) -> Result<bool, SignInError> {
        let Some(endpoint) = &self.metadata.additional_metadata().revocation_endpoint else {
            return Ok(false);
        };
        // The oauth2 crate's revocation insists on HTTPS; the rule here is
        // the issuer's: HTTPS, or HTTP on loopback.
        if !secure_or_loopback(endpoint) {
            return Err(SignInError::Discovery(
                "the revocation endpoint is neither HTTPS nor on loopback".into(),
            ));
        }
        // RFC 7009 section 2: a public client names itself; the provider
        // answers 200 whether or not the token was valid.
        let status = self
            .http
            .post_form(
                endpoint,
                &[
                    ("token", refresh_token),
                    ("token_type_hint", "refresh_token"),
                    ("client_id", &self.client_id),
                ],
            )
            .await
            .map_err(|e| SignInError::Exchange(e.to_string()))?;
        if !status.is_success() {
            return Err(SignInError::Exchange(format!(
                "the provider refused to revoke the token ({status})"
            )));
        }
        Ok(true)
    }

    /// Checks a stored ID token now: signature, issuer, audience, expiry.
    pub fn check(&self, id_token: &str) -> Result<(), SignInError> {
        let client = self.client("http://127.0.0.1/callback")?;
        let token: openidconnect::core::CoreIdToken = id_token
            .parse()
            .map_err(|e: serde_json::Error| SignInError::InvalidIdToken(e.to_string()))?;
        token
            .claims(&client.id_token_verifier(), |_: Option<&Nonce>| Ok(()))
            .map_err(SignInError::from_claims)?;
        Ok(())
    }

    fn session(
        &self,
        id_token: String,
        claims: &openidconnect::core::CoreIdTokenClaims,
        refresh_token: Option<String>,
    ) -> Session {
        let issuer = claims.issuer().as_str().to_owned();
        let subject = claims.subject().as_str().to_owned();
        Session {
            principal: format!("{issuer}#{subject}"),
            email: claims.email().map(|e| e.as_str().to_owned()),
            name: claims
                .name()
                .and_then(|n| n.get(None))
                .map(|n| n.as_str().to_owned()),
            expires_at: claims.expiration().timestamp(),
            issuer,
            subject,
            id_token: Secret::new(id_token),
            refresh_token: refresh_token.map(Secret::new),
        }
    }
}

type CoreClientSet = openidconnect::core::CoreClient<
    openidconnect::EndpointSet,
    openidconnect::EndpointNotSet,
    openidconnect::EndpointNotSet,
    openidconnect::EndpointNotSet,
    openidconnect::EndpointMaybeSet,
    openidconnect::EndpointMaybeSet,
>;

/// Whether `url` is HTTPS, or plain HTTP to this machine: the only
/// places sign-in secrets may be sent.
/// The same rule as for brokers (`mandate_core::transport`).
fn secure_or_loopback(url: &str) -> bool {
    reqwest::Url::parse(url).is_ok_and(|u| mandate_agent::client::secure_or_loopback(&u))
}

#[cfg(test)]
mod tests {
    use super::secure_or_loopback;

    #[test]
    fn secrets_go_only_over_https_or_to_this_machine() {
        for ok in [
            "https://idp.example.com",
            "https://idp.example.com/realms/x",
            "http://127.0.0.1:8080",
            "http://127.3.4.5/",
            "http://[::1]:9000/",
            "http://localhost:3000",
            "http://LOCALHOST",
        ] {
            assert!(secure_or_loopback(ok), "{ok}");
        }
        for bad in [
            "http://idp.example.com",
            "http://10.0.0.1",
            "http://[::2]/",
            "http://localhost.example.com",
            "http://127.0.0.1.nip.io",
            "ftp://127.0.0.1",
            "file:///etc/passwd",
            "not a url",
            "",
        ] {
            assert!(!secure_or_loopback(bad), "{bad}");
        }
    }
}
