//! What checking a chain reads from the store, kept in memory between the
//! writes that change it: each principal's user-key bindings, and which
//! grants are known not to be revoked.
//!
//! Only a revocation, a key's removal or a binding changes what a check
//! reads. On this instance, the code that writes one calls
//! [`ChainState::changed`] once it is committed and before it answers, so
//! a check that starts after the write was answered reads the store
//! again. Writes on other instances (several brokers on one Postgres)
//! reach it through the event hub ([`crate::hub`]): LISTEN/NOTIFY at once,
//! or its poll within [`crate::hub::POLL`]. Until then a check on this
//! instance may pass a chain another instance has just revoked, which is
//! what docs/oauth.md and docs/threat-model.md say.
//!
//! A read that raced a change is not kept: each read notes the generation
//! before it goes to the store, and its answer is cached only if no
//! change came in between.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};

use mandate_core::{Principal, PublicKey, Thumbprint, TokenId, UnixTime};
use mandate_store::{EventKind, StoreError};
use tokio::sync::OnceCell;
use tokio::sync::broadcast::error::RecvError;

use crate::AppState;

/// At most this many principals' bindings are kept; past it, all are
/// dropped and read again.
const MAX_PRINCIPALS: usize = 10_000;
/// At most this many grants known not revoked.
const MAX_GRANTS: usize = 100_000;

/// The cache; one per broker instance.
#[derive(Debug, Default)]
pub(crate) struct ChainState {
    cached: Mutex<Cached>,
    /// Set once the cache follows the hub; a cache that does not follow
    /// it keeps nothing.
    following: OnceCell<()>,
    /// Cleared when the hub's feed ends: from then on, nothing is kept.
    live: AtomicBool,
}

#[derive(Debug, Default)]
struct Cached {
    /// Bumped by every change.
    generation: u64,
    bindings: HashMap<String, Arc<Vec<BoundKey>>>,
    unrevoked: HashSet<TokenId>,
}

/// What a chain's check needs of a binding.
#[derive(Debug, Clone, Copy)]
pub(crate) struct BoundKey {
    /// The user key's thumbprint.
    pub jkt: Thumbprint,
    /// The user key.
    pub key: PublicKey,
    /// When the binding ends.
    pub expires_at: UnixTime,
}

impl ChainState {
    fn cached(&self) -> MutexGuard<'_, Cached> {
        // Every operation leaves the maps consistent.
        self.cached.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A revocation, a key's removal or a binding was written: forget
    /// everything.
    pub(crate) fn changed(&self) {
        let mut c = self.cached();
        c.generation = c.generation.wrapping_add(1);
        c.bindings.clear();
        c.unrevoked.clear();
    }

    /// Whether the cache may keep what it reads: it follows the hub,
    /// starting to on first use.
    async fn keeps(self: &Arc<Self>, state: &AppState) -> bool {
        let started = self
            .following
            .get_or_try_init(|| async {
                let rx = state.inner.hub.subscribe(&state.inner.store).await?;
                self.live.store(true, Ordering::SeqCst);
                tokio::spawn(follow(Arc::downgrade(self), rx));
                Ok::<(), StoreError>(())
            })
            .await;
        started.is_ok() && self.live.load(Ordering::SeqCst)
    }

    /// `principal`'s bindings, as the store holds them (expired ones
    /// included).
    pub(crate) async fn bindings_of(
        self: &Arc<Self>,
        state: &AppState,
        principal: &Principal,
    ) -> Result<Arc<Vec<BoundKey>>, StoreError> {
        let keeps = self.keeps(state).await;
        let generation = {
            let c = self.cached();
            if keeps && let Some(b) = c.bindings.get(principal.as_str()) {
                return Ok(Arc::clone(b));
            }
            c.generation
        };
        let read: Arc<Vec<BoundKey>> = Arc::new(
            state
                .inner
                .store
                .bindings_of(principal)
                .await?
                .into_iter()
                .map(|b| BoundKey {
                    jkt: b.jkt,
                    key: b.key,
                    expires_at: b.expires_at,
                })
                .collect(),
        );
        if keeps {
            let mut c = self.cached();
            if c.generation == generation {
                if c.bindings.len() >= MAX_PRINCIPALS {
                    c.bindings.clear();
                }
                c.bindings
                    .insert(principal.as_str().to_owned(), Arc::clone(&read));
            }
        }
        Ok(read)
    }

    /// Those of `grants` that are revoked.
    pub(crate) async fn revoked_among(
        self: &Arc<Self>,
        state: &AppState,
        grants: &[TokenId],
    ) -> Result<HashSet<TokenId>, StoreError> {
        let keeps = self.keeps(state).await;
        let (generation, unknown): (u64, Vec<TokenId>) = {
            let c = self.cached();
            let unknown = grants
                .iter()
                .filter(|id| !(keeps && c.unrevoked.contains(*id)))
                .copied()
                .collect();
            (c.generation, unknown)
        };
        let mut revoked = HashSet::new();
        let mut clear = Vec::new();
        for id in unknown {
            if state.inner.store.is_revoked(&id).await? {
                revoked.insert(id);
            } else {
                clear.push(id);
            }
        }
        if keeps && !clear.is_empty() {
            let mut c = self.cached();
            if c.generation == generation {
                if c.unrevoked.len() + clear.len() > MAX_GRANTS {
                    c.unrevoked.clear();
                }
                c.unrevoked.extend(clear);
            }
        }
        Ok(revoked)
    }
}

/// Forgets everything on each change the hub publishes, from any
/// instance; and stops keeping anything if the feed ends. A feed that
/// fell behind may have skipped a change: that forgets everything too.
async fn follow(
    cache: Weak<ChainState>,
    mut rx: tokio::sync::broadcast::Receiver<Arc<crate::hub::Published>>,
) {
    loop {
        let received = rx.recv().await;
        let Some(cache) = cache.upgrade() else {
            return;
        };
        match received {
            Ok(p) => {
                if matches!(
                    p.event.kind,
                    EventKind::Revoked | EventKind::BindingStored | EventKind::KeyEnrolled
                ) {
                    cache.changed();
                }
            }
            Err(RecvError::Lagged(_)) => cache.changed(),
            Err(RecvError::Closed) => {
                cache.live.store(false, Ordering::SeqCst);
                cache.changed();
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_change_forgets_everything_and_moves_the_generation_on() {
        let cache = ChainState::default();
        {
            let mut c = cache.cached();
            c.unrevoked.insert(TokenId::of("a.b.c"));
            c.bindings.insert("p".into(), Arc::new(Vec::new()));
        }
        let before = cache.cached().generation;
        cache.changed();
        let c = cache.cached();
        assert!(c.unrevoked.is_empty() && c.bindings.is_empty());
        assert_ne!(c.generation, before);
    }
}
