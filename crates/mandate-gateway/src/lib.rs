//! `mandate-gateway`: Mandate's authority, per tool, in front of an MCP
//! server that speaks Streamable HTTP.
//!
//! The gateway is an OAuth-protected resource (RFC 9728) whose
//! authorization server is the Mandate broker. Each call must present
//! either a DPoP-bound access token for the gateway's resource URL, or a
//! Mandate chain with its proof of possession; the gateway reads the
//! JSON-RPC message ([`rpc`]), holds the MCP headers to it ([`headers`]),
//! and lets it through only if the grant behind the credential covers it
//! ([`scopes`]): a tool's name is an action of the scope type `mcp`. A
//! call outside the grant gets `403` with an `insufficient_scope`
//! challenge naming the scope it needs, which the user can approve in
//! the desktop app (step-up). `tools/list` shows only what the caller may
//! call ([`tools`]). The client's credential never goes upstream: the
//! gateway sends its own, if the upstream needs one.
//!
//! docs/mcp.md is the guide.

#![forbid(unsafe_code)]

pub mod access_token;
pub mod credential;
pub mod error;
pub mod headers;
pub mod rpc;
pub mod scopes;
pub mod sessions;
pub mod tools;
pub mod upstream;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use http_body_util::{BodyExt as _, LengthLimitError, Limited};
use mandate_agent::{ResourceVerifier, VerifierConfig};
use serde_json::{Value, json};

use crate::credential::{Authority, Credentials};
use crate::error::{GatewayCode, Refusal};
use crate::rpc::{Message, Method as RpcMethod};
use crate::scopes::Need;
use crate::sessions::Sessions;
use crate::tools::Catalog;
use crate::upstream::{Upstream, copy_back, read_whole, streamed};

pub use crate::error::GatewayCode as Code;

/// The default for [`Config::max_body`]: 1 MiB.
pub const DEFAULT_MAX_BODY: usize = 1024 * 1024;

/// The largest `tools/list` answer the gateway reads to filter: 8 MiB.
pub const MAX_LIST_BODY: usize = 8 * 1024 * 1024;

/// The well-known path of RFC 9728 protected resource metadata.
pub const METADATA_PATH: &str = "/.well-known/oauth-protected-resource";

/// The session header of the protocol before 2026-07-28.
const SESSION: &str = "mcp-session-id";

/// How the gateway is set up.
#[derive(Debug, Clone)]
pub struct Config {
    /// The MCP endpoint's URL, as clients reach it: the resource tokens
    /// are for (`aud`), scopes' location, and what proofs name.
    pub resource: String,
    /// The upstream MCP endpoint.
    pub upstream: String,
    /// Headers the gateway adds to every upstream request: its own
    /// credential, if the upstream needs one.
    pub upstream_headers: Vec<(HeaderName, HeaderValue)>,
    /// The largest request body taken, in bytes.
    pub max_body: usize,
    /// The `Origin`s taken; a request with any other is refused.
    pub allowed_origins: Vec<String>,
    /// A name for the resource metadata's `resource_name`.
    pub resource_name: Option<String>,
    /// How old the revocation set may be before every call is refused.
    pub max_staleness: Duration,
    /// The most proofs remembered, of each kind (DPoP, and Mandate's
    /// proofs of possession), each for two minutes; one key's take at
    /// most a sixteenth ([`DEFAULT_REPLAY_CAPACITY`]).
    pub replay_capacity: usize,
}

/// The default for [`Config::replay_capacity`]: 400,000 proofs of each
/// kind, about 200 calls a second from one key, sustained, in some 45 MB
/// at most each.
pub const DEFAULT_REPLAY_CAPACITY: usize = 400_000;

/// The gateway; cheap to clone.
#[derive(Clone)]
pub struct Gateway {
    inner: Arc<Inner>,
}

struct Inner {
    config: Config,
    path: String,
    issuer: String,
    credentials: Credentials,
    catalog: Catalog,
    sessions: Sessions,
    upstream: Upstream,
}

impl std::fmt::Debug for Gateway {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gateway")
            .field("resource", &self.inner.config.resource)
            .field("upstream", &self.inner.config.upstream)
            .finish_non_exhaustive()
    }
}

/// Why the gateway cannot start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The resource URL is not one the gateway can serve.
    #[error(
        "the resource URL {0:?} must be https:// (or http:// to this machine) with a path, and a valid scope location"
    )]
    Resource(String),
    /// The broker could not be read.
    #[error("reading the broker: {0}")]
    Broker(String),
    /// The broker issues no tokens for the resource.
    #[error("the broker issues no access tokens for {0}: start it with --oauth-resource {0}")]
    NotServed(String),
}

