//! The gateway's HTTP endpoints: the MCP endpoint (`POST`, and the
//! session's `GET` and `DELETE` before 2026-07-28), and the resource
//! metadata. Each request is checked in this order: its `Origin`, its
//! credential, its body as one JSON-RPC message, the MCP headers against
//! it, its session, the tool's name, and its scope; only then does it go
//! upstream.

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, Method, header};
use axum::response::{IntoResponse, Response};
use http_body_util::{BodyExt as _, LengthLimitError, Limited};
use serde_json::{Value, json};

use crate::credential::Authority;
use crate::error::{GatewayCode, Refusal};
use crate::otel::CallSpan;
use crate::rpc::{self, Message, Method as RpcMethod};
use crate::scopes::{self, Need};
use crate::upstream::{copy_back, read_whole, streamed, tapped};
use crate::witness::Seen;
use crate::{Gateway, MAX_LIST_BODY, SESSION, headers, tools};
use mandate_core::token::Outcome;

pub(crate) async fn metadata(State(gw): State<Gateway>) -> Response {
    let s = &gw.inner;
    let mut meta = json!({
        "resource": s.config.resource,
        "authorization_servers": [s.issuer],
        "bearer_methods_supported": ["header"],
        "dpop_signing_alg_values_supported": ["EdDSA", "ES256"],
        "dpop_bound_access_tokens_required": true,
        "authorization_details_types_supported": [scopes::MCP],
    });
    if let Some(name) = &s.config.resource_name {
        meta["resource_name"] = json!(name);
    }
    axum::Json(meta).into_response()
}

pub(crate) async fn not_found() -> Response {
    Refusal::new(GatewayCode::NotFound, "no such path").into_response()
}

/// `POST` to the MCP endpoint: one JSON-RPC message.
pub(crate) async fn post(State(gw): State<Gateway>, headers: HeaderMap, body: Body) -> Response {
    match gw.post(&headers, body).await {
        Ok(res) => res,
        Err(refusal) => {
            tracing::info!(code = refusal.code.as_str(), message = %refusal.message, "call refused");
            refusal.into_response()
        }
    }
}

impl Gateway {
    async fn post(&self, headers: &HeaderMap, body: Body) -> Result<Response, Refusal> {
        let started = std::time::SystemTime::now();
        let s = &self.inner;
        self.check_origin(headers)?;
        let who = self.authority(&Method::POST, headers).await?;
        let bytes = read_body(body, s.config.max_body).await?;
        if !is_json(headers) {
            return Err(Refusal::rpc(rpc::RpcError {
                code: rpc::RpcCode::InvalidRequest,
                message: "the body must be application/json",
            }));
        }
        let message = rpc::read(&bytes).map_err(Refusal::rpc)?;
        let version = headers::version(headers).map_err(Refusal::rpc)?;
        let call = match message {
            Message::Call(call) => call,
            Message::Response { id } => {
                // A reply to the server's own request, on a session only.
                self.check_session(headers, &who)?;
                if !headers.contains_key(SESSION) || !who.member(&s.config.resource) {
                    return Err(Refusal::new(
                        GatewayCode::Session,
                        "a response is taken only within a session of this caller's",
                    )
                    .to(Some(&id)));
                }
                let res = self
                    .forward(Method::POST, headers, Some(bytes), None)
                    .await?;
                return Ok(streamed(res));
            }
        };
        let span = s
            .config
            .spans
            .as_ref()
            .map(|spans| spans.begin(headers, &call, started));
        let answer = self
            .call(headers, &who, &call, version, bytes, span.as_ref())
            .await;
        if let Some(span) = span {
            span.end(answer.as_ref().map(|res| res.status().as_u16()));
        }
        answer
    }

