//! What a resource server runs on each call: the chain, the proof of
//! possession, the replay check and the scope of the call.

use crate::Error;
use crate::cache::LinkCache;
use crate::chain::{self, Context, VerifiedChain};
use crate::jws::{self, TokenKind};
use crate::key::PublicKey;
use crate::replay::{ReplayCache, SpentProof};
use crate::scope::{self, Call};
use crate::token::{Claims as _, Policy, PopClaims, UnixTime, same_htu};

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
    check_pop(chain, pop, call, cx)?.record(replay, cx.now)
}

/// As [`verify_pop`], without recording the proof: the caller records it
/// with [`CheckedProof::record`] once its own cheap checks have passed.
pub fn check_pop(
    chain: &VerifiedChain,
    pop: &str,
    call: &HttpCall<'_>,
    cx: &Context<'_>,
) -> Result<CheckedProof, Error> {
    let leaf = chain.leaf_key();
    let key = cx.keys.get(&leaf).ok_or(Error::UnknownKey)?;
    check_proof(pop, key, chain.ath(), call, &cx.policy, cx.now)
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
    check_proof(pop, key, ath, call, policy, now)?.record(replay, now)
}

/// A proof of possession that passed every check but the replay check.
#[derive(Debug, Clone)]
#[must_use = "a proof counts only once it is recorded"]
pub struct CheckedProof {
    claims: PopClaims,
    spent: SpentProof,
}

impl CheckedProof {
    /// What to record in a replay cache: shared caches take this.
    pub fn spent(&self) -> &SpentProof {
        &self.spent
    }

    /// Records the proof in `replay`; fails if it was used before, or if
    /// there is no room for it.
    pub fn record(self, replay: &dyn ReplayCache, now: UnixTime) -> Result<PopClaims, Error> {
        replay.first_use(&self.spent, now)?;
        Ok(self.claims)
    }

    /// The proof's claims, once the caller has recorded [`Self::spent`]
    /// itself, as a shared replay cache does.
    pub fn into_claims(self) -> PopClaims {
        self.claims
    }
}

/// As [`verify_proof`], without recording the proof.
pub fn check_proof(
    pop: &str,
    key: &PublicKey,
    ath: &str,
    call: &HttpCall<'_>,
    policy: &Policy,
    now: UnixTime,
) -> Result<CheckedProof, Error> {
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
    let spent = SpentProof::new(&jkt, ath, claims.jti.as_str(), keep_until);
    Ok(CheckedProof { claims, spent })
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
        let proof = check_pop(&verified, pop.ok_or(Error::PopMissing)?, http, cx)?;
        if call.is_some_and(|c| !scope::permits(verified.scopes(), c)) {
            return Err(Error::OutOfScope);
        }
        // Only a proof for a call the chain permits takes room in the cache.
        proof.record(replay, cx.now)?;
        Ok(verified)
    }

    /// The link cache, for inspection.
    pub fn cache(&self) -> &LinkCache {
        &self.cache
    }
}
