//! Who an OAuth client is (docs/oauth.md, "Clients"), one of two ways:
//!
//! - a **Client ID Metadata Document**: the `client_id` is an `https://`
//!   URL (with `--oauth-loopback-clients`, also `http://` to this
//!   machine, for tests), and the JSON document served there names the
//!   client and its redirect URIs, with `client_id` equal to that URL. The
//!   broker fetches it at each authorization: whoever controls the URL
//!   controls the client, so the app can show the URL as verified;
//! - a **registration** (RFC 7591) at [`REGISTER_PATH`]: anyone may
//!   register any name, so the app says so. The broker seals the
//!   metadata into the `client_id` it answers (signed with a key derived
//!   from its own), and keeps no table of clients.
//!
//! Either way the client is public (`token_endpoint_auth_method` `none`):
//! PKCE and, when it sends one, its DPoP key stand in for a secret.

use std::net::{IpAddr, SocketAddr};

use axum::Json;
use axum::extract::State;
use axum::extract::rejection::JsonRejection;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use mandate_core::base64url;
use mandate_core::token::ClientVerification;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::{OAuthCode, OAuthError};
use crate::AppState;

/// Where clients register (RFC 7591).
pub const REGISTER_PATH: &str = "/oauth/register";
/// The largest metadata document fetched, in bytes.
pub const MAX_DOCUMENT_BYTES: usize = 5 * 1024;
/// How long looking up and fetching a metadata document may take.
const FETCH_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);
/// The most redirect URIs a client may name.
const MAX_REDIRECT_URIS: usize = 5;
/// The longest redirect URI, in bytes.
const MAX_URI_BYTES: usize = 512;
/// The longest client name, in characters.
const MAX_NAME_CHARS: usize = 64;
/// How a registered `client_id` begins.
const REGISTERED: &str = "mandate-client.";
/// The context of a registration's seal.
const SEAL_CONTEXT: &str = "mandate-oauth-registration/v1";

/// A client, identified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Client {
    /// Its `client_id`.
    pub id: String,
    /// The name it gives itself, if any.
    pub name: Option<String>,
    /// Its redirect URIs, matched exactly.
    pub redirect_uris: Vec<String>,
    /// How the broker knows it.
    pub verified_by: ClientVerification,
}

impl Client {
    /// The name to show: its own, or else its `client_id`'s host.
    pub fn display_name(&self) -> String {
        if let Some(name) = &self.name {
            return name.clone();
        }
        match reqwest::Url::parse(&self.id) {
            Ok(url) if self.verified_by == ClientVerification::MetadataDocument => {
                url.host_str().unwrap_or("an OAuth client").to_owned()
            }
            _ => "an OAuth client".to_owned(),
        }
    }
}

/// The metadata a client gives (RFC 7591 section 2), in a document or a
/// registration. Members not named here are ignored, as RFC 7591 allows.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct ClientMetadata {
    /// In a metadata document, its own URL; absent in a registration.
    #[serde(default)]
    client_id: Option<String>,
    /// A name for people, at most 64 characters.
    #[serde(default)]
    client_name: Option<String>,
    /// Where the browser may return: 1 to 5 URIs, each `https://`,
    /// `http://` to a loopback address, or a private-use scheme with a
    /// dot (RFC 8252 section 7.1), without a fragment.
    redirect_uris: Vec<String>,
    /// `none`, if given: every client is public.
    #[serde(default)]
    token_endpoint_auth_method: Option<String>,
    /// A subset of `authorization_code` and `refresh_token`, if given.
    #[serde(default)]
    grant_types: Option<Vec<String>>,
    /// `["code"]`, if given.
    #[serde(default)]
    response_types: Option<Vec<String>>,
    /// Refused: a public client has no secret.
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    client_secret: Option<Value>,
}

/// Why metadata is refused: RFC 7591's code and a description.
type Refusal = (OAuthCode, String);

