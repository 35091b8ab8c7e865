//! Remembering proofs of possession until they can no longer be fresh.
//!
//! A proof is remembered under its *partition*, the hash of the key that
//! signed it and the chain (or request) its `ath` binds it to, so that
//! one party can fill only its own share of the cache. Callers record a
//! proof only after every cheaper check has passed (signature, times,
//! target, rate limits and the scope of the call), so nobody can spend
//! room in the cache without holding an authorized chain. Entries leave
//! in order of expiry: inserting is O(1) in the number of entries held
//! (the expiry index is keyed by second, and holds at most the proof
//! lifetime's worth of seconds).

use std::collections::{BTreeMap, HashMap};
use std::sync::{Mutex, MutexGuard};

use sha2::{Digest as _, Sha256};

use crate::Error;
use crate::key::Thumbprint;
use crate::token::UnixTime;

/// A proof to remember: where it belongs, what it is, and until when.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SpentProof {
    /// SHA-256 of the signing key's thumbprint and the `ath` the proof
    /// is bound to.
    pub partition: [u8; 32],
    /// SHA-256 of the partition and the proof's `jti`; unique per proof.
    pub id: [u8; 32],
    /// After this second the proof is stale, and may be forgotten.
    pub keep_until: UnixTime,
}

impl SpentProof {
    /// The entry for proof `jti` by `key`, bound to `ath`.
    pub fn new(key: &Thumbprint, ath: &str, jti: &str, keep_until: UnixTime) -> SpentProof {
        let mut h = Sha256::new();
        h.update(key.to_string().as_bytes());
        h.update([0]);
        h.update(ath.as_bytes());
        let partition: [u8; 32] = h.finalize().into();
        let mut h = Sha256::new();
        h.update(partition);
        h.update(jti.as_bytes());
        SpentProof {
            partition,
            id: h.finalize().into(),
            keep_until,
        }
    }
}

/// Remembers proofs until they can no longer be fresh.
pub trait ReplayCache {
    /// Records `proof`, or fails with [`Error::PopReplayed`] if it is
    /// already recorded and live at `now`, or [`Error::PopCacheFull`] if
    /// there is no room for it (in its partition or in all).
    fn first_use(&self, proof: &SpentProof, now: UnixTime) -> Result<(), Error>;
}

/// How many independently locked shards a [`MemoryReplayCache`] of at
/// least 1,024 entries has; a partition always falls in the same one.
const SHARDS: usize = 16;

/// A bounded in-memory replay cache, partitioned by key and chain. When
/// full of live entries it refuses new ones rather than forget one that
/// could still be replayed; a partition is full at its own share.
#[derive(Debug)]
pub struct MemoryReplayCache {
    shards: Vec<Mutex<Shard>>,
    /// The most live entries a shard holds.
    shard_capacity: usize,
    /// The most live entries one partition holds.
    partition_capacity: usize,
}

#[derive(Debug, Default)]
struct Shard {
    /// Each live proof, with its partition.
    seen: HashMap<[u8; 32], [u8; 32]>,
    /// How many live proofs each partition holds.
    held: HashMap<[u8; 32], usize>,
    /// Proof ids by the second after which they may go.
    expiry: BTreeMap<UnixTime, Vec<[u8; 32]>>,
}

impl Shard {
    /// Forgets every entry whose `keep_until` is before `now`.
    fn sweep(&mut self, now: UnixTime) {
        while let Some(entry) = self.expiry.first_entry() {
            if *entry.key() >= now {
                break;
            }
            for id in entry.remove() {
                let Some(partition) = self.seen.remove(&id) else {
                    continue;
                };
                if let Some(n) = self.held.get_mut(&partition) {
                    *n -= 1;
                    if *n == 0 {
                        self.held.remove(&partition);
                    }
                }
            }
        }
    }
}

impl MemoryReplayCache {
    /// A cache for at most `capacity` live proofs, at most an eighth of
    /// them in any one partition (all of them, for a cache of 16 or fewer).
    pub fn new(capacity: usize) -> MemoryReplayCache {
        let capacity = capacity.max(1);
        MemoryReplayCache::with_partition_capacity(capacity, (capacity / 8).max(capacity.min(16)))
    }

    /// A cache for at most `capacity` live proofs, at most
    /// `partition_capacity` of them in any one partition.
    pub fn with_partition_capacity(
        capacity: usize,
        partition_capacity: usize,
    ) -> MemoryReplayCache {
        // Small caches are not sharded, so that each holds what it says.
        let shards = if capacity < 64 * SHARDS { 1 } else { SHARDS };
        let shard_capacity = capacity.max(1).div_ceil(shards);
        MemoryReplayCache {
            shards: (0..shards).map(|_| Mutex::default()).collect(),
            shard_capacity,
            partition_capacity: partition_capacity.clamp(1, shard_capacity),
        }
    }