    /// The rest of a `POST` of a call, from the MCP headers on, within its
    /// span, if the gateway makes spans.
    async fn call(
        &self,
        headers: &HeaderMap,
        who: &Authority,
        call: &rpc::Call,
        version: Option<&'static str>,
        bytes: Bytes,
        span: Option<&CallSpan>,
    ) -> Result<Response, Refusal> {
        let s = &self.inner;
        let id = call.id.as_ref();
        headers::check(headers, call, version).map_err(|e| Refusal::rpc(e).to(id))?;
        self.check_session(headers, who).map_err(|r| r.to(id))?;
        // The trace the call belongs to: the gateway's span's, or else the
        // one it carried.
        let trace = match span {
            Some(span) => {
                if let Some(grant) = who.chain.last() {
                    span.grant(&grant.to_string());
                }
                Some(span.trace_id())
            }
            None => crate::trace::of_call(headers, call).map(str::to_owned),
        };
        let traceparent = span.and_then(CallSpan::traceparent);
        // The witness's account of an action (a tool, resource or prompt
        // call) made under a grant, whatever becomes of it from here.
        let witnessed = s.witness.as_ref().and_then(|w| {
            Some((
                w,
                Seen::of(call, &who.chain, &who.holder, &bytes, trace.as_deref())?,
            ))
        });
        let refused = |r: Refusal| {
            if let Some((w, seen)) = &witnessed {
                w.record(seen, Outcome::Refused);
            }
            r
        };
        if call.method == RpcMethod::ToolsCall
            && !tools::callable(call.target.as_deref().unwrap_or_default(), &s.catalog)
        {
            return Err(refused(
                Refusal::new(
                    GatewayCode::NoSuchTool,
                    "the gateway passes no calls to a tool by this name",
                )
                .to(id),
            ));
        }
        let need = Need::of(call);
        self.authorize(who, &need, id).map_err(refused)?;
        self.admit(who, &need, headers, &bytes)
            .map_err(|r| refused(r.to(id)))?;
        tracing::info!(
            agent = %who.agent, method = %call.method_name, target = ?call.target,
            trace = trace.as_deref(), "call passed"
        );
        let res = match self
            .forward(Method::POST, headers, Some(bytes), traceparent.as_ref())
            .await
        {
            Ok(res) => res,
            Err(r) => {
                if let Some((w, seen)) = &witnessed {
                    w.record(seen, Outcome::Failed);
                }
                return Err(r);
            }
        };
        if call.method == RpcMethod::Initialize
            && let Some(session) = res.headers().get(SESSION).and_then(|v| v.to_str().ok())
            && !s.sessions.open(session, &who.holder)
        {
            tracing::warn!("the upstream gave out a session another key holds");
            return Err(Refusal::new(
                GatewayCode::Upstream,
                "the upstream gave out a session another caller holds",
            )
            .to(id));
        }
        match (call.method, id, witnessed) {
            (RpcMethod::ToolsList, Some(id), _) => self.filtered_list(res, id, who).await,
            (_, Some(id), Some((w, seen))) => Ok(tapped(res, id.clone(), w.clone(), seen)),
            _ => Ok(streamed(res)),
        }
    }

    /// The upstream's `tools/list` answer, with only the tools `who` may
    /// call.
    async fn filtered_list(
        &self,
        res: reqwest::Response,
        id: &Value,
        who: &Authority,
    ) -> Result<Response, Refusal> {
        let s = &self.inner;
        let status = res.status();
        let headers = res.headers().clone();
        let sse = headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|t| t.starts_with("text/event-stream"));
        let body = read_whole(res, MAX_LIST_BODY).await?;
        let resource = &s.config.resource;
        let may_call = |name: &str| who.permits(resource, name, None);
        let filter = |result: &mut Value| tools::filter(result, &s.catalog, &may_call);
        let body = tools::rewrite(&body, sse, id, &filter).ok_or_else(|| {
            Refusal::new(
                GatewayCode::Upstream,
                "the upstream's tool list could not be read",
            )
        })?;
        let mut out = Response::new(Body::from(body));
        *out.status_mut() = status;
        copy_back(&headers, out.headers_mut());
        Ok(out)
    }
}

/// `GET` to the MCP endpoint: the server's stream of a session (before
/// 2026-07-28).
pub(crate) async fn stream(State(gw): State<Gateway>, headers: HeaderMap) -> Response {
    let run = async {
        gw.check_origin(&headers)?;
        let who = gw.authority(&Method::GET, &headers).await?;
        gw.check_session(&headers, &who)?;
        gw.authorize(&who, &Need::Member, None)?;
        gw.forward(Method::GET, &headers, None, None).await
    };
    match run.await {
        Ok(res) => streamed(res),
        Err(refusal) => refusal.into_response(),
    }
}

/// `DELETE` to the MCP endpoint: ends a session (before 2026-07-28).
pub(crate) async fn end_session(State(gw): State<Gateway>, headers: HeaderMap) -> Response {
    let run = async {
        gw.check_origin(&headers)?;
        let who = gw.authority(&Method::DELETE, &headers).await?;
        gw.check_session(&headers, &who)?;
        let res = gw.forward(Method::DELETE, &headers, None, None).await?;
        if res.status().is_success()
            && let Some(id) = headers.get(SESSION).and_then(|v| v.to_str().ok())
        {
            gw.inner.sessions.close(id);
        }
        Ok::<_, Refusal>(res)
    };
    match run.await {
        Ok(res) => streamed(res),
        Err(refusal) => refusal.into_response(),
    }
}

fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|t| t.split(';').next())
        .is_some_and(|t| t.trim().eq_ignore_ascii_case("application/json"))
}

/// The whole request body, refused past `max` bytes.
async fn read_body(body: Body, max: usize) -> Result<Bytes, Refusal> {
    match Limited::new(body, max).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.downcast_ref::<LengthLimitError>().is_some() => Err(Refusal::new(
            GatewayCode::TooLarge,
            format!("the body is longer than {max} bytes"),
        )),
        Err(_) => Err(Refusal::rpc(rpc::RpcError {
            code: rpc::RpcCode::Parse,
            message: "the body could not be read",
        })),
    }
}
