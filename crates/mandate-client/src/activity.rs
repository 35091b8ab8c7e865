//! What agents did on the user's behalf: the receipts they signed, read
//! from the broker's feed, checked here against the user's own key, kept in
//! the history, searched, explained and exported.
//!
//! The broker checked each receipt when the agent reported it, but the app
//! takes no one's word: it verifies the chain (rooted in the user's own key,
//! at the time the broker accepted the receipt, against the revocations it
//! knows) and the receipt's signature by the chain's leaf agent. A receipt
//! that fails is kept and shown as failed, with the rule it broke.

use std::collections::{BTreeSet, HashMap, HashSet};

use mandate_core::base64url as b64;
use mandate_core::token::{GrantClaims, ReceiptClaims, peek};
use mandate_core::{
    BindingSet, Context, Error, Jwk, KeySet, Ledger, Policy, Principal, PublicKey, Receipt, Step,
    TokenId, VerifiedChain, Verifier,
};
use serde::{Deserialize, Serialize};
use sqlx::{FromRow, QueryBuilder, Sqlite};

use crate::ClientError;
use crate::broker::{GrantItem, ReceiptItem};
use crate::history::History;

/// What each receipt row's hash starts with.
const RECEIPT_DOMAIN: &[u8] = b"mandate-history-receipt/v1";
/// What signs the receipt chain's head: the detached-signature context.
const RECEIPT_HEAD_CONTEXT: &str = "mandate-history-receipts-head/v1";

/// A receipt row's hashed columns: all but `reported_at` (which the event
/// log covers) and the chain's own.
#[derive(Debug, FromRow)]
struct ReceiptFields<S, T> {
    seq: i64,
    principal: S,
    id: S,
    grant_id: T,
    agent: S,
    kind: S,
    target: S,
    summary: S,
    rationale: Option<S>,
    outcome: S,
    cause: Option<T>,
    at: i64,
    received_at: i64,
    status: ReceiptStatus,
    error: Option<S>,
    token: S,
}

impl<S: AsRef<str>, T: AsRef<str>> ReceiptFields<S, T> {
    /// SHA-256 over a domain tag, the previous row's hash, and each column
    /// (integers as 8 bytes big endian, text with a 4-byte length, optional
    /// text after a presence byte).
    fn hash(&self, prev: &[u8; 32]) -> [u8; 32] {
        use sha2::Digest as _;
        let mut h = sha2::Sha256::new();
        h.update(RECEIPT_DOMAIN);
        h.update(prev);
        for n in [self.seq, self.at, self.received_at] {
            h.update(n.to_be_bytes());
        }
        let status = match self.status {
            ReceiptStatus::Verified => "verified",
            ReceiptStatus::Failed => "failed",
        };
        for field in [
            self.principal.as_ref(),
            self.id.as_ref(),
            self.grant_id.as_ref(),
            self.agent.as_ref(),
            self.kind.as_ref(),
            self.target.as_ref(),
            self.summary.as_ref(),
            self.outcome.as_ref(),
            status,
            self.token.as_ref(),
        ] {
            crate::history::field_into(&mut h, field);
        }
        let optional = [
            self.rationale.as_ref().map(AsRef::as_ref),
            self.cause.as_ref().map(AsRef::as_ref),
            self.error.as_ref().map(AsRef::as_ref),
        ];
        for field in optional {
            match field {
                Some(f) => {
                    h.update([1]);
                    crate::history::field_into(&mut h, f);
                }
                None => h.update([0]),
            }
        }
        h.finalize().into()
    }
}

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
    pub fn receipt(&mut self, receipt: &str, chain: &[String], at: i64) -> Result<Receipt, Error> {
        let policy = self.policy;
        let verified = self.chain(chain, at)?;
        let leaf = verified.leaf().clone();
        Receipt::verify(receipt, &leaf, &self.keys, &policy, at)
    }

    /// Verifies a page of the feed, as [`Checker::receipt`] does each item,
    /// after learning the keys it carries. Chains are checked one after
    /// the other (most are cached); the receipts' signatures on every core.
    pub fn receipts(&mut self, page: &[ReceiptItem]) -> Vec<Result<Receipt, Error>> {
        self.check_each(page, &Gate::opened(), |_, verified| verified)
    }

    /// What the history records of each receipt of a page: its id, its
    /// agent, its claims when they can be read, and the rule it broke if
    /// it failed.
    pub fn verdicts(&mut self, page: &[ReceiptItem]) -> Vec<Verdict> {
        self.verdicts_behind(page, &Gate::opened())
    }

    /// [`Checker::verdicts`], on one core until `gate` opens and on every
    /// core after.
    fn verdicts_behind(&mut self, page: &[ReceiptItem], gate: &Gate) -> Vec<Verdict> {
        self.check_each(page, gate, |item, verified| {
            let (id, agent, claims, error) = match verified {
                Ok(r) => (r.id(), r.agent().to_string(), Some(r.into_claims()), None),
                Err(e) => {
                    let id = TokenId::of(&item.receipt);
                    match peek::<ReceiptClaims>(&item.receipt) {
                        Ok((kid, claims)) => (
                            id,
                            mandate_core::AgentId::from_thumbprint(kid).to_string(),
                            Some(claims),
                            Some(e.code()),
                        ),
                        Err(_) => (id, String::new(), None, Some(e.code())),
                    }
                }
            };
            Verdict {
                id: id.to_string(),
                agent,
                claims,
                error,
            }
        })
    }

    /// Checks every receipt of a page and hands each result to `then`,
    /// on the machine's cores (see [`par_map`]).
    fn check_each<R: Send>(
        &mut self,
        page: &[ReceiptItem],
        gate: &Gate,
        then: impl Fn(&ReceiptItem, Result<Receipt, Error>) -> R + Sync,
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
                let leaf = self.chain(&item.chain, item.received_at)?.leaf();
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
                Receipt::verify(
                    &item.receipt,
                    &leaves[leaf],
                    keys,
                    &policy,
                    item.received_at,
                )
            });
            then(item, verified)
        })
    }
}