impl ClientMetadata {
    /// The name and redirect URIs, if the metadata is acceptable.
    fn check(self) -> Result<(Option<String>, Vec<String>), Refusal> {
        let bad = |why: &str| (OAuthCode::InvalidClientMetadata, why.to_owned());
        if self.client_secret.is_some() {
            return Err(bad("a client here is public: it has no client_secret"));
        }
        if self
            .token_endpoint_auth_method
            .as_deref()
            .is_some_and(|m| m != "none")
        {
            return Err(bad("token_endpoint_auth_method must be none"));
        }
        if self.grant_types.as_ref().is_some_and(|g| {
            g.iter()
                .any(|t| t != "authorization_code" && t != "refresh_token")
        }) {
            return Err(bad(
                "grant_types may name only authorization_code and refresh_token",
            ));
        }
        if self
            .response_types
            .as_ref()
            .is_some_and(|r| r.iter().any(|t| t != "code"))
        {
            return Err(bad("response_types may name only code"));
        }
        let name = match self.client_name {
            Some(name) => {
                let name = name.trim().to_owned();
                if name.is_empty()
                    || name.chars().count() > MAX_NAME_CHARS
                    || name.chars().any(char::is_control)
                {
                    return Err(bad(
                        "client_name must be 1 to 64 characters, without control characters",
                    ));
                }
                Some(name)
            }
            None => None,
        };
        if self.redirect_uris.is_empty() || self.redirect_uris.len() > MAX_REDIRECT_URIS {
            return Err((
                OAuthCode::InvalidRedirectUri,
                "name 1 to 5 redirect_uris".to_owned(),
            ));
        }
        for uri in &self.redirect_uris {
            if !redirect_uri_allowed(uri) {
                return Err((
                    OAuthCode::InvalidRedirectUri,
                    "each redirect URI must be https://, http:// to a loopback address, or a \
                     private-use scheme with a dot, at most 512 bytes, without a fragment"
                        .to_owned(),
                ));
            }
        }
        Ok((name, self.redirect_uris))
    }
}

/// Whether `uri` may be a redirect URI: absolute, at most 512 bytes, no
/// fragment, no user info; `https`, `http` to a loopback address (RFC
/// 8252 section 7.3), or a private-use scheme with a dot (section 7.1).
pub fn redirect_uri_allowed(uri: &str) -> bool {
    if uri.len() > MAX_URI_BYTES || uri.contains('#') || uri.chars().any(char::is_control) {
        return false;
    }
    let Ok(url) = reqwest::Url::parse(uri) else {
        return false;
    };
    if !url.username().is_empty() || url.password().is_some() {
        return false;
    }
    match url.scheme() {
        "https" => url.host().is_some(),
        "http" => is_loopback(&url),
        "javascript" | "data" | "file" | "blob" | "ftp" | "ws" | "wss" => false,
        scheme => scheme.contains('.'),
    }
}

/// Whether `url`'s host is a loopback address or `localhost`.
fn is_loopback(url: &reqwest::Url) -> bool {
    match url.host_str() {
        Some(name) if name.eq_ignore_ascii_case("localhost") => true,
        Some(host) => host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback()),
        None => false,
    }
}

/// Finds the client `id`: a registration the broker sealed, or a
/// metadata document to fetch. The error is for people, on the
/// authorization page (the client is not trusted with a redirect yet).
pub async fn identify(state: &AppState, id: &str) -> Result<Client, String> {
    if let Some(sealed) = id.strip_prefix(REGISTERED) {
        return open_registration(state, id, sealed)
            .ok_or_else(|| "this client_id is not one this broker registered".to_owned());
    }
    let flow = state
        .oauth()
        .code_flow
        .as_ref()
        .ok_or_else(|| "this broker does not serve the code flow".to_owned())?;
    let url = document_url(id, flow.config.loopback_clients)?;
    let address = document_address(&url, flow.config.loopback_clients).await?;
    let metadata = fetch_document(&url, address).await?;
    if metadata.client_id.as_deref() != Some(id) {
        return Err("the client's metadata document names another client_id".into());
    }
    let (name, redirect_uris) = metadata.check().map_err(|(_, why)| why)?;
    Ok(Client {
        id: id.to_owned(),
        name,
        redirect_uris,
        verified_by: ClientVerification::MetadataDocument,
    })
}

/// `id` as a metadata document's URL: `https` (or `http` to a loopback
/// address when `loopback` allows), with a path, and without a fragment,
/// user info, or `.` and `..` segments.
fn document_url(id: &str, loopback: bool) -> Result<reqwest::Url, String> {
    let refuse = || {
        "client_id must be a registered id or the https:// URL of the client's metadata \
         document (with a path; no fragment, user info or dot segments)"
            .to_owned()
    };
    if id.len() > MAX_URI_BYTES || id.contains('#') {
        return Err(refuse());
    }
    let url = reqwest::Url::parse(id).map_err(|_| refuse())?;
    let secure = match url.scheme() {
        "https" => url.host().is_some(),
        "http" => loopback && is_loopback(&url),
        _ => false,
    };
    // The parser resolves dot segments away, so they are refused in the text.
    let segments_ok = !id.split(['/', '?']).any(|s| s == "." || s == "..");
    if !secure
        || !segments_ok
        || url.path() == "/"
        || !url.username().is_empty()
        || url.password().is_some()
    {
        return Err(refuse());
    }
    Ok(url)
}

