//! What a resource server runs on each call: the chain, the proof of
//! possession, the replay check and the scope of the call.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};

use crate::Error;
use crate::cache::LinkCache;
use crate::chain::{self, Context, VerifiedChain};
use crate::jws::{self, TokenKind};
use crate::key::PublicKey;
use crate::scope::{self, Call};
use crate::token::{Claims as _, Policy, PopClaims, UnixTime, same_htu};

/// Remembers proof ids until they can no longer be fresh.
pub trait ReplayCache {
    /// Records `key`, or fails with [`Error::PopReplayed`] if it is already
    /// recorded and live, or [`Error::PopCacheFull`] if there is no room.
    /// An entry may be forgotten after `keep_until`.
    fn first_use(&self, key: &str, keep_until: UnixTime, now: UnixTime) -> Result<(), Error>;
}

/// A bounded in-memory replay cache. When full of live entries it refuses
/// new ones rather than forget one that could still be replayed.
#[derive(Debug)]
pub struct MemoryReplayCache {
    seen: Mutex<HashMap<String, UnixTime>>,
    capacity: usize,
}

impl MemoryReplayCache {
    /// A cache for at most `capacity` live proofs.
    pub fn new(capacity: usize) -> MemoryReplayCache {
        MemoryReplayCache {
            seen: Mutex::new(HashMap::new()),
            capacity: capacity.max(1),
        }
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<String, UnixTime>> {
        // Each operation leaves the map consistent, so a poisoned lock is still usable.
        self.seen
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl ReplayCache for MemoryReplayCache {
    fn first_use(&self, key: &str, keep_until: UnixTime, now: UnixTime) -> Result<(), Error> {
        let mut seen = self.lock();
        if seen.get(key).is_some_and(|&until| until >= now) {
            return Err(Error::PopReplayed);
        }
        if seen.len() >= self.capacity {
            seen.retain(|_, until| *until >= now);
            if seen.len() >= self.capacity {
                return Err(Error::PopCacheFull);
            }
        }
        seen.insert(key.to_owned(), keep_until);
        Ok(())
    }
}

/// The HTTP call a proof of possession is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HttpCall<'a> {
    /// The method, such as `GET`.
    pub method: &'a str,
    /// The target URI.
    pub uri: &'a str,
}

/// Checks a proof of possession for `call` against a verified chain, and records its `jti`.
pub fn verify_pop(
    chain: &VerifiedChain,
    pop: &str,
    call: &HttpCall<'_>,
    cx: &Context<'_>,
    replay: &dyn ReplayCache,
) -> Result<PopClaims, Error> {
    let leaf = chain.leaf_key();
    let key = cx.keys.get(&leaf).ok_or(Error::UnknownKey)?;
    verify_proof(pop, key, chain.ath(), call, &cx.policy, cx.now, replay)
}

/// Checks a proof of possession made by `key` for `call`, bound to `ath`,
/// and records its `jti`. [`verify_pop`] is this with the leaf's key and
/// the chain's hash; a broker uses it directly, with the key of the agent
/// that filed a request and [`crate::token::chain_hash`] of that request.
pub fn verify_proof(
    pop: &str,
    key: &PublicKey,
    ath: &str,
    call: &HttpCall<'_>,
    policy: &Policy,
    now: UnixTime,
    replay: &dyn ReplayCache,
) -> Result<PopClaims, Error> {
    let token = jws::parse(pop, TokenKind::Pop)?;
    let jkt = key.thumbprint();
    if token.kid != jkt {
        return Err(Error::PopWrongKey);
    }
    token.verify(key)?;
    let claims: PopClaims = token.claims()?;
    claims.check(policy, now)?;
    if claims.htm != call.method {
        return Err(Error::PopMethod);
    }
    if !same_htu(&claims.htu, call.uri) {
        return Err(Error::PopUri);
    }
    if claims.ath != ath {
        return Err(Error::PopChain);
    }
    let keep_until = claims
        .iat
        .saturating_add(policy.pop_max_age)
        .saturating_add(policy.clock_skew);
    replay.first_use(&format!("{jkt}:{}", claims.jti.as_str()), keep_until, now)?;
    Ok(claims)
}

/// A verifier with a bounded cache of links already verified.
///
/// It accepts exactly what [`chain::verify_chain`] accepts: the cache only
/// spares the signature check of a token whose id (the hash of all its
/// bytes) was verified before under the same key.
#[derive(Debug)]
pub struct Verifier {
    cache: LinkCache,
}

impl Verifier {
    /// A verifier that caches up to `capacity` links.
    pub fn new(capacity: usize) -> Verifier {
        Verifier {
            cache: LinkCache::new(capacity),
        }
    }

    /// Verifies a chain, root first.
    pub fn verify_chain<S: AsRef<str>>(
        &self,
        chain: &[S],
        cx: &Context<'_>,
    ) -> Result<VerifiedChain, Error> {
        chain::verify_cached(chain, cx, Some(&self.cache))
    }

    /// Verifies everything a resource server checks on one call: the chain,
    /// the proof of possession for `http`, and, when given, that `call`
    /// lies within the chain's effective scope.
    pub fn verify_call<S: AsRef<str>>(
        &self,
        chain: &[S],
        pop: Option<&str>,
        http: &HttpCall<'_>,
        call: Option<&Call<'_>>,
        cx: &Context<'_>,
        replay: &dyn ReplayCache,
    ) -> Result<VerifiedChain, Error> {
        let verified = self.verify_chain(chain, cx)?;
        verify_pop(&verified, pop.ok_or(Error::PopMissing)?, http, cx, replay)?;
        if call.is_some_and(|c| !scope::permits(verified.scopes(), c)) {
            return Err(Error::OutOfScope);
        }
        Ok(verified)
    }

    /// The link cache, for inspection.
    pub fn cache(&self) -> &LinkCache {
        &self.cache
    }
}
