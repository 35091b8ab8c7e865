//! The MCP request headers (`MCP-Protocol-Version`, `Mcp-Method`,
//! `Mcp-Name`), held to the body they mirror.
//!
//! The 2026-07-28 transport mirrors the method and the tool's, prompt's
//! or resource's name into headers so that intermediaries can route
//! without reading the body, and a server that reads the body must refuse
//! a request whose headers say otherwise (`HeaderMismatch`, `-32020`). The
//! gateway reads the body, and authorizes by it; it refuses any such
//! disagreement in every protocol version, so that nothing behind it that
//! routes or logs by header can be told one tool while another runs.
//! From 2026-07-28 on, the headers are required.

use axum::http::HeaderMap;
use base64::Engine as _;

use crate::rpc::{Call, RpcCode, RpcError};

/// The protocol versions the gateway knows. A request naming another is
/// refused (`-32022`): the gateway cannot vouch for what it does not know.
pub const VERSIONS: [&str; 5] = [
    "2024-11-05",
    "2025-03-26",
    "2025-06-18",
    "2025-11-25",
    "2026-07-28",
];

/// The first version whose requests carry the mirrored headers.
const HEADERS_REQUIRED_FROM: &str = "2026-07-28";

/// The protocol version a request names in its header, checked against
/// [`VERSIONS`]; `None` when it has none (a client before 2025-06-18).
pub fn version(headers: &HeaderMap) -> Result<Option<&'static str>, RpcError> {
    let Some(value) = single(headers, "mcp-protocol-version")? else {
        return Ok(None);
    };
    VERSIONS
        .iter()
        .find(|v| **v == value)
        .map(|v| Some(*v))
        .ok_or(RpcError {
            code: RpcCode::UnsupportedVersion,
            message: "the gateway does not support this protocol version",
        })
}

/// Checks the mirrored headers of a request against its body.
pub fn check(headers: &HeaderMap, call: &Call, version: Option<&str>) -> Result<(), RpcError> {
    let modern = version.is_some_and(|v| v >= HEADERS_REQUIRED_FROM);
    if modern && call.id.is_some() && call.meta_version() != version {
        return Err(mismatch(
            "MCP-Protocol-Version does not match the body's _meta protocolVersion",
        ));
    }
    match single(headers, "mcp-method")? {
        Some(method) if method != call.method_name => {
            return Err(mismatch("Mcp-Method does not match the body's method"));
        }
        None if modern && call.id.is_some() => {
            return Err(mismatch("Mcp-Method is required"));
        }
        _ => {}
    }
    let Some(target) = &call.target else {
        if headers.contains_key("mcp-name") {
            return Err(mismatch("Mcp-Name is set for a method that names nothing"));
        }
        return Ok(());
    };
    match single(headers, "mcp-name")? {
        Some(raw) if decode(raw)?.as_str() != target => {
            return Err(mismatch("Mcp-Name does not match the body's name or uri"));
        }
        None if modern => return Err(mismatch("Mcp-Name is required for this method")),
        Some(_) | None => {}
    }
    Ok(())
}

fn mismatch(message: &'static str) -> RpcError {
    RpcError {
        code: RpcCode::HeaderMismatch,
        message,
    }
}

/// The one value of header `name`, if present: twice is a mismatch, and
/// so is a value that is not visible ASCII.
fn single<'h>(headers: &'h HeaderMap, name: &str) -> Result<Option<&'h str>, RpcError> {
    let mut values = headers.get_all(name).iter();
    let (Some(value), None) = (values.next(), values.next()) else {
        return if headers.contains_key(name) {
            Err(mismatch("an MCP header is given twice"))
        } else {
            Ok(None)
        };
    };
    value
        .to_str()
        .map(Some)
        .map_err(|_| mismatch("an MCP header holds characters outside visible ASCII"))
}

/// A header value, decoded from the `=?base64?…?=` form when it is in it.
fn decode(raw: &str) -> Result<String, RpcError> {
    let Some(encoded) = raw
        .strip_prefix("=?base64?")
        .and_then(|r| r.strip_suffix("?="))
    else {
        return Ok(raw.to_owned());
    };
    base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .ok_or(mismatch("Mcp-Name's base64 form does not decode to UTF-8"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rpc::{Message, read};
    use axum::http::HeaderValue;

    fn call(body: &str) -> Call {
        match read(body.as_bytes()).unwrap() {
            Message::Call(c) => c,
            Message::Response { .. } => panic!(),
        }
    }

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    const MODERN: &str = r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"read_file","_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28"}}}"#;
    const LEGACY: &str =
        r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"read_file"}}"#;

    #[test]
    fn headers_that_agree_pass() {
        let h = headers(&[
            ("mcp-protocol-version", "2026-07-28"),
            ("mcp-method", "tools/call"),
            ("mcp-name", "read_file"),
        ]);
        assert_eq!(version(&h).unwrap(), Some("2026-07-28"));
        check(&h, &call(MODERN), Some("2026-07-28")).unwrap();
        // The base64 form decodes before it is compared.
        let h = headers(&[
            ("mcp-method", "tools/call"),
            ("mcp-name", "=?base64?cmVhZF9maWxl?="),
        ]);
        check(&h, &call(LEGACY), Some("2025-06-18")).unwrap();
        // Before 2026-07-28 the headers are optional.
        check(&HeaderMap::new(), &call(LEGACY), Some("2025-11-25")).unwrap();
        check(&HeaderMap::new(), &call(LEGACY), None).unwrap();
    }

    #[test]
    fn headers_that_disagree_are_a_mismatch() {
        let legacy = call(LEGACY);
        for h in [
            headers(&[("mcp-method", "tools/list")]),
            headers(&[("mcp-name", "run_command")]),
            headers(&[("mcp-name", "READ_FILE")]),
            headers(&[("mcp-name", "=?base64?cnVuX2NvbW1hbmQ=?=")]),
            headers(&[("mcp-name", "=?base64?!!?=")]),
            headers(&[("mcp-name", "read_file"), ("mcp-name", "run_command")]),
        ] {
            assert_eq!(
                check(&h, &legacy, Some("2025-11-25")).unwrap_err().code,
                RpcCode::HeaderMismatch,
                "{h:?}"
            );
        }
        // From 2026-07-28 on, they are required, and so is the body's version.
        let modern = call(MODERN);
        let v = Some("2026-07-28");
        assert!(check(&headers(&[("mcp-name", "read_file")]), &modern, v).is_err());
        assert!(check(&headers(&[("mcp-method", "tools/call")]), &modern, v).is_err());
        let full = headers(&[("mcp-method", "tools/call"), ("mcp-name", "read_file")]);
        assert!(check(&full, &call(LEGACY), v).is_err());
        let list = call(r#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#);
        assert!(check(&headers(&[("mcp-name", "x")]), &list, None).is_err());
    }

    #[test]
    fn an_unknown_version_is_refused() {
        let h = headers(&[("mcp-protocol-version", "2099-01-01")]);
        assert_eq!(version(&h).unwrap_err().code, RpcCode::UnsupportedVersion);
    }
}