    fn shard(&self, partition: &[u8; 32]) -> MutexGuard<'_, Shard> {
        // Each operation leaves a shard consistent, so a poisoned lock is still usable.
        self.shards[usize::from(partition[0]) % self.shards.len()]
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// How many proofs are held, live or not yet swept.
    pub fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.lock().unwrap_or_else(|p| p.into_inner()).seen.len())
            .sum()
    }

    /// Whether no proof is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl ReplayCache for MemoryReplayCache {
    fn first_use(&self, proof: &SpentProof, now: UnixTime) -> Result<(), Error> {
        let mut shard = self.shard(&proof.partition);
        shard.sweep(now);
        if shard.seen.contains_key(&proof.id) {
            return Err(Error::PopReplayed);
        }
        let held = shard.held.get(&proof.partition).copied().unwrap_or(0);
        if held >= self.partition_capacity || shard.seen.len() >= self.shard_capacity {
            return Err(Error::PopCacheFull);
        }
        shard.seen.insert(proof.id, proof.partition);
        *shard.held.entry(proof.partition).or_default() += 1;
        shard
            .expiry
            .entry(proof.keep_until)
            .or_default()
            .push(proof.id);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::SigningKey;

    const NOW: UnixTime = 1_767_225_600;

    fn key(n: u8) -> Thumbprint {
        SigningKey::from_seed(&[n; 32]).public().thumbprint()
    }

    #[test]
    fn a_proof_is_refused_twice_until_it_expires() {
        let cache = MemoryReplayCache::new(64);
        let p = SpentProof::new(&key(1), "ath", "j1", NOW + 60);
        assert_eq!(cache.first_use(&p, NOW), Ok(()));
        assert_eq!(cache.first_use(&p, NOW + 60), Err(Error::PopReplayed));
        assert_eq!(cache.first_use(&p, NOW + 61), Ok(()), "stale entries go");
        assert_eq!(cache.len(), 1);
    }

    #[test]
    fn one_partition_cannot_fill_the_cache() {
        let cache = MemoryReplayCache::with_partition_capacity(1_600, 3);
        let flooder = key(1);
        for n in 0..3 {
            let p = SpentProof::new(&flooder, "chain", &n.to_string(), NOW + 60);
            assert_eq!(cache.first_use(&p, NOW), Ok(()));
        }
        let more = SpentProof::new(&flooder, "chain", "3", NOW + 60);
        assert_eq!(cache.first_use(&more, NOW), Err(Error::PopCacheFull));
        // The same key under another chain, and another key, still have room.
        let other_chain = SpentProof::new(&flooder, "other", "3", NOW + 60);
        assert_eq!(cache.first_use(&other_chain, NOW), Ok(()));
        let other_key = SpentProof::new(&key(2), "chain", "0", NOW + 60);
        assert_eq!(cache.first_use(&other_key, NOW), Ok(()));
        // Once the flood's proofs are stale, the partition has room again.
        assert_eq!(cache.first_use(&more, NOW + 61), Ok(()));
    }

    #[test]
    fn the_cache_refuses_rather_than_forgets() {
        let cache = MemoryReplayCache::new(2);
        let a = SpentProof::new(&key(1), "a", "j", NOW + 60);
        let b = SpentProof::new(&key(2), "a", "j", NOW + 60);
        let c = SpentProof::new(&key(3), "a", "j", NOW + 60);
        assert_eq!(cache.first_use(&a, NOW), Ok(()));
        assert_eq!(cache.first_use(&b, NOW), Ok(()));
        assert_eq!(cache.first_use(&c, NOW), Err(Error::PopCacheFull));
        assert_eq!(cache.first_use(&a, NOW), Err(Error::PopReplayed));
        assert_eq!(cache.first_use(&c, NOW + 61), Ok(()));
    }

    #[test]
    fn a_large_cache_is_sharded_and_bounded() {
        let cache = MemoryReplayCache::with_partition_capacity(1_024, 1_024);
        let mut taken = 0;
        for n in 0..2_000u32 {
            let p = SpentProof::new(&key(1), &n.to_string(), "j", NOW + 60);
            if cache.first_use(&p, NOW).is_ok() {
                taken += 1;
            }
        }
        assert!(taken <= 1_024, "{taken} held");
        assert!(taken >= 900, "shards fill evenly: {taken} held");
        assert_eq!(cache.len(), taken);
    }

    #[test]
    fn partitions_and_ids_do_not_collide() {
        let a = SpentProof::new(&key(1), "ab", "c", NOW);
        let b = SpentProof::new(&key(1), "a", "bc", NOW);
        assert_ne!(a.partition, b.partition);
        assert_ne!(a.id, b.id);
    }
}
