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
//! and revocation, then hands the handler a [`Mandated`].
//!
//! It fails closed:
//! - A call the server's [`NeedFn`] declares no [`Need`] for is refused
//!   (`call.no_need`) before its mandate is looked at. There is no way to
//!   let "any verified mandate" through.
//! - A need carries the call's identifier and amount, read from the path
//!   or the body; the scope check then holds the call to a pinned
//!   identifier and to the per-call money limit, in its currency. A call
//!   that states no amount is permitted only by a detail without a money
//!   limit (`call.amount_missing`), so a route that spends must say how
//!   much. Totals across calls stay the server's to count.
//! - It counts calls against `max_calls`, per grant and detail, for every
//!   grant of the chain (docs/protocol.md 6.7), in memory until the grant
//!   expires: a call past a limit is refused with `limit.exceeded`. So a
//!   "just this once" grant (`max_calls: 1`) serves one call. Money totals
//!   stay the server's to count.
//! - A call that a scope with `confirm` covers (5.8) must carry the user's
//!   confirmation of that exact call, method, URI with query, and body, in
//!   [`CONFIRMATION_HEADER`]; each is accepted once (`confirm.*`).
//! - The body is read whole, up to [`VerifierConfig::max_body`] bytes
//!   (`call.too_large`), so the need function can read it; the handler
//!   then gets the same bytes.
//! - Every call is refused, with `revocation.stale`, while the revocation
//!   set is older than the configured bound: while the latest broker
//!   checkpoint it caught up to is older than
//!   [`VerifierConfig::max_staleness`] ([`DEFAULT_MAX_STALENESS`] unless
//!   the server chooses), or before it caught up to any.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use axum::Json;
use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http_body_util::{BodyExt as _, LengthLimitError, Limited};
use mandate_core::scope::{self, AuthorizationDetail, Money};
use mandate_core::token::ConfirmationClaims;
use mandate_core::{
    AgentId, BindingSet, Call, Context, HttpCall, KeySet, MemoryReplayCache, Policy, Principal,
    PublicKey, TokenId, VerifiedChain, Verifier,
};
use serde_json::json;

use crate::agent::unix_now;
use crate::client::Metadata;
use crate::counts::{CallCounts, Uncounted};
use crate::mandate::{
    BINDING_HEADER, CHAIN_HEADER, CONFIRMATION_HEADER, KEYS_HEADER, POP_HEADER, bindings_of,
};
use crate::revocations::Revocations;

/// What one call needs: a detail of this type, permitting this action on
/// this location, for this resource and this much money when the call
/// names them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Need {
    /// The detail type, such as `files`.
    pub kind: String,
    /// The action, such as `read`.
    pub action: String,
    /// The location the call touches, such as `https://files.example/q3.txt`.
    pub location: String,
    /// The one resource the call touches, when it names one (an account,
    /// a repository). A detail that pins an identifier permits only calls
    /// that state that same identifier.
    pub identifier: Option<String>,
    /// The money the call commits, when it commits any. A detail with a
    /// money limit permits it only in the limit's currency and up to the
    /// limit. A call with no amount is permitted only by a detail without
    /// a money limit: a route that spends must state what it spends.
    pub amount: Option<Money>,
}

/// Why the server can say nothing of what a call needs. Either way the
/// call is refused, before its mandate is looked at.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum NoNeed {
    /// The server declares no need for this method and path: 403
    /// `call.no_need`.
    Undeclared,
    /// The body does not say what the call needs (not the expected JSON,
    /// or without the amount or identifier the route needs): 400
    /// `call.unreadable`, with this message. It is sent to the caller.
    Unreadable(&'static str),
}

/// Maps a call, by its method, path and body (empty when it has none), to
/// what it needs. There is no answer that lets any mandate through: a
/// call it has no [`Need`] for is refused.
pub type NeedFn = dyn Fn(&Method, &str, &[u8]) -> Result<Need, NoNeed> + Send + Sync;

/// The default for [`VerifierConfig::max_body`]: 64 KiB.
pub const DEFAULT_MAX_BODY: usize = 64 * 1024;

