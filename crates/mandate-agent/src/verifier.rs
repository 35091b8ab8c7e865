//! The verifier a resource server embeds, as an axum middleware.
//!
//! ```ignore
//! let verifier = ResourceVerifier::new(config, broker_metadata, revocations);
//! let app = Router::new()
//!     .route("/files/{*path}", get(read_file))
//!     .layer(axum::middleware::from_fn_with_state(verifier, require_mandate));
//! ```
//!
//! Each call must present a mandate (the chain, the binding, the keys) and
//! a fresh proof of possession by the leaf agent for this method and URL.
//! The middleware checks the chain offline, the proof, the call's scope
//! and revocation, then hands the handler a [`Mandated`]. It refuses every
//! call, with `revocation.stale`, while its revocation set is older than
//! the configured bound: it fails closed.

use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use mandate_core::scope::AuthorizationDetail;
use mandate_core::{
    AgentId, Call, Context, HttpCall, KeySet, MemoryReplayCache, Policy, Principal, PublicKey,
    TokenId, Verifier,
};
use serde_json::json;

use crate::agent::unix_now;
use crate::client::Metadata;
use crate::mandate::{BINDING_HEADER, CHAIN_HEADER, KEYS_HEADER, POP_HEADER, bindings_of};
use crate::revocations::Revocations;

/// What one call needs: a detail of this type, permitting this action on
/// this location.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Need {
    /// The detail type, such as `files`.
    pub kind: String,
    /// The action, such as `read`.
    pub action: String,
    /// The location the call touches, such as `https://files.example/q3.txt`.
    pub location: String,
}

/// Maps a call to what it needs; `None` lets any verified mandate through.
pub type NeedFn = dyn Fn(&Method, &str) -> Option<Need> + Send + Sync;

/// How a resource server checks calls.
pub struct VerifierConfig {
    /// The origin this server is reached at, as agents address it
    /// (`http://127.0.0.1:8080`); proofs name it in `htu`.
    pub origin: String,
    /// The longest the revocation set may go without news from the broker
    /// before every call is refused.
    pub max_staleness: Duration,
    /// What each call needs.
    pub needs: Box<NeedFn>,
}

/// The verified facts a handler receives.
#[derive(Debug, Clone)]
pub struct Mandated {
    /// The user the agent acts for.
    pub principal: Principal,
    /// The agent making the call (the chain's leaf).
    pub agent: AgentId,
    /// The leaf grant's id.
    pub grant: TokenId,
    /// The chain's effective scopes.
    pub scopes: Vec<AuthorizationDetail>,
    /// How many grants the chain has.
    pub depth: usize,
}

/// The shared verifier state; cheap to clone.
#[derive(Clone)]
pub struct ResourceVerifier {
    inner: Arc<Inner>,
}

struct Inner {
    config: VerifierConfig,
    issuer: String,
    broker_keys: Vec<PublicKey>,
    policy: Policy,
    chains: Verifier,
    replay: MemoryReplayCache,
    revocations: Revocations,
}

impl std::fmt::Debug for ResourceVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResourceVerifier")
            .field("origin", &self.inner.config.origin)
            .field("issuer", &self.inner.issuer)
            .finish_non_exhaustive()
    }
}

impl ResourceVerifier {
    /// A verifier trusting the broker described by `metadata`, with its
    /// revocations followed by `revocations`.
    pub fn new(
        config: VerifierConfig,
        metadata: &Metadata,
        revocations: Revocations,
    ) -> Result<ResourceVerifier, mandate_core::Error> {
        let broker_keys = metadata.keys()?;
        Ok(ResourceVerifier {
            inner: Arc::new(Inner {
                config,
                issuer: metadata.issuer.clone(),
                broker_keys,
                policy: Policy::default(),
                chains: Verifier::new(10_000),
                replay: MemoryReplayCache::new(100_000),
                revocations,
            }),
        })
    }

    /// A verifier trusting the broker at `url`: reads its metadata, then
    /// follows its revocations for as long as the verifier lives.
    pub async fn from_broker(
        url: &str,
        config: VerifierConfig,
    ) -> Result<ResourceVerifier, crate::AgentError> {
        let broker = crate::Broker::new(url)?;
        let metadata = broker.metadata().await?;
        Ok(ResourceVerifier::new(
            config,
            &metadata,
            Revocations::follow(broker),
        )?)
    }