impl Gateway {
    /// A gateway trusting the broker at `broker` (`https://`, or
    /// `http://` to this machine): reads its metadata and follows its
    /// revocations for as long as the gateway lives.
    pub async fn start(config: Config, broker: &str) -> Result<Gateway, StartError> {
        let resource = url_parts(&config.resource)
            .filter(|_| scopes::valid_location(&config.resource))
            .ok_or_else(|| StartError::Resource(config.resource.clone()))?;
        let path = resource.1.to_owned();
        let origin = resource.0.to_owned();
        let http =
            mandate_agent::client::http_client().map_err(|e| StartError::Broker(e.to_string()))?;
        let verifier = ResourceVerifier::from_broker(
            broker,
            VerifierConfig {
                origin,
                max_staleness: config.max_staleness,
                // The gateway authorizes from the body itself
                // (`check_presented`); nothing goes through a need.
                needs: Box::new(|_, _, _| Err(mandate_agent::NoNeed::Undeclared)),
                max_body: config.max_body,
                replay_capacity: config.replay_capacity,
            },
        )
        .await
        .map_err(|e| StartError::Broker(e.to_string()))?;
        let broker_url = mandate_agent::client::broker_url(broker)
            .map_err(|e| StartError::Broker(e.to_string()))?;
        let meta: Value = http
            .get(format!(
                "{broker_url}/.well-known/oauth-authorization-server"
            ))
            .timeout(Duration::from_secs(10))
            .send()
            .await
            .map_err(|e| StartError::Broker(e.without_url().to_string()))?
            .json()
            .await
            .map_err(|e| StartError::Broker(e.without_url().to_string()))?;
        let issuer = meta["issuer"]
            .as_str()
            .ok_or_else(|| StartError::Broker("its OAuth metadata has no issuer".into()))?
            .to_owned();
        let alg = match meta["mandate_resources"][&config.resource].as_str() {
            Some("EdDSA") => "EdDSA",
            Some("ES256") => "ES256",
            _ => return Err(StartError::NotServed(config.resource.clone())),
        };
        let jwks_uri = meta["jwks_uri"]
            .as_str()
            .ok_or_else(|| StartError::Broker("its OAuth metadata has no jwks_uri".into()))?
            .to_owned();
        let keys = access_token::TokenKeys::new(jwks_uri, alg, http);
        let credentials = Credentials::new(
            config.resource.clone(),
            path.clone(),
            issuer.clone(),
            Some(keys),
            verifier,
            config.replay_capacity,
        );
        let upstream = Upstream::new(config.upstream.clone(), config.upstream_headers.clone())
            .map_err(|e| StartError::Broker(e.to_string()))?;
        Ok(Gateway {
            inner: Arc::new(Inner {
                config,
                path,
                issuer,
                credentials,
                catalog: Catalog::default(),
                sessions: Sessions::default(),
                upstream,
            }),
        })
    }

    /// The gateway's routes: the MCP endpoint and its resource metadata.
    pub fn router(&self) -> Router {
        let s = &self.inner;
        Router::new()
            .route(METADATA_PATH, get(metadata))
            .route(&format!("{METADATA_PATH}{}", s.path), get(metadata))
            .route(&s.path, get(stream).post(post).delete(end_session))
            .fallback(not_found)
            .with_state(self.clone())
    }

    /// The resource metadata's URL.
    pub fn metadata_url(&self) -> String {
        let s = &self.inner;
        let origin = credential::origin_of(&s.config.resource);
        format!("{origin}{METADATA_PATH}{}", s.path)
    }

    /// The `WWW-Authenticate` challenge, with `error` and its description.
    fn challenge(&self, error: Option<(&str, &str)>, scope: Option<&str>) -> String {
        let quote = |s: &str| s.replace(['"', '\\'], "'");
        let mut c = format!(
            "DPoP algs=\"EdDSA ES256\", resource_metadata=\"{}\"",
            self.metadata_url()
        );
        if let Some((error, description)) = error {
            c.push_str(&format!(
                ", error=\"{error}\", error_description=\"{}\"",
                quote(description)
            ));
        }
        if let Some(scope) = scope {
            c.push_str(&format!(", scope=\"{}\"", quote(scope)));
        }
        c
    }

    async fn authority(&self, method: &Method, headers: &HeaderMap) -> Result<Authority, Refusal> {
        let now = mandate_agent::unix_now();
        let challenge = |e: Option<(&str, &str)>| self.challenge(e, None);
        self.inner
            .credentials
            .check(method, headers, now, &challenge)
            .await
    }

    fn check_origin(&self, headers: &HeaderMap) -> Result<(), Refusal> {
        let Some(origin) = headers.get(header::ORIGIN) else {
            return Ok(());
        };
        let allowed = origin
            .to_str()
            .is_ok_and(|o| self.inner.config.allowed_origins.iter().any(|a| a == o));
        if allowed {
            Ok(())
        } else {
            Err(Refusal::new(
                GatewayCode::Origin,
                "this origin may not call the gateway",
            ))
        }
    }

    fn check_session(&self, headers: &HeaderMap, who: &Authority) -> Result<(), Refusal> {
        match headers.get(SESSION).map(HeaderValue::to_str) {
            None => Ok(()),
            Some(Ok(id)) if self.inner.sessions.held_by(id, &who.holder) => Ok(()),
            Some(_) => Err(Refusal::new(
                GatewayCode::Session,
                "no session by this id was opened by this caller",
            )),
        }
    }

