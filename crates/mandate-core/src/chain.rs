//! Chain verification: from compact grants, root first, to a [`VerifiedChain`].
//!
//! The caller supplies what the crate cannot know: the time, the public
//! keys (looked up only by thumbprints the chain itself commits to), the
//! user key bindings, and the revocation set.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::hash::BuildHasher;
use std::sync::Arc;

use crate::cache::LinkCache;
use crate::jws::{self, TokenId, TokenKind};
use crate::key::{AgentId, Jwk, PublicKey, Thumbprint};
use crate::scope::{self, AuthorizationDetail, Escalation};
use crate::token::{BindingClaims, Claims as _, GrantClaims, Policy, Principal, UnixTime};
use crate::{Error, MAX_CHAIN_LINKS};

/// Answers whether a grant id has been revoked, and whether a user key
/// has been removed.
pub trait RevocationSet {
    /// Whether `id` is revoked.
    fn is_revoked(&self, id: &TokenId) -> bool;

    /// Whether the user key `key` was removed by its user: every chain
    /// rooted in it falls. A set that knows only grants answers `false`.
    fn is_key_revoked(&self, key: &Thumbprint) -> bool {
        let _ = key;
        false
    }
}

/// Revoked grants and removed user keys together.
#[derive(Debug, Default, Clone)]
pub struct Revoked {
    /// The revoked grant ids.
    pub grants: HashSet<TokenId>,
    /// The thumbprints of the removed user keys.
    pub keys: HashSet<Thumbprint>,
}

impl RevocationSet for Revoked {
    fn is_revoked(&self, id: &TokenId) -> bool {
        self.grants.contains(id)
    }

    fn is_key_revoked(&self, key: &Thumbprint) -> bool {
        self.keys.contains(key)
    }
}

impl<S: BuildHasher> RevocationSet for HashSet<TokenId, S> {
    fn is_revoked(&self, id: &TokenId) -> bool {
        self.contains(id)
    }
}

impl RevocationSet for BTreeSet<TokenId> {
    fn is_revoked(&self, id: &TokenId) -> bool {
        self.contains(id)
    }
}

/// Answers whether a user key is bound to a principal.
pub trait Bindings {
    /// Whether the key with thumbprint `key` is bound to `sub` at `now`.
    fn is_bound(&self, sub: &Principal, key: &Thumbprint, now: UnixTime) -> bool;
}

/// Key bindings held in memory: each key belongs to exactly one principal,
/// until the binding expires.
#[derive(Debug, Default, Clone)]
pub struct BindingSet {
    by_key: HashMap<Thumbprint, (Principal, Option<UnixTime>)>,
}

impl BindingSet {
    /// An empty set.
    pub fn new() -> BindingSet {
        BindingSet::default()
    }

    /// Records that `key` belongs to `sub`, with no expiry: for bindings the
    /// caller established itself. A key bound to another principal is
    /// refused with [`Error::BindingRejected`].
    pub fn insert(&mut self, sub: Principal, key: Thumbprint) -> Result<(), Error> {
        self.put(sub, key, None)
    }

    fn put(&mut self, sub: Principal, key: Thumbprint, exp: Option<UnixTime>) -> Result<(), Error> {
        match self.by_key.get_mut(&key) {
            Some((existing, _)) if *existing != sub => {
                Err(Error::BindingRejected("key is bound to another principal"))
            }
            Some((_, until)) => {
                // A renewal extends the binding; it never shortens it.
                *until = match (*until, exp) {
                    (None, _) | (_, None) => None,
                    (Some(a), Some(b)) => Some(a.max(b)),
                };
                Ok(())
            }
            None => {
                self.by_key.insert(key, (sub, exp));
                Ok(())
            }
        }
    }

    /// Verifies a `mandate-binding+jwt` from the broker `issuer`, under the
    /// broker's key, and records it until its `exp`.
    pub fn insert_token(
        &mut self,
        compact: &str,
        broker: &PublicKey,
        issuer: &str,
        policy: &Policy,
        now: UnixTime,
    ) -> Result<(), Error> {
        let binding = crate::token::verify::<BindingClaims>(compact, broker, policy, now)?;
        if binding.claims.iss != issuer {
            return Err(Error::BindingRejected("binding is from another broker"));
        }
        self.put(
            binding.claims.sub,
            binding.claims.cnf.jkt,
            Some(binding.claims.exp),
        )
    }
}

impl Bindings for BindingSet {
    fn is_bound(&self, sub: &Principal, key: &Thumbprint, now: UnixTime) -> bool {
        self.by_key
            .get(key)
            .is_some_and(|(bound, until)| bound == sub && until.is_none_or(|exp| now < exp))
    }
}