/// Holds back all but one of [`par_map`]'s threads until it opens: while
/// the history writes one batch, the next is checked on one core, and on
/// every core once the writer is done. (The writer is the slower of the
/// two; checks on every core would take its core from it.)
#[derive(Clone)]
struct Gate(std::sync::Arc<(std::sync::Mutex<bool>, std::sync::Condvar)>);

impl Gate {
    fn closed() -> Gate {
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
struct OpenOnDrop(Gate);

impl Drop for OpenOnDrop {
    fn drop(&mut self) {
        self.0.open();
    }
}

/// Writes a backlog of the receipt feed, batch after batch, checking each
/// batch on the blocking pool while the batch before it is written: the
/// signature checks and SQLite's writing and syncing overlap instead of
/// taking turns, and neither runs on the async runtime's threads. Batches
/// are written in the order they are pushed, each in its own transaction,
/// exactly as [`History::ingest`] would write them one after the other.
pub struct Ingest<'h> {
    history: &'h History,
    principal: &'h str,
    key: &'h mandate_core::SigningKey,
    /// Away on the blocking pool while a batch is checked.
    checker: Option<Checker>,
    /// The batch checked last, not written yet.
    pending: Option<(Vec<ReceiptItem>, Vec<Verdict>)>,
    total: Ingested,
}

impl<'h> Ingest<'h> {
    /// Starts a backlog for `principal`, whose user key signs the receipt
    /// chain's heads.
    pub fn new(
        history: &'h History,
        principal: &'h str,
        key: &'h mandate_core::SigningKey,
        checker: Checker,
    ) -> Ingest<'h> {
        Ingest {
            history,
            principal,
            key,
            checker: Some(checker),
            pending: None,
            total: Ingested::default(),
        }
    }

    /// Checks `batch` while the batch pushed before it is written. Returns
    /// once both are done; an error from either leaves the batches not yet
    /// written unwritten (the feed's position stays before them).
    pub async fn push(&mut self, batch: Vec<ReceiptItem>) -> Result<(), ClientError> {
        let mut checker = self
            .checker
            .take()
            .ok_or_else(|| ClientError::History("an earlier batch failed to be checked".into()))?;
        let gate = OpenOnDrop(Gate::closed());
        let behind = gate.0.clone();
        let check = tokio::task::spawn_blocking(move || {
            let verdicts = checker.verdicts_behind(&batch, &behind);
            (checker, batch, verdicts)
        });
        let written = self.write_pending().await;
        drop(gate);
        let (checker, batch, verdicts) = check.await.map_err(|e| match e.try_into_panic() {
            Ok(panic) => std::panic::resume_unwind(panic),
            Err(_) => ClientError::History("checking receipts was cancelled".into()),
        })?;
        self.checker = Some(checker);
        written?;
        self.pending = Some((batch, verdicts));
        Ok(())
    }

    /// Writes the last batch. Returns what the whole backlog brought.
    ///
    /// After a large backlog the write-ahead log is folded into the file
    /// and cut back to nothing: it is checkpointed only every 256 MiB while
    /// receipts are written, and would otherwise keep its largest size on
    /// disk until the history closes.
    pub async fn finish(mut self) -> Result<Ingested, ClientError> {
        self.write_pending().await?;
        if self.total.new >= LARGE_BACKLOG {
            // Busy (a reader still in the log) is not an error: the log is
            // then cut back at a later checkpoint or when the history closes.
            sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
                .execute(self.history.pool())
                .await?;
        }
        Ok(self.total)
    }

    async fn write_pending(&mut self) -> Result<(), ClientError> {
        let Some((batch, verdicts)) = self.pending.take() else {
            return Ok(());
        };
        let got = self
            .history
            .write_checked(self.principal, self.key, &batch, &verdicts)
            .await?;
        self.total.new += got.new;
        self.total.failed += got.failed;
        Ok(())
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

/// Whether a receipt verified here.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, sqlx::Type, ts_rs::TS)]
#[serde(rename_all = "lowercase")]
#[sqlx(rename_all = "lowercase")]
pub enum ReceiptStatus {
    /// Its chain held and its signature is the leaf agent's.
    Verified,
    /// It broke a rule; `error` names which.
    Failed,
}

/// One receipt in the activity timeline.
#[derive(Debug, Clone, Serialize, FromRow, ts_rs::TS)]
pub struct ActivityRow {
    /// Its place in the history.
    pub seq: i64,
    /// The receipt's token id.
    pub id: String,
    /// The grant it names.
    pub grant_id: String,
    /// The agent that signed it: its id (a thumbprint URI).
    pub agent: String,
    /// The agent's fingerprint, for people.
    #[sqlx(skip)]
    pub agent_fingerprint: String,
    /// The name the agent gave itself when it asked, if it ever asked.
    pub agent_name: Option<String>,
    /// For an agent that holds its grant from another agent: the name that
    /// agent gave itself when it asked, if it ever asked.
    pub delegated_by: Option<String>,
    /// The action's type.
    pub kind: String,
    /// What it was done to.
    pub target: String,
    /// The agent's one-line summary.
    pub summary: String,
    /// Why it decided to.
    pub rationale: Option<String>,
    /// `succeeded`, `failed` or `refused`.
    pub outcome: String,
    /// When it acted (the agent's clock).
    pub at: i64,
    /// When the broker accepted it: the time it was checked at.
    pub received_at: i64,
    /// Whether it verified.
    pub status: ReceiptStatus,
    /// The rule it broke, if it failed.
    pub error: Option<String>,
    /// When the user reported it.
    pub reported_at: Option<i64>,
}

/// Which receipts to show. Every field narrows; none set shows everything.
#[derive(Debug, Clone, Default, Deserialize, ts_rs::TS)]
#[serde(default, deny_unknown_fields)]
#[ts(optional_fields)]
pub struct ActivityFilter {
    /// Only this agent's (its id).
    pub agent: Option<String>,
    /// Only those made under this grant.
    pub grant: Option<String>,
    /// Only this action type.
    pub kind: Option<String>,
    /// Only this outcome.
    pub outcome: Option<String>,
    /// Only verified or only failed ones.
    pub status: Option<ReceiptStatus>,
    /// Acted at or after (unix seconds).
    pub from: Option<i64>,
    /// Acted before (unix seconds).
    pub to: Option<i64>,
    /// Words in the summary or the rationale (all of them, as prefixes).
    pub text: Option<String>,
    /// The page after this row: the last row's `seq`.
    pub after: Option<i64>,
    /// How many rows, at most 1000; 200 when unset.
    pub limit: Option<u32>,
}

/// What one sync of the receipt feed brought.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Ingested {
    /// Receipts new to the history.
    pub new: usize,
    /// Of those, the ones that failed verification.
    pub failed: usize,
}

/// What the history records of a receipt besides the receipt itself.
#[derive(Debug, Clone)]
pub struct Verdict {
    /// The receipt's token id.
    id: String,
    /// The agent that signed it, or that its header names if it failed.
    agent: String,
    /// Its claims, when they can be read.
    claims: Option<ReceiptClaims>,
    /// The stable code of the rule it broke, if it failed.
    error: Option<&'static str>,
}

/// A receipt made ready for the history.
struct Checked<'a> {
    item: &'a ReceiptItem,
    verdict: &'a Verdict,
}

