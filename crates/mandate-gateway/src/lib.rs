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
//! It depends on mandate-core (tokens, scopes, DPoP) and mandate-agent
//! (the verifier of mandates and the revocation feed it follows), never on
//! the broker: it reaches the broker over HTTP, as any resource server
//! does. Its terms: the *resource* is the MCP endpoint's URL, which tokens
//! name as `aud` and scopes as their location; the *upstream* is the MCP
//! server behind it; an *authority* is a verified credential's user,
//! caller and scopes.
//!
//! docs/mcp.md is the guide.

#![forbid(unsafe_code)]

pub mod access_token;
pub mod credential;
mod endpoint;
pub mod error;
pub mod headers;
pub mod otel;
pub mod rpc;
pub mod scopes;
pub mod sessions;
mod strict;
pub mod tools;
pub mod trace;
pub mod upstream;
pub mod witness;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, header};
use axum::routing::get;
use mandate_agent::{ResourceVerifier, VerifierConfig};
use serde_json::{Value, json};

use crate::credential::{Authority, Credentials};
use crate::error::{GatewayCode, Refusal};
use crate::scopes::Need;
use crate::sessions::Sessions;
use crate::tools::Catalog;
use crate::upstream::Upstream;

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
    /// The key the gateway signs witness receipts with (see [`witness`]);
    /// `None` signs none. The broker must trust it for the resource
    /// (`--witness URI=THUMBPRINT`).
    pub witness: Option<witness::WitnessKey>,
    /// Where the gateway exports a span of each call ([`otel`]); `None`
    /// makes none, and passes the trace context upstream as it came.
    pub spans: Option<otel::Spans>,
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
    catalog: Arc<Catalog>,
    sessions: Sessions,
    upstream: Upstream,
    witness: Option<Arc<witness::Witness>>,
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
#[non_exhaustive]
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
                clock_skew: mandate_agent::DEFAULT_CLOCK_SKEW,
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
        let catalog = Arc::new(Catalog::default());
        let witness = config.witness.clone().map(|key| {
            witness::Witness::start(
                key,
                config.resource.clone(),
                &broker_url,
                http.clone(),
                catalog.clone(),
            )
        });
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
                catalog,
                sessions: Sessions::default(),
                upstream,
                witness,
            }),
        })
    }

    /// Reports the witness receipts still queued, giving the broker up
    /// to `within`; call after the server has stopped taking calls. False
    /// if some were left (they are logged).
    pub async fn stop(&self, within: Duration) -> bool {
        match &self.inner.witness {
            Some(witness) => witness.stop(within).await,
            None => true,
        }
    }

    /// The gateway's routes: the MCP endpoint and its resource metadata.
    pub fn router(&self) -> Router {
        let s = &self.inner;
        Router::new()
            .route(METADATA_PATH, get(endpoint::metadata))
            .route(
                &format!("{METADATA_PATH}{}", s.path),
                get(endpoint::metadata),
            )
            .route(
                &s.path,
                get(endpoint::stream)
                    .post(endpoint::post)
                    .delete(endpoint::end_session),
            )
            .fallback(endpoint::not_found)
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

    /// Holds an action `who` may take to what its grants ask of each call
    /// (a confirmation, `max_calls`), and counts it.
    fn admit(
        &self,
        who: &Authority,
        need: &Need,
        headers: &HeaderMap,
        body: &[u8],
    ) -> Result<(), Refusal> {
        let Need::Action { action, identifier } = need else {
            return Ok(());
        };
        let need = mandate_agent::Need {
            kind: scopes::MCP.to_owned(),
            action: action.clone(),
            location: self.inner.config.resource.clone(),
            identifier: identifier.clone(),
            amount: None,
        };
        self.inner.credentials.admit(who, &need, headers, body)
    }

    async fn forward(
        &self,
        method: Method,
        headers: &HeaderMap,
        body: Option<Bytes>,
        traceparent: Option<&HeaderValue>,
    ) -> Result<reqwest::Response, Refusal> {
        self.inner
            .upstream
            .send(method, headers, body, traceparent)
            .await
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
