//! Checking receipts against the user's key: no storage, every core.

use std::collections::{BTreeSet, HashMap, HashSet};

use mandate_core::token::{GrantClaims, ReceiptClaims, WitnessClaims, peek, peek_witness};
use mandate_core::{
    BindingSet, Context, Error, Jwk, KeySet, Policy, Principal, PublicKey, Receipt, TokenId,
    VerifiedChain, Verifier,
};

use crate::ClientError;
use crate::broker::ReceiptItem;

/// How many verified grants a [`Checker`] remembers the signatures of.
const LINKS: usize = 4096;

/// Checks receipts against one user's key. Chains are verified once per
/// leaf grant and reused while time and revocations allow.
pub struct Checker {
    principal: Principal,
    user: mandate_core::Thumbprint,
    bindings: BindingSet,
    keys: KeySet,
    policy: Policy,
    revoked_at: HashMap<TokenId, i64>,
    /// Leaf grant id -> (the time it was verified at, the chain).
    chains: HashMap<TokenId, (i64, VerifiedChain)>,
    /// Grants whose signatures verified, so that a new sub-agent's chain
    /// costs only its new links' signatures.
    verifier: Verifier,
    /// The public keys (`x`) already learned.
    learned: HashSet<String>,
}

impl std::fmt::Debug for Checker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Checker")
            .field("principal", &self.principal)
            .finish_non_exhaustive()
    }
}

impl Checker {
    /// A checker for `principal`, whose key is `user`.
    pub fn new(principal: Principal, user: &PublicKey) -> Result<Checker, ClientError> {
        let mut bindings = BindingSet::new();
        bindings.insert(principal.clone(), user.thumbprint())?;
        let mut keys = KeySet::new();
        keys.insert(*user);
        Ok(Checker {
            principal,
            user: user.thumbprint(),
            bindings,
            keys,
            policy: Policy::default(),
            revoked_at: HashMap::new(),
            chains: HashMap::new(),
            verifier: Verifier::new(LINKS),
            learned: HashSet::new(),
        })
    }

    /// Learns an agent's key. The key is filed under its own thumbprint,
    /// so a wrong key can only fail to match, never stand in for another.
    /// A key learned before costs nothing (pages repeat the same few).
    pub fn add_key(&mut self, jwk: &Jwk) -> Result<(), Error> {
        if self.learned.contains(&jwk.x) {
            return Ok(());
        }
        self.keys.insert_jwk(jwk)?;
        self.learned.insert(jwk.x.clone());
        Ok(())
    }

    /// Learns that grant `id` was revoked at `at`.
    pub fn revoked(&mut self, id: TokenId, at: i64) {
        self.revoked_at.insert(id, at);
    }

    /// The user key's thumbprint.
    pub fn user(&self) -> mandate_core::Thumbprint {
        self.user
    }

    /// Verifies `chain` (root first) as it stood at `at`. Times are whole
    /// seconds: a revocation counts against what the broker accepted in a
    /// later second. Within the revocation's own second the broker's order
    /// stands, and the broker accepts nothing under a revoked grant.
    pub fn chain(&mut self, chain: &[String], at: i64) -> Result<&VerifiedChain, Error> {
        let leaf = chain
            .last()
            .map(|g| TokenId::of(g))
            .ok_or(Error::EmptyChain)?;
        let reusable = self.chains.get(&leaf).is_some_and(|(since, c)| {
            at >= *since
                && at < c.expires_at()
                && c.links().all(|l| {
                    self.revoked_at
                        .get(&l.id())
                        .is_none_or(|revoked| *revoked >= at)
                })
        });
        if !reusable {
            let revoked: BTreeSet<TokenId> = chain
                .iter()
                .map(|g| TokenId::of(g))
                .filter(|id| self.revoked_at.get(id).is_some_and(|r| *r < at))
                .collect();
            let cx = Context {
                now: at,
                policy: self.policy,
                keys: &self.keys,
                bindings: &self.bindings,
                revoked: &revoked,
            };
            let verified = self.verifier.verify_chain(chain, &cx)?;
            self.chains.insert(leaf, (at, verified));
        }
        self.chains
            .get(&leaf)
            .map(|(_, c)| c)
            .ok_or(Error::EmptyChain)
    }

    /// Verifies a receipt made under `chain`, as the broker accepted it at
    /// `at`: the chain held then, and the chain's leaf agent signed it.
    /// With `witness` (the thumbprint the broker names), it is a witness
    /// receipt instead ([`Checker::witnessed`]).
    pub fn receipt(
        &mut self,
        receipt: &str,
        chain: &[String],
        at: i64,
        witness: Option<&str>,
    ) -> Result<Receipt, Error> {
        let policy = self.policy;
        let made = made_at(receipt, at, witness);
        let leaf = self.chain(chain, made)?.leaf().clone();
        verify_one(receipt, &leaf, &self.keys, &policy, at, witness).map(|(r, _)| r)
    }