/// The default for [`VerifierConfig::max_staleness`]: 30 s. The broker
/// signs a checkpoint every 5 s by default, so this allows a few lost ones
/// and some disagreement between the two clocks; a revocation that is
/// held back is honoured, as `revocation.stale`, at most this long after
/// the last checkpoint before it.
pub const DEFAULT_MAX_STALENESS: Duration = Duration::from_secs(30);

/// How a resource server checks calls.
pub struct VerifierConfig {
    /// The origin this server is reached at, as agents address it
    /// (`http://127.0.0.1:8080`); proofs name it in `htu`.
    pub origin: String,
    /// How old the revocation set may be before every call is refused
    /// (`revocation.stale`): its age is now minus the time of the latest
    /// broker checkpoint it caught up to. [`DEFAULT_MAX_STALENESS`] suits
    /// most servers; keep it well above the broker's checkpoint interval
    /// (5 s by default) plus the disagreement between the two clocks.
    pub max_staleness: Duration,
    /// What each call needs; a call it declares nothing for is refused.
    pub needs: Box<NeedFn>,
    /// The largest body read, in bytes; a call with a longer one is refused
    /// with 413 `call.too_large`. The body is held in memory while the
    /// call is checked. [`DEFAULT_MAX_BODY`] suits JSON calls.
    pub max_body: usize,
    /// The most proofs of possession remembered, each for two minutes
    /// (its window and the clock skew allowed), so that none is used twice.
    /// One agent's proofs under one chain may take at most a sixteenth;
    /// past that its calls get 503 `pop.cache_full` until older proofs
    /// expire. [`DEFAULT_REPLAY_CAPACITY`] holds about 50 calls a second
    /// from one agent, sustained, in some 11 MB at most.
    pub replay_capacity: usize,
    /// How far this server's clock and the signers' may disagree: a grant
    /// is accepted up to this long past its `exp` (docs/protocol.md 6.4).
    /// [`DEFAULT_CLOCK_SKEW`] (60 s) unless the server's clock is kept
    /// closer; a short lease ends this long late at most.
    pub clock_skew: Duration,
}

/// The default for [`VerifierConfig::clock_skew`]: 60 s, the protocol's.
pub const DEFAULT_CLOCK_SKEW: Duration = Duration::from_secs(60);

/// The default for [`VerifierConfig::replay_capacity`].
pub const DEFAULT_REPLAY_CAPACITY: usize = 100_000;

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
    /// The ids of the chain's grants, root first.
    pub chain: Vec<TokenId>,
    /// The chain itself, for [`ResourceVerifier::admit`].
    verified: VerifiedChain,
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
    counts: CallCounts,
    revocations: Revocations,
    /// Binding tokens verified, by id: an agent presents the same one on
    /// every call, and its signature need not be checked every time. A
    /// binding's own `exp` is still checked at each use.
    bindings: Mutex<HashMap<TokenId, (Arc<BindingSet>, mandate_core::UnixTime)>>,
}

/// The most binding tokens remembered.
const BINDING_CACHE: usize = 4096;

impl Inner {
    /// The bindings the binding token `compact` establishes, verified
    /// once under the broker's keys.
    fn bindings(
        &self,
        compact: &str,
        now: mandate_core::UnixTime,
    ) -> Result<Arc<BindingSet>, mandate_core::Error> {
        let id = TokenId::of(compact);
        let lock = || self.bindings.lock().unwrap_or_else(PoisonError::into_inner);
        // Past its `exp` it is verified again, for the rule's own code.
        if let Some((known, exp)) = lock().get(&id)
            && now < *exp
        {
            return Ok(known.clone());
        }
        let set = Arc::new(bindings_of(
            compact,
            &self.broker_keys,
            &self.issuer,
            &self.policy,
            now,
        )?);
        // It verified, so its claims are the broker's.
        let exp = mandate_core::token::peek::<mandate_core::token::BindingClaims>(compact)?
            .1
            .exp;
        let mut cache = lock();
        if cache.len() >= BINDING_CACHE {
            cache.clear();
        }
        cache.insert(id, (set.clone(), exp));
        Ok(set)
    }

