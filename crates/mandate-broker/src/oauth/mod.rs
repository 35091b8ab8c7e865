//! The broker as an OAuth 2 authorization server, for resource servers and
//! clients that speak OAuth rather than Mandate (docs/oauth.md):
//!
//! - RFC 8414 metadata at `/.well-known/oauth-authorization-server`, and
//!   the access-token keys at `/oauth/jwks` ([`keys`]);
//! - RFC 8693 token exchange at `/oauth/token`: a Mandate chain and a DPoP
//!   proof (RFC 9449) by its leaf agent's key, for an RFC 9068 access
//!   token bound to that key, for one resource (RFC 8707) the broker
//!   serves ([`exchange`]);
//! - RFC 7662 introspection at `/oauth/introspect`: a token whose chain
//!   was revoked is inactive at once;
//! - the authorization code flow with PKCE ([`authorize`], [`code`]),
//!   whose consent screen is the desktop app, for clients identified by a
//!   metadata document or a registration ([`client`]); refresh tokens, and
//!   RFC 7009 revocation at `/oauth/revoke`.
//!
//! Errors are RFC 6749's `{"error", "error_description"}` ([`OAuthCode`]).

pub mod authorize;
pub mod client;
pub mod code;
pub mod dpop;
pub mod exchange;
pub mod keys;

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use mandate_core::scope::Location;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::AppState;
use keys::{Alg, TokenKeys};

/// Where the token endpoint is, under the broker's public URL.
pub const TOKEN_PATH: &str = "/oauth/token";
/// Where the key set is.
pub const JWKS_PATH: &str = "/oauth/jwks";
/// Where introspection is.
pub const INTROSPECT_PATH: &str = "/oauth/introspect";
/// Where tokens are revoked (RFC 7009).
pub const REVOKE_PATH: &str = "/oauth/revoke";

