//! A bounded cache of grants whose signatures already verified, as links
//! of a chain that passed every rule, keyed by token id. It lets a resource server skip the signature checks of a chain
//! it has seen; it never skips the time, binding, linkage, attenuation or
//! revocation checks, which run on every verification.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use crate::chain::Link;
use crate::jws::TokenId;

/// Two generations of entries: lookups promote from the older one, and
/// when the newer one fills, the older one is dropped whole. Memory stays
/// within `capacity` entries and every operation is O(1).
#[derive(Debug)]
pub struct LinkCache {
    inner: Mutex<Generations>,
    half: usize,
}

#[derive(Debug, Default)]
struct Generations {
    current: HashMap<TokenId, Arc<Link>>,
    previous: HashMap<TokenId, Arc<Link>>,
}

impl LinkCache {
    /// A cache that holds at most `capacity` links (at least 2).
    pub fn new(capacity: usize) -> LinkCache {
        LinkCache {
            inner: Mutex::new(Generations::default()),
            half: (capacity / 2).max(1),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Generations> {
        // A panic while holding the lock cannot leave the maps inconsistent:
        // each operation is a single insert, remove or swap.
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub(crate) fn get(&self, id: &TokenId) -> Option<Arc<Link>> {
        let mut g = self.lock();
        if let Some(link) = g.current.get(id) {
            return Some(Arc::clone(link));
        }
        let link = g.previous.remove(id)?;
        g.put(Arc::clone(&link), self.half);
        Some(link)
    }

    pub(crate) fn insert(&self, link: Arc<Link>) {
        self.lock().put(link, self.half);
    }

    /// How many links are cached.
    pub fn len(&self) -> usize {
        let g = self.lock();
        g.current.len() + g.previous.len()
    }

    /// Whether the cache is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Generations {
    fn put(&mut self, link: Arc<Link>, half: usize) {
        if self.current.len() >= half {
            self.previous = std::mem::take(&mut self.current);
        }
        self.current.insert(link.id, link);
    }
}