    fn current(&self) -> bool {
        self.revocations
            .age()
            .is_some_and(|age| age <= self.config.max_staleness)
    }
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
        let replay = MemoryReplayCache::new(config.replay_capacity);
        let config_capacity = config.replay_capacity;
        let policy = Policy {
            clock_skew: i64::try_from(config.clock_skew.as_secs()).unwrap_or(i64::MAX),
            ..Policy::default()
        };
        Ok(ResourceVerifier {
            inner: Arc::new(Inner {
                config,
                issuer: metadata.issuer.clone(),
                broker_keys,
                policy,
                chains: Verifier::new(10_000),
                replay,
                counts: CallCounts::new(config_capacity),
                revocations,
                bindings: Mutex::new(HashMap::new()),
            }),
        })
    }

    /// A verifier trusting the broker at `url` (`https://`, or `http://`
    /// to this machine): reads its metadata, then follows its revocations
    /// for as long as the verifier lives.
    pub async fn from_broker(
        url: &str,
        config: VerifierConfig,
    ) -> Result<ResourceVerifier, crate::AgentError> {
        let broker = crate::Broker::new(url)?;
        let metadata = broker.metadata().await?;
        let revocations = Revocations::follow(broker, &metadata)?;
        Ok(ResourceVerifier::new(config, &metadata, revocations)?)
    }

    /// Checks one call: what it needs, from its method, `target` (the
    /// path and the query, as in the request line) and `body`, then its
    /// headers.
    pub fn check(
        &self,
        method: &Method,
        target: &str,
        headers: &HeaderMap,
        body: &[u8],
    ) -> Result<Mandated, Refusal> {
        let s = &*self.inner;
        if !s.current() {
            return Err(Refusal::stale());
        }
        let path = target.split_once('?').map_or(target, |(path, _)| path);
        // What the call needs comes first: it costs no signature check.
        let need = (s.config.needs)(method, path, body).map_err(Refusal::no_need)?;
        self.verify(method, target, headers, Some((&need, body)))
    }

    /// Checks the mandate a call presents (its chain, binding, keys, proof
    /// of possession and revocation) without asking what the call needs:
    /// for a server that authorizes the call itself from
    /// [`Mandated::scopes`], such as a gateway that reads the method from
    /// the body. Nothing of the call's scope is checked here.
    pub fn check_presented(
        &self,
        method: &Method,
        path: &str,
        headers: &HeaderMap,
    ) -> Result<Mandated, Refusal> {
        if !self.inner.current() {
            return Err(Refusal::stale());
        }
        self.verify(method, path, headers, None)
    }

    /// Whether the revocation set is within its staleness bound.
    pub fn is_current(&self) -> bool {
        self.inner.current()
    }

    /// The revocations this verifier follows.
    pub fn revocations(&self) -> &Revocations {
        &self.inner.revocations
    }

    /// Holds a call whose mandate [`ResourceVerifier::check_presented`]
    /// accepted to what `need` asks, as [`ResourceVerifier::check`] holds
    /// one: its chain must permit it (`call.out_of_scope`), state an amount
    /// where only money-limited scopes cover it, carry the user's
    /// confirmation of this exact call (`target` with its query, and
    /// `body`) where a scope asks for one, and stay within every
    /// `max_calls` of the chain, which it then counts.
    pub fn admit(
        &self,
        mandated: &Mandated,
        method: &Method,
        target: &str,
        headers: &HeaderMap,
        body: &[u8],
        need: &Need,
    ) -> Result<(), Refusal> {
        let call = need.call();
        let verified = &mandated.verified;
        if !scope::permits(verified.scopes(), &call) {
            return Err(Refusal::token(mandate_core::Error::OutOfScope));
        }
        let ((), now) = self.in_context(method, target, headers, |presented, http, cx| {
            self.confirmed(verified, &call, http, body, presented.confirmation, cx)
        })?;
        self.held(verified, &call, now)
    }

    /// Counts a call that `need` describes, permitted by an authority
    /// other than a chain presented here (an access token the broker
    /// minted from one), against `max_calls` in each grant it rests on:
    /// given by id, `exp`, and the details of the grant that can permit
    /// the call, each with its index in the grant. The counts are the
    /// ones [`ResourceVerifier::check`] keeps, so a grant's calls are
    /// counted once whichever way they come.
    pub fn count_grants<'a, G, D>(&self, grants: G, need: &Need) -> Result<(), Refusal>
    where
        G: IntoIterator<Item = (TokenId, mandate_core::UnixTime, D)>,
        D: IntoIterator<Item = (usize, &'a AuthorizationDetail)>,
    {
        self.inner
            .counts
            .take_grants(grants, &need.call(), unix_now())
            .map_err(Refusal::uncounted)
    }

    fn verify(
        &self,
        method: &Method,
        target: &str,
        headers: &HeaderMap,
        need: Option<(&Need, &[u8])>,
    ) -> Result<Mandated, Refusal> {
        let s = &*self.inner;
        let call = need.map(|(need, _)| need.call());
        let (verified, now) = self.in_context(method, target, headers, |presented, http, cx| {
            let verified = s.chains.verify_call(
                &presented.chain,
                presented.pop,
                http,
                call.as_ref(),
                cx,
                &s.replay,
            )?;
            if let (Some(call), Some((_, body))) = (&call, need) {
                self.confirmed(&verified, call, http, body, presented.confirmation, cx)?;
            }
            Ok(verified)
        })?;
        if let Some(call) = &call {
            self.held(&verified, call, now)?;
        }
        let depth = verified.links().len();
        let chain = verified.links().map(|l| l.id()).collect();
        Ok(Mandated {
            principal: verified.principal().clone(),
            agent: verified.leaf_agent(),
            grant: verified.leaf().id(),
            scopes: verified.scopes().to_vec(),
            depth,
            chain,
            verified,
        })
    }

    /// Runs `f` on the call's mandate headers, the call as signers name it
    /// (its method and this server's URI for `target`), and the context to
    /// verify in (now, the bindings, the presented keys, the revocations
    /// as they stand); gives back what `f` does, and when.
    fn in_context<T>(
        &self,
        method: &Method,
        target: &str,
        headers: &HeaderMap,
        f: impl FnOnce(&Presented<'_>, &HttpCall<'_>, &Context<'_>) -> Result<T, mandate_core::Error>,
    ) -> Result<(T, mandate_core::UnixTime), Refusal> {
        let s = &*self.inner;
        let presented = Presented::of(headers)?;
        let now = unix_now();
        let bindings = s.bindings(presented.binding, now).map_err(Refusal::token)?;
        let uri = format!("{}{target}", s.config.origin);
        let http = HttpCall {
            method: method.as_str(),
            uri: &uri,
        };
        let done = s.revocations.with(|revoked| {
            let cx = Context {
                now,
                policy: s.policy,
                keys: &presented.keys,
                bindings: &*bindings,
                revoked,
            };
            f(&presented, &http, &cx)
        });
        done.map(|t| (t, now)).map_err(Refusal::token)
    }

    /// Checks the user's confirmation of this exact call, where a scope
    /// of `verified` asks for one, and spends it.
    fn confirmed(
        &self,
        verified: &VerifiedChain,
        call: &Call<'_>,
        http: &HttpCall<'_>,
        body: &[u8],
        confirmation: Option<&str>,
        cx: &Context<'_>,
    ) -> Result<(), mandate_core::Error> {
        if scope::needs_confirmation(verified.scopes(), call) {
            let token = confirmation.ok_or(mandate_core::Error::ConfirmationRequired)?;
            ConfirmationClaims::verify(token, verified, http, body, cx, &self.inner.replay)?;
        }
        Ok(())
    }

    /// Holds a call its chain permits to a stated amount where only
    /// money-limited scopes cover it, and counts it against `max_calls`.
    fn held(
        &self,
        verified: &VerifiedChain,
        call: &Call<'_>,
        now: mandate_core::UnixTime,
    ) -> Result<(), Refusal> {
        // `permits` lets a call with no amount through a money limit; here
        // such a call needs a detail without one.
        if call.amount.is_none() && !permitted_without_money_limit(verified.scopes(), call) {
            return Err(Refusal::amount_missing());
        }
        self.inner
            .counts
            .take(verified, call, now)
            .map_err(Refusal::uncounted)
    }
}

/// The mandate headers of a call, read but not yet verified.
struct Presented<'h> {
    chain: Vec<&'h str>,
    binding: &'h str,
    keys: KeySet,
    pop: Option<&'h str>,
    confirmation: Option<&'h str>,
}

