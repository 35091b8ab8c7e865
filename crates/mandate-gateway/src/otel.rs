//! OpenTelemetry spans of the calls the gateway takes, exported over
//! OTLP/HTTP (protobuf) when asked for, and off by default.
//!
//! Each JSON-RPC call the gateway reads becomes a server span, a child of
//! the trace context the call carried ([`crate::trace`]), or the root of a
//! new trace if it carried none. The gateway then names its own span as
//! the parent in the `traceparent` it sends upstream, and records the
//! trace on its witness receipt, so that one trace links the agent, the
//! gateway, the upstream and the receipt. Without an exporter the gateway
//! makes no spans, and passes the trace context upstream as it came.
//!
//! The span follows OpenTelemetry's conventions for MCP: its name is the
//! method and its target (`tools/call read_file`), and it carries
//! `mcp.method.name`, `gen_ai.tool.name` (or `mcp.resource.uri`,
//! `gen_ai.prompt.name`), `jsonrpc.request.id`, `mcp.session.id`, and, for
//! a refusal, `error.type` (the gateway's code). Its own: `mandate.grant`,
//! the grant the call rests on, which also names the receipt.

use std::time::SystemTime;

use axum::http::{HeaderMap, HeaderValue};
use opentelemetry::propagation::{Extractor, TextMapPropagator as _};
use opentelemetry::trace::{
    SpanKind, Status, TraceContextExt as _, Tracer as _, TracerProvider as _,
};
use opentelemetry::{Context, KeyValue};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{SdkTracer, SdkTracerProvider};

use crate::rpc::{Call, Method};

/// The longest target (a tool's or prompt's name, a resource's URI) or
/// request id a span names; a longer one is left out.
const MAX_NAMED: usize = 256;

/// Why spans cannot be exported; never repeats the endpoint, which may
/// hold a credential.
#[derive(Debug, thiserror::Error)]
#[error("the OTLP traces endpoint: {0}")]
pub struct OtelError(String);

/// Where the gateway's spans go: an OTLP/HTTP collector. Cheap to clone.
#[derive(Clone)]
pub struct Spans {
    provider: SdkTracerProvider,
    tracer: SdkTracer,
}

impl std::fmt::Debug for Spans {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Spans").finish_non_exhaustive()
    }
}

impl Spans {
    /// Exports spans to `endpoint`, the collector's whole traces URL
    /// (`http://127.0.0.1:4318/v1/traces`), in batches from a thread of
    /// their own. The standard `OTEL_*` variables tune the rest: the
    /// batch's delay and size (`OTEL_BSP_*`), the sampler (parent-based,
    /// always on by default), headers, and `OTEL_SERVICE_NAME`
    /// (`mandate-gateway` by default).
    pub fn export_to(endpoint: &str) -> Result<Spans, OtelError> {
        use opentelemetry_otlp::{Protocol, WithExportConfig as _};
        let err = OtelError;
        let url = reqwest::Url::parse(endpoint).map_err(|e| err(e.to_string()))?;
        if !matches!(url.scheme(), "http" | "https")
            || url.host_str().is_none()
            || !url.username().is_empty()
            || url.password().is_some()
        {
            return Err(err(
                "must be an http:// or https:// URL, without credentials".into(),
            ));
        }
        mandate_agent::client::install_tls_provider();
        let exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_protocol(Protocol::HttpBinary)
            .with_endpoint(endpoint)
            .build()
            .map_err(|e| err(e.to_string()))?;
        let mut resource = opentelemetry_sdk::Resource::builder();
        if std::env::var_os("OTEL_SERVICE_NAME").is_none() {
            resource = resource.with_service_name("mandate-gateway");
        }
        let resource = resource
            .with_attribute(KeyValue::new("service.version", env!("CARGO_PKG_VERSION")))
            .build();
        let provider = SdkTracerProvider::builder()
            .with_batch_exporter(exporter)
            .with_resource(resource)
            .build();
        let tracer = provider.tracer("mandate-gateway");
        Ok(Spans { provider, tracer })
    }

    /// Sends the spans not yet sent, and stops; blocks, for at most the
    /// exporter's timeout.
    pub fn shutdown(&self) {
        if let Err(e) = self.provider.shutdown() {
            tracing::warn!(error = %e, "the last spans could not be exported");
        }
    }

