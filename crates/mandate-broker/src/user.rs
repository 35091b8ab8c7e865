//! The signed-in user, as an extractor: a verified OIDC bearer token.

use crate::error::Code;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use mandate_core::{Principal, Secret};

use crate::oidc::AuthError;
use crate::{ApiError, AppState};

/// The principal of a request's bearer token, verified. Its `Debug`
/// shows the principal and never the token.
#[derive(Debug, Clone)]
pub struct User {
    /// `issuer#subject`.
    pub principal: Principal,
    /// The bearer token itself, to bind key enrollment to this sign-in.
    pub token: Secret,
    /// When the person authenticated (`auth_time`, else `iat`).
    pub authenticated_at: Option<i64>,
    /// The token's `nonce`: at enrollment, the thumbprint of the sign-in's
    /// session key.
    pub nonce: Option<String>,
    /// When the token expires.
    pub expires_at: i64,
}

impl FromRequestParts<AppState> for User {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<User, ApiError> {
        let unauthorized = |e: AuthError| ApiError::new(e.code(), e.to_string());
        let header = parts
            .headers
            .get(axum::http::header::AUTHORIZATION)
            .ok_or(AuthError::Missing)
            .map_err(unauthorized)?;
        let token = header
            .to_str()
            .ok()
            .and_then(|v| v.strip_prefix("Bearer "))
            .ok_or(AuthError::Malformed)
            .map_err(unauthorized)?;
        let signed_in = state
            .inner
            .oidc
            .verify(token, state.now())
            .await
            .map_err(unauthorized)?;
        let principal = signed_in.principal;
        if !state.inner.limiters.user_calls.allow(principal.as_str()) {
            return Err(crate::error::too_fast(Code::RateUser));
        }
        Ok(User {
            principal,
            token: Secret::new(token),
            authenticated_at: signed_in.authenticated_at,
            nonce: signed_in.nonce,
            expires_at: signed_in.expires_at,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_shows_the_principal_and_never_the_bearer() {
        let user = User {
            principal: "https://idp.example#alice".to_owned().try_into().unwrap(),
            token: Secret::new("eyJhbGciOiJSUzI1NiJ9.the-bearer.sig"),
            authenticated_at: None,
            nonce: None,
            expires_at: 0,
        };
        let shown = format!("{user:?} {user:#?}");
        assert!(shown.contains("alice"), "{shown}");
        assert!(!shown.contains("the-bearer"), "{shown}");
    }
}