const ROW_COLUMNS: &str = "r.seq, r.id, r.grant_id, r.agent, \
    (SELECT q.agent_name FROM requests q WHERE q.principal = r.principal AND q.agent_id = r.agent \
     ORDER BY q.received_at DESC LIMIT 1) AS agent_name, \
    (SELECT q.agent_name FROM grants g JOIN grants p ON p.id = g.parent \
     JOIN requests q ON q.principal = r.principal AND q.agent_id = p.grantee \
     WHERE g.id = r.grant_id ORDER BY q.received_at DESC LIMIT 1) AS delegated_by, \
    r.kind, r.target, r.summary, r.rationale, r.outcome, r.at, r.received_at, r.status, r.error, r.reported_at";

impl History {
    /// How far `principal`'s receipt feed has been read.
    pub async fn receipts_cursor(&self, principal: &str) -> Result<i64, ClientError> {
        let after: Option<i64> =
            sqlx::query_scalar("SELECT receipts_after FROM feed_cursors WHERE principal = ?")
                .bind(principal)
                .fetch_optional(self.pool())
                .await?;
        Ok(after.unwrap_or(0))
    }

    /// A checker for `principal` that knows every agent key and revocation
    /// the history holds.
    pub async fn checker(&self, principal: &str, user: &PublicKey) -> Result<Checker, ClientError> {
        let p = Principal::try_from(principal.to_owned())
            .map_err(|_| ClientError::Invalid("the principal is malformed".into()))?;
        let mut checker = Checker::new(p, user)?;
        let keys: Vec<String> = sqlx::query_scalar("SELECT jwk FROM agent_keys")
            .fetch_all(self.pool())
            .await?;
        for jwk in keys {
            if let Ok(jwk) = serde_json::from_str::<Jwk>(&jwk) {
                let _ = checker.add_key(&jwk);
            }
        }
        let revoked: Vec<(String, i64)> = sqlx::query_as(
            "SELECT id, revoked_at FROM grants WHERE principal = ? AND revoked_at IS NOT NULL",
        )
        .bind(principal)
        .fetch_all(self.pool())
        .await?;
        for (id, at) in revoked {
            if let Ok(id) = id.parse() {
                checker.revoked(id, at);
            }
        }
        Ok(checker)
    }