mandate_core::error_codes! {
    /// The `error` of the OAuth endpoints (RFC 6749 section 5.2, RFC 8707,
    /// RFC 9396, RFC 9449), each with its status.
    pub enum OAuthCode {
        /// A parameter missing, repeated or malformed.
        InvalidRequest = (
            "invalid_request",
            Some(400),
            "A parameter is missing, repeated or malformed, or the body is not a form.",
            "Send each parameter once, as `application/x-www-form-urlencoded`.",
        ),
        /// A grant type the broker does not serve.
        UnsupportedGrantType = (
            "unsupported_grant_type",
            Some(400),
            "`grant_type` is not `urn:ietf:params:oauth:grant-type:token-exchange`, \
             `authorization_code` or `refresh_token`, or the broker does not serve the code flow.",
            "Use a grant type the metadata lists in `grant_types_supported`.",
        ),
        /// An authorization request whose `response_type` is not `code`.
        UnsupportedResponseType = (
            "unsupported_response_type",
            None,
            "The authorization request's `response_type` is not `code` (shown on a page, with a \
             link back to the client's redirect URI carrying it).",
            "Ask for `response_type=code`.",
        ),
        /// The user denied, or did not sign in, or the request lapsed.
        AccessDenied = (
            "access_denied",
            None,
            "The user denied the request in the app, did not sign in, or let the request lapse \
             (sent back to the client's redirect URI).",
            "Ask the user again, later, for what they are willing to approve.",
        ),
        /// Client metadata the broker does not take (RFC 7591).
        InvalidClientMetadata = (
            "invalid_client_metadata",
            Some(400),
            "The registration's metadata is malformed or asks for what the broker does not \
             serve: a secret, a grant type other than `authorization_code` and \
             `refresh_token`, a response type other than `code`.",
            "Register a public client: `redirect_uris`, and optionally `client_name`.",
        ),
        /// A redirect URI the broker does not take (RFC 7591).
        InvalidRedirectUri = (
            "invalid_redirect_uri",
            Some(400),
            "A redirect URI is not `https://`, `http://` to a loopback address, or a \
             private-use scheme with a dot; or it has a fragment or user info, or is longer \
             than 512 bytes; or there are none, or more than 5.",
            "Name 1 to 5 redirect URIs of those kinds (RFC 8252).",
        ),
        /// The chain, code or refresh token is not good (any more).
        InvalidGrant = (
            "invalid_grant",
            Some(400),
            "The chain does not verify here (revoked, expired, or broken: the description \
             starts with the Mandate code), or its leaf grant is to another key than the DPoP \
             proof's; or the authorization code is unknown, spent, expired, or for another \
             client, redirect URI or PKCE verifier; or the refresh token is not this broker's, \
             expired, used or revoked before, or its grant is revoked.",
            "Ask for a new grant (in the code flow: start a new authorization); present a chain \
             with the leaf agent's own key, and a refresh token once.",
        ),
        /// An unknown resource, or one the chain grants nothing at.
        InvalidTarget = (
            "invalid_target",
            Some(400),
            "The broker issues no tokens for this `resource`, or the chain (or the grant behind \
             a code or refresh token) grants nothing at it, or a code or refresh token is used \
             for another resource than the one it was issued for.",
            "Name a resource the metadata lists (`mandate_resources`), which the chain's scopes \
             reach.",
        ),
        /// `authorization_details` wider than the chain.
        InvalidAuthorizationDetails = (
            "invalid_authorization_details",
            Some(400),
            "`authorization_details` is not a list of scopes within what the chain grants at \
             the resource (in an authorization request: not a list of Mandate scopes at the \
             resource).",
            "Ask for the same or less.",
        ),
        /// `scope` wider than the chain.
        InvalidScope = (
            "invalid_scope",
            Some(400),
            "`scope` names an action the chain does not grant at the resource (in an \
             authorization request: it is missing, or not `TYPE:ACTION` words).",
            "Name `TYPE:ACTION` pairs the chain grants.",
        ),
        /// A missing or bad DPoP proof.
        InvalidDpopProof = (
            "invalid_dpop_proof",
            Some(400),
            "The `DPoP` header is missing, or its proof is malformed, stale, replayed, or not \
             for this request, or not by the key a code or refresh token is bound to (the \
             description says which).",
            "Send one fresh proof, for `POST` on the token endpoint, by the leaf agent's key \
             (by the client's key, for a code or refresh token).",
        ),
        /// A key exchanging too fast.
        SlowDown = (
            "slow_down",
            Some(429),
            "This agent key exchanges (and polls) too fast: it shares the `agent_calls` rate; \
             or an OAuth client is given tokens faster than the `receipts` rate.",
            "Slow down: a token lives 5 minutes, so keep it and use it until it nears its end.",
        ),
        /// The store failed.
        TemporarilyUnavailable = (
            "temporarily_unavailable",
            Some(503),
            "The broker cannot reach its store; or, in the code flow, the sign-in provider \
             cannot be used, too many sign-ins or codes are under way, or the request could \
             not be filed.",
            "Retry later.",
        ),
    }
}

/// An OAuth error answer.
#[derive(Debug)]
pub struct OAuthError {
    code: OAuthCode,
    description: String,
}

impl OAuthError {
    /// An error with its code and a description for people.
    pub fn new(code: OAuthCode, description: impl Into<String>) -> OAuthError {
        OAuthError {
            code,
            description: description.into(),
        }
    }

    fn unavailable() -> OAuthError {
        OAuthError::new(OAuthCode::TemporarilyUnavailable, "storage is unavailable")
    }

    /// A refusal by the broker's own checks of a chain or a receipt, in
    /// OAuth's words: the store's failures are `temporarily_unavailable`,
    /// a rate is `slow_down`, and every other refusal is `invalid_grant`
    /// led by the Mandate code of the rule that failed.
    fn from_broker(e: crate::error::ApiError) -> OAuthError {
        if e.status.is_server_error() {
            OAuthError::unavailable()
        } else if e.status == StatusCode::TOO_MANY_REQUESTS {
            OAuthError::new(OAuthCode::SlowDown, "too many calls for this client: wait")
        } else {
            OAuthError::new(
                OAuthCode::InvalidGrant,
                format!("{}: {}", e.code, e.message),
            )
        }
    }
}

/// RFC 6749's error body.
#[derive(Serialize, utoipa::ToSchema)]
pub struct OAuthErrorBody {
    /// The error code, such as `invalid_grant`.
    error: String,
    /// What went wrong, for people; for `invalid_grant`, it starts with
    /// the Mandate code of the rule that failed.
    error_description: String,
}

impl IntoResponse for OAuthError {
    fn into_response(self) -> Response {
        let status =
            StatusCode::from_u16(self.code.http_status()).unwrap_or(StatusCode::BAD_REQUEST);
        let body = OAuthErrorBody {
            error: self.code.as_str().to_owned(),
            error_description: self.description,
        };
        no_store((status, Json(body)).into_response())
    }
}

