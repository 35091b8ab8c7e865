//! W3C trace context (`traceparent`), as a call carries it: in its HTTP
//! headers, or in MCP's `params._meta` (MCP 2026-07-28). The gateway
//! passes both upstream as they are, and names the trace in its log line
//! for the call, so that one trace id links the agent's, the gateway's and
//! the upstream's records.

use axum::http::HeaderMap;

use crate::rpc::Call;

/// The trace id of a `traceparent` (version `00`: `00-TRACE-SPAN-FLAGS`,
/// lowercase hex, neither id all zeros), or `None` for anything else.
pub fn trace_id(traceparent: &str) -> Option<&str> {
    let mut parts = traceparent.split('-');
    let (Some(version), Some(trace), Some(span), Some(flags), None) = (
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
    ) else {
        return None;
    };
    let hex = |s: &str, n: usize| {
        s.len() == n && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
    };
    let zero = |s: &str| s.bytes().all(|b| b == b'0');
    (version == "00" && hex(trace, 32) && hex(span, 16) && hex(flags, 2))
        .then_some(())
        .filter(|()| !zero(trace) && !zero(span))
        .map(|()| trace)
}

/// The trace a call belongs to: its `traceparent` header, or else the one
/// in its `_meta`.
pub fn of_call<'a>(headers: &'a HeaderMap, call: &'a Call) -> Option<&'a str> {
    headers
        .get("traceparent")
        .and_then(|v| v.to_str().ok())
        .and_then(trace_id)
        .or_else(|| {
            call.meta
                .as_ref()?
                .get("traceparent")?
                .as_str()
                .and_then(trace_id)
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rpc::{Message, read};

    const GOOD: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn a_traceparent_names_its_trace() {
        assert_eq!(trace_id(GOOD), Some("4bf92f3577b34da6a3ce929d0e0e4736"));
        for bad in [
            "",
            "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-x",
            "00-4bf92f-00f067aa0ba902b7-01",
        ] {
            assert_eq!(trace_id(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn the_header_comes_first_then_meta() {
        let body = format!(
            r#"{{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{{"name":"a","_meta":{{"traceparent":"{GOOD}"}}}}}}"#
        );
        let Message::Call(call) = read(body.as_bytes()).unwrap() else {
            panic!()
        };
        let empty = HeaderMap::new();
        assert_eq!(
            of_call(&empty, &call),
            Some("4bf92f3577b34da6a3ce929d0e0e4736")
        );
        let mut headers = HeaderMap::new();
        headers.insert(
            "traceparent",
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
                .parse()
                .unwrap(),
        );
        assert_eq!(
            of_call(&headers, &call),
            Some("0af7651916cd43dd8448eb211c80319c")
        );
    }
}