    /// Records grants as the broker lists them (with their revocations).
    pub async fn save_grants(
        &self,
        principal: &str,
        grants: &[GrantItem],
    ) -> Result<(), ClientError> {
        let mut tx = self.pool().begin().await?;
        for g in grants {
            upsert_grant(&mut tx, principal, &g.grant, g.revoked_at).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Checks one page of the receipt feed and records it, with the keys
    /// and grants it carries, the feed's new position and the receipt
    /// chain's new signed head, in one transaction. Receipts already held
    /// are skipped. For a backlog of many pages, [`Ingest`] overlaps the
    /// checking of one batch with the writing of the one before.
    pub async fn ingest(
        &self,
        principal: &str,
        key: &mandate_core::SigningKey,
        checker: &mut Checker,
        page: &[ReceiptItem],
    ) -> Result<Ingested, ClientError> {
        let verdicts = checker.verdicts(page);
        self.write_checked(principal, key, page, &verdicts).await
    }

    /// Writes a page and the verdicts [`Checker::verdicts`] gave it.
    async fn write_checked(
        &self,
        principal: &str,
        key: &mandate_core::SigningKey,
        page: &[ReceiptItem],
        verdicts: &[Verdict],
    ) -> Result<Ingested, ClientError> {
        let Some(last) = page.last() else {
            return Ok(Ingested::default());
        };
        let checked: Vec<Checked<'_>> = page
            .iter()
            .zip(verdicts)
            .map(|(item, verdict)| Checked { item, verdict })
            .collect();
        let mut conn = self.pool().acquire().await?;
        self.write_page(principal, key, &checked, last.seq, &mut conn)
            .await
    }

    /// Writes checked receipts, with the keys and grants they carry, the
    /// receipt chain's new signed head and the feed's position, in one
    /// transaction.
    async fn write_page(
        &self,
        principal: &str,
        key: &mandate_core::SigningKey,
        checked: &[Checked<'_>],
        last_seq: i64,
        conn: &mut sqlx::SqliteConnection,
    ) -> Result<Ingested, ClientError> {
        let page = checked.iter().map(|c| c.item);
        let mut tx = sqlx::Connection::begin_with(&mut *conn, "BEGIN IMMEDIATE").await?;
        let mut seen_keys = BTreeSet::new();
        // Every receipt carries its chain: the same few grants, thousands of
        // times a batch, told apart by their text (with the standard keyed
        // hash, so that a hostile broker cannot crowd one bucket) rather
        // than each hashed to its id.
        let mut seen_grants: HashSet<&str> = HashSet::new();
        for item in page {
            for jwk in &item.keys {
                if !seen_keys.insert(jwk.x.as_str()) {
                    continue;
                }
                let Ok(key) = PublicKey::from_jwk(jwk) else {
                    continue;
                };
                let jkt = key.thumbprint().to_string();
                {
                    sqlx::query("INSERT OR IGNORE INTO agent_keys (jkt, jwk) VALUES (?, ?)")
                        .bind(jkt)
                        .bind(serde_json::to_string(&key.to_jwk()).unwrap_or_default())
                        .execute(&mut *tx)
                        .await?;
                }
            }
            for grant in &item.chain {
                if seen_grants.insert(grant.as_str()) {
                    upsert_grant(&mut tx, principal, grant, None).await?;
                }
            }
        }
        // The chain continues from this principal's last receipt, which its
        // signed head names (reading it from the receipts themselves would
        // sort all of them).
        let last_row: Option<(i64, String)> =
            sqlx::query_as("SELECT seq, hash FROM receipt_heads WHERE principal = ?")
                .bind(principal)
                .fetch_optional(&mut *tx)
                .await?;
        let mut prev = match &last_row {
            Some((_, h)) => crate::history::decode_hash(h).ok_or_else(|| {
                ClientError::Tampered("the last receipt's hash is malformed".into())
            })?,
            None => [0u8; 32],
        };
        let mut seq: i64 = sqlx::query_scalar("SELECT coalesce(max(seq), 0) FROM receipts")
            .fetch_one(&mut *tx)
            .await?;
        // Receipts already held are skipped (one query for the page): the
        // rows under their ids' keys, compared whole.
        let mut held: HashSet<String> = HashSet::new();
        let mut ask: QueryBuilder<Sqlite> = QueryBuilder::new(
            "SELECT id FROM receipts WHERE seq IN (SELECT seq FROM receipt_ids WHERE key IN (",
        );
        let push_keys = |ask: &mut QueryBuilder<Sqlite>| {
            let mut keys = ask.separated(", ");
            for c in checked {
                keys.push_bind(id_key(&c.verdict.id));
            }
        };
        push_keys(&mut ask);
        ask.push(") UNION ALL SELECT seq FROM receipt_ids_recent WHERE key IN (");
        push_keys(&mut ask);
        ask.push("))");
        for id in ask
            .build_query_scalar::<String>()
            .fetch_all(&mut *tx)
            .await?
        {
            held.insert(id);
        }
        let mut result = Ingested::default();
        let mut rows = Vec::with_capacity(checked.len());
        for c in checked {
            if !held.insert(c.verdict.id.clone()) {
                continue;
            }
            seq += 1;
            let claims = c.verdict.claims.as_ref();
            let row = ReceiptFields {
                seq,
                principal,
                id: c.verdict.id.as_str(),
                grant_id: claims.map(|x| x.grant.to_string()).unwrap_or_default(),
                agent: c.verdict.agent.as_str(),
                kind: claims.map_or("", |x| x.action.kind.as_str()),
                target: claims.map_or("", |x| x.action.target.as_str()),
                summary: claims.map_or("(unreadable receipt)", |x| x.action.summary.as_str()),
                rationale: claims.and_then(|x| x.rationale.as_deref()),
                outcome: claims.map_or("unknown", |x| outcome_str(x.outcome)),
                cause: claims.and_then(|x| x.cause).map(|x| x.to_string()),
                at: claims.map_or(c.item.received_at, |x| x.iat),
                received_at: c.item.received_at,
                status: if c.verdict.error.is_some() {
                    ReceiptStatus::Failed
                } else {
                    ReceiptStatus::Verified
                },
                error: c.verdict.error,
                token: c.item.receipt.as_str(),
            };
            let hash = row.hash(&prev);
            rows.push((row, b64::encode(prev), b64::encode(hash)));
            prev = hash;
            result.new += 1;
            if c.verdict.error.is_some() {
                result.failed += 1;
            }
        }
        // Written many rows to a statement: 18 values a row, well under
        // SQLite's limit of 32,766.
        for part in rows.chunks(1000) {
            let mut insert: QueryBuilder<Sqlite> = QueryBuilder::new(
                "INSERT INTO receipts (seq, id, principal, grant_id, agent, kind, target, summary,
                     rationale, outcome, cause, at, received_at, status, error, token, prev, hash) ",
            );
            insert.push_values(part, |mut b, (row, prev, hash)| {
                b.push_bind(row.seq)
                    .push_bind(row.id)
                    .push_bind(principal)
                    .push_bind(row.grant_id.as_str())
                    .push_bind(row.agent)
                    .push_bind(row.kind)
                    .push_bind(row.target)
                    .push_bind(row.summary)
                    .push_bind(row.rationale)
                    .push_bind(row.outcome)
                    .push_bind(row.cause.as_deref())
                    .push_bind(row.at)
                    .push_bind(row.received_at)
                    .push_bind(row.status)
                    .push_bind(row.error)
                    .push_bind(row.token)
                    .push_bind(prev.as_str())
                    .push_bind(hash.as_str());
            });
            insert.build().execute(&mut *tx).await?;
        }
        // Each new id under its key, then the recent ids moved in key order
        // once there are enough of them (migration 0005).
        for part in rows.chunks(5000) {
            let mut insert: QueryBuilder<Sqlite> =
                QueryBuilder::new("INSERT INTO receipt_ids_recent (key, seq) ");
            insert.push_values(part, |mut b, (row, _, _)| {
                b.push_bind(id_key(row.id)).push_bind(row.seq);
            });
            insert.build().execute(&mut *tx).await?;
        }
        let recent: i64 = sqlx::query_scalar("SELECT count(*) FROM receipt_ids_recent")
            .fetch_one(&mut *tx)
            .await?;
        if recent >= self.recent_ids {
            sqlx::query(
                "INSERT INTO receipt_ids (key, seq) SELECT key, seq FROM receipt_ids_recent",
            )
            .execute(&mut *tx)
            .await?;
            sqlx::query("DELETE FROM receipt_ids_recent")
                .execute(&mut *tx)
                .await?;
        }
        // What each grant was used for, by action type.
        let mut usage: HashMap<(&str, &str), (i64, i64)> = HashMap::new();
        for (row, _, _) in rows
            .iter()
            .filter(|(r, _, _)| r.status == ReceiptStatus::Verified)
        {
            let used = usage
                .entry((row.grant_id.as_str(), row.kind))
                .or_insert((0, row.at));
            used.0 += 1;
            used.1 = used.1.max(row.at);
        }
        for ((grant, kind), (actions, last_at)) in usage {
            sqlx::query(
                "INSERT INTO grant_usage (principal, grant_id, kind, actions, last_at)
                 VALUES (?, ?, ?, ?, ?)
                 ON CONFLICT (principal, grant_id, kind) DO UPDATE SET
                     actions = actions + excluded.actions,
                     last_at = max(last_at, excluded.last_at)",
            )
            .bind(principal)
            .bind(grant)
            .bind(kind)
            .bind(actions)
            .bind(last_at)
            .execute(&mut *tx)
            .await?;
        }
        if result.new > 0 {
            let signature = key.sign_detached(
                RECEIPT_HEAD_CONTEXT,
                &crate::history::head_message(principal, seq, &prev),
            );
            sqlx::query(
                "INSERT INTO receipt_heads (principal, seq, hash, signature) VALUES (?, ?, ?, ?)
                 ON CONFLICT (principal) DO UPDATE SET seq = excluded.seq, hash = excluded.hash,
                     signature = excluded.signature",
            )
            .bind(principal)
            .bind(seq)
            .bind(b64::encode(prev))
            .bind(b64::encode(signature))
            .execute(&mut *tx)
            .await?;
        }
        sqlx::query(
            "INSERT INTO feed_cursors (principal, receipts_after) VALUES (?, ?)
             ON CONFLICT (principal) DO UPDATE SET receipts_after = excluded.receipts_after",
        )
        .bind(principal)
        .bind(last_seq)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(result)
    }

    /// Walks `principal`'s receipt chain, oldest first: each row must
    /// follow the one before and match its hash, and the last must be the
    /// head the user key signed. Returns how many rows it holds; a
    /// [`ClientError::Tampered`] names the first bad row.
    pub async fn verify_receipts(
        &self,
        principal: &str,
        user: &PublicKey,
    ) -> Result<i64, ClientError> {
        use futures_util::TryStreamExt as _;
        #[derive(FromRow)]
        struct Linked {
            #[sqlx(flatten)]
            fields: ReceiptFields<String, String>,
            prev: String,
            hash: String,
        }
        let mut rows = sqlx::query_as::<_, Linked>(
            "SELECT seq, principal, id, grant_id, agent, kind, target, summary, rationale, outcome,
                    cause, at, received_at, status, error, token, prev, hash
             FROM receipts WHERE principal = ? ORDER BY seq",
        )
        .bind(principal)
        .fetch(self.pool());
        let mut prev = [0u8; 32];
        let (mut count, mut last) = (0i64, 0i64);
        while let Some(row) = rows.try_next().await? {
            let seq = row.fields.seq;
            let broken = |what: &str| ClientError::Tampered(format!("receipt row {seq}: {what}"));
            if crate::history::decode_hash(&row.prev) != Some(prev) {
                return Err(broken("does not follow the receipt before it"));
            }
            let hash = row.fields.hash(&prev);
            if crate::history::decode_hash(&row.hash) != Some(hash) {
                return Err(broken("its content does not match its hash"));
            }
            prev = hash;
            count += 1;
            last = seq;
        }
        drop(rows);
        let head: Option<(i64, String, String)> =
            sqlx::query_as("SELECT seq, hash, signature FROM receipt_heads WHERE principal = ?")
                .bind(principal)
                .fetch_optional(self.pool())
                .await?;
        let Some((seq, hash, signature)) = head else {
            return if count == 0 {
                Ok(0)
            } else {
                Err(ClientError::Tampered(
                    "the receipts' signed head is missing".into(),
                ))
            };
        };
        if seq != last || crate::history::decode_hash(&hash) != Some(prev) {
            return Err(ClientError::Tampered(
                "the receipts' signed head is not the last receipt (receipts were added or cut off)"
                    .into(),
            ));
        }
        let signature: [u8; 64] = b64::decode(&signature)
            .and_then(|s| s.try_into().ok())
            .ok_or_else(|| {
                ClientError::Tampered("the receipts' head signature is malformed".into())
            })?;
        user.verify_detached(
            RECEIPT_HEAD_CONTEXT,
            &crate::history::head_message(principal, seq, &prev),
            &signature,
        )
        .map_err(|_| {
            ClientError::Tampered("the receipts' head signature does not verify".into())
        })?;
        // The tables of ids are derived, not signed, but a receipt missing
        // from them would be missed by every lookup by id, and a repeat of
        // it written again. Each must be held once under its id's key. (A
        // history from before migration 0005, read without migrating, has
        // no such tables.)
        let has_ids: bool = sqlx::query_scalar(
            "SELECT count(*) = 2 FROM sqlite_master
             WHERE type = 'table' AND name IN ('receipt_ids', 'receipt_ids_recent')",
        )
        .fetch_one(self.pool())
        .await?;
        if has_ids {
            let unheld: Option<i64> = sqlx::query_scalar(
                "SELECT r.seq FROM receipts r WHERE r.principal = ?
                   AND (SELECT count(*) FROM receipt_ids i
                        WHERE i.key = substr(r.id, 1, 10) AND i.seq = r.seq)
                     + (SELECT count(*) FROM receipt_ids_recent i
                        WHERE i.key = substr(r.id, 1, 10) AND i.seq = r.seq) != 1
                 ORDER BY r.seq LIMIT 1",
            )
            .bind(principal)
            .fetch_optional(self.pool())
            .await?;
            if let Some(seq) = unheld {
                return Err(ClientError::Tampered(format!(
                    "receipt row {seq}: not held once under its id in the tables of ids"
                )));
            }
        }
        Ok(count)
    }

    /// A page of `principal`'s activity, newest first (by arrival).
    pub async fn activity(
        &self,
        principal: &str,
        filter: &ActivityFilter,
    ) -> Result<Vec<ActivityRow>, ClientError> {
        // With words to find, the full-text index leads, newest first, and
        // each match is looked up; otherwise the filter's index does.
        let text = filter.text.as_deref().and_then(fts_query).map(|words| {
            let words = format!("{{summary rationale}} : ({words})");
            match &filter.agent {
                Some(agent) => format!("{words} AND agent : \"{}\"", agent_token(agent)),
                None => words,
            }
        });
        let mut q: QueryBuilder<Sqlite> = QueryBuilder::new("SELECT ");
        q.push(ROW_COLUMNS);
        match &text {
            Some(words) => {
                // CROSS JOIN keeps the full-text index the outer loop
                // (SQLite would otherwise lead with the agent's index and
                // sort every match).
                q.push(" FROM receipts_text t CROSS JOIN receipts r ON r.seq = t.rowid WHERE receipts_text MATCH ")
                    .push_bind(words.clone())
                    .push(" AND r.principal = ")
                    .push_bind(principal);
            }
            None => {
                q.push(" FROM receipts r WHERE r.principal = ")
                    .push_bind(principal);
            }
        }
        if let Some(agent) = &filter.agent {
            q.push(" AND r.agent = ").push_bind(agent);
        }
        if let Some(grant) = &filter.grant {
            q.push(" AND r.grant_id = ").push_bind(grant);
        }
        if let Some(kind) = &filter.kind {
            q.push(" AND r.kind = ").push_bind(kind);
        }
        if let Some(outcome) = &filter.outcome {
            q.push(" AND r.outcome = ").push_bind(outcome);
        }
        if let Some(status) = filter.status {
            q.push(" AND r.status = ").push_bind(status);
        }
        if let Some(from) = filter.from {
            q.push(" AND r.at >= ").push_bind(from);
        }
        if let Some(to) = filter.to {
            q.push(" AND r.at < ").push_bind(to);
        }
        if let Some(seq) = filter.after {
            q.push(" AND r.seq < ").push_bind(seq);
        }
        q.push(match text {
            Some(_) => " ORDER BY t.rowid DESC LIMIT ",
            None => " ORDER BY r.seq DESC LIMIT ",
        });
        q.push_bind(i64::from(filter.limit.unwrap_or(200).clamp(1, 1000)));
        let mut rows: Vec<ActivityRow> = q.build_query_as().fetch_all(self.pool()).await?;
        for row in &mut rows {
            row.agent_fingerprint = fingerprint(&row.agent);
        }
        Ok(rows)
    }

    /// One receipt as the timeline shows it, and its compact token.
    pub async fn receipt_row(
        &self,
        principal: &str,
        id: &str,
    ) -> Result<Option<(ActivityRow, String)>, ClientError> {
        let sql = format!(
            "SELECT {ROW_COLUMNS}, r.token FROM receipts r
             WHERE r.seq IN {SEQ_OF_ID} AND r.principal = ? AND r.id = ?"
        );
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(id)
            .bind(id)
            .bind(principal)
            .bind(id)
            .fetch_optional(self.pool())
            .await?;
        let Some(row) = row else { return Ok(None) };
        let token: String = sqlx::Row::try_get(&row, "token")?;
        let mut activity = ActivityRow::from_row(&row)?;
        activity.agent_fingerprint = fingerprint(&activity.agent);
        Ok(Some((activity, token)))
    }

    /// The chain down to grant `leaf`, root first, as far as the history
    /// holds it.
    pub async fn chain_to(&self, principal: &str, leaf: &str) -> Result<Vec<String>, ClientError> {
        let mut chain = Vec::new();
        let mut next = Some(leaf.to_owned());
        while let Some(id) = next.take() {
            if chain.len() == mandate_core::MAX_CHAIN_LINKS {
                break;
            }
            let row: Option<(String, Option<String>)> =
                sqlx::query_as("SELECT token, parent FROM grants WHERE principal = ? AND id = ?")
                    .bind(principal)
                    .bind(&id)
                    .fetch_optional(self.pool())
                    .await?;
            if let Some((token, parent)) = row {
                chain.push(token);
                next = parent;
            }
        }
        chain.reverse();
        Ok(chain)
    }

    /// The public keys of the agents named along `chain`.
    pub async fn keys_of(&self, chain: &[String]) -> Result<Vec<Jwk>, ClientError> {
        let mut keys = Vec::new();
        for grant in chain {
            let Ok((_, claims)) = peek::<GrantClaims>(grant) else {
                continue;
            };
            let jwk: Option<String> =
                sqlx::query_scalar("SELECT jwk FROM agent_keys WHERE jkt = ?")
                    .bind(claims.cnf.jkt.to_string())
                    .fetch_optional(self.pool())
                    .await?;
            if let Some(jwk) = jwk.and_then(|j| serde_json::from_str(&j).ok()) {
                keys.push(jwk);
            }
        }
        Ok(keys)
    }

    /// Marks a receipt as reported by the user, with an event in the
    /// signed history, in one transaction. Reporting twice changes nothing.
    pub async fn report_receipt(
        &self,
        key: &mandate_core::SigningKey,
        principal: &str,
        id: &str,
        note: Option<&str>,
        now: i64,
    ) -> Result<bool, ClientError> {
        let mut tx = self.pool().begin_with("BEGIN IMMEDIATE").await?;
        let marked = sqlx::query(sqlx::AssertSqlSafe(format!(
            "UPDATE receipts SET reported_at = ?
             WHERE seq IN {SEQ_OF_ID} AND principal = ? AND id = ? AND reported_at IS NULL"
        )))
        .bind(now)
        .bind(id)
        .bind(id)
        .bind(principal)
        .bind(id)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if marked == 0 {
            let known: Option<i64> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
                "SELECT seq FROM receipts WHERE seq IN {SEQ_OF_ID} AND principal = ? AND id = ?"
            )))
            .bind(id)
            .bind(id)
            .bind(principal)
            .bind(id)
            .fetch_optional(&mut *tx)
            .await?;
            return match known {
                Some(_) => Ok(false),
                None => Err(ClientError::NotFound),
            };
        }
        let note = note.map(str::trim).filter(|n| !n.is_empty());
        crate::history::append(&mut tx, key, principal, now, "receipt.reported", id, note).await?;
        tx.commit().await?;
        Ok(true)
    }
}