    /// Checks one call's headers.
    pub fn check(
        &self,
        method: &Method,
        path: &str,
        headers: &HeaderMap,
    ) -> Result<Mandated, Refusal> {
        let s = &*self.inner;
        match s.revocations.age() {
            Some(age) if age <= s.config.max_staleness => {}
            _ => return Err(Refusal::stale()),
        }
        let header = |name: &str| {
            headers
                .get(name)
                .map(|v| v.to_str().map_err(|_| Refusal::malformed(name)))
                .transpose()
        };
        let chain: Vec<&str> = header(CHAIN_HEADER)?
            .ok_or_else(Refusal::missing)?
            .split(',')
            .map(str::trim)
            .collect();
        let binding = header(BINDING_HEADER)?.ok_or_else(Refusal::missing)?;
        let mut keys = KeySet::new();
        for raw in header(KEYS_HEADER)?
            .ok_or_else(Refusal::missing)?
            .split(',')
        {
            let key = mandate_core::base64url::decode(raw.trim())
                .and_then(|b| <[u8; 32]>::try_from(b.as_slice()).ok())
                .ok_or_else(|| Refusal::malformed(KEYS_HEADER))
                .and_then(|b| PublicKey::from_bytes(&b).map_err(Refusal::token))?;
            keys.insert(key);
        }
        let pop = header(POP_HEADER)?;
        let now = unix_now();
        let bindings = bindings_of(binding, &s.broker_keys, &s.issuer, &s.policy, now)
            .map_err(Refusal::token)?;
        let uri = format!("{}{path}", s.config.origin);
        let http = HttpCall {
            method: method.as_str(),
            uri: &uri,
        };
        let need = (s.config.needs)(method, path);
        let call = need.as_ref().map(|n| Call {
            kind: &n.kind,
            action: &n.action,
            location: &n.location,
            identifier: None,
            amount: None,
        });
        let verified = s
            .revocations
            .with(|revoked| {
                let cx = Context {
                    now,
                    policy: s.policy,
                    keys: &keys,
                    bindings: &bindings,
                    revoked,
                };
                s.chains
                    .verify_call(&chain, pop, &http, call.as_ref(), &cx, &s.replay)
            })
            .map_err(Refusal::token)?;
        Ok(Mandated {
            principal: verified.principal().clone(),
            agent: verified.leaf_agent(),
            grant: verified.leaf().id(),
            scopes: verified.scopes().to_vec(),
            depth: verified.links().len(),
        })
    }
}

/// Why a call was refused: a status and a stable code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// The HTTP status.
    pub status: StatusCode,
    /// The stable code.
    pub code: &'static str,
    /// The explanation, which never echoes the presented tokens.
    pub message: String,
}

impl Refusal {
    fn stale() -> Refusal {
        Refusal {
            status: StatusCode::SERVICE_UNAVAILABLE,
            code: "revocation.stale",
            message: "the revocation list is not current; refusing until it is".into(),
        }
    }

    fn missing() -> Refusal {
        Refusal {
            status: StatusCode::UNAUTHORIZED,
            code: "mandate.missing",
            message:
                "present a mandate: Mandate-Chain, Mandate-Binding, Mandate-Keys and Mandate-PoP"
                    .into(),
        }
    }

    fn malformed(header: &str) -> Refusal {
        Refusal {
            status: StatusCode::BAD_REQUEST,
            code: "mandate.malformed",
            message: format!("the {header} header is malformed"),
        }
    }

    fn token(e: mandate_core::Error) -> Refusal {
        let status = match e.code() {
            "chain.revoked" | "call.out_of_scope" => StatusCode::FORBIDDEN,
            "pop.cache_full" => StatusCode::SERVICE_UNAVAILABLE,
            _ => StatusCode::UNAUTHORIZED,
        };
        Refusal {
            status,
            code: e.code(),
            message: e.to_string(),
        }
    }
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        (
            self.status,
            Json(json!({ "code": self.code, "message": self.message })),
        )
            .into_response()
    }
}

/// The middleware: verifies the call, then passes it on with [`Mandated`]
/// in its extensions, or answers the refusal.
pub async fn require_mandate(
    State(verifier): State<ResourceVerifier>,
    mut req: Request,
    next: Next,
) -> Response {
    let path = req.uri().path().to_owned();
    match verifier.check(req.method(), &path, req.headers()) {
        Ok(mandated) => {
            tracing::info!(agent = %mandated.agent, grant = %mandated.grant, %path, "call accepted");
            req.extensions_mut().insert(mandated);
            next.run(req).await
        }
        Err(refusal) => {
            tracing::info!(code = refusal.code, %path, "call refused");
            refusal.into_response()
        }
    }
}
