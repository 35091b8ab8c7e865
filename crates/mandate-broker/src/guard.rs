//! The front door: what a request must show before any handler sees it.
//!
//! The broker usually listens on 127.0.0.1, where every web page the user
//! opens can reach it too. A page cannot read the answers (the broker sends
//! no CORS headers), but without these rules it could still file a request
//! by a form post or a `no-cors` fetch, and a page whose name is rebound to
//! 127.0.0.1 (DNS rebinding) could read it as its own origin. So:
//!
//! 1. [`Guard::admit`]: the `Host` (and the target's authority, when the
//!    request line carries one) must be on the allow-list: the address the
//!    broker is bound to, its public URL's authority, and names configured
//!    with `--allowed-host`. Anything else is refused with 421
//!    `request.host`; no `Host` at all, or two, with 400
//!    `request.host_missing`.
//! 2. Then a request that carries `Origin`, as browsers do on every
//!    cross-origin request and every `POST`, must name an origin on the
//!    allow-list, which is empty by default: otherwise 403
//!    `request.origin`. `Origin: null` is never on it.
//! 3. [`json_only`], on every route that reads a body (every `POST`): the
//!    request must say `Content-Type: application/json` (the media type in
//!    any case, parameters such as `charset` allowed), which no form and no
//!    `no-cors` fetch can send: otherwise 415 `body.content_type`.
//!
//! No answer repeats the refused value.

use crate::error::Code;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::str::FromStr;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::ApiError;

/// A `Host` the broker answers to: a name (or IP literal, IPv6 in
/// brackets) and an optional port, exactly as a client writes it. The name
/// is compared without regard to case, the port exactly: `localhost:7700`
/// does not admit `localhost:7701`, nor `localhost`, which clients send
/// for port 80.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AllowedHost {
    /// Lowercase.
    name: String,
    port: Option<u16>,
}

/// Why a text is not an allowed host or origin.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum GuardConfigError {
    /// Not `NAME[:PORT]`.
    #[error("{0:?} is not NAME[:PORT]")]
    Host(String),
    /// Not `SCHEME://HOST[:PORT]`.
    #[error("{0:?} is not an origin, SCHEME://HOST[:PORT]")]
    Origin(String),
}

impl AllowedHost {
    /// Reads a `Host` value: a DNS name or IPv4 address (letters, digits,
    /// `.`, `-`, `_`) or an IPv6 address in brackets, then optionally `:`
    /// and a port. `None` for anything else (user info, a path, an empty
    /// name or port).
    fn parse(text: &str) -> Option<AllowedHost> {
        let (name, port) = match text.strip_prefix('[') {
            Some(v6) => {
                let (ip, rest) = v6.split_once(']')?;
                ip.parse::<Ipv6Addr>().ok()?;
                (&text[..ip.len() + 2], rest)
            }
            None => {
                let end = text.find(':').unwrap_or(text.len());
                let name = &text[..end];
                let plain = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_');
                if name.is_empty() || !name.chars().all(plain) {
                    return None;
                }
                (name, &text[end..])
            }
        };
        let port = match port {
            "" => None,
            port => {
                let digits = port.strip_prefix(':')?;
                if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
                    return None;
                }
                Some(digits.parse::<u16>().ok()?)
            }
        };
        Some(AllowedHost {
            name: name.to_ascii_lowercase(),
            port,
        })
    }

    /// The authority of `url` as clients send it in `Host` (no port when it
    /// is the scheme's default), or `None` when `url` has no host.
    pub fn of_url(url: &str) -> Option<AllowedHost> {
        let url = reqwest::Url::parse(url).ok()?;
        let name = url.host_str().filter(|h| !h.is_empty())?;
        Some(AllowedHost {
            name: name.to_ascii_lowercase(),
            port: url.port(),
        })
    }

    /// The hosts under which a socket bound at `bound` is reached: the
    /// address itself and, for an unspecified address (`0.0.0.0`, `[::]`),
    /// the loopback address too. Port 80 may also be left out, as clients
    /// do.
    pub fn of_socket(bound: SocketAddr) -> Vec<AllowedHost> {
        let mut ips = vec![bound.ip()];
        match bound.ip() {
            IpAddr::V4(ip) if ip.is_unspecified() => ips.push(Ipv4Addr::LOCALHOST.into()),
            IpAddr::V6(ip) if ip.is_unspecified() => {
                ips.extend([
                    IpAddr::from(Ipv6Addr::LOCALHOST),
                    Ipv4Addr::LOCALHOST.into(),
                ]);
            }
            _ => {}
        }
        let mut hosts = Vec::new();
        for ip in ips {
            let name = match ip {
                IpAddr::V4(ip) => ip.to_string(),
                IpAddr::V6(ip) => format!("[{ip}]"),
            };
            if bound.port() == 80 {
                hosts.push(AllowedHost {
                    name: name.clone(),
                    port: None,
                });
            }
            hosts.push(AllowedHost {
                name,
                port: Some(bound.port()),
            });
        }
        hosts
    }
}

impl FromStr for AllowedHost {
    type Err = GuardConfigError;