/// Receipts in a backlog after which `Ingest::finish` cuts the log back.
const LARGE_BACKLOG: usize = 10_000;

/// The rows of `receipts` whose id may be the one bound (twice): those under
/// its key in either table of ids (migration 0005). The caller compares the
/// whole id.
const SEQ_OF_ID: &str = "(SELECT seq FROM receipt_ids WHERE key = substr(?, 1, 10)
     UNION ALL SELECT seq FROM receipt_ids_recent WHERE key = substr(?, 1, 10))";

/// How many ids `receipt_ids_recent` holds before they are moved to
/// `receipt_ids`: few enough that a batch's random inserts land on a few
/// hundred pages, enough that each move writes `receipt_ids` through once
/// for tens of thousands of receipts.
pub(crate) const RECENT_IDS: i64 = 65_536;

/// The key an id is held under: its first 10 characters, as `SEQ_OF_ID`
/// and migration 0005 take them.
fn id_key(id: &str) -> &str {
    id.char_indices().nth(10).map_or(id, |(end, _)| &id[..end])
}

async fn upsert_grant(
    tx: &mut sqlx::SqliteConnection,
    principal: &str,
    grant: &str,
    revoked_at: Option<i64>,
) -> Result<(), ClientError> {
    // A grant that does not parse is not stored; whatever names it will
    // fail to verify and say so.
    let Ok((_, claims)) = peek::<GrantClaims>(grant) else {
        return Ok(());
    };
    sqlx::query(
        "INSERT INTO grants (id, principal, token, parent, grantee, issued_at, expires_at, revoked_at)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?)
         ON CONFLICT (id) DO UPDATE SET revoked_at = coalesce(grants.revoked_at, excluded.revoked_at)",
    )
    .bind(TokenId::of(grant).to_string())
    .bind(principal)
    .bind(grant)
    .bind(claims.prf.map(|p| p.to_string()))
    .bind(mandate_core::AgentId::from_thumbprint(claims.cnf.jkt).to_string())
    .bind(claims.iat)
    .bind(claims.exp)
    .bind(revoked_at)
    .execute(&mut *tx)
    .await?;
    Ok(())
}

