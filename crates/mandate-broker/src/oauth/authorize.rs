//! The authorization code flow (RFC 6749 section 4.1, PKCE as RFC 7636's
//! S256 only, RFC 9207's `iss`), whose consent screen is the desktop app
//! (docs/oauth.md, "The code flow"):
//!
//! 1. The client sends the user's browser to [`AUTHORIZE_PATH`]. The broker
//!    identifies the client ([`super::client`]), matches the redirect URI
//!    exactly, checks the PKCE challenge, the resource and the scopes, and
//!    sends the browser to the organization's OIDC provider to sign in,
//!    with a cookie that ties the flow to this browser.
//! 2. The provider sends the browser back to [`CALLBACK_PATH`]. The broker
//!    redeems the provider's code itself, verifies the ID token (issuer,
//!    audience, nonce), and files a Mandate request in that user's inbox:
//!    signed with the key the broker holds for this client, and naming the
//!    client as the broker identified it (`oauth_client`).
//! 3. The browser waits on [`WAIT_PATH`], a page that shows the request's
//!    binding code and reloads itself. Once the user approves in the app
//!    (the grant is signed by the user's key, as for any agent), the page
//!    sends the browser to the redirect URI with a code, `state` and `iss`;
//!    once the user denies, or the request lapses, with `access_denied`.
//!
//! Flows and codes live in this process's memory: a flow lasts 15 minutes
//! and a code 60 seconds, so a restart costs at most a sign-in. Several
//! broker instances on one database need the browser sent back to the
//! same one.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard, PoisonError};

use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use mandate_core::scope::AuthorizationDetail;
use mandate_core::token::{
    AgentInfo, BindingCode, Claims as _, ClientVerification, Jti, OAuthClient, RequestClaims,
};
use mandate_core::{TokenId, UnixTime, base64url};
use mandate_store::RequestStatus;
use rand_core::{OsRng, RngCore as _};
use serde::Deserialize;
use sha2::{Digest as _, Sha256};

use super::client::{self, Client};
use super::{Form, OAuthCode, Resource};
use crate::AppState;
use crate::oidc::{OidcVerifier, TrustedIssuer};

/// Where clients send the browser.
pub const AUTHORIZE_PATH: &str = "/oauth/authorize";
/// Where the OIDC provider sends it back.
pub const CALLBACK_PATH: &str = "/oauth/callback";
/// Where it waits for the user's decision: `/oauth/wait/{flow}`.
pub const WAIT_PATH: &str = "/oauth/wait";
/// How long a flow lasts, sign-in and decision together, in seconds.
const FLOW_SECS: i64 = 900;
/// How long the user has to decide, in seconds.
const REQUEST_SECS: i64 = 600;
/// How long a code lives, in seconds.
const CODE_SECS: i64 = 60;
/// The most flows (and, apart, the most codes) held at once.
const MAX_FLOWS: usize = 10_000;
/// How often the waiting page reloads, in seconds.
const RELOAD_SECS: u32 = 2;

/// How the broker runs the code flow: the OIDC provider its users sign in
/// at, as which client, and which clients it takes.
#[derive(Debug, Clone)]
pub struct CodeFlowConfig {
    /// The issuer users sign in at: one of the broker's issuers.
    pub issuer: String,
    /// The broker's own client id there, a public client whose redirect
    /// URI is the broker's [`CALLBACK_PATH`].
    pub client_id: String,
    /// Whether a `client_id` may be an `http://` URL on this machine (for
    /// tests); otherwise metadata documents are `https://` only.
    pub loopback_clients: bool,
    /// The lifetime a client's request asks for, in seconds; the user may
    /// shorten it in the app.
    pub grant_lifetime: u32,
}

impl CodeFlowConfig {
    /// `ISSUER=CLIENT_ID`, with the default grant lifetime (a day).
    pub fn parse(spec: &str) -> Result<CodeFlowConfig, String> {
        let (issuer, client_id) = spec
            .split_once('=')
            .filter(|(i, c)| !i.is_empty() && !c.is_empty() && !c.contains(','))
            .ok_or_else(|| format!("{spec:?} is not ISSUER=CLIENT_ID"))?;
        Ok(CodeFlowConfig {
            issuer: issuer.to_owned(),
            client_id: client_id.to_owned(),
            loopback_clients: false,
            grant_lifetime: 86_400,
        })
    }
}

/// The provider's endpoints, from its discovery document.
#[derive(Debug, Clone, Deserialize)]
struct Endpoints {
    issuer: String,
    authorization_endpoint: String,
    token_endpoint: String,
}