/// The address to fetch the metadata document at `url` from. Anyone can
/// name any URL as a `client_id`, so the broker fetches only from public
/// addresses ([`is_public`]): never from a private, loopback, link-local
/// or otherwise reserved one, which would let a stranger's browser make
/// the broker probe the network behind it (SSRF). Every address the name
/// resolves to must be public, and the fetch is pinned to the one checked,
/// so a second lookup cannot answer otherwise. With `loopback` (tests),
/// loopback addresses are taken too.
async fn document_address(url: &reqwest::Url, loopback: bool) -> Result<SocketAddr, String> {
    let refuse = || "the client's metadata document is not on a public address".to_owned();
    let port = url.port_or_known_default().ok_or_else(refuse)?;
    let addresses: Vec<SocketAddr> = match host_of(url) {
        Some(Host::Ip(ip)) => vec![SocketAddr::new(ip, port)],
        Some(Host::Name(name)) => {
            let unresolved = || "the client's metadata document's host did not resolve".to_owned();
            tokio::time::timeout(FETCH_TIMEOUT, tokio::net::lookup_host((name, port)))
                .await
                .map_err(|_| unresolved())?
                .map_err(|_| unresolved())?
                .collect()
        }
        None => return Err(refuse()),
    };
    let allowed = |a: &SocketAddr| is_public(a.ip()) || (loopback && a.ip().is_loopback());
    match addresses.first() {
        Some(first) if addresses.iter().all(allowed) => Ok(*first),
        _ => Err(refuse()),
    }
}

/// A URL's host: an address, or a name to look up.
enum Host<'a> {
    Ip(IpAddr),
    Name(&'a str),
}

fn host_of(url: &reqwest::Url) -> Option<Host<'_>> {
    let host = url.host_str()?;
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    Some(match bare.parse::<IpAddr>() {
        Ok(ip) => Host::Ip(ip),
        Err(_) => Host::Name(host),
    })
}

/// Whether `ip` is a public unicast address: an allow-list, so what is not
/// known to be public (private, shared, loopback, link-local, multicast,
/// documentation, benchmarking, reserved, IPv4-mapped, 6to4, Teredo) is
/// refused.
pub(crate) fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, c, _] = v4.octets();
            !(a == 0
                || a == 10
                || a == 127
                || a >= 224
                || (a == 100 && (64..128).contains(&b))
                || (a == 169 && b == 254)
                || (a == 172 && (16..32).contains(&b))
                || (a == 192 && b == 0 && (c == 0 || c == 2))
                || (a == 192 && b == 88 && c == 99)
                || (a == 192 && b == 168)
                || (a == 198 && (b == 18 || b == 19))
                || (a == 198 && b == 51 && c == 100)
                || (a == 203 && b == 0 && c == 113))
        }
        IpAddr::V6(v6) => {
            let s = v6.segments();
            // Global unicast is 2000::/3.
            (s[0] & 0xe000) == 0x2000
                && !(s[0] == 0x2001 && s[1] == 0x0db8)
                && !(s[0] == 0x2001 && s[1] == 0)
                && s[0] != 0x2002
                && (s[0] & 0xfff0) != 0x3ff0
        }
    }
}

/// Fetches and parses the metadata document at `url` from `address`: a
/// 200 answer of at most [`MAX_DOCUMENT_BYTES`] of JSON, within
/// [`FETCH_TIMEOUT`], with no redirect followed.
async fn fetch_document(url: &reqwest::Url, address: SocketAddr) -> Result<ClientMetadata, String> {
    let unreachable = || "the client's metadata document could not be fetched".to_owned();
    let mut client = reqwest::Client::builder()
        .timeout(FETCH_TIMEOUT)
        .redirect(reqwest::redirect::Policy::none());
    if let Some(Host::Name(name)) = host_of(url) {
        client = client.resolve(name, address);
    }
    let client = client.build().map_err(|_| unreachable())?;
    let mut answer = client
        .get(url.clone())
        .header(reqwest::header::ACCEPT, "application/json")
        .send()
        .await
        .map_err(|_| unreachable())?;
    if answer.status() != reqwest::StatusCode::OK {
        return Err(unreachable());
    }
    let mut body = Vec::new();
    while let Some(chunk) = answer.chunk().await.map_err(|_| unreachable())? {
        body.extend_from_slice(&chunk);
        if body.len() > MAX_DOCUMENT_BYTES {
            return Err("the client's metadata document is larger than 5 KiB".into());
        }
    }
    serde_json::from_slice(&body)
        .map_err(|_| "the client's metadata document is not client metadata in JSON".into())
}