    /// Refuses `need` unless `who` holds it.
    fn authorize(&self, who: &Authority, need: &Need, id: Option<&Value>) -> Result<(), Refusal> {
        let resource = &self.inner.config.resource;
        let held = match need {
            Need::Member => who.member(resource),
            Need::Action { action, identifier } => {
                who.permits(resource, action, identifier.as_deref())
            }
        };
        if held {
            return Ok(());
        }
        let scope = scopes::challenge_scope(&who.scopes, resource, need);
        let (message, tool) = match need {
            Need::Action {
                action,
                identifier: None,
            } => (
                format!("the grant does not cover the tool {action}: ask the user for it"),
                Some(action.as_str()),
            ),
            Need::Action { action, .. } => (
                format!("the grant does not cover {action} of this one: ask the user for it"),
                None,
            ),
            Need::Member => (
                "the grant holds no mcp scope at this gateway".to_owned(),
                None,
            ),
        };
        let mut data = json!({
            "resource": resource,
            "authorization_details": scopes::details_json(need, resource),
            "scope": scope,
        });
        if let Some(tool) = tool {
            data["tool"] = json!(tool);
            if let Some(hints) = self.inner.catalog.hints(tool) {
                data["hints"] = json!(hints);
            }
        }
        Err(Refusal::new(GatewayCode::InsufficientScope, message)
            .data(data)
            .to(id)
            .challenge(self.challenge(
                Some(("insufficient_scope", "the grant does not cover this call")),
                Some(&scope),
            )))
    }

    async fn forward(
        &self,
        method: Method,
        headers: &HeaderMap,
        body: Option<Bytes>,
    ) -> Result<reqwest::Response, Refusal> {
        self.inner.upstream.send(method, headers, body).await
    }
}

/// The origin and path of an `https://` URL, or an `http://` one to this
/// machine, with a path.
fn url_parts(url: &str) -> Option<(&str, &str)> {
    let parsed = reqwest::Url::parse(url).ok()?;
    if !mandate_agent::client::secure_or_loopback(&parsed)
        || parsed.query().is_some()
        || parsed.fragment().is_some()
        || parsed.path() == "/"
    {
        return None;
    }
    let origin = credential::origin_of(url);
    Some((origin, &url[origin.len()..]))
}

async fn metadata(State(gw): State<Gateway>) -> Response {
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

async fn not_found() -> Response {
    Refusal::new(GatewayCode::NotFound, "no such path").into_response()
}

/// `POST` to the MCP endpoint: one JSON-RPC message.
async fn post(State(gw): State<Gateway>, headers: HeaderMap, body: Body) -> Response {
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
                let res = self.forward(Method::POST, headers, Some(bytes)).await?;
                return Ok(streamed(res));
            }
        };
        let id = call.id.as_ref();
        headers::check(headers, &call, version).map_err(|e| Refusal::rpc(e).to(id))?;
        if call.method != RpcMethod::Initialize {
            self.check_session(headers, &who).map_err(|r| r.to(id))?;
        }
        if call.method == RpcMethod::ToolsCall
            && !tools::callable(call.target.as_deref().unwrap_or_default(), &s.catalog)
        {
            return Err(Refusal::new(
                GatewayCode::NoSuchTool,
                "the gateway passes no calls to a tool by this name",
            )
            .to(id));
        }
        let need = Need::of(&call);
        self.authorize(&who, &need, id)?;
        tracing::info!(
            agent = %who.agent, method = %call.method_name, target = ?call.target,
            "call passed"
        );
        let res = self.forward(Method::POST, headers, Some(bytes)).await?;
        if call.method == RpcMethod::Initialize
            && let Some(session) = res.headers().get(SESSION).and_then(|v| v.to_str().ok())
        {
            s.sessions.open(session, &who.holder);
        }
        match (call.method, id) {
            (RpcMethod::ToolsList, Some(id)) => self.filtered_list(res, id, &who).await,
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
async fn stream(State(gw): State<Gateway>, headers: HeaderMap) -> Response {
    let run = async {
        gw.check_origin(&headers)?;
        let who = gw.authority(&Method::GET, &headers).await?;
        gw.check_session(&headers, &who)?;
        gw.authorize(&who, &Need::Member, None)?;
        gw.forward(Method::GET, &headers, None).await
    };
    match run.await {
        Ok(res) => streamed(res),
        Err(refusal) => refusal.into_response(),
    }
}

/// `DELETE` to the MCP endpoint: ends a session (before 2026-07-28).
async fn end_session(State(gw): State<Gateway>, headers: HeaderMap) -> Response {
    let run = async {
        gw.check_origin(&headers)?;
        let who = gw.authority(&Method::DELETE, &headers).await?;
        gw.check_session(&headers, &who)?;
        let res = gw.forward(Method::DELETE, &headers, None).await?;
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