    /// The span of `call`, begun at `started`, a child of the trace
    /// context it carried.
    pub(crate) fn begin(&self, headers: &HeaderMap, call: &Call, started: SystemTime) -> CallSpan {
        let parent = TraceContextPropagator::new().extract(&Carried::of(headers, call));
        let target = call
            .target
            .as_deref()
            .filter(|t| t.len() <= MAX_NAMED && !t.chars().any(char::is_control));
        let name = match target {
            Some(target) => format!("{} {target}", call.method_name),
            None => call.method_name.clone(),
        };
        let mut attributes = vec![KeyValue::new("mcp.method.name", call.method_name.clone())];
        if let Some(target) = target {
            let key = match call.method {
                Method::ToolsCall => Some("gen_ai.tool.name"),
                Method::ResourcesRead => Some("mcp.resource.uri"),
                Method::PromptsGet => Some("gen_ai.prompt.name"),
                _ => None,
            };
            if let Some(key) = key {
                attributes.push(KeyValue::new(key, target.to_owned()));
            }
        }
        if let Some(id) = call.id.as_ref().map(|id| match id {
            serde_json::Value::String(s) => s.clone(),
            other => other.to_string(),
        }) && id.len() <= MAX_NAMED
        {
            attributes.push(KeyValue::new("jsonrpc.request.id", id));
        }
        if let Some(session) = headers
            .get(crate::SESSION)
            .and_then(|v| v.to_str().ok())
            .filter(|s| s.len() <= MAX_NAMED)
        {
            attributes.push(KeyValue::new("mcp.session.id", session.to_owned()));
        }
        let span = self
            .tracer
            .span_builder(name)
            .with_kind(SpanKind::Server)
            .with_start_time(started)
            .with_attributes(attributes)
            .start_with_context(&self.tracer, &parent);
        CallSpan {
            cx: Context::new().with_span(span),
        }
    }
}

/// A call's span, open until [`CallSpan::end`].
pub(crate) struct CallSpan {
    cx: Context,
}

impl CallSpan {
    /// The trace id, as receipts record it: 32 lowercase hex digits.
    pub(crate) fn trace_id(&self) -> String {
        self.cx.span().span_context().trace_id().to_string()
    }

    /// The `traceparent` that goes upstream: this span as the parent.
    pub(crate) fn traceparent(&self) -> Option<HeaderValue> {
        let span = self.cx.span();
        let c = span.span_context();
        HeaderValue::try_from(format!(
            "00-{}-{}-{:02x}",
            c.trace_id(),
            c.span_id(),
            c.trace_flags().to_u8()
        ))
        .ok()
    }

    /// Names the grant the call rests on.
    pub(crate) fn grant(&self, grant: &str) {
        self.cx
            .span()
            .set_attribute(KeyValue::new("mandate.grant", grant.to_owned()));
    }

    /// Ends the span: with the upstream's HTTP status, or as refused.
    pub(crate) fn end(self, outcome: Result<u16, &crate::error::Refusal>) {
        let span = self.cx.span();
        match outcome {
            Ok(status) => {
                span.set_attribute(KeyValue::new(
                    "http.response.status_code",
                    i64::from(status),
                ));
            }
            Err(refusal) => {
                span.set_attribute(KeyValue::new("error.type", refusal.code.as_str()));
                span.set_attribute(KeyValue::new(
                    "http.response.status_code",
                    i64::from(refusal.status.as_u16()),
                ));
                span.set_status(Status::error(refusal.message.clone()));
            }
        }
        span.end();
    }
}

/// The longest `tracestate` a span takes: W3C trace context asks that
/// 512 characters be passed on; a longer one is left out of the span
/// (the header still goes upstream as it came).
const MAX_TRACESTATE: usize = 512;

/// The trace context a call carried: its `traceparent` (and `tracestate`)
/// headers, or else those in its `_meta`, as [`crate::trace::of_call`]
/// picks them; only a well-formed version-00 `traceparent` counts.
struct Carried<'a> {
    traceparent: Option<&'a str>,
    tracestate: Option<&'a str>,
}

impl<'a> Carried<'a> {
    fn of(headers: &'a HeaderMap, call: &'a Call) -> Carried<'a> {
        let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
        let meta = |name: &str| call.meta.as_ref()?.get(name)?.as_str();
        let valid = |t: &&str| crate::trace::trace_id(t).is_some();
        match header("traceparent").filter(valid) {
            Some(traceparent) => Carried {
                traceparent: Some(traceparent),
                tracestate: header("tracestate"),
            },
            None => Carried {
                traceparent: meta("traceparent").filter(valid),
                tracestate: meta("tracestate"),
            },
        }
    }
}