/// RFC 6749 section 5.1: token answers are never cached.
fn no_store(mut response: Response) -> Response {
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// One resource the broker issues access tokens for, and how it wants
/// them signed.
#[derive(Debug, Clone)]
pub struct Resource {
    /// Its URI, as clients name it in `resource` and tokens in `aud`.
    pub uri: String,
    /// The same, as a scope location: the scopes it covers are its own.
    pub location: Location,
    /// The signature its tokens carry.
    pub alg: Alg,
}

impl Resource {
    /// `URI` or `URI=ALG` (`EdDSA`, the default, or `ES256`). The URI is
    /// absolute, `https://` (or `http://` to this machine), without a
    /// fragment or query, and a valid scope location.
    pub fn parse(text: &str) -> Result<Resource, String> {
        let (uri, alg) = match text.rsplit_once('=') {
            Some((uri, alg)) if !alg.contains('/') => (
                uri,
                Alg::named(alg).ok_or_else(|| format!("{alg}: the algorithm is EdDSA or ES256"))?,
            ),
            _ => (text, Alg::EdDsa),
        };
        if !secure_uri(uri) || uri.contains(['?', '#']) {
            return Err(format!(
                "{uri}: a resource is an https:// URI (http:// only to this machine), without a query or fragment"
            ));
        }
        let location = Location::try_from(uri.to_owned())
            .map_err(|why| format!("{uri}: not a scope location: {why}"))?;
        Ok(Resource {
            uri: uri.to_owned(),
            location,
            alg,
        })
    }
}

/// Whether `uri` is `https://`, or `http://` to this machine
/// ([`mandate_core::transport::secure_or_loopback`]).
fn secure_uri(uri: &str) -> bool {
    use mandate_core::transport::{Host, secure_or_loopback};
    let Some((origin, _)) = mandate_core::uri::split_http_uri(uri) else {
        return false;
    };
    let Some((scheme, authority)) = origin.split_once("://") else {
        return false;
    };
    let host = if let Some(v6) = authority.strip_prefix('[') {
        v6.split(']')
            .next()
            .and_then(|a| a.parse().ok())
            .map(Host::Ipv6)
    } else {
        let name = authority
            .rsplit_once(':')
            .filter(|(_, port)| port.bytes().all(|b| b.is_ascii_digit()))
            .map_or(authority, |(name, _)| name);
        Some(name.parse().map_or(Host::Domain(name), Host::Ipv4))
    };
    secure_or_loopback(scheme, host)
}

/// The broker's OAuth side: its access-token keys, its resources, and
/// its code flow, if it serves one.
pub struct OAuth {
    /// The keys that sign access tokens.
    pub keys: TokenKeys,
    /// The resources it issues tokens for.
    pub resources: Vec<Resource>,
    /// The authorization code flow, when the broker has an OIDC client of
    /// its own to sign users in with.
    pub code_flow: Option<authorize::CodeFlow>,
}

impl OAuth {
    /// The resource named `uri`, exactly.
    pub fn resource(&self, uri: &str) -> Option<&Resource> {
        self.resources.iter().find(|r| r.uri == uri)
    }
}

/// A form body (`application/x-www-form-urlencoded`), each parameter at
/// most once (RFC 6749 section 3.2).
pub struct Form(Vec<(String, String)>);

impl Form {
    fn parse(body: Result<Bytes, BytesRejection>) -> Result<Form, OAuthError> {
        let bytes =
            body.map_err(|_| OAuthError::new(OAuthCode::InvalidRequest, "the body is not a form"))?;
        Form::from_bytes(&bytes)
    }

    /// A form (or a query string), each parameter at most once.
    pub fn from_bytes(bytes: &[u8]) -> Result<Form, OAuthError> {
        let pairs: Vec<(String, String)> = serde_urlencoded::from_bytes(bytes)
            .map_err(|_| OAuthError::new(OAuthCode::InvalidRequest, "the body is not a form"))?;
        for (i, (name, _)) in pairs.iter().enumerate() {
            if pairs[..i].iter().any(|(n, _)| n == name) {
                return Err(OAuthError::new(
                    OAuthCode::InvalidRequest,
                    format!("{} is repeated", printable(name)),
                ));
            }
        }
        Ok(Form(pairs))
    }

    /// The parameter `name`, if given.
    pub fn optional(&self, name: &str) -> Result<Option<&str>, OAuthError> {
        Ok(self
            .0
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str()))
    }

    /// The parameter `name`, which must be given.
    pub fn one(&self, name: &str) -> Result<&str, OAuthError> {
        self.optional(name)?
            .ok_or_else(|| OAuthError::new(OAuthCode::InvalidRequest, format!("{name} is missing")))
    }
}

