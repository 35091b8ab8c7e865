//! The upstream MCP server: what goes to it and what comes back.
//!
//! Only MCP's own headers, content negotiation and trace context go up,
//! with the gateway's own credential; never the client's `Authorization`,
//! `DPoP`, cookies or Mandate's headers. Answers stream back as they come,
//! with MCP's headers and the content type. The plain proxy the benchmark
//! measures the gateway against (docs/benchmarks.md) forwards through this
//! same code, without the checks.

use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method};
use axum::response::Response;

use crate::error::{GatewayCode, Refusal};

/// The upstream, and how to reach it.
#[derive(Debug, Clone)]
pub struct Upstream {
    url: String,
    headers: Vec<(HeaderName, HeaderValue)>,
    http: reqwest::Client,
}

impl Upstream {
    /// The MCP endpoint at `url`, sent `headers` (the gateway's own
    /// credential) with every request. Connects within 5 s and follows no
    /// redirect; an answer has no overall timeout, as it may be a stream.
    pub fn new(
        url: String,
        headers: Vec<(HeaderName, HeaderValue)>,
    ) -> Result<Upstream, mandate_agent::AgentError> {
        Ok(Upstream {
            url,
            headers,
            http: mandate_agent::client::http_client()?,
        })
    }

    /// Sends a request upstream with the client's `headers` that may go,
    /// and the gateway's own; `traceparent`, the gateway's span, stands
    /// in for the client's. An upstream that cannot be reached, or that
    /// refuses the gateway (401, 403), is `gateway.upstream`.
    pub async fn send(
        &self,
        method: Method,
        headers: &HeaderMap,
        body: Option<Bytes>,
        traceparent: Option<&HeaderValue>,
    ) -> Result<reqwest::Response, Refusal> {
        let mut req = self.http.request(method, &self.url);
        for (name, value) in headers {
            if passes_upstream(name) && !(traceparent.is_some() && name == "traceparent") {
                req = req.header(name, value);
            }
        }
        if let Some(traceparent) = traceparent {
            req = req.header("traceparent", traceparent);
        }
        for (name, value) in &self.headers {
            req = req.header(name, value);
        }
        if let Some(body) = body {
            req = req.body(body);
        }
        let res = req.send().await.map_err(|e| {
            tracing::warn!(error = %e.without_url(), "the upstream could not be reached");
            Refusal::new(
                GatewayCode::Upstream,
                "the upstream MCP server could not be reached",
            )
        })?;
        if matches!(res.status().as_u16(), 401 | 403) {
            tracing::warn!(status = %res.status(), "the upstream refused the gateway's credential");
            return Err(Refusal::new(
                GatewayCode::Upstream,
                "the upstream MCP server refused the gateway",
            ));
        }
        Ok(res)
    }
}

/// Whether a client's request header goes upstream: MCP's own, content
/// negotiation and trace context.
fn passes_upstream(name: &HeaderName) -> bool {
    matches!(
        name.as_str(),
        "content-type"
            | "accept"
            | "mcp-protocol-version"
            | "mcp-session-id"
            | "mcp-method"
            | "mcp-name"
            | "last-event-id"
            | "traceparent"
            | "tracestate"
            | "baggage"
    ) || name.as_str().starts_with("mcp-param-")
}

/// Whether an upstream's response header comes back to the client.
fn passes_back(name: &HeaderName) -> bool {
    matches!(
        name.as_str(),
        "content-type"
            | "cache-control"
            | "mcp-session-id"
            | "mcp-protocol-version"
            | "x-accel-buffering"
    )
}

/// Copies the headers of an upstream answer that come back.
pub fn copy_back(from: &reqwest::header::HeaderMap, to: &mut HeaderMap) {
    for (name, value) in from {
        if passes_back(name) {
            to.append(name.clone(), value.clone());
        }
    }
}

/// The upstream's answer, streamed to the client as it comes.
pub fn streamed(res: reqwest::Response) -> Response {
    let status = res.status();
    let headers = res.headers().clone();
    let mut out = Response::new(Body::from_stream(res.bytes_stream()));
    *out.status_mut() = status;
    copy_back(&headers, out.headers_mut());
    out
}

/// The upstream's answer to the call `id`, streamed to the client as it
/// comes and read on the way for the call's outcome, which `witness`
/// records when the answer ends ([`crate::witness::Tap`]).
pub fn tapped(
    res: reqwest::Response,
    id: serde_json::Value,
    witness: std::sync::Arc<crate::witness::Witness>,
    seen: crate::witness::Seen,
) -> Response {
    let status = res.status();
    let headers = res.headers().clone();
    let sse = headers
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|t| t.starts_with("text/event-stream"));
    let tap = crate::witness::Tap::new(
        res.bytes_stream(),
        id,
        sse,
        status.is_success(),
        witness,
        seen,
    );
    let mut out = Response::new(Body::from_stream(tap));
    *out.status_mut() = status;
    copy_back(&headers, out.headers_mut());
    out
}

/// An upstream answer, whole, up to `max` bytes.
pub async fn read_whole(res: reqwest::Response, max: usize) -> Result<Vec<u8>, Refusal> {
    use futures_util::StreamExt as _;
    let mut out = Vec::new();
    let mut stream = res.bytes_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk
            .map_err(|_| Refusal::new(GatewayCode::Upstream, "the upstream's answer broke off"))?;
        if out.len() + chunk.len() > max {
            return Err(Refusal::new(
                GatewayCode::Upstream,
                "the upstream's answer is too large",
            ));
        }
        out.extend_from_slice(&chunk);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_client_s_credentials_never_go_up() {
        for name in [
            "authorization",
            "dpop",
            "cookie",
            "mandate-chain",
            "mandate-pop",
            "x-forwarded-for",
        ] {
            assert!(!passes_upstream(&HeaderName::from_static(name)), "{name}");
        }
        for name in [
            "mcp-session-id",
            "mcp-name",
            "mcp-param-region",
            "traceparent",
            "accept",
        ] {
            assert!(passes_upstream(&HeaderName::from_static(name)), "{name}");
        }
        assert!(!passes_back(&HeaderName::from_static("www-authenticate")));
        assert!(!passes_back(&HeaderName::from_static("set-cookie")));
    }
}