impl<'h> Presented<'h> {
    fn of(headers: &'h HeaderMap) -> Result<Presented<'h>, Refusal> {
        let header = |name: &str| {
            headers
                .get(name)
                .map(|v| v.to_str().map_err(|_| Refusal::malformed(name)))
                .transpose()
        };
        let chain = header(CHAIN_HEADER)?
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
        Ok(Presented {
            chain,
            binding,
            keys,
            pop: header(POP_HEADER)?,
            confirmation: header(CONFIRMATION_HEADER)?,
        })
    }
}

impl Need {
    /// The scope check's view of the call (docs/protocol.md 5.7).
    pub fn call(&self) -> Call<'_> {
        Call {
            kind: &self.kind,
            action: &self.action,
            location: &self.location,
            identifier: self.identifier.as_deref(),
            amount: self.amount.as_ref(),
        }
    }
}

/// Whether a detail with no money limit permits `call`.
fn permitted_without_money_limit(scopes: &[AuthorizationDetail], call: &Call<'_>) -> bool {
    scopes
        .iter()
        .any(|d| d.limits.max_amount.is_none() && scope::permits(std::slice::from_ref(d), call))
}

mandate_core::error_codes! {
    /// The codes a resource server's verifier answers besides the
    /// protocol's (for those, see [`rule_status`]). docs/errors.md is
    /// generated from this list.
    pub enum ResourceCode {
        /// The server declares no need for this call.
        NoNeed = (
            "call.no_need",
            Some(403),
            "The server declares no scope for this method and path.",
            "Call only what the server serves; a valid mandate does not change this.",
        ),
        /// The body could not be read for its need.
        Unreadable = (
            "call.unreadable",
            Some(400),
            "The server could not read the body to learn what the call needs (the message says \
             why).",
            "Send the body the server documents.",
        ),
        /// The body is over the limit.
        TooLarge = (
            "call.too_large",
            Some(413),
            "The body is over the server's limit.",
            "Send a smaller body.",
        ),
        /// The call states no amount where one is needed.
        AmountMissing = (
            "call.amount_missing",
            Some(403),
            "The call states no amount, and only scopes with a money limit cover it.",
            "State the amount the server documents.",
        ),
        /// The call would take a grant past its `max_calls`.
        Exhausted = (
            "limit.exceeded",
            Some(403),
            "The call would take a grant of the chain past its `max_calls` (a \"just this \
             once\" grant serves one call), or, at a server that counts money, past a total.",
            "Ask the user for a new grant.",
        ),
        /// No room to count another grant's calls.
        CountsFull = (
            "limit.cache_full",
            Some(503),
            "The server counts calls against `max_calls` for as many grants as it can hold, \
             and holds that many.",
            "Retry after a while.",
        ),
        /// The revocation list is not current.
        Stale = (
            "revocation.stale",
            Some(503),
            "The server's revocation list is not current: no broker checkpoint it caught up to \
             is recent enough.",
            "Retry after a while; nothing is wrong with your mandate.",
        ),
        /// No mandate presented.
        Missing = (
            "mandate.missing",
            Some(401),
            "A mandate header is missing: `Mandate-Chain`, `Mandate-Binding`, `Mandate-Keys` or \
             `Mandate-PoP`.",
            "Send all four (docs/agents.md, On the wire).",
        ),
        /// A mandate header that is not usable.
        Malformed = (
            "mandate.malformed",
            Some(400),
            "A mandate header is not text, or a key in `Mandate-Keys` is not 32 bytes of \
             base64url.",
            "Send the headers as docs/agents.md describes.",
        ),
    }
}