    /// Verifies a page of the feed, as [`Checker::receipt`] does each item,
    /// after learning the keys it carries. Chains are checked one after
    /// the other (most are cached); the receipts' signatures on every core.
    pub fn receipts(&mut self, page: &[ReceiptItem]) -> Vec<Result<Receipt, Error>> {
        self.check_each(page, &Gate::opened(), |_, verified| {
            verified.map(|(r, _)| r)
        })
    }

    /// What the history records of each receipt of a page: its id, its
    /// agent, its claims when they can be read, and the rule it broke if
    /// it failed.
    pub fn verdicts(&mut self, page: &[ReceiptItem]) -> Vec<Verdict> {
        self.verdicts_behind(page, &Gate::opened())
    }

    /// [`Checker::verdicts`], on one core until `gate` opens and on every
    /// core after.
    pub(super) fn verdicts_behind(&mut self, page: &[ReceiptItem], gate: &Gate) -> Vec<Verdict> {
        self.check_each(page, gate, |item, verified| {
            let witness = item.witness.clone();
            let (id, agent, claims, trace, error) = match verified {
                Ok((r, w)) => (
                    r.id(),
                    r.agent().to_string(),
                    Some(r.into_claims()),
                    w.and_then(|w| w.trace),
                    None,
                ),
                Err(e) => {
                    let id = mandate_core::token::receipt_id(&item.receipt);
                    let (agent, claims, trace) = unverified(item);
                    (id, agent, claims, trace, Some(e.code()))
                }
            };
            Verdict {
                id: id.to_string(),
                agent,
                claims,
                error,
                witness,
                trace,
            }
        })
    }

    /// Checks every receipt of a page and hands each result to `then`,
    /// on the machine's cores (see [`par_map`]).
    fn check_each<R: Send>(
        &mut self,
        page: &[ReceiptItem],
        gate: &Gate,
        then: impl Fn(&ReceiptItem, Result<(Receipt, Option<WitnessClaims>), Error>) -> R + Sync,
    ) -> Vec<R> {
        for jwk in page.iter().flat_map(|item| &item.keys) {
            // A key that does not parse fails the receipts that need it.
            let _ = self.add_key(jwk);
        }
        let mut leaves: Vec<mandate_core::Link> = Vec::new();
        let mut index: HashMap<TokenId, usize> = HashMap::new();
        let leaf_of: Vec<Result<usize, Error>> = page
            .iter()
            .map(|item| {
                let made = made_at(&item.receipt, item.received_at, item.witness.as_deref());
                let leaf = self.chain(&item.chain, made)?.leaf();
                Ok(*index.entry(leaf.id()).or_insert_with(|| {
                    leaves.push(leaf.clone());
                    leaves.len() - 1
                }))
            })
            .collect();
        let (keys, policy) = (&self.keys, self.policy);
        let work: Vec<(&ReceiptItem, &Result<usize, Error>)> = page.iter().zip(&leaf_of).collect();
        par_map(&work, gate, |(item, leaf)| {
            let verified = leaf.as_ref().map_err(Clone::clone).and_then(|&leaf| {
                verify_one(
                    &item.receipt,
                    &leaves[leaf],
                    keys,
                    &policy,
                    item.received_at,
                    item.witness.as_deref(),
                )
            });
            then(item, verified)
        })
    }
}

/// The time a receipt's chain is checked at: when the broker accepted it,
/// `at`; for a witness receipt, when the witness saw the call, if earlier,
/// but at most ten minutes earlier
/// ([`mandate_core::token::witness_made_at`]).
fn made_at(receipt: &str, at: i64, witness: Option<&str>) -> i64 {
    match witness {
        None => at,
        Some(_) => {
            peek_witness(receipt).map_or(at, |c| mandate_core::token::witness_made_at(c.iat, at))
        }
    }
}

/// Verifies one receipt under the chain's `leaf`: the agent's own, or,
/// with `witness`, a witness receipt by the key of that thumbprint.
fn verify_one(
    receipt: &str,
    leaf: &mandate_core::Link,
    keys: &KeySet,
    policy: &Policy,
    at: i64,
    witness: Option<&str>,
) -> Result<(Receipt, Option<WitnessClaims>), Error> {
    match witness {
        None => Receipt::verify(receipt, leaf, keys, policy, at).map(|r| (r, None)),
        Some(jkt) => {
            let jkt: mandate_core::Thumbprint = jkt.parse().map_err(|_| Error::UnknownKey)?;
            let key = keys.get(&jkt).ok_or(Error::UnknownKey)?;
            Receipt::witnessed(receipt, leaf, key, policy, at).map(|(r, w)| (r, Some(w)))
        }
    }
}