    /// `NAME[:PORT]`, as a client sends it in `Host`.
    fn from_str(text: &str) -> Result<AllowedHost, GuardConfigError> {
        AllowedHost::parse(text).ok_or_else(|| GuardConfigError::Host(text.to_owned()))
    }
}

impl fmt::Display for AllowedHost {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.port {
            Some(port) => write!(f, "{}:{port}", self.name),
            None => f.write_str(&self.name),
        }
    }
}

/// An `Origin` whose requests the broker takes: `SCHEME://HOST[:PORT]`,
/// serialized as browsers send it (lowercase, no default port, no path).
/// `null` is never one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AllowedOrigin(String);

impl FromStr for AllowedOrigin {
    type Err = GuardConfigError;

    fn from_str(text: &str) -> Result<AllowedOrigin, GuardConfigError> {
        let bad = || GuardConfigError::Origin(text.to_owned());
        let url = reqwest::Url::parse(text).map_err(|_| bad())?;
        let plain = url.username().is_empty()
            && url.password().is_none()
            && url.query().is_none()
            && url.fragment().is_none()
            && matches!(url.path(), "" | "/");
        let host = url.host_str().filter(|h| !h.is_empty() && plain);
        let host = host.ok_or_else(bad)?;
        let origin = match url.port() {
            Some(port) => format!("{}://{host}:{port}", url.scheme()),
            None => format!("{}://{host}", url.scheme()),
        };
        Ok(AllowedOrigin(origin.to_ascii_lowercase()))
    }
}

impl fmt::Display for AllowedOrigin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The allow-lists of the front door.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Guard {
    hosts: Vec<AllowedHost>,
    origins: Vec<AllowedOrigin>,
}

impl Guard {
    /// Admits the authority of `public_url`, and no origin.
    pub fn for_url(public_url: &str) -> Guard {
        Guard {
            hosts: AllowedHost::of_url(public_url).into_iter().collect(),
            origins: Vec::new(),
        }
    }

    /// Admits `hosts` and `origins` as well.
    pub fn with(
        mut self,
        hosts: impl IntoIterator<Item = AllowedHost>,
        origins: impl IntoIterator<Item = AllowedOrigin>,
    ) -> Guard {
        for host in hosts {
            if !self.hosts.contains(&host) {
                self.hosts.push(host);
            }
        }
        for origin in origins {
            if !self.origins.contains(&origin) {
                self.origins.push(origin);
            }
        }
        self
    }

    /// The hosts admitted.
    pub fn hosts(&self) -> &[AllowedHost] {
        &self.hosts
    }

    /// The origins admitted.
    pub fn origins(&self) -> &[AllowedOrigin] {
        &self.origins
    }

    /// Rules 1 and 2: the request names an allowed host, and comes from no
    /// origin or an allowed one.
    pub fn check(&self, request: &Request) -> Result<(), ApiError> {
        let hosts = one(request.headers(), header::HOST)
            .map_err(|Repeated| host_missing())?
            .map(|v| v.to_str().ok().and_then(AllowedHost::parse));
        let target = request
            .uri()
            .authority()
            .map(|a| AllowedHost::parse(a.as_str()));
        if hosts.is_none() && target.is_none() {
            return Err(host_missing());
        }
        let admitted = |h: Option<AllowedHost>| h.is_some_and(|h| self.hosts.contains(&h));
        if !hosts.into_iter().chain(target).all(admitted) {
            return Err(ApiError::new(
                Code::Host,
                "this broker does not answer for that host (see --allowed-host)",
            ));
        }
        let origin = one(request.headers(), header::ORIGIN).map_err(|Repeated| foreign_origin())?;
        if let Some(origin) = origin {
            let origin = origin.to_str().map_err(|_| foreign_origin())?;
            if !self
                .origins
                .iter()
                .any(|o| o.0.eq_ignore_ascii_case(origin))
            {
                return Err(foreign_origin());
            }
        }
        Ok(())
    }

    /// The middleware for rules 1 and 2.
    pub async fn admit(State(guard): State<Arc<Guard>>, request: Request, next: Next) -> Response {
        match guard.check(&request) {
            Ok(()) => next.run(request).await,
            Err(e) => {
                tracing::debug!(code = e.code, method = %request.method(), "refused at the door");
                e.into_response()
            }
        }
    }
}

/// A header that may appear at most once appeared twice or more.
struct Repeated;

/// The value of a header that may appear at most once.
fn one(headers: &HeaderMap, name: HeaderName) -> Result<Option<&HeaderValue>, Repeated> {
    let mut values = headers.get_all(name).iter();
    let first = values.next();
    match values.next() {
        Some(_) => Err(Repeated),
        None => Ok(first),
    }
}

fn host_missing() -> ApiError {
    ApiError::new(Code::HostMissing, "the request must name one host, in Host")
}

fn foreign_origin() -> ApiError {
    ApiError::new(
        Code::Origin,
        "requests from this origin are not accepted (see --allowed-origin)",
    )
}

