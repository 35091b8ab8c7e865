//! Where Mandate's clients may send what they send: to a broker, or to an
//! OIDC provider. HTTPS anywhere; plain HTTP only to this machine.
//!
//! The rule is a pure function of a parsed URL's scheme and host, so that
//! every client applies the same one whatever URL parser it uses.

use std::net::{Ipv4Addr, Ipv6Addr};

/// A URL's host, as a URL parser gives it: a name, or an address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Host<'a> {
    /// A domain name, as the parser wrote it (lowercase for `http` and
    /// `https`).
    Domain(&'a str),
    /// An IPv4 address.
    Ipv4(Ipv4Addr),
    /// An IPv6 address.
    Ipv6(Ipv6Addr),
}

/// Whether a URL with this `scheme` and `host` may carry Mandate's
/// traffic: `https` to any host, and `http` only to a loopback address
/// (127.0.0.0/8 or `::1`) or to the name `localhost` (any case). Any other
/// scheme, and a URL without a host, may not.
///
/// Plain HTTP to this machine never crosses a network, so there is no one
/// in the middle to read or change it.
pub fn secure_or_loopback(scheme: &str, host: Option<Host<'_>>) -> bool {
    let Some(host) = host else {
        return false;
    };
    if scheme.eq_ignore_ascii_case("https") {
        return true;
    }
    if !scheme.eq_ignore_ascii_case("http") {
        return false;
    }
    match host {
        Host::Ipv4(ip) => ip.is_loopback(),
        Host::Ipv6(ip) => ip.is_loopback(),
        Host::Domain(name) => name.eq_ignore_ascii_case("localhost"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn https_anywhere_http_only_to_this_machine() {
        let v4 = |s: &str| Some(Host::Ipv4(s.parse().unwrap()));
        let v6 = |s: &str| Some(Host::Ipv6(s.parse().unwrap()));
        let name = |s: &'static str| Some(Host::Domain(s));
        for (scheme, host) in [
            ("https", name("broker.example")),
            ("HTTPS", name("broker.example")),
            ("https", v4("10.0.0.1")),
            ("https", v6("2001:db8::1")),
            ("http", v4("127.0.0.1")),
            ("http", v4("127.255.0.9")),
            ("http", v6("::1")),
            ("http", name("localhost")),
            ("http", name("LocalHost")),
        ] {
            assert!(secure_or_loopback(scheme, host), "{scheme} {host:?}");
        }
        for (scheme, host) in [
            ("http", name("broker.example")),
            ("http", v4("10.0.0.1")),
            ("http", v4("128.0.0.1")),
            ("http", v4("0.0.0.0")),
            ("http", v6("::2")),
            ("http", v6("::ffff:127.0.0.1")),
            ("http", name("localhost.example")),
            ("http", name("localhost.")),
            ("http", name("127.0.0.1.nip.io")),
            ("ftp", v4("127.0.0.1")),
            ("ws", name("localhost")),
            ("https", None),
            ("http", None),
        ] {
            assert!(!secure_or_loopback(scheme, host), "{scheme} {host:?}");
        }
    }
}