impl Extractor for Carried<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        match key {
            "traceparent" => self.traceparent,
            "tracestate" => self
                .traceparent
                .and(self.tracestate)
                .filter(|t| t.len() <= MAX_TRACESTATE),
            _ => None,
        }
    }

    fn keys(&self) -> Vec<&str> {
        vec!["traceparent", "tracestate"]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rpc::{Message, read};

    fn call(body: &str) -> Call {
        let Message::Call(call) = read(body.as_bytes()).unwrap() else {
            panic!("not a call")
        };
        call
    }

    fn spans() -> Spans {
        // Nothing listens there: the spans are made, and their export
        // fails quietly, which these tests do not look at.
        Spans::export_to("http://127.0.0.1:9/v1/traces").unwrap()
    }

    #[test]
    fn an_endpoint_is_an_http_url_without_credentials() {
        for bad in [
            "",
            "127.0.0.1:4318",
            "ftp://127.0.0.1/v1/traces",
            "http://user:secret@127.0.0.1:4318/v1/traces",
            "file:///tmp/traces",
        ] {
            let e = Spans::export_to(bad).unwrap_err().to_string();
            assert!(!e.contains("secret"), "{e}");
        }
    }

    #[test]
    fn a_span_is_the_child_of_the_context_the_call_carried() {
        let spans = spans();
        let started = SystemTime::now();
        let c = call(
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"a","_meta":{"traceparent":"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"}}}"#,
        );
        // From `_meta`, when the headers carry none.
        let span = spans.begin(&HeaderMap::new(), &c, started);
        assert_eq!(span.trace_id(), "4bf92f3577b34da6a3ce929d0e0e4736");
        let up = span.traceparent().unwrap();
        let up = up.to_str().unwrap();
        assert!(
            up.starts_with("00-4bf92f3577b34da6a3ce929d0e0e4736-"),
            "{up}"
        );
        assert!(up.ends_with("-01"), "{up}");
        assert!(
            !up.contains("00f067aa0ba902b7"),
            "the gateway's own span: {up}"
        );
        span.end(Ok(200));

        // The header comes first; an invalid one counts as none.
        let mut headers = HeaderMap::new();
        headers.insert(
            "traceparent",
            HeaderValue::from_static("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00"),
        );
        let span = spans.begin(&headers, &c, started);
        assert_eq!(span.trace_id(), "0af7651916cd43dd8448eb211c80319c");
        assert!(
            span.traceparent()
                .unwrap()
                .to_str()
                .unwrap()
                .ends_with("-00")
        );
        span.end(Ok(200));
        headers.insert(
            "traceparent",
            HeaderValue::from_static("00-0AF7651916CD43DD8448EB211C80319C-b7ad6b7169203331-01"),
        );
        let span = spans.begin(&headers, &c, started);
        assert_eq!(span.trace_id(), "4bf92f3577b34da6a3ce929d0e0e4736");
        span.end(Ok(200));

        // A `tracestate` goes into the span only when it is short.
        let with_state = |state: &str| {
            let mut h = HeaderMap::new();
            h.insert(
                "traceparent",
                HeaderValue::from_static("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"),
            );
            h.insert("tracestate", HeaderValue::try_from(state).unwrap());
            let span = spans.begin(&h, &c, started);
            let kept = span.cx.span().span_context().trace_state().header();
            span.end(Ok(200));
            kept
        };
        assert_eq!(with_state("vendor=abc"), "vendor=abc");
        // Ten members of 64 characters, each valid: 649 in all.
        let long: Vec<String> = (0..10)
            .map(|i| format!("v{i}={}", "a".repeat(61)))
            .collect();
        assert_eq!(with_state(&long[..7].join(",")), long[..7].join(","));
        assert_eq!(with_state(&long.join(",")), "");

        // Without any, a new trace.
        let bare = call(r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"a"}}"#);
        let span = spans.begin(&HeaderMap::new(), &bare, started);
        let trace = span.trace_id();
        assert_eq!(trace.len(), 32);
        assert_ne!(trace, "0".repeat(32));
        assert_ne!(trace, "4bf92f3577b34da6a3ce929d0e0e4736");
        span.end(Ok(200));
    }
}
