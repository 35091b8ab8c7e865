//! The broker's replay cache for proofs of possession.
//!
//! On SQLite, one broker owns the database, and proofs are remembered in
//! memory ([`MemoryReplayCache`], partitioned by key and chain). On
//! Postgres, several instances may share the database, so proofs are
//! remembered there (`spent_proofs`): a proof one instance accepted is
//! refused by every other, and by itself after a restart. Either way a
//! proof is recorded only after the cheaper checks of its call have
//! passed, rate limits included.

use mandate_core::token::PopClaims;
use mandate_core::{
    CheckedProof, Error as TokenError, MemoryReplayCache, ReplayCache as _, SpentProof,
};
use mandate_store::{Backend, Store, StoreError};

use crate::{ApiError, AppState};

/// The most proofs an in-memory cache holds live.
const MEMORY_CAPACITY: usize = 100_000;

/// Where spent proofs are remembered.
#[derive(Debug)]
pub(crate) enum Replay {
    /// In this process.
    Memory(MemoryReplayCache),
    /// In the store, shared by every instance on it.
    Shared,
}

impl Replay {
    /// The cache that suits `store`'s backend.
    pub(crate) fn for_store(store: &Store) -> Replay {
        match store.backend() {
            Backend::Postgres => Replay::Shared,
            Backend::Sqlite => Replay::Memory(MemoryReplayCache::new(MEMORY_CAPACITY)),
        }
    }
}

impl AppState {
    /// Records `proof` as spent, and returns its claims; a proof spent
    /// before is `pop.replayed` (401). A store that cannot answer is a
    /// store error, never taken for a fresh proof.
    pub(crate) async fn spend(&self, proof: CheckedProof) -> Result<PopClaims, ApiError> {
        let now = self.now();
        let refused = ApiError::proof;
        match &self.inner.replay {
            Replay::Memory(cache) => proof.record(cache, now).map_err(refused),
            Replay::Shared => {
                let spent = *proof.spent();
                match self
                    .store()
                    .spend_proof(&spent.id, spent.keep_until, now)
                    .await
                {
                    Ok(()) => Ok(proof.into_claims()),
                    Err(StoreError::Conflict) => Err(refused(TokenError::PopReplayed)),
                    Err(e) => Err(e.into()),
                }
            }
        }
    }

    /// Records `spent`, an entry made by hand (a DPoP proof's), as
    /// [`AppState::spend`] does a checked proof.
    pub(crate) async fn spend_entry(&self, spent: &SpentProof) -> Result<(), ApiError> {
        let now = self.now();
        match &self.inner.replay {
            Replay::Memory(cache) => cache.first_use(spent, now).map_err(ApiError::proof),
            Replay::Shared => match self
                .store()
                .spend_proof(&spent.id, spent.keep_until, now)
                .await
            {
                Ok(()) => Ok(()),
                Err(StoreError::Conflict) => Err(ApiError::proof(TokenError::PopReplayed)),
                Err(e) => Err(e.into()),
            },
        }
    }
}