fn outcome_str(o: mandate_core::token::Outcome) -> &'static str {
    match o {
        mandate_core::token::Outcome::Succeeded => "succeeded",
        mandate_core::token::Outcome::Failed => "failed",
        mandate_core::token::Outcome::Refused => "refused",
    }
}

/// An agent id's fingerprint, or the id itself when it is not one.
fn fingerprint(agent: &str) -> String {
    agent
        .parse::<mandate_core::AgentId>()
        .map_or_else(|_| agent.to_owned(), |a| a.fingerprint())
}

/// The search token the full-text index holds for an agent: `a` and the
/// last 24 letters and digits of its id (the trigger in migration 0003
/// computes the same). Only a pre-filter: the agent is checked exactly.
fn agent_token(agent: &str) -> String {
    let kept: Vec<char> = agent
        .chars()
        .filter(|c| !matches!(c, '-' | '_' | ':'))
        .collect();
    let tail: String = kept[kept.len().saturating_sub(24)..].iter().collect();
    format!("a{}", tail.replace('"', ""))
}

/// The user's words as an FTS5 query: each word quoted (so no word is
/// read as an operator), all of them required. A word matches whole words;
/// one that ends in `*` matches words that begin with it (a prefix walks
/// every matching word's entries, so it is asked for, not the default).
/// `None` when there is no word.
pub fn fts_query(text: &str) -> Option<String> {
    let words: Vec<String> = text
        .split_whitespace()
        .filter_map(|w| {
            let (word, prefix) = match w.strip_suffix('*') {
                Some(stem) => (stem.trim_end_matches('*'), true),
                None => (w, false),
            };
            (!word.is_empty()).then(|| {
                let quoted = format!("\"{}\"", word.replace('"', "\"\""));
                if prefix { format!("{quoted}*") } else { quoted }
            })
        })
        .collect();
    (!words.is_empty()).then(|| words.join(" "))
}