/// One authorization under way.
#[derive(Debug, Clone)]
struct Flow {
    /// The value of the cookie that ties it to the browser.
    secret: String,
    client: Client,
    redirect_uri: String,
    /// Whether the client named the redirect URI (then the token request
    /// must name it too).
    redirect_given: bool,
    state: Option<String>,
    challenge: String,
    dpop_jkt: Option<String>,
    resource: String,
    details: Vec<AuthorizationDetail>,
    /// The provider sign-in's nonce and PKCE verifier.
    nonce: String,
    verifier: String,
    deadline: UnixTime,
    /// The request filed, once the user signed in.
    request: Option<(TokenId, BindingCode)>,
}

/// A code issued and not yet redeemed.
#[derive(Debug, Clone)]
pub struct IssuedCode {
    /// The client it was issued to.
    pub client_id: String,
    /// The redirect URI it went to.
    pub redirect_uri: String,
    /// Whether the authorization request named it.
    pub redirect_given: bool,
    /// The PKCE challenge (S256).
    pub challenge: String,
    /// The DPoP key the client bound the code to, if any (RFC 9449
    /// section 10).
    pub dpop_jkt: Option<String>,
    /// The resource.
    pub resource: String,
    /// The request whose grant stands behind it.
    pub request: TokenId,
    /// When it lapses.
    pub expires_at: UnixTime,
}

/// The broker's code flow: its configuration, its HTTP client, and the
/// flows and codes under way.
pub struct CodeFlow {
    /// How it runs.
    pub config: CodeFlowConfig,
    /// Fetches client metadata documents and talks to the provider: no
    /// redirects, a short timeout.
    pub http: reqwest::Client,
    signin: OidcVerifier,
    endpoints: tokio::sync::OnceCell<Endpoints>,
    flows: Mutex<HashMap<String, Flow>>,
    codes: Mutex<HashMap<String, IssuedCode>>,
}

fn locked<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Nothing panics while holding these; a poisoned map is still whole.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl CodeFlow {
    /// The code flow for `config`.
    pub fn new(config: CodeFlowConfig) -> Result<CodeFlow, reqwest::Error> {
        let signin = OidcVerifier::new(vec![TrustedIssuer {
            issuer: config.issuer.clone(),
            audiences: vec![config.client_id.clone()],
        }])?;
        let http = reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(5))
            .redirect(reqwest::redirect::Policy::none())
            .build()?;
        Ok(CodeFlow {
            config,
            http,
            signin,
            endpoints: tokio::sync::OnceCell::new(),
            flows: Mutex::new(HashMap::new()),
            codes: Mutex::new(HashMap::new()),
        })
    }

    /// The provider's endpoints, discovered once (a failed discovery is
    /// tried again on the next sign-in).
    async fn endpoints(&self) -> Result<&Endpoints, String> {
        self.endpoints
            .get_or_try_init(|| async {
                let url = format!(
                    "{}/.well-known/openid-configuration",
                    self.config.issuer.trim_end_matches('/')
                );
                let found: Endpoints = self
                    .http
                    .get(url)
                    .send()
                    .await
                    .and_then(reqwest::Response::error_for_status)
                    .map_err(|_| "the sign-in provider cannot be reached".to_owned())?
                    .json()
                    .await
                    .map_err(|_| "the sign-in provider's discovery document is unreadable")?;
                if found.issuer != self.config.issuer {
                    return Err("the sign-in provider names another issuer".to_owned());
                }
                Ok(found)
            })
            .await
    }

    /// Redeems `code` once: it is gone after, whatever the outcome.
    pub fn take_code(&self, code: &str, now: UnixTime) -> Option<IssuedCode> {
        locked(&self.codes)
            .remove(code)
            .filter(|c| c.expires_at > now)
    }

    fn issue_code(&self, code: IssuedCode, now: UnixTime) -> Option<String> {
        let mut codes = locked(&self.codes);
        codes.retain(|_, c| c.expires_at > now);
        if codes.len() >= MAX_FLOWS {
            return None;
        }
        let text = random_text();
        codes.insert(text.clone(), code);
        Some(text)
    }

    fn start(&self, flow: Flow, now: UnixTime) -> Option<String> {
        let mut flows = locked(&self.flows);
        if !make_room(&mut flows, MAX_FLOWS, now) {
            return None;
        }
        let id = random_text();
        flows.insert(id.clone(), flow);
        Some(id)
    }

    /// The flow `id`, if this browser's cookie is its own.
    fn flow(&self, id: &str, headers: &HeaderMap, now: UnixTime) -> Option<Flow> {
        let flows = locked(&self.flows);
        let flow = flows.get(id).filter(|f| f.deadline > now)?;
        let cookie = cookie(headers, &cookie_name(id))?;
        let same = Sha256::digest(cookie.as_bytes()) == Sha256::digest(flow.secret.as_bytes());
        same.then(|| flow.clone())
    }

    fn update(&self, id: &str, f: impl FnOnce(&mut Flow)) {
        if let Some(flow) = locked(&self.flows).get_mut(id) {
            f(flow);
        }
    }

    fn end(&self, id: &str) {
        locked(&self.flows).remove(id);
    }
}

