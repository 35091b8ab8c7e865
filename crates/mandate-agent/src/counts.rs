//! The calls a resource server counts against `max_calls` (docs/protocol.md
//! 6.7): per grant and detail, for every grant of each chain presented, so
//! that sibling chains draw on the totals of the grants they share, and a
//! "just this once" grant (`max_calls: 1`) serves one call.
//!
//! Counts live in memory, until the grant expires: a restart forgets them.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};

use mandate_core::scope::{self, AuthorizationDetail, Call};
use mandate_core::{TokenId, UnixTime, VerifiedChain};

/// How long past a grant's `exp` its counts are kept: more than any clock
/// skew a verifier allows (60 s by default).
const SKEW_MARGIN: i64 = 300;

/// Why a call cannot be counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Uncounted {
    /// It would take a grant of the chain past a `max_calls`.
    Exhausted,
    /// There is no room for another count.
    Full,
}

/// Calls counted per (grant, detail index), each with the grant's expiry.
pub(crate) struct CallCounts {
    counts: Mutex<HashMap<(TokenId, usize), (u64, UnixTime)>>,
    capacity: usize,
}

impl CallCounts {
    pub(crate) fn new(capacity: usize) -> CallCounts {
        CallCounts {
            counts: Mutex::new(HashMap::new()),
            capacity,
        }
    }

    /// Counts `call` against every grant of `chain`, or counts nothing and
    /// says why.
    pub(crate) fn take(
        &self,
        chain: &VerifiedChain,
        call: &Call<'_>,
        now: UnixTime,
    ) -> Result<(), Uncounted> {
        self.take_grants(
            chain.links().map(|link| {
                let claims = link.claims();
                (
                    link.id(),
                    claims.exp,
                    claims.authorization_details.iter().enumerate(),
                )
            }),
            call,
            now,
        )
    }

    /// Counts `call` against each grant, given by its id, its `exp` and
    /// its details (each with its index in the grant), or counts nothing
    /// and says why. In each grant it draws on a detail that permits the
    /// call: none at all when one without `max_calls` does, else the first
    /// with calls left. A grant may leave out details that cannot permit
    /// the call; the indexes keep the counts the same.
    pub(crate) fn take_grants<'a, G, D>(
        &self,
        grants: G,
        call: &Call<'_>,
        now: UnixTime,
    ) -> Result<(), Uncounted>
    where
        G: IntoIterator<Item = (TokenId, UnixTime, D)>,
        D: IntoIterator<Item = (usize, &'a AuthorizationDetail)>,
    {
        let mut counts = self.counts.lock().unwrap_or_else(PoisonError::into_inner);
        let mut draws = Vec::new();
        for (id, exp, details) in grants {
            let permitting: Vec<(usize, Option<u64>)> = details
                .into_iter()
                .filter(|(_, d)| scope::permits(std::slice::from_ref(*d), call))
                .map(|(j, d)| (j, d.limits.max_calls))
                .collect();
            if permitting.iter().any(|(_, max)| max.is_none()) {
                continue;
            }
            let open = permitting.iter().find_map(|&(j, max)| {
                let used = counts.get(&(id, j)).map_or(0, |c| c.0);
                (used < max.unwrap_or(u64::MAX)).then_some((id, j, exp))
            });
            draws.push(open.ok_or(Uncounted::Exhausted)?);
        }
        let new = draws
            .iter()
            .filter(|(id, j, _)| !counts.contains_key(&(*id, *j)))
            .count();
        if counts.len() + new > self.capacity {
            // A grant is accepted up to the clock skew past its `exp`.
            counts.retain(|_, (_, exp)| exp.saturating_add(SKEW_MARGIN) > now);
            if counts.len() + new > self.capacity {
                return Err(Uncounted::Full);
            }
        }
        for (id, j, exp) in draws {
            counts.entry((id, j)).or_insert((0, exp)).0 += 1;
        }
        Ok(())
    }
}
