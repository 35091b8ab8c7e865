//! What every handler shares: the store, the broker's key, the clock and
//! the limits.

use std::sync::Arc;

use mandate_core::{MemoryReplayCache, Policy, SigningKey, UnixTime};
use mandate_store::Store;

use crate::hub::Hub;
use crate::oidc::OidcVerifier;

/// The current time, as Unix seconds. Tests pass a fixed or stepped clock.
pub type Clock = Arc<dyn Fn() -> UnixTime + Send + Sync>;

/// The guards' numbers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// The most pending requests one user may have.
    pub max_pending_per_user: i64,
    /// The longest a request may wait for a decision, in seconds.
    pub max_request_wait: i64,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_pending_per_user: 50,
            max_request_wait: 3600,
        }
    }
}

/// The shared state of the broker.
#[derive(Clone)]
pub struct AppState {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub store: Store,
    pub key: SigningKey,
    pub public_url: String,
    pub oidc: OidcVerifier,
    pub clock: Clock,
    pub policy: Policy,
    pub limits: Limits,
    pub replay: MemoryReplayCache,
    pub hub: Hub,
}

impl AppState {
    /// State for a broker reachable at `public_url` (scheme, host and port,
    /// no trailing slash), signing with `key`.
    pub fn new(
        store: Store,
        key: SigningKey,
        public_url: &str,
        oidc: OidcVerifier,
        clock: Clock,
        limits: Limits,
    ) -> AppState {
        AppState {
            inner: Arc::new(Inner {
                store,
                key,
                public_url: public_url.trim_end_matches('/').to_owned(),
                oidc,
                clock,
                policy: Policy::default(),
                limits,
                replay: MemoryReplayCache::new(100_000),
                hub: Hub::default(),
            }),
        }
    }

    /// The store.
    pub fn store(&self) -> &Store {
        &self.inner.store
    }

    pub(crate) fn now(&self) -> UnixTime {
        (self.inner.clock)()
    }
}