/// Makes room for one more flow in `flows`, which holds at most `max`:
/// drops those past their deadline, and if it is still full, the oldest
/// flow whose user has not signed in yet. Anyone can start a flow, so a
/// flood of authorization requests pushes out only other flows still at
/// the sign-in, never one whose user has signed in (those are bounded by
/// each user's prompt rate). False if every flow is a signed-in one.
fn make_room(flows: &mut HashMap<String, Flow>, max: usize, now: UnixTime) -> bool {
    flows.retain(|_, f| f.deadline > now);
    if flows.len() < max {
        return true;
    }
    let oldest = flows
        .iter()
        .filter(|(_, f)| f.request.is_none())
        .min_by_key(|(_, f)| f.deadline)
        .map(|(id, _)| id.clone());
    match oldest {
        Some(id) => {
            flows.remove(&id);
            true
        }
        None => false,
    }
}

/// 32 random bytes as base64url: flow ids, cookies, codes, nonces.
pub(crate) fn random_text() -> String {
    let mut b = [0u8; 32];
    OsRng.fill_bytes(&mut b);
    base64url::encode(b)
}

/// RFC 7636's S256: base64url of the SHA-256 of the verifier.
pub(crate) fn s256(verifier: &str) -> String {
    base64url::encode(Sha256::digest(verifier.as_bytes()))
}

fn cookie_name(flow: &str) -> String {
    format!("mandate_flow_{flow}")
}

/// The value of cookie `name`, if the browser sent exactly one.
fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    let mut found = headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .filter(|(n, _)| *n == name)
        .map(|(_, v)| v.to_owned());
    match (found.next(), found.next()) {
        (Some(v), None) => Some(v),
        _ => None,
    }
}

/// Escapes text for HTML.
fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A page for the person in the browser: `body` is HTML, already escaped.
fn page(status: StatusCode, title: &str, body: &str, reload: bool) -> Response {
    let refresh = if reload {
        format!(r#"<meta http-equiv="refresh" content="{RELOAD_SECS}">"#)
    } else {
        String::new()
    };
    let html = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width\">{refresh}\
         <title>{title} · Mandate</title><style>body{{font:16px/1.5 system-ui,sans-serif;\
         max-width:34em;margin:3em auto;padding:0 1em}}.code{{font:700 2em ui-monospace,\
         monospace;letter-spacing:.1em}}</style></head><body><h1>{title}</h1>{body}</body></html>",
        title = esc(title)
    );
    let mut response = (status, html).into_response();
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'; \
             form-action 'none'; base-uri 'none'",
        ),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// The page for an authorization that cannot go on and cannot be sent
/// back to the client: its redirect URI is not trusted (yet).
fn stop(why: &str) -> Response {
    page(
        StatusCode::BAD_REQUEST,
        "This sign-in cannot go on",
        &format!(
            "<p>{}</p><p>Nothing was shared. Go back to the application that sent you here.</p>",
            esc(why)
        ),
        false,
    )
}

/// A `303 See Other` to `location`, with more headers.
fn see_other(location: &str, cookie: Option<String>) -> Response {
    let Ok(value) = HeaderValue::from_str(location) else {
        return stop("the address to go on to is not valid");
    };
    let mut response = StatusCode::SEE_OTHER.into_response();
    let h = response.headers_mut();
    h.insert(header::LOCATION, value);
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    if let Some(c) = cookie.and_then(|c| HeaderValue::from_str(&c).ok()) {
        h.insert(header::SET_COOKIE, c);
    }
    response
}

/// The client's `redirect_uri` with `params`, `state` and `iss`.
fn back_url(
    state: &AppState,
    redirect_uri: &str,
    client_state: Option<&str>,
    params: &[(&str, &str)],
) -> Option<reqwest::Url> {
    let mut url = reqwest::Url::parse(redirect_uri).ok()?;
    {
        let mut q = url.query_pairs_mut();
        for (k, v) in params {
            q.append_pair(k, v);
        }
        if let Some(s) = client_state {
            q.append_pair("state", s);
        }
        q.append_pair("iss", &state.inner.public_url);
    }
    Some(url)
}