/// One step of an attribution chain, as the page shows it.
#[derive(Debug, Clone, Serialize, ts_rs::TS)]
pub struct StepView {
    /// `intent`, `interpretation`, `decision`, `action` or `missing`.
    pub step: String,
    /// Who: the user, or the agent's name or fingerprint.
    pub who: String,
    /// The agent's fingerprint, for agents.
    pub fingerprint: Option<String>,
    /// What: the intent, the purpose, or the action's summary.
    pub text: String,
    /// More: the rationale, who delegated, the outcome.
    pub detail: Option<String>,
    /// The token behind the step (a grant or a receipt), if known.
    pub token_id: Option<String>,
    /// Whether that token's signature verified here.
    pub signature: ReceiptStatus,
}

/// Why an action happened, from the user's intent down to it.
#[derive(Debug, Clone, Serialize, ts_rs::TS)]
pub struct AttributionView {
    /// The receipt explained.
    pub receipt: ActivityRow,
    /// The steps, intent first.
    pub steps: Vec<StepView>,
    /// Whether every grant and receipt referred to was known.
    pub complete: bool,
}

impl History {
    /// Explains receipt `id`: every grant and cause on its way is verified
    /// again, here and now, from the tokens the history holds.
    pub async fn attribution(
        &self,
        principal: &str,
        user: &PublicKey,
        id: &str,
    ) -> Result<AttributionView, ClientError> {
        let (row, token) = self
            .receipt_row(principal, id)
            .await?
            .ok_or(ClientError::NotFound)?;
        let mut checker = self.checker(principal, user).await?;
        let mut receipts = Vec::new();
        let mut links = Vec::new();
        let mut next = Some((row.grant_id.clone(), token, row.at));
        // The receipt, then its causes while they are receipts held here.
        while let Some((grant, token, _)) = next.take() {
            if receipts.len() > 64 {
                break;
            }
            let chain = self.chain_to(principal, &grant).await?;
            let id = TokenId::of(&token).to_string();
            let at: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
                "SELECT received_at FROM receipts WHERE seq IN {SEQ_OF_ID} AND id = ?"
            )))
            .bind(&id)
            .bind(&id)
            .bind(&id)
            .fetch_optional(self.pool())
            .await?
            .unwrap_or(row.at);
            let Ok(receipt) = checker.receipt(&token, &chain, at) else {
                break;
            };
            if let Ok(verified) = checker.chain(&chain, at) {
                links.extend(verified.links().cloned());
            }
            let cause = receipt.claims().cause;
            receipts.push(receipt);
            if let Some(cause) = cause
                && let Some((c, t)) = self.receipt_row(principal, &cause.to_string()).await?
                && c.status == ReceiptStatus::Verified
            {
                next = Some((c.grant_id, t, c.at));
            }
        }
        if receipts.is_empty() {
            // The receipt itself does not verify: say so, and nothing more.
            let step = StepView {
                step: "action".into(),
                who: row
                    .agent_name
                    .clone()
                    .unwrap_or_else(|| row.agent_fingerprint.clone()),
                fingerprint: Some(row.agent_fingerprint.clone()),
                text: row.summary.clone(),
                detail: row.error.clone(),
                token_id: Some(row.id.clone()),
                signature: ReceiptStatus::Failed,
            };
            return Ok(AttributionView {
                receipt: row,
                steps: vec![step],
                complete: false,
            });
        }
        let names = self.agent_names_by_id(principal).await?;
        let who = |agent: &mandate_core::AgentId| {
            let id = agent.to_string();
            names
                .get(&id)
                .cloned()
                .unwrap_or_else(|| agent.fingerprint())
        };
        let user_jkt = checker.user();
        let ledger = Ledger::new(links.iter(), receipts.iter());
        let explained = ledger
            .attribute(&receipts[0].id())
            .ok_or(ClientError::NotFound)?;
        let steps = explained
            .steps
            .iter()
            .map(|s| match s {
                Step::Intent { principal, text } => StepView {
                    step: "intent".into(),
                    who: "You".into(),
                    fingerprint: None,
                    text: text
                        .clone()
                        .unwrap_or_else(|| "(no instruction was recorded)".into()),
                    detail: Some(principal.as_str().to_owned()),
                    token_id: None,
                    signature: ReceiptStatus::Verified,
                },
                Step::Interpretation {
                    grant,
                    issuer,
                    agent,
                    purpose,
                } => StepView {
                    step: "interpretation".into(),
                    who: who(agent),
                    fingerprint: Some(agent.fingerprint()),
                    text: purpose.clone(),
                    detail: Some(if *issuer == user_jkt {
                        "granted by you".into()
                    } else {
                        format!(
                            "delegated by {}",
                            who(&mandate_core::AgentId::from_thumbprint(*issuer))
                        )
                    }),
                    token_id: Some(grant.to_string()),
                    signature: ReceiptStatus::Verified,
                },
                Step::Decision(a) | Step::Action(a) => StepView {
                    step: if matches!(s, Step::Decision(_)) {
                        "decision".into()
                    } else {
                        "action".into()
                    },
                    who: who(&a.agent),
                    fingerprint: Some(a.agent.fingerprint()),
                    text: a.action.summary.clone(),
                    detail: Some(match &a.rationale {
                        Some(r) => format!("{} — {r}", outcome_str(a.outcome)),
                        None => outcome_str(a.outcome).to_owned(),
                    }),
                    token_id: Some(a.receipt.to_string()),
                    signature: ReceiptStatus::Verified,
                },
                Step::Missing { id } => StepView {
                    step: "missing".into(),
                    who: "unknown".into(),
                    fingerprint: None,
                    text: "a grant or receipt this history does not hold".into(),
                    detail: None,
                    token_id: Some(id.to_string()),
                    signature: ReceiptStatus::Failed,
                },
            })
            .collect();
        Ok(AttributionView {
            receipt: row,
            steps,
            complete: explained.complete,
        })
    }

    async fn agent_names_by_id(
        &self,
        principal: &str,
    ) -> Result<HashMap<String, String>, ClientError> {
        let rows: Vec<(String, String)> = sqlx::query_as(
            "SELECT agent_id, agent_name FROM requests WHERE principal = ? ORDER BY received_at",
        )
        .bind(principal)
        .fetch_all(self.pool())
        .await?;
        Ok(rows.into_iter().collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_agent_token_is_the_tail_of_its_id_without_separators() {
        assert_eq!(
            agent_token(
                "urn:ietf:params:oauth:jwk-thumbprint:sha-256:Ab-cd_EF0123456789abcdefghijXYZ"
            ),
            "aF0123456789abcdefghijXYZ"
        );
        assert_eq!(agent_token("x"), "ax");
    }

    #[test]
    fn user_words_never_become_fts_operators() {
        assert_eq!(fts_query("  "), None);
        assert_eq!(fts_query("*"), None);
        assert_eq!(fts_query("pods"), Some("\"pods\"".into()));
        assert_eq!(fts_query("pod*"), Some("\"pod\"*".into()));
        assert_eq!(
            fts_query("NOT \"x OR y*"),
            Some("\"NOT\" \"\"\"x\" \"OR\" \"y\"*".into())
        );
    }
}
