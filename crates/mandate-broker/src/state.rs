//! What every handler shares: the store, the broker's key, the clock and
//! the limits.

use std::sync::Arc;

use mandate_core::{Policy, SigningKey, UnixTime};
use mandate_store::Store;

use crate::checkpoint::Checkpoints;
use crate::guard::{AllowedHost, AllowedOrigin, Guard};
use crate::hub::Hub;
use crate::known::KnownAgents;
use crate::oidc::OidcVerifier;
use crate::ratelimit::{Limiter, Rate};
use crate::replay::Replay;

/// The current time, as Unix seconds. Tests pass a fixed or stepped clock.
pub type Clock = Arc<dyn Fn() -> UnixTime + Send + Sync>;

/// The guards' numbers.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Limits {
    /// The most pending requests one user may have from agents they
    /// approved before (and their endorsed sub-agents): the known lane.
    pub max_pending_known: i64,
    /// The most pending requests one user may have from other agents:
    /// the new lane.
    pub max_pending_new: i64,
    /// The most pending requests one agent (for a sub-agent, the agent
    /// that endorsed it) may have for one user.
    pub max_pending_per_agent: i64,
    /// The longest a request may wait for a decision, in seconds.
    pub max_request_wait: i64,
    /// After the user denies an agent's request, how long the same agent
    /// asking for the same scopes is refused (`request.cooldown`), in
    /// seconds; 0 turns the cooldown off.
    pub denial_cooldown: i64,
    /// Requests one agent key may file.
    pub agent_requests: Rate,
    /// Requests that may be filed to one user in each lane, by all the
    /// lane's agents together.
    pub user_prompts: Rate,
    /// Calls one agent key may make otherwise (polls).
    pub agent_calls: Rate,
    /// Calls one signed-in user may make.
    pub user_calls: Rate,
    /// Receipts one leaf agent may report.
    pub receipts: Rate,
    /// Revocations one signer (user key or agent) may post.
    pub revocations: Rate,
    /// How often an idle SSE stream sends a comment, so that followers can
    /// tell a quiet stream from a dead one; also how often the revocation
    /// feed gets a fresh signed checkpoint (`mandate-checkpoint+jwt`).
    pub sse_keepalive: std::time::Duration,
    /// The most followers of the revocation feed's stream at once, on
    /// this instance.
    pub max_followers: usize,
    /// How long a user key's binding lasts, in seconds
    /// ([`crate::keys::BINDING_LIFETIME`] by default).
    pub binding_lifetime: i64,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_pending_known: 50,
            max_pending_new: 20,
            max_pending_per_agent: 5,
            max_request_wait: 3600,
            denial_cooldown: 600,
            agent_requests: Rate {
                burst: 20,
                per_second: 1.0 / 3.0,
            },
            user_prompts: Rate {
                burst: 30,
                per_second: 0.1,
            },
            agent_calls: Rate {
                burst: 120,
                per_second: 10.0,
            },
            user_calls: Rate {
                burst: 240,
                per_second: 20.0,
            },
            receipts: Rate {
                burst: 120,
                per_second: 20.0,
            },
            revocations: Rate {
                burst: 30,
                per_second: 1.0,
            },
            sse_keepalive: std::time::Duration::from_secs(5),
            max_followers: 1024,
            binding_lifetime: crate::keys::BINDING_LIFETIME,
        }
    }
}

/// One limiter per kind of call.
#[derive(Debug)]
pub(crate) struct Limiters {
    pub agent_requests: Limiter,
    /// `user_prompts`, for the known lane.
    pub known_prompts: Limiter,
    /// `user_prompts`, for the new lane.
    pub new_prompts: Limiter,
    pub agent_calls: Limiter,
    pub user_calls: Limiter,
    pub receipts: Limiter,
    pub revocations: Limiter,
}

impl Limiters {
    fn new(l: &Limits) -> Limiters {
        Limiters {
            agent_requests: Limiter::new(l.agent_requests),
            known_prompts: Limiter::new(l.user_prompts),
            new_prompts: Limiter::new(l.user_prompts),
            agent_calls: Limiter::new(l.agent_calls),
            user_calls: Limiter::new(l.user_calls),
            receipts: Limiter::new(l.receipts),
            revocations: Limiter::new(l.revocations),
        }
    }
}

/// How many verified links the broker keeps (two generations of half
/// each): a parsed grant takes 1 to 2 KiB, so 10 to 20 MiB at most.
const LINK_CACHE: usize = 10_000;

/// The shared state of the broker.
#[derive(Clone)]
pub struct AppState {
    pub(crate) inner: Arc<Inner>,
    /// The front door's allow-lists ([`crate::guard`]).
    pub(crate) guard: Arc<Guard>,
    /// The OAuth side: access-token keys and resources ([`crate::oauth`]).
    pub(crate) oauth: Arc<crate::oauth::OAuth>,
    /// The keys trusted to witness calls to resources
    /// ([`crate::witness_service`]).
    pub(crate) witnesses: Arc<[crate::witness_service::Witness]>,
    /// What the witnesses' MCP servers say of their tools.
    pub(crate) described: Arc<crate::witness_service::Described>,
}