/// A parameter name for a description: short, and only printable ASCII.
fn printable(name: &str) -> String {
    name.chars()
        .filter(|c| c.is_ascii_graphic())
        .take(40)
        .collect()
}

/// RFC 8414 authorization server metadata.
#[utoipa::path(
    get, path = "/.well-known/oauth-authorization-server", tag = "oauth",
    responses((status = 200, description = "The metadata (RFC 8414)", body = Object))
)]
pub async fn metadata(State(state): State<AppState>) -> Json<Value> {
    let base = &state.inner.public_url;
    let resources: serde_json::Map<String, Value> = state
        .oauth()
        .resources
        .iter()
        .map(|r| (r.uri.clone(), json!(r.alg.as_str())))
        .collect();
    let mut grant_types = vec![exchange::GRANT_TYPE];
    let mut meta = json!({
        "issuer": base,
        "token_endpoint": format!("{base}{TOKEN_PATH}"),
        "jwks_uri": format!("{base}{JWKS_PATH}"),
        "introspection_endpoint": format!("{base}{INTROSPECT_PATH}"),
        "revocation_endpoint": format!("{base}{REVOKE_PATH}"),
        "response_types_supported": [],
        "token_endpoint_auth_methods_supported": ["none"],
        "introspection_endpoint_auth_methods_supported": ["none"],
        "revocation_endpoint_auth_methods_supported": ["none"],
        "dpop_signing_alg_values_supported": ["EdDSA", "ES256"],
        "mandate_subject_token_types_supported": [exchange::CHAIN_TOKEN_TYPE],
        "mandate_resources": resources,
    });
    if state.oauth().code_flow.is_some() {
        grant_types.extend(["authorization_code", "refresh_token"]);
        meta["authorization_endpoint"] = json!(format!("{base}{}", authorize::AUTHORIZE_PATH));
        meta["registration_endpoint"] = json!(format!("{base}{}", client::REGISTER_PATH));
        meta["response_types_supported"] = json!(["code"]);
        meta["response_modes_supported"] = json!(["query"]);
        meta["code_challenge_methods_supported"] = json!(["S256"]);
        meta["authorization_response_iss_parameter_supported"] = json!(true);
        meta["client_id_metadata_document_supported"] = json!(true);
    }
    meta["grant_types_supported"] = json!(grant_types);
    Json(meta)
}

/// The keys that verify access tokens (RFC 7517): yesterday's, today's and
/// tomorrow's, Ed25519 and P-256.
#[utoipa::path(
    get, path = "/oauth/jwks", tag = "oauth",
    responses((status = 200, description = "A JWK Set", body = Object))
)]
pub async fn jwks(State(state): State<AppState>) -> Json<Value> {
    Json(state.oauth().keys.jwks(state.now()))
}

/// The token endpoint's form (RFC 8693 section 2.1). [`Form`] reads the
/// body; this type documents it, and the docs' test parses its example.
#[derive(Deserialize, utoipa::ToSchema)]
#[expect(dead_code, reason = "documents the form; Form reads the body")]
pub struct TokenForm {
    /// `urn:ietf:params:oauth:grant-type:token-exchange`,
    /// `authorization_code` or `refresh_token`.
    grant_type: String,
    /// Token exchange: the chain, its grants root first, separated by `,`.
    subject_token: Option<String>,
    /// Token exchange: `urn:mandate:params:oauth:token-type:chain`.
    subject_token_type: Option<String>,
    /// The resource the token is for (RFC 8707), one the metadata lists.
    /// Required for a token exchange; for a code or a refresh, optional,
    /// and if given the one the code or refresh token is for.
    resource: Option<String>,
    /// Token exchange, optional: the public keys (base64url, 32 bytes
    /// each, separated by `,`) of the agents above the leaf, for a chain of
    /// two grants or more. The leaf's key is the DPoP proof's.
    mandate_keys: Option<String>,
    /// Token exchange, optional: a JSON list of scopes within the chain's
    /// at the resource (RFC 9396).
    authorization_details: Option<String>,
    /// Token exchange, optional: `TYPE:ACTION` pairs, space-separated, to
    /// keep.
    scope: Option<String>,
    /// Token exchange, optional:
    /// `urn:ietf:params:oauth:token-type:access_token`.
    requested_token_type: Option<String>,
    /// Code: the code the redirect brought.
    code: Option<String>,
    /// Code: the PKCE verifier (RFC 7636), 43 to 128 characters.
    code_verifier: Option<String>,
    /// Code: the client; refresh: optional, and if given the one the
    /// refresh token was issued to.
    client_id: Option<String>,
    /// Code: the redirect URI, exactly as in the authorization request
    /// (required if it named one).
    redirect_uri: Option<String>,
    /// Refresh: the refresh token.
    refresh_token: Option<String>,
}