/// Public keys by thumbprint. A key is only ever found under the thumbprint
/// computed from it, so keys may come from any source, the chain's bearer included.
#[derive(Debug, Default, Clone)]
pub struct KeySet {
    keys: HashMap<Thumbprint, PublicKey>,
}

impl KeySet {
    /// An empty set.
    pub fn new() -> KeySet {
        KeySet::default()
    }

    /// Adds a key.
    pub fn insert(&mut self, key: PublicKey) {
        self.keys.insert(key.thumbprint(), key);
    }

    /// Parses and adds a JWK.
    pub fn insert_jwk(&mut self, jwk: &Jwk) -> Result<Thumbprint, Error> {
        let key = PublicKey::from_jwk(jwk)?;
        self.insert(key);
        Ok(key.thumbprint())
    }

    /// The key with this thumbprint.
    pub fn get(&self, jkt: &Thumbprint) -> Option<&PublicKey> {
        self.keys.get(jkt)
    }
}

impl FromIterator<PublicKey> for KeySet {
    fn from_iter<I: IntoIterator<Item = PublicKey>>(iter: I) -> KeySet {
        let mut set = KeySet::new();
        for key in iter {
            set.insert(key);
        }
        set
    }
}

/// Everything a verification needs besides the tokens.
#[derive(Clone, Copy)]
pub struct Context<'a> {
    /// The current time.
    pub now: UnixTime,
    /// The time rules.
    pub policy: Policy,
    /// Public keys of the users and agents involved.
    pub keys: &'a KeySet,
    /// Which user keys belong to which principals.
    pub bindings: &'a dyn Bindings,
    /// The revoked grant ids and removed user keys.
    pub revoked: &'a dyn RevocationSet,
}

/// One grant whose signature verified under `issuer`'s key.
///
/// A `Link` says nothing about time, revocation or its place in a chain;
/// only a [`VerifiedChain`] does.
#[derive(Debug, Clone)]
pub struct Link {
    pub(crate) id: TokenId,
    pub(crate) issuer: Thumbprint,
    pub(crate) claims: GrantClaims,
}

impl Link {
    /// The grant's id.
    pub fn id(&self) -> TokenId {
        self.id
    }

    /// The thumbprint of the key that signed it.
    pub fn issuer(&self) -> Thumbprint {
        self.issuer
    }

    /// Its claims.
    pub fn claims(&self) -> &GrantClaims {
        &self.claims
    }

    /// Parses a grant and verifies its signature. `expected` is the key that
    /// must sign it, or `None` at the root, where the header names the user key.
    fn verify(
        compact: &str,
        id: TokenId,
        expected: Option<Thumbprint>,
        index: usize,
        keys: &KeySet,
    ) -> Result<Link, Error> {
        let token = jws::parse_with_id(compact, TokenKind::Grant, id)?;
        let issuer = match expected {
            Some(jkt) if jkt != token.kid => return Err(Error::WrongSigner(index)),
            Some(jkt) => jkt,
            None => token.kid,
        };
        let key = keys.get(&issuer).ok_or(Error::UnknownKey)?;
        token.verify(key)?;
        // Claims are read only once the signature holds.
        let claims: GrantClaims = token.claims()?;
        Ok(Link { id, issuer, claims })
    }
}

/// A chain that passed every rule at one instant. Only verification makes one.
#[derive(Debug, Clone)]
pub struct VerifiedChain {
    links: Vec<Arc<Link>>,
    ath: String,
}

impl VerifiedChain {
    /// The user on whose behalf the leaf agent acts.
    pub fn principal(&self) -> &Principal {
        &self.root().claims.sub
    }

    /// The agent at the end of the chain.
    pub fn leaf_agent(&self) -> AgentId {
        self.leaf().claims.act.sub
    }

    /// The key the leaf agent must prove it holds.
    pub fn leaf_key(&self) -> Thumbprint {
        self.leaf().claims.cnf.jkt
    }

    /// What the leaf agent may do: the leaf's scopes, which lie within every link above.
    pub fn scopes(&self) -> &[AuthorizationDetail] {
        &self.leaf().claims.authorization_details
    }

    /// When the chain stops being valid: the earliest `exp` of any link.
    pub fn expires_at(&self) -> UnixTime {
        self.links
            .iter()
            .map(|l| l.claims.exp)
            .min()
            .unwrap_or(UnixTime::MIN)
    }

    /// How many further hops the leaf may delegate.
    pub fn depth_left(&self) -> u8 {
        self.leaf().claims.max_depth
    }

    /// The links, root first.
    pub fn links(&self) -> impl ExactSizeIterator<Item = &Link> {
        self.links.iter().map(|l| l.as_ref())
    }

    /// The root grant, signed by the user.
    pub fn root(&self) -> &Link {
        // Invariant: verification never builds an empty chain.
        &self.links[0]
    }