/// The status a resource server answers a protocol rule with: 403 for a
/// revoked chain or key, for a call out of scope, and for a confirmation
/// missing or not for this call, 503 for a full replay cache, and 401 for
/// every other rule.
pub fn rule_status(code: &str) -> StatusCode {
    match code {
        "chain.revoked"
        | "chain.key_revoked"
        | "call.out_of_scope"
        | "confirm.required"
        | "confirm.mismatch"
        | "confirm.body_mismatch"
        | "confirm.replayed" => StatusCode::FORBIDDEN,
        "pop.cache_full" => StatusCode::SERVICE_UNAVAILABLE,
        _ => StatusCode::UNAUTHORIZED,
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
    fn of(code: ResourceCode, message: String) -> Refusal {
        Refusal {
            status: StatusCode::from_u16(code.http_status()).unwrap_or(StatusCode::BAD_REQUEST),
            code: code.as_str(),
            message,
        }
    }

    fn no_need(why: NoNeed) -> Refusal {
        match why {
            NoNeed::Undeclared => Refusal::of(
                ResourceCode::NoNeed,
                "this server declares no scope for this method and path".into(),
            ),
            NoNeed::Unreadable(message) => Refusal::unreadable(message),
        }
    }

    fn unreadable(message: &str) -> Refusal {
        Refusal::of(ResourceCode::Unreadable, message.into())
    }

    fn too_large(max: usize) -> Refusal {
        Refusal::of(
            ResourceCode::TooLarge,
            format!("the body is longer than {max} bytes"),
        )
    }

    fn amount_missing() -> Refusal {
        Refusal::of(
            ResourceCode::AmountMissing,
            "the call states no amount, and only details with a money limit cover it".into(),
        )
    }

    fn uncounted(why: Uncounted) -> Refusal {
        match why {
            Uncounted::Exhausted => Refusal::of(
                ResourceCode::Exhausted,
                "the call would take a grant past its max_calls".into(),
            ),
            Uncounted::Full => Refusal::of(
                ResourceCode::CountsFull,
                "no room to count this grant's calls; retry later".into(),
            ),
        }
    }

    fn stale() -> Refusal {
        Refusal::of(
            ResourceCode::Stale,
            "the revocation list is not current; refusing until it is".into(),
        )
    }

    fn missing() -> Refusal {
        Refusal::of(
            ResourceCode::Missing,
            "present a mandate: Mandate-Chain, Mandate-Binding, Mandate-Keys and Mandate-PoP"
                .into(),
        )
    }

    fn malformed(header: &str) -> Refusal {
        Refusal::of(
            ResourceCode::Malformed,
            format!("the {header} header is malformed"),
        )
    }

    fn token(e: mandate_core::Error) -> Refusal {
        Refusal {
            status: rule_status(e.code()),
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

/// The middleware: reads the body (up to [`VerifierConfig::max_body`]),
/// verifies the call, then passes it on, body intact, with [`Mandated`] in
/// its extensions, or answers the refusal.
pub async fn require_mandate(
    State(verifier): State<ResourceVerifier>,
    req: Request,
    next: Next,
) -> Response {
    let path = req.uri().path().to_owned();
    let target = req
        .uri()
        .path_and_query()
        .map_or_else(|| path.clone(), |t| t.as_str().to_owned());
    let (mut parts, body) = req.into_parts();
    let checked = match read_body(body, verifier.inner.config.max_body).await {
        Ok(bytes) => verifier
            .check(&parts.method, &target, &parts.headers, &bytes)
            .map(|mandated| (mandated, bytes)),
        Err(refusal) => Err(refusal),
    };
    match checked {
        Ok((mandated, bytes)) => {
            tracing::info!(agent = %mandated.agent, grant = %mandated.grant, %path, "call accepted");
            parts.extensions.insert(mandated);
            next.run(Request::from_parts(parts, Body::from(bytes)))
                .await
        }
        Err(refusal) => {
            tracing::info!(code = refusal.code, %path, "call refused");
            refusal.into_response()
        }
    }
}

/// The whole body, refused past `max` bytes.
async fn read_body(body: Body, max: usize) -> Result<Bytes, Refusal> {
    match Limited::new(body, max).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.downcast_ref::<LengthLimitError>().is_some() => Err(Refusal::too_large(max)),
        Err(_) => Err(Refusal::unreadable("the body could not be read")),
    }
}