/// A token issued (RFC 6749 section 5.1, RFC 8693 section 2.2.1).
#[derive(Serialize, utoipa::ToSchema)]
pub struct TokenIssued {
    /// The RFC 9068 access token (`typ` `at+jwt`), bound to the DPoP key
    /// if there was a proof.
    access_token: String,
    /// For a token exchange: `urn:ietf:params:oauth:token-type:access_token`.
    #[serde(skip_serializing_if = "Option::is_none")]
    issued_token_type: Option<&'static str>,
    /// `DPoP`: present it with `Authorization: DPoP` and a fresh proof. A
    /// code redeemed without a proof gives a `Bearer` token.
    token_type: &'static str,
    /// Seconds it lives: at most 300, and never past the grant's end.
    expires_in: i64,
    /// For a code or a refresh with DPoP: a refresh token, bound to the
    /// same key, good once.
    #[serde(skip_serializing_if = "Option::is_none")]
    refresh_token: Option<String>,
    /// For a code or a refresh: the scopes granted at the resource, as
    /// `TYPE:ACTION` words.
    #[serde(skip_serializing_if = "Option::is_none")]
    scope: Option<String>,
}

/// Issues an access token: for a Mandate chain (RFC 8693 token
/// exchange), an authorization code (RFC 6749 section 4.1.3, with the PKCE
/// verifier), or a refresh token.
///
/// The body is a form. For a token exchange, the `DPoP` header carries a
/// proof (RFC 9449) by the leaf agent's key, for `POST` on this URL; the
/// token is for `resource` only, holds the chain as nested `act` claims
/// (the leaf outermost), the scopes at the resource, and `cnf.jkt`; it
/// lives at most 5 minutes. For a code, the proof is optional (it binds
/// the token, and brings a refresh token); for a refresh, it is required,
/// by the key the refresh token is bound to.
#[utoipa::path(
    post, path = "/oauth/token", tag = "oauth",
    request_body(content = TokenForm, content_type = "application/x-www-form-urlencoded"),
    params(("dpop" = Option<String>, Header, description = "A DPoP proof: by the chain's leaf agent, or by the client's key")),
    responses(
        (status = 200, body = TokenIssued),
        (status = 400, body = OAuthErrorBody, description = "An OAuth error: `invalid_request`, `unsupported_grant_type`, `invalid_grant`, `invalid_target`, `invalid_authorization_details`, `invalid_scope` or `invalid_dpop_proof`"),
        (status = 429, body = OAuthErrorBody, description = "An OAuth error: `slow_down`"),
        (status = 503, body = OAuthErrorBody, description = "An OAuth error: `temporarily_unavailable`"),
    )
)]
pub async fn token(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    match token_answer(&state, &headers, body).await {
        Ok(issued) => no_store(Json(issued).into_response()),
        Err(e) => e.into_response(),
    }
}