    /// The leaf grant.
    pub fn leaf(&self) -> &Link {
        &self.links[self.links.len() - 1]
    }

    /// The `ath` a proof of possession for this chain must carry.
    pub fn ath(&self) -> &str {
        &self.ath
    }
}

/// Verifies a chain of compact grants, root first, at `cx.now`.
pub fn verify_chain<S: AsRef<str>>(chain: &[S], cx: &Context<'_>) -> Result<VerifiedChain, Error> {
    verify_cached(chain, cx, None)
}

pub(crate) fn verify_cached<S: AsRef<str>>(
    chain: &[S],
    cx: &Context<'_>,
    cache: Option<&LinkCache>,
) -> Result<VerifiedChain, Error> {
    if chain.is_empty() {
        return Err(Error::EmptyChain);
    }
    if chain.len() > MAX_CHAIN_LINKS {
        return Err(Error::ChainTooLong);
    }
    let mut links: Vec<Arc<Link>> = Vec::with_capacity(chain.len());
    // Links verified now, cached only if the whole chain verifies, so that
    // chains that fail (a self-signed root, say) cannot evict good entries.
    let mut fresh: Vec<Arc<Link>> = Vec::new();
    let mut agents: Vec<Thumbprint> = Vec::with_capacity(chain.len() + 1);
    for (i, compact) in chain.iter().enumerate() {
        let compact = compact.as_ref();
        if compact.len() > jws::MAX_TOKEN_BYTES {
            return Err(Error::TokenTooLarge);
        }
        let id = TokenId::of(compact);
        if links.iter().any(|l| l.id == id) {
            return Err(Error::Loop(i));
        }
        let parent = links.last().map(Arc::clone);
        let expected = parent.as_ref().map(|p| p.claims.cnf.jkt);
        let link = match cache.and_then(|c| c.get(&id)) {
            Some(link) if expected.is_some_and(|e| e != link.issuer) => {
                return Err(Error::WrongSigner(i));
            }
            // The cache spares the signature check, not the key lookup: a
            // key the caller no longer supplies fails warm as it does cold.
            Some(link) if cx.keys.get(&link.issuer).is_none() => return Err(Error::UnknownKey),
            Some(link) => link,
            None => {
                let link = Arc::new(Link::verify(compact, id, expected, i, cx.keys)?);
                if cache.is_some() {
                    fresh.push(Arc::clone(&link));
                }
                link
            }
        };
        let claims = &link.claims;
        claims.check(&cx.policy, cx.now)?;
        if !claims.actor_matches_key() {
            return Err(Error::ActorMismatch(i));
        }
        match &parent {
            None => {
                if claims.prf.is_some() {
                    return Err(Error::ParentMismatch(i));
                }
                if !cx.bindings.is_bound(&claims.sub, &link.issuer, cx.now) {
                    return Err(Error::RootNotBound(i));
                }
                if cx.revoked.is_key_revoked(&link.issuer) {
                    return Err(Error::KeyRevoked(i));
                }
                agents.push(link.issuer);
            }
            Some(parent) => check_attenuation(i, parent, &link)?,
        }
        if agents.contains(&claims.cnf.jkt) {
            return Err(Error::Loop(i));
        }
        agents.push(claims.cnf.jkt);
        if cx.revoked.is_revoked(&id) {
            return Err(Error::Revoked(i));
        }
        links.push(link);
    }
    if let Some(cache) = cache {
        for link in fresh {
            cache.insert(link);
        }
    }
    let ath = crate::token::chain_hash_of_ids(links.iter().map(|l| &l.id));
    Ok(VerifiedChain { links, ath })
}

/// The rules between a link and its parent.
fn check_attenuation(i: usize, parent: &Link, link: &Link) -> Result<(), Error> {
    let (p, c) = (&parent.claims, &link.claims);
    if c.prf != Some(parent.id) {
        return Err(Error::ParentMismatch(i));
    }
    if c.sub != p.sub {
        return Err(Error::PrincipalChanged(i));
    }
    if c.max_depth >= p.max_depth {
        return Err(Error::DepthExceeded(i));
    }
    if c.exp > p.exp {
        return Err(Error::OutlivesParent(i));
    }
    if c.nbf < p.nbf {
        return Err(Error::PrecedesParent(i));
    }
    scope::within(&c.authorization_details, &p.authorization_details)
        .map_err(|e| escalation_error(e, i))
}

/// The error for escalation `e` at link `i`.
pub(crate) fn escalation_error(e: Escalation, i: usize) -> Error {
    match e {
        Escalation::Type => Error::EscalatedType(i),
        Escalation::Action => Error::EscalatedAction(i),
        Escalation::Location => Error::EscalatedLocation(i),
        Escalation::Limit => Error::EscalatedLimit(i),
        Escalation::Currency => Error::EscalatedCurrency(i),
    }
}