/// Back to the client's `redirect_uri` with `params`, `state` and `iss`.
fn back(
    state: &AppState,
    redirect_uri: &str,
    client_state: Option<&str>,
    params: &[(&str, &str)],
) -> Response {
    match back_url(state, redirect_uri, client_state, params) {
        Some(url) => see_other(url.as_str(), None),
        None => stop("the redirect URI is not valid"),
    }
}

/// A refusal of an authorization request from a client that checked out,
/// before the user has signed in: a page with the error and a link back
/// to the client carrying it (RFC 6749 section 4.1.2.1), never a
/// redirect. Anyone can register a client, so a redirect here would make
/// the broker an open redirector for any site (RFC 9700 section 4.11.2);
/// the person follows the link or not.
fn refuse_page(
    state: &AppState,
    redirect_uri: &str,
    client_state: Option<&str>,
    code: OAuthCode,
    description: &str,
) -> Response {
    let params = error_params(code, description);
    let Some(url) = back_url(state, redirect_uri, client_state, &params) else {
        return stop("the redirect URI is not valid");
    };
    let to = match url.host_str() {
        Some(host) => host.to_owned(),
        None => url.scheme().to_owned(),
    };
    page(
        StatusCode::BAD_REQUEST,
        "This sign-in cannot go on",
        &format!(
            "<p>The authorization request is refused: {why}.</p>\
             <p>Nothing was shared. <a href=\"{href}\" data-testid=\"back\">Return to {to}</a> \
             to tell the application so.</p>",
            why = esc(description),
            href = esc(url.as_str()),
            to = esc(&to),
        ),
        false,
    )
}