async fn token_answer(
    state: &AppState,
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<TokenIssued, OAuthError> {
    let form = Form::parse(body)?;
    let grant_type = form.one("grant_type")?;
    let dpop = dpop_header(headers)?;
    if grant_type == exchange::GRANT_TYPE {
        let issued = exchange::exchange(state, &form, dpop).await?;
        return Ok(TokenIssued {
            access_token: issued.token,
            issued_token_type: Some(exchange::ACCESS_TOKEN_TYPE),
            token_type: "DPoP",
            expires_in: issued.expires_in,
            refresh_token: None,
            scope: None,
        });
    }
    let answer = match grant_type {
        "authorization_code" => code::redeem(state, &form, dpop).await?,
        "refresh_token" => code::refresh(state, &form, dpop).await?,
        _ => {
            return Err(OAuthError::new(
                OAuthCode::UnsupportedGrantType,
                "the grant type is token exchange, authorization_code or refresh_token",
            ));
        }
    };
    Ok(TokenIssued {
        access_token: answer.issued.token,
        issued_token_type: None,
        token_type: if answer.dpop { "DPoP" } else { "Bearer" },
        expires_in: answer.issued.expires_in,
        refresh_token: answer.refresh_token,
        scope: Some(answer.scope),
    })
}

/// The `DPoP` header, if there is one; two are refused.
fn dpop_header(headers: &HeaderMap) -> Result<Option<&str>, OAuthError> {
    let mut proofs = headers.get_all("dpop").iter();
    match (proofs.next(), proofs.next()) {
        (None, _) => Ok(None),
        (Some(p), None) => p.to_str().map(Some).map_err(|_| {
            OAuthError::new(OAuthCode::InvalidDpopProof, "the DPoP header is not text")
        }),
        (Some(_), Some(_)) => Err(OAuthError::new(
            OAuthCode::InvalidDpopProof,
            "send one DPoP header",
        )),
    }
}

/// Revokes an access or refresh token (RFC 7009).
///
/// It needs no client authentication: whoever holds a token may give it
/// up. The answer is 200 for any token, unknown and malformed ones too
/// (RFC 7009 section 2.2). A revoked access token introspects as
/// inactive; a revoked refresh token is refused. To end a grant itself,
/// and every token drawn on it, the user revokes it in the app.
#[utoipa::path(
    post, path = "/oauth/revoke", tag = "oauth",
    request_body(content = IntrospectForm, content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 200, description = "Revoked, or nothing to revoke"),
        (status = 400, body = OAuthErrorBody, description = "An OAuth error: `invalid_request`"),
        (status = 503, body = OAuthErrorBody, description = "An OAuth error: `temporarily_unavailable`"),
    )
)]
pub async fn revoke(
    State(state): State<AppState>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let answer = async {
        let form = Form::parse(body)?;
        code::revoke(&state, &form).await
    };
    match answer.await {
        Ok(()) => no_store(StatusCode::OK.into_response()),
        Err(e) => e.into_response(),
    }
}

/// Says whether an access token is active (RFC 7662).
///
/// It needs no client authentication: a token's claims are readable by
/// whoever holds it, and whether its chain is revoked is public in the
/// revocation feed. A token is active while it is this broker's, unexpired,
/// and no grant of its chain (nor the user key at its root) is revoked.
#[utoipa::path(
    post, path = "/oauth/introspect", tag = "oauth",
    request_body(content = IntrospectForm, content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 200, description = "`{\"active\": false}`, or `active` true with the token's claims", body = Object),
        (status = 400, body = OAuthErrorBody, description = "An OAuth error: `invalid_request`"),
        (status = 503, body = OAuthErrorBody, description = "An OAuth error: `temporarily_unavailable`"),
    )
)]
pub async fn introspect(
    State(state): State<AppState>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let answer = async {
        let form = Form::parse(body)?;
        let token = form.one("token")?;
        let now = state.now();
        let Some(claims) = state.oauth().keys.verify(token, now) else {
            return Ok(json!({ "active": false }));
        };
        let revoked = match claims["jti"].as_str() {
            Some(jti) => code::access_revoked(&state, jti, now).await?,
            None => true,
        };
        if revoked || !exchange::active(&state, &claims, now).await? {
            return Ok(json!({ "active": false }));
        }
        let bound = claims.get("cnf").is_some();
        let mut out = claims;
        out["active"] = json!(true);
        out["token_type"] = json!(if bound { "DPoP" } else { "Bearer" });
        Ok::<Value, OAuthError>(out)
    };
    match answer.await {
        Ok(v) => no_store(Json(v).into_response()),
        Err(e) => e.into_response(),
    }
}

/// The introspection form (RFC 7662 section 2.1), as [`TokenForm`] is.
#[derive(Deserialize, utoipa::ToSchema)]
#[expect(dead_code, reason = "documents the form; Form reads the body")]
pub struct IntrospectForm {
    /// The access token.
    token: String,
    /// Optional, and ignored: `access_token`.
    token_type_hint: Option<String>,
}
