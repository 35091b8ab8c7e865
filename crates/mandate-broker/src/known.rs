//! Which agents each user has granted something to: the lane a request
//! waits in (docs/broker.md, "A fair inbox"), remembered so that filing a
//! request need not ask the store each time.
//!
//! A grant, once stored, is never deleted, so an agent known to a user
//! stays known, and that answer is kept (up to a bound, past which the
//! store is asked again). That an agent is *not* known is kept only for
//! [`UNKNOWN_FOR`], because another instance on the same store may record
//! a grant meanwhile; grants this instance records count at once. An agent
//! approved on another instance may so wait in the new lane for at most
//! that long.

use std::collections::{HashMap, HashSet};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use mandate_core::{Principal, Thumbprint};
use mandate_store::{Store, StoreError};

/// How long an answer that an agent is unknown to a user is trusted.
pub(crate) const UNKNOWN_FOR: Duration = Duration::from_secs(2);
/// The most (user, agent) pairs remembered as known.
const MAX_KNOWN: usize = 100_000;
/// The most (user, agent) pairs remembered as unknown.
const MAX_UNKNOWN: usize = 65_536;

type Pair = (Box<str>, Thumbprint);

/// The remembered answers.
#[derive(Debug, Default)]
pub(crate) struct KnownAgents {
    maps: Mutex<Maps>,
}

#[derive(Debug, Default)]
struct Maps {
    known: HashSet<Pair>,
    /// Each pair found unknown, with when.
    unknown: HashMap<Pair, Instant>,
}

impl KnownAgents {
    fn maps(&self) -> MutexGuard<'_, Maps> {
        // Every operation leaves the maps consistent.
        self.maps.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether `principal` has granted anything to `agent`: from memory
    /// when it can be trusted, else from the store.
    pub(crate) async fn is_known(
        &self,
        store: &Store,
        principal: &Principal,
        agent: &Thumbprint,
    ) -> Result<bool, StoreError> {
        let pair: Pair = (principal.as_str().into(), *agent);
        {
            let maps = self.maps();
            if maps.known.contains(&pair) {
                return Ok(true);
            }
            if maps
                .unknown
                .get(&pair)
                .is_some_and(|at| at.elapsed() < UNKNOWN_FOR)
            {
                return Ok(false);
            }
        }
        let known = store.has_granted(principal, agent).await?;
        let mut maps = self.maps();
        if known {
            maps.remember_known(pair);
        } else {
            maps.remember_unknown(pair);
        }
        Ok(known)
    }

    /// `principal` has just granted something to `agent`, here.
    pub(crate) fn granted(&self, principal: &Principal, agent: &Thumbprint) {
        self.maps()
            .remember_known((principal.as_str().into(), *agent));
    }
}

impl Maps {
    fn remember_known(&mut self, pair: Pair) {
        self.unknown.remove(&pair);
        if self.known.len() >= MAX_KNOWN {
            // Forgetting costs only a lookup in the store later.
            self.known.clear();
        }
        self.known.insert(pair);
    }

    fn remember_unknown(&mut self, pair: Pair) {
        if self.unknown.len() >= MAX_UNKNOWN {
            self.unknown.retain(|_, at| at.elapsed() < UNKNOWN_FOR);
            // Still crowded (a flood of new keys): start again, so that
            // each pass over the map is paid for by as many inserts.
            if self.unknown.len() >= MAX_UNKNOWN / 2 {
                self.unknown.clear();
            }
        }
        self.unknown.insert(pair, Instant::now());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair(n: u8) -> Pair {
        (
            "https://idp.example#alice".into(),
            Thumbprint::of_ed25519(&[n; 32]),
        )
    }

    #[test]
    fn a_grant_here_makes_an_agent_known_at_once() {
        let mut maps = Maps::default();
        maps.remember_unknown(pair(1));
        maps.remember_known(pair(1));
        assert!(maps.known.contains(&pair(1)));
        assert!(!maps.unknown.contains_key(&pair(1)));
    }

    #[test]
    fn the_unknown_are_bounded() {
        let mut maps = Maps::default();
        for n in 0..MAX_UNKNOWN + 10 {
            let mut key = [0; 32];
            key[..8].copy_from_slice(&(n as u64).to_le_bytes());
            maps.remember_unknown(("p#q".into(), Thumbprint::of_ed25519(&key)));
            assert!(maps.unknown.len() <= MAX_UNKNOWN);
        }
    }
}