/// What can be read of a receipt that failed: the agent (for a witness
/// receipt, the chain's leaf agent), its claims, and its trace.
fn unverified(item: &ReceiptItem) -> (String, Option<ReceiptClaims>, Option<String>) {
    if item.witness.is_none() {
        return match peek::<ReceiptClaims>(&item.receipt) {
            Ok((kid, claims)) => (
                mandate_core::AgentId::from_thumbprint(kid).to_string(),
                Some(claims),
                None,
            ),
            Err(_) => (String::new(), None, None),
        };
    }
    let agent = item
        .chain
        .last()
        .and_then(|g| peek::<GrantClaims>(g).ok())
        .map(|(_, g)| mandate_core::AgentId::from_thumbprint(g.cnf.jkt).to_string())
        .unwrap_or_default();
    match peek_witness(&item.receipt) {
        Ok(w) => {
            let claims = ReceiptClaims {
                grant: w.grant,
                action: w.action,
                outcome: w.outcome,
                rationale: None,
                cause: None,
                iat: w.iat,
                jti: w.jti,
            };
            (agent, Some(claims), w.trace)
        }
        Err(_) => (agent, None, None),
    }
}

/// Holds back all but one of [`par_map`]'s threads until it opens: while
/// the history writes one batch, the next is checked on one core, and on
/// every core once the writer is done. (The writer is the slower of the
/// two; checks on every core would take its core from it.)
#[derive(Clone)]
pub(super) struct Gate(std::sync::Arc<(std::sync::Mutex<bool>, std::sync::Condvar)>);

impl Gate {
    pub(super) fn closed() -> Gate {
        Gate(std::sync::Arc::new((
            std::sync::Mutex::new(false),
            std::sync::Condvar::new(),
        )))
    }

    fn opened() -> Gate {
        let gate = Gate::closed();
        gate.open();
        gate
    }

    fn open(&self) {
        let (open, changed) = &*self.0;
        *open
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = true;
        changed.notify_all();
    }

    fn wait(&self) {
        let (open, changed) = &*self.0;
        let mut is_open = open
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        while !*is_open {
            is_open = changed
                .wait(is_open)
                .unwrap_or_else(std::sync::PoisonError::into_inner);
        }
    }
}

/// Opens a gate when dropped, so that no way out of [`Ingest::push`], an
/// error or a cancelled future, leaves the checker's threads waiting.
pub(super) struct OpenOnDrop(pub(super) Gate);

impl Drop for OpenOnDrop {
    fn drop(&mut self) {
        self.0.open();
    }
}

/// `f` over `items`, in order, on every core: the caller's thread at once,
/// the others once `gate` opens. Threads take the next block of 32 items
/// as they finish one, so that a core also busy with something else holds
/// none of them up.
fn par_map<T: Sync, R: Send>(items: &[T], gate: &Gate, f: impl Fn(&T) -> R + Sync) -> Vec<R> {
    const BLOCK: usize = 32;
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get().min(8));
    if cores < 2 || items.len() < 2 * BLOCK {
        return items.iter().map(f).collect();
    }
    let next = std::sync::atomic::AtomicUsize::new(0);
    let work = || {
        let mut done: Vec<(usize, Vec<R>)> = Vec::new();
        loop {
            let start = next.fetch_add(BLOCK, std::sync::atomic::Ordering::Relaxed);
            match items.get(start..(start + BLOCK).min(items.len())) {
                Some(block) if !block.is_empty() => {
                    done.push((start, block.iter().map(&f).collect()));
                }
                _ => return done,
            }
        }
    };
    let mut blocks: Vec<(usize, Vec<R>)> = std::thread::scope(|s| {
        let helpers: Vec<_> = (1..cores)
            .map(|_| {
                s.spawn(|| {
                    gate.wait();
                    work()
                })
            })
            .collect();
        let mut blocks = work();
        for helper in helpers {
            blocks.extend(
                helper
                    .join()
                    .unwrap_or_else(|e| std::panic::resume_unwind(e)),
            );
        }
        blocks
    });
    blocks.sort_unstable_by_key(|(start, _)| *start);
    blocks
        .into_iter()
        .flat_map(|(_, results)| results)
        .collect()
}

/// What the history records of a receipt besides the receipt itself.
#[derive(Debug, Clone)]
pub struct Verdict {
    /// The receipt's token id.
    pub(super) id: String,
    /// The agent that signed it, or that its header names if it failed;
    /// for a witness receipt, the agent whose call the witness saw.
    pub(super) agent: String,
    /// Its claims, when they can be read.
    pub(super) claims: Option<ReceiptClaims>,
    /// The stable code of the rule it broke, if it failed.
    pub(super) error: Option<&'static str>,
    /// For a witness receipt, the witness key's thumbprint.
    pub(super) witness: Option<String>,
    /// The W3C trace id a witness receipt carries.
    pub(super) trace: Option<String>,
}