/// An error's parameters on the way back to the client (RFC 6749
/// section 4.1.2.1).
fn error_params(code: OAuthCode, description: &str) -> [(&'static str, &str); 2] {
    [("error", code.as_str()), ("error_description", description)]
}

/// An error sent back to the client.
fn back_error(
    state: &AppState,
    redirect_uri: &str,
    client_state: Option<&str>,
    code: OAuthCode,
    description: &str,
) -> Response {
    back(
        state,
        redirect_uri,
        client_state,
        &error_params(code, description),
    )
}

/// Starts an authorization (RFC 6749 section 4.1.1, RFC 7636, RFC 8707,
/// RFC 9396, RFC 9449 section 10).
///
/// The query names `client_id` (a metadata document's URL or a registered
/// id), `redirect_uri` (exactly one of the client's; it may be left out
/// when the client has only one), `response_type=code`, `code_challenge`
/// with `code_challenge_method=S256`, the `resource` (it may be left out
/// when the broker serves only one), what the client needs as `scope`
/// (`TYPE:ACTION` words at the resource; `offline_access` is taken and
/// ignored) or `authorization_details`, and optionally `state` and
/// `dpop_jkt`. Until the client and its redirect URI check out, problems
/// are shown to the person on a page; after, the page holds a link back
/// to the client with `error` parameters, never a redirect (anyone can
/// register a client). Otherwise the browser goes on to sign in.
#[utoipa::path(
    get, path = "/oauth/authorize", tag = "oauth",
    params(
        ("client_id" = String, Query, description = "The client: its metadata document's https URL, or its registered id"),
        ("redirect_uri" = Option<String>, Query, description = "One of the client's redirect URIs, exactly"),
        ("response_type" = String, Query, description = "`code`"),
        ("code_challenge" = String, Query, description = "The PKCE challenge: base64url of SHA-256 of the verifier (43 characters)"),
        ("code_challenge_method" = String, Query, description = "`S256`"),
        ("resource" = Option<String>, Query, description = "The resource (RFC 8707), one the metadata lists"),
        ("scope" = Option<String>, Query, description = "`TYPE:ACTION` words, space-separated"),
        ("authorization_details" = Option<String>, Query, description = "A JSON list of Mandate scopes at the resource (RFC 9396)"),
        ("state" = Option<String>, Query, description = "Returned to the client as is"),
        ("dpop_jkt" = Option<String>, Query, description = "The thumbprint of the DPoP key the code is bound to"),
    ),
    responses(
        (status = 303, description = "To the sign-in"),
        (status = 400, description = "A page: the client or its redirect URI is unknown, or the query is malformed; or, once they check out, a refusal with a link back to the client carrying `error`, `state` and `iss`"),
    )
)]
pub async fn authorize(State(state): State<AppState>, RawQuery(query): RawQuery) -> Response {
    let Some(flow) = &state.oauth().code_flow else {
        return stop("This broker does not serve the authorization code flow.");
    };
    let Ok(q) = Form::from_bytes(query.unwrap_or_default().as_bytes()) else {
        return stop(
            "The authorization request is malformed: a parameter is repeated or not URL-encoded.",
        );
    };
    let Ok(Some(client_id)) = q.optional("client_id") else {
        return stop("The authorization request names no client_id.");
    };
    let client = match client::identify(&state, client_id).await {
        Ok(c) => c,
        Err(why) => return stop(&why),
    };
    let redirect_given = q.optional("redirect_uri").ok().flatten();
    let redirect_uri = match redirect_given {
        Some(uri) if client.redirect_uris.iter().any(|r| r == uri) => uri.to_owned(),
        None if client.redirect_uris.len() == 1 => client.redirect_uris[0].clone(),
        _ => return stop("The redirect_uri is not one the client registered, exactly."),
    };
    // From here on, errors are for the client, on a page with a link
    // back to it.
    let client_state = q.optional("state").ok().flatten().map(str::to_owned);
    let refuse = |code: OAuthCode, why: &str| {
        refuse_page(&state, &redirect_uri, client_state.as_deref(), code, why)
    };
    if q.optional("response_type").ok().flatten() != Some("code") {
        return refuse(
            OAuthCode::UnsupportedResponseType,
            "response_type must be code",
        );
    }
    if q.optional("code_challenge_method").ok().flatten() != Some("S256") {
        return refuse(
            OAuthCode::InvalidRequest,
            "PKCE is required, with code_challenge_method S256",
        );
    }
    let challenge = match q.optional("code_challenge").ok().flatten() {
        Some(c) if is_digest_text(c) => c.to_owned(),
        _ => {
            return refuse(
                OAuthCode::InvalidRequest,
                "code_challenge must be 43 characters of base64url",
            );
        }
    };
    let dpop_jkt = match q.optional("dpop_jkt").ok().flatten() {
        None => None,
        Some(j) if is_digest_text(j) => Some(j.to_owned()),
        Some(_) => {
            return refuse(
                OAuthCode::InvalidRequest,
                "dpop_jkt must be a key thumbprint, 43 characters of base64url",
            );
        }
    };
    let resources = &state.oauth().resources;
    let target = match q.optional("resource").ok().flatten() {
        Some(uri) => state.oauth().resource(uri),
        None if resources.len() == 1 => resources.first(),
        None => None,
    };
    let Some(target) = target else {
        return refuse(
            OAuthCode::InvalidTarget,
            "name a resource this broker issues tokens for",
        );
    };
    let details = match asked_details(&q, target) {
        Ok(d) => d,
        Err((code, why)) => return refuse(code, why),
    };
    let now = state.now();
    let endpoints = match flow.endpoints().await {
        Ok(e) => e,
        Err(why) => return refuse(OAuthCode::TemporarilyUnavailable, &why),
    };
    let (secret, nonce, verifier) = (random_text(), random_text(), random_text());
    let started = flow.start(
        Flow {
            secret: secret.clone(),
            client,
            redirect_uri: redirect_uri.clone(),
            redirect_given: redirect_given.is_some(),
            state: client_state.clone(),
            challenge,
            dpop_jkt,
            resource: target.uri.clone(),
            details,
            nonce: nonce.clone(),
            verifier: verifier.clone(),
            deadline: now + FLOW_SECS,
            request: None,
        },
        now,
    );
    let Some(id) = started else {
        return refuse(
            OAuthCode::TemporarilyUnavailable,
            "too many sign-ins are under way",
        );
    };
    let Ok(mut signin) = reqwest::Url::parse(&endpoints.authorization_endpoint) else {
        return refuse(
            OAuthCode::TemporarilyUnavailable,
            "the sign-in provider's address is not valid",
        );
    };
    signin
        .query_pairs_mut()
        .append_pair("response_type", "code")
        .append_pair("client_id", &flow.config.client_id)
        .append_pair("redirect_uri", &callback_url(&state))
        .append_pair("scope", "openid")
        .append_pair("state", &id)
        .append_pair("nonce", &nonce)
        .append_pair("code_challenge", &s256(&verifier))
        .append_pair("code_challenge_method", "S256");
    let secure = if state.inner.public_url.starts_with("https://") {
        "; Secure"
    } else {
        ""
    };
    let cookie = format!(
        "{}={secret}; Path=/oauth; HttpOnly; SameSite=Lax; Max-Age={FLOW_SECS}{secure}",
        cookie_name(&id)
    );
    see_other(signin.as_str(), Some(cookie))
}