/// Rule 3: whether a request with `method` and these headers may reach a
/// handler that reads its body.
pub fn check_content_type(method: &Method, headers: &HeaderMap) -> Result<(), ApiError> {
    check_media_type(method, headers, "application/json")
}

/// Whether a request with `method` and these headers says its body is of
/// media type `wanted` (any case, with any parameters).
fn check_media_type(method: &Method, headers: &HeaderMap, wanted: &str) -> Result<(), ApiError> {
    if matches!(*method, Method::GET | Method::HEAD) {
        return Ok(());
    }
    let matches = one(headers, header::CONTENT_TYPE)
        .ok()
        .flatten()
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|media| media.trim().eq_ignore_ascii_case(wanted));
    if matches {
        Ok(())
    } else {
        Err(ApiError::new(
            Code::ContentType,
            format!("the body must be sent as Content-Type: {wanted}"),
        ))
    }
}

/// The middleware for rule 3, on the routes only: a method a route does
/// not serve still gets 405.
pub async fn json_only(request: Request, next: Next) -> Response {
    match check_content_type(request.method(), request.headers()) {
        Ok(()) => next.run(request).await,
        Err(e) => e.into_response(),
    }
}

/// Rule 3 for OAuth's endpoints, whose bodies are forms
/// (`application/x-www-form-urlencoded`, RFC 6749).
pub async fn form_only(request: Request, next: Next) -> Response {
    match check_media_type(
        request.method(),
        request.headers(),
        "application/x-www-form-urlencoded",
    ) {
        Ok(()) => next.run(request).await,
        Err(e) => e.into_response(),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn host(text: &str) -> AllowedHost {
        text.parse().unwrap()
    }

    #[test]
    fn hosts_are_read_as_clients_send_them() {
        assert_eq!(
            host("Broker.Example:7700").to_string(),
            "broker.example:7700"
        );
        assert_eq!(host("[::1]:7700").to_string(), "[::1]:7700");
        assert_eq!(host("localhost").to_string(), "localhost");
        assert_ne!(host("localhost"), host("localhost:80"));
        for bad in ["", ":7700", "a:", "a:b", "a:99999", "u@a:1", "a b", "a/b"] {
            assert!(bad.parse::<AllowedHost>().is_err(), "{bad:?}");
        }
        assert_eq!(
            AllowedHost::of_url("https://Mandate.Example/").unwrap(),
            host("mandate.example")
        );
        assert_eq!(
            AllowedHost::of_url("http://127.0.0.1:80").unwrap(),
            host("127.0.0.1")
        );
        assert_eq!(AllowedHost::of_url("not a url"), None);
    }

    #[test]
    fn a_socket_is_reached_at_its_address_and_unspecified_ones_at_loopback() {
        let names = |addr: &str| -> Vec<String> {
            AllowedHost::of_socket(addr.parse().unwrap())
                .iter()
                .map(ToString::to_string)
                .collect()
        };
        assert_eq!(names("127.0.0.1:7700"), ["127.0.0.1:7700"]);
        assert_eq!(names("[::1]:7700"), ["[::1]:7700"]);
        assert_eq!(names("0.0.0.0:7700"), ["0.0.0.0:7700", "127.0.0.1:7700"]);
        assert_eq!(
            names("[::]:7700"),
            ["[::]:7700", "[::1]:7700", "127.0.0.1:7700"]
        );
        assert_eq!(names("127.0.0.1:80"), ["127.0.0.1", "127.0.0.1:80"]);
    }

    #[test]
    fn origins_are_serialized_as_browsers_send_them() {
        let origin = |text: &str| text.parse::<AllowedOrigin>().map(|o| o.to_string());
        assert_eq!(
            origin("HTTPS://App.Example").unwrap(),
            "https://app.example"
        );
        assert_eq!(
            origin("https://app.example:443/").unwrap(),
            "https://app.example"
        );
        assert_eq!(
            origin("http://127.0.0.1:5173").unwrap(),
            "http://127.0.0.1:5173"
        );
        assert_eq!(origin("tauri://localhost").unwrap(), "tauri://localhost");
        for bad in [
            "null",
            "",
            "app.example",
            "https://app.example/path",
            "https://app.example?q",
            "https://u@app.example",
            "file:///etc",
        ] {
            assert!(origin(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn only_json_bodies_pass() {
        let headers = |ct: &[&str]| {
            let mut h = HeaderMap::new();
            for v in ct {
                h.append(header::CONTENT_TYPE, v.parse().unwrap());
            }
            h
        };
        let ok = |m: Method, ct: &[&str]| check_content_type(&m, &headers(ct)).is_ok();
        assert!(ok(Method::POST, &["application/json"]));
        assert!(ok(Method::POST, &["application/json ; charset=utf-8"]));
        assert!(ok(Method::DELETE, &["APPLICATION/JSON"]));
        assert!(ok(Method::GET, &[]));
        assert!(ok(Method::HEAD, &["text/plain"]));
        assert!(!ok(Method::POST, &[]));
        assert!(!ok(Method::PUT, &["text/plain"]));
        assert!(!ok(Method::POST, &["application/json", "application/json"]));
        assert!(!ok(Method::OPTIONS, &[]));
    }
}