pub(crate) struct Inner {
    pub store: Store,
    pub key: SigningKey,
    pub public_url: String,
    pub oidc: OidcVerifier,
    pub clock: Clock,
    pub policy: Policy,
    pub limits: Limits,
    pub replay: Replay,
    pub hub: Hub,
    /// Which agents each user granted something to: a request's lane.
    pub known: KnownAgents,
    /// What a chain's check reads from the store: bindings, revocations.
    pub chain_state: Arc<crate::chain_state::ChainState>,
    pub limiters: Limiters,
    pub checkpoints: Checkpoints,
    /// Places for followers of the revocation feed's stream.
    pub followers: Arc<tokio::sync::Semaphore>,
    /// Chain verification, with a cache of links whose signatures
    /// verified (protocol.md 6.3): a chain presented again (a receipt's,
    /// a token exchange's) skips their signature checks, and nothing else.
    pub verifier: mandate_core::Verifier,
}

impl AppState {
    /// State for a broker reachable at `public_url` (scheme, host and port,
    /// no trailing slash), signing with `key`. It answers requests whose
    /// `Host` is `public_url`'s authority, and from no web origin: see
    /// [`AppState::allowing`].
    pub fn new(
        store: Store,
        key: SigningKey,
        public_url: &str,
        oidc: OidcVerifier,
        clock: Clock,
        limits: Limits,
    ) -> AppState {
        let replay = Replay::for_store(&store);
        let oauth = Arc::new(crate::oauth::OAuth {
            keys: crate::oauth::keys::TokenKeys::of(&key),
            resources: Vec::new(),
            code_flow: None,
        });
        AppState {
            inner: Arc::new(Inner {
                store,
                key,
                public_url: public_url.trim_end_matches('/').to_owned(),
                oidc,
                clock,
                policy: Policy::default(),
                limits,
                replay,
                hub: Hub::default(),
                known: KnownAgents::default(),
                chain_state: Arc::default(),
                limiters: Limiters::new(&limits),
                checkpoints: Checkpoints::default(),
                followers: Arc::new(tokio::sync::Semaphore::new(limits.max_followers)),
                verifier: mandate_core::Verifier::new(LINK_CACHE),
            }),
            guard: Arc::new(Guard::for_url(public_url)),
            oauth,
            witnesses: Arc::new([]),
            described: Arc::default(),
        }
    }

    /// Also trusts `witnesses` to report calls to their resources.
    pub fn witnessed_by(mut self, witnesses: Vec<crate::witness_service::Witness>) -> AppState {
        self.witnesses = witnesses.into();
        self
    }

    /// The witness whose key is `jkt`, if the broker trusts one.
    pub(crate) fn witness(
        &self,
        jkt: &mandate_core::Thumbprint,
    ) -> Option<&crate::witness_service::Witness> {
        self.witnesses.iter().find(|w| w.jkt == *jkt)
    }

    /// Also issues OAuth access tokens for `resources` ([`crate::oauth`]).
    pub fn serving(self, resources: Vec<crate::oauth::Resource>) -> AppState {
        self.with_oauth(|oauth| oauth.resources = resources)
    }

    /// Also serves the authorization code flow ([`crate::oauth::authorize`]).
    pub fn with_code_flow(self, flow: crate::oauth::authorize::CodeFlow) -> AppState {
        self.with_oauth(|oauth| oauth.code_flow = Some(flow))
    }

    /// Changes the OAuth side. Call it before the state is cloned: a
    /// shared OAuth side is rebuilt from its keys and resources, without
    /// its code flow.
    fn with_oauth(mut self, change: impl FnOnce(&mut crate::oauth::OAuth)) -> AppState {
        let mut oauth = Arc::try_unwrap(self.oauth).unwrap_or_else(|shared| crate::oauth::OAuth {
            keys: crate::oauth::keys::TokenKeys::of(&self.inner.key),
            resources: shared.resources.clone(),
            code_flow: None,
        });
        change(&mut oauth);
        self.oauth = Arc::new(oauth);
        self
    }

    /// The OAuth side.
    pub(crate) fn oauth(&self) -> &crate::oauth::OAuth {
        &self.oauth
    }

    /// Also answers requests whose `Host` is one of `hosts`, and requests
    /// from web pages of `origins`.
    pub fn allowing(
        mut self,
        hosts: impl IntoIterator<Item = AllowedHost>,
        origins: impl IntoIterator<Item = AllowedOrigin>,
    ) -> AppState {
        self.guard = Arc::new(self.guard.as_ref().clone().with(hosts, origins));
        self
    }

    /// The front door's allow-lists.
    pub fn guard(&self) -> &Guard {
        &self.guard
    }

    /// The store.
    pub fn store(&self) -> &Store {
        &self.inner.store
    }

    pub(crate) fn now(&self) -> UnixTime {
        (self.inner.clock)()
    }
}