fn callback_url(state: &AppState) -> String {
    format!("{}{CALLBACK_PATH}", state.inner.public_url)
}

/// Whether `text` is 43 characters of base64url: a SHA-256 digest.
fn is_digest_text(text: &str) -> bool {
    text.len() == 43
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// What the client asks for at `target`: `authorization_details` (every
/// location within the resource), or `scope` words `TYPE:ACTION`, each
/// type's actions at the resource itself.
fn asked_details(
    q: &Form,
    target: &Resource,
) -> Result<Vec<AuthorizationDetail>, (OAuthCode, &'static str)> {
    let mut details: Vec<AuthorizationDetail> = Vec::new();
    if let Ok(Some(json)) = q.optional("authorization_details") {
        let bad = (
            OAuthCode::InvalidAuthorizationDetails,
            "authorization_details must be a JSON list of Mandate scopes at the resource",
        );
        details = serde_json::from_str(json).map_err(|_| bad)?;
        if details.iter().any(|d| {
            d.locations
                .iter()
                .any(|l| !target.location.covers(l.as_str()))
        }) {
            return Err(bad);
        }
    }
    if let Ok(Some(scope)) = q.optional("scope") {
        let bad = (
            OAuthCode::InvalidScope,
            "scope must be TYPE:ACTION words (and offline_access), space-separated",
        );
        let mut actions: Vec<(&str, Vec<&str>)> = Vec::new();
        for word in scope.split(' ').filter(|w| !w.is_empty()) {
            if word == "offline_access" {
                continue;
            }
            let (kind, action) = word.split_once(':').ok_or(bad)?;
            match actions.iter_mut().find(|(k, _)| *k == kind) {
                Some((_, list)) => list.push(action),
                None => actions.push((kind, vec![action])),
            }
        }
        for (kind, list) in actions {
            details.push(
                AuthorizationDetail::new(kind, list, [target.location.as_str()])
                    .map_err(|_| bad)?,
            );
        }
    }
    if details.is_empty() {
        return Err((
            OAuthCode::InvalidScope,
            "name what the client needs, in scope or authorization_details",
        ));
    }
    Ok(details)
}

/// Query of the provider's redirect back.
#[derive(Deserialize)]
struct Back {
    state: Option<String>,
    code: Option<String>,
    error: Option<String>,
}

/// The provider's ID token answer.
#[derive(Deserialize)]
struct Tokens {
    id_token: String,
}

/// Where the OIDC provider sends the browser back after sign-in.
///
/// The broker redeems the provider's code (with its PKCE verifier),
/// verifies the ID token and its nonce, and files the client's request in
/// the signed-in user's inbox; then it sends the browser to the waiting
/// page.
#[utoipa::path(
    get, path = "/oauth/callback", tag = "oauth",
    params(
        ("state" = String, Query, description = "The flow"),
        ("code" = Option<String>, Query, description = "The provider's code"),
        ("error" = Option<String>, Query, description = "The provider's error"),
    ),
    responses(
        (status = 303, description = "To the waiting page, or back to the client with an `error`"),
        (status = 400, description = "A page: the flow is unknown, over, or another browser's"),
    )
)]
pub async fn callback(
    State(state): State<AppState>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    let Some(flows) = &state.oauth().code_flow else {
        return stop("This broker does not serve the authorization code flow.");
    };
    let Ok(back_query) = serde_urlencoded::from_str::<Back>(query.as_deref().unwrap_or_default())
    else {
        return stop("The sign-in's answer is malformed.");
    };
    let now = state.now();
    let Some(id) = back_query.state else {
        return stop("The sign-in's answer names no flow.");
    };
    let Some(flow) = flows.flow(&id, &headers, now) else {
        return stop(
            "This sign-in is over, or was started in another browser. Start again from the application.",
        );
    };
    if flow.request.is_some() {
        return see_other(&format!("{}{WAIT_PATH}/{id}", state.inner.public_url), None);
    }
    let refuse = |code: OAuthCode, why: &str| {
        flows.end(&id);
        back_error(&state, &flow.redirect_uri, flow.state.as_deref(), code, why)
    };
    let (None, Some(code)) = (back_query.error, back_query.code) else {
        return refuse(OAuthCode::AccessDenied, "the user did not sign in");
    };
    let principal = match sign_in(&state, flows, &flow, &code, now).await {
        Ok(p) => p,
        Err(why) => return refuse(OAuthCode::AccessDenied, why),
    };
    let request = request_for(&state, &flow, principal, now);
    match crate::service::file_for_oauth_client(&state, &request.0).await {
        Ok(_) => {
            flows.update(&id, |f| f.request = Some((request.1, request.2)));
            see_other(&format!("{}{WAIT_PATH}/{id}", state.inner.public_url), None)
        }
        Err(e) => {
            tracing::warn!(code = e.code, "an OAuth client's request was not filed");
            refuse(
                OAuthCode::TemporarilyUnavailable,
                "the request could not be filed now",
            )
        }
    }
}