/// The registration sealed in `sealed` (the `client_id` after its
/// prefix), if the broker's seal on it holds.
fn open_registration(state: &AppState, id: &str, sealed: &str) -> Option<Client> {
    let (payload, seal) = sealed.split_once('.')?;
    let bytes = base64url::decode(payload)?;
    let seal: [u8; 64] = base64url::decode(seal)?.try_into().ok()?;
    let key = state.oauth().keys.derived("registration", b"");
    key.public()
        .verify_detached(SEAL_CONTEXT, &bytes, &seal)
        .ok()?;
    let sealed: Sealed = serde_json::from_slice(&bytes).ok()?;
    Some(Client {
        id: id.to_owned(),
        name: sealed.name,
        redirect_uris: sealed.redirect_uris,
        verified_by: ClientVerification::Registration,
    })
}

/// What a registered `client_id` seals.
#[derive(Serialize, Deserialize)]
struct Sealed {
    #[serde(rename = "n", default, skip_serializing_if = "Option::is_none")]
    name: Option<String>,
    #[serde(rename = "r")]
    redirect_uris: Vec<String>,
    /// When it was registered.
    #[serde(rename = "t")]
    issued_at: i64,
}

/// A registration's answer (RFC 7591 section 3.2.1).
#[derive(Serialize, utoipa::ToSchema)]
pub struct Registered {
    /// The client's id: its metadata, sealed by the broker.
    client_id: String,
    /// When it was issued.
    client_id_issued_at: i64,
    /// The name, if one was given.
    #[serde(skip_serializing_if = "Option::is_none")]
    client_name: Option<String>,
    /// The redirect URIs, as registered.
    redirect_uris: Vec<String>,
    /// `none`.
    token_endpoint_auth_method: &'static str,
    /// `authorization_code` and `refresh_token`.
    grant_types: [&'static str; 2],
    /// `code`.
    response_types: [&'static str; 1],
}

/// Registers a public client (RFC 7591), for clients without a metadata
/// document of their own.
///
/// The body is the client's metadata as JSON. Nothing is stored: the
/// answer's `client_id` carries the metadata, sealed by the broker. The
/// name is the client's own claim, and the app says so.
#[utoipa::path(
    post, path = "/oauth/register", tag = "oauth",
    request_body = ClientMetadata,
    responses(
        (status = 201, body = Registered),
        (status = 400, body = super::OAuthErrorBody, description = "An RFC 7591 error: `invalid_redirect_uri` or `invalid_client_metadata`"),
    )
)]
pub async fn register(
    State(state): State<AppState>,
    body: Result<Json<ClientMetadata>, JsonRejection>,
) -> Response {
    let answer = || -> Result<Registered, OAuthError> {
        if state.oauth().code_flow.is_none() {
            return Err(OAuthError::new(
                OAuthCode::InvalidClientMetadata,
                "this broker does not serve the code flow",
            ));
        }
        let Json(metadata) = body.map_err(|_| {
            OAuthError::new(
                OAuthCode::InvalidClientMetadata,
                "the body is not client metadata in JSON (redirect_uris is required)",
            )
        })?;
        if metadata.client_id.is_some() {
            return Err(OAuthError::new(
                OAuthCode::InvalidClientMetadata,
                "the broker chooses the client_id",
            ));
        }
        let (name, redirect_uris) = metadata
            .check()
            .map_err(|(code, why)| OAuthError::new(code, why))?;
        let now = state.now();
        let sealed = serde_json::to_vec(&Sealed {
            name: name.clone(),
            redirect_uris: redirect_uris.clone(),
            issued_at: now,
        })
        .map_err(|_| OAuthError::unavailable())?;
        let seal = state
            .oauth()
            .keys
            .derived("registration", b"")
            .sign_detached(SEAL_CONTEXT, &sealed);
        Ok(Registered {
            client_id: format!(
                "{REGISTERED}{}.{}",
                base64url::encode(&sealed),
                base64url::encode(seal)
            ),
            client_id_issued_at: now,
            client_name: name,
            redirect_uris,
            token_endpoint_auth_method: "none",
            grant_types: ["authorization_code", "refresh_token"],
            response_types: ["code"],
        })
    };
    match answer() {
        Ok(registered) => {
            super::no_store((StatusCode::CREATED, Json(json!(registered))).into_response())
        }
        Err(e) => e.into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redirect_uris_follow_rfc_8252() {
        for ok in [
            "https://client.example/cb",
            "http://127.0.0.1:5000/cb",
            "http://[::1]/cb",
            "http://localhost:8080/cb",
            "com.example.app:/oauth2redirect",
        ] {
            assert!(redirect_uri_allowed(ok), "{ok}");
        }
        for bad in [
            "http://client.example/cb",
            "https://client.example/cb#frag",
            "javascript:alert(1)",
            "data:text/html,x",
            "myapp:/cb",
            "https://user:pw@client.example/cb",
            "/relative",
            "",
        ] {
            assert!(!redirect_uri_allowed(bad), "{bad}");
        }
        assert!(!redirect_uri_allowed(&format!(
            "https://c.example/{}",
            "a".repeat(520)
        )));
    }

    #[test]
    fn a_document_url_is_https_with_a_path() {
        assert!(document_url("https://client.example/oauth/client.json", false).is_ok());
        assert!(document_url("http://127.0.0.1:9/client.json", true).is_ok());
        for bad in [
            "http://127.0.0.1:9/client.json",
            "https://client.example",
            "https://client.example/",
            "https://client.example/a/../b",
            "https://client.example/./b",
            "https://u:p@client.example/b",
            "https://client.example/b#x",
            "ftp://client.example/b",
            "mandate-client.x",
        ] {
            assert!(document_url(bad, false).is_err(), "{bad}");
        }
        assert!(document_url("http://10.0.0.1/client.json", true).is_err());
    }

    #[test]
    fn only_public_addresses_are_fetched_from() {
        for public in [
            "8.8.8.8",
            "1.1.1.1",
            "93.184.215.14",
            "2606:4700::1111",
            "2a00:1450::1",
        ] {
            assert!(is_public(public.parse().unwrap()), "{public}");
        }
        for private in [
            "0.0.0.0",
            "10.1.2.3",
            "100.64.0.1",
            "127.0.0.1",
            "169.254.169.254",
            "172.16.0.1",
            "172.31.255.255",
            "192.0.0.8",
            "192.0.2.1",
            "192.88.99.1",
            "192.168.1.1",
            "198.18.0.1",
            "198.51.100.1",
            "203.0.113.1",
            "224.0.0.1",
            "240.0.0.1",
            "255.255.255.255",
            "::",
            "::1",
            "fe80::1",
            "fc00::1",
            "fd12:3456::1",
            "ff02::1",
            "::ffff:127.0.0.1",
            "::ffff:8.8.8.8",
            "64:ff9b::a00:1",
            "2001:db8::1",
            "2001::1",
            "2002:a00:1::1",
            "3fff::1",
        ] {
            assert!(!is_public(private.parse().unwrap()), "{private}");
        }
    }

    #[test]
    fn metadata_is_checked_member_by_member() {
        let parse = |v: Value| serde_json::from_value::<ClientMetadata>(v).unwrap().check();
        let ok =
            parse(json!({ "client_name": " Editor ", "redirect_uris": ["http://127.0.0.1/cb"] }))
                .unwrap();
        assert_eq!(ok.0.as_deref(), Some("Editor"));
        let refused = [
            json!({ "redirect_uris": [] }),
            json!({ "redirect_uris": ["http://evil.example/cb"] }),
            json!({ "redirect_uris": ["https://a/cb"], "client_secret": "s" }),
            json!({ "redirect_uris": ["https://a/cb"], "token_endpoint_auth_method": "client_secret_basic" }),
            json!({ "redirect_uris": ["https://a/cb"], "grant_types": ["client_credentials"] }),
            json!({ "redirect_uris": ["https://a/cb"], "response_types": ["token"] }),
            json!({ "redirect_uris": ["https://a/cb"], "client_name": "a\u{7}b" }),
            json!({ "redirect_uris": ["https://a/cb"], "client_name": "x".repeat(65) }),
        ];
        for m in refused {
            assert!(parse(m.clone()).is_err(), "{m}");
        }
    }
}