/// Redeems the provider's `code` and verifies the ID token: the user.
async fn sign_in(
    state: &AppState,
    flows: &CodeFlow,
    flow: &Flow,
    code: &str,
    now: UnixTime,
) -> Result<String, &'static str> {
    let endpoints = flows
        .endpoints()
        .await
        .map_err(|_| "the sign-in provider cannot be reached")?;
    let form = serde_urlencoded::to_string([
        ("grant_type", "authorization_code"),
        ("code", code),
        ("redirect_uri", &callback_url(state)),
        ("client_id", &flows.config.client_id),
        ("code_verifier", &flow.verifier),
    ])
    .map_err(|_| "the sign-in could not be completed")?;
    let tokens: Tokens = flows
        .http
        .post(&endpoints.token_endpoint)
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .header(header::ACCEPT, "application/json")
        .body(form)
        .send()
        .await
        .and_then(reqwest::Response::error_for_status)
        .map_err(|_| "the sign-in provider refused the sign-in")?
        .json()
        .await
        .map_err(|_| "the sign-in provider's answer is unreadable")?;
    let signed_in = flows
        .signin
        .verify(&tokens.id_token, now)
        .await
        .map_err(|_| "the sign-in provider's ID token does not verify")?;
    if signed_in.nonce.as_deref() != Some(flow.nonce.as_str()) {
        return Err("the ID token is not for this sign-in");
    }
    Ok(signed_in.principal.as_str().to_owned())
}

/// The request the broker files for the client: signed with the key it
/// holds for the client; its id and binding code.
fn request_for(
    state: &AppState,
    flow: &Flow,
    principal: String,
    now: UnixTime,
) -> (String, TokenId, BindingCode) {
    let name = flow.client.display_name();
    let binding_code = BindingCode::random(&mut OsRng);
    let claims = RequestClaims {
        principal_hint: Some(principal),
        agent: AgentInfo {
            name: name.clone(),
            publisher: None,
            version: None,
        },
        authorization_details: flow.details.clone(),
        purpose: format!(
            "{name} asks to use {} for you, through OAuth",
            flow.resource
        ),
        intent: None,
        lifetime: state
            .oauth()
            .code_flow
            .as_ref()
            .map_or(3600, |f| f.config.grant_lifetime),
        max_depth: 0,
        parent_chain: Vec::new(),
        binding_code: binding_code.clone(),
        jti: Jti::random(&mut OsRng),
        iat: now,
        exp: (now + REQUEST_SECS).min(flow.deadline),
        oauth_client: Some(OAuthClient {
            client_id: flow.client.id.clone(),
            verified_by: flow.client.verified_by,
            redirect_uri: flow.redirect_uri.clone(),
            resource: flow.resource.clone(),
        }),
    };
    let key = client_agent(state, &flow.client.id);
    let compact = claims.sign(&key);
    let id = TokenId::of(&compact);
    (compact, id, binding_code)
}

/// The key the broker holds for the OAuth client `client_id`: the agent
/// its grants are to.
pub(crate) fn client_agent(state: &AppState, client_id: &str) -> mandate_core::SigningKey {
    state
        .oauth()
        .keys
        .derived("client-agent", client_id.as_bytes())
}

/// The waiting page: the binding code until the user decides, then back
/// to the client with a code, or with `access_denied`.
#[utoipa::path(
    get, path = "/oauth/wait/{flow}", tag = "oauth",
    params(("flow" = String, Path, description = "The flow")),
    responses(
        (status = 200, description = "A page with the binding code, which reloads itself"),
        (status = 303, description = "Back to the client: with a code and `iss`, or with `access_denied`"),
        (status = 400, description = "A page: the flow is unknown, over, or another browser's"),
    )
)]
pub async fn wait(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let Some(flows) = &state.oauth().code_flow else {
        return stop("This broker does not serve the authorization code flow.");
    };
    let now = state.now();
    let Some(flow) = flows.flow(&id, &headers, now) else {
        return stop(
            "This sign-in is over, or was started in another browser. Start again from the application.",
        );
    };
    let Some((request, binding_code)) = &flow.request else {
        return stop("Sign in first: start again from the application.");
    };
    let record = match state.store().request(request).await {
        Ok(Some(r)) => r,
        Ok(None) | Err(_) => {
            return page(
                StatusCode::SERVICE_UNAVAILABLE,
                "Waiting for Mandate",
                "<p>The broker cannot read the request just now. This page tries again by itself.</p>",
                true,
            );
        }
    };
    match record.status {
        RequestStatus::Pending if record.expires_at > now => {
            let verified = match flow.client.verified_by {
                ClientVerification::MetadataDocument => "its address, checked by the broker",
                ClientVerification::Registration => {
                    "registered with the broker; its name is its own claim"
                }
            };
            page(
                StatusCode::OK,
                "Approve this in Mandate",
                &format!(
                    "<p><strong>{name}</strong> asks to use <strong>{resource}</strong> for you.</p>\
                     <p>Open the Mandate app. The request there shows this code:</p>\
                     <p class=\"code\" data-testid=\"binding-code\">{code}</p>\
                     <p>Approve it there if the codes match. This page moves on by itself.</p>\
                     <p><small>Client: {client_id} ({verified})</small></p>",
                    name = esc(&flow.client.display_name()),
                    resource = esc(&flow.resource),
                    code = esc(binding_code.as_str()),
                    client_id = esc(&flow.client.id),
                ),
                true,
            )
        }
        RequestStatus::Approved => {
            let issued = flows.issue_code(
                IssuedCode {
                    client_id: flow.client.id.clone(),
                    redirect_uri: flow.redirect_uri.clone(),
                    redirect_given: flow.redirect_given,
                    challenge: flow.challenge.clone(),
                    dpop_jkt: flow.dpop_jkt.clone(),
                    resource: flow.resource.clone(),
                    request: *request,
                    expires_at: now + CODE_SECS,
                },
                now,
            );
            flows.end(&id);
            match issued {
                Some(code) => back(
                    &state,
                    &flow.redirect_uri,
                    flow.state.as_deref(),
                    &[("code", &code)],
                ),
                None => back_error(
                    &state,
                    &flow.redirect_uri,
                    flow.state.as_deref(),
                    OAuthCode::TemporarilyUnavailable,
                    "too many codes are outstanding",
                ),
            }
        }
        _ => {
            flows.end(&id);
            back_error(
                &state,
                &flow.redirect_uri,
                flow.state.as_deref(),
                OAuthCode::AccessDenied,
                "the user did not approve the request",
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flow(deadline: UnixTime, signed_in: bool) -> Flow {
        Flow {
            secret: random_text(),
            client: Client {
                id: "https://client.example/c.json".into(),
                name: None,
                redirect_uris: vec!["https://client.example/cb".into()],
                verified_by: ClientVerification::MetadataDocument,
            },
            redirect_uri: "https://client.example/cb".into(),
            redirect_given: true,
            state: None,
            challenge: "c".repeat(43),
            dpop_jkt: None,
            resource: "https://f/".into(),
            details: Vec::new(),
            nonce: random_text(),
            verifier: random_text(),
            deadline,
            request: signed_in.then(|| (TokenId::of("a.b.c"), BindingCode::random(&mut OsRng))),
        }
    }

    #[test]
    fn a_full_table_drops_the_oldest_flow_still_at_the_sign_in_never_a_signed_in_one() {
        let now = 1_000;
        let mut flows: HashMap<String, Flow> = HashMap::new();
        flows.insert("lapsed".into(), flow(now, false));
        flows.insert("signed-in-oldest".into(), flow(now + 10, true));
        flows.insert("at-sign-in-old".into(), flow(now + 20, false));
        flows.insert("at-sign-in-new".into(), flow(now + 30, false));
        // Room without dropping anything live: only the lapsed one goes.
        assert!(make_room(&mut flows, 4, now));
        assert_eq!(flows.len(), 3);
        assert!(!flows.contains_key("lapsed"));
        // Full: the oldest at the sign-in goes, not the older signed-in one.
        assert!(make_room(&mut flows, 3, now));
        assert!(!flows.contains_key("at-sign-in-old"));
        assert!(flows.contains_key("signed-in-oldest") && flows.contains_key("at-sign-in-new"));
        assert!(make_room(&mut flows, 2, now));
        assert_eq!(flows.keys().collect::<Vec<_>>(), vec!["signed-in-oldest"]);
        // Only signed-in flows: no room.
        assert!(!make_room(&mut flows, 1, now));
        assert_eq!(flows.len(), 1);
    }
}
