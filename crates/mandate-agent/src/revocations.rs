//! A revocation set kept current from the broker: the feed catches up,
//! the SSE stream delivers each revocation as it is accepted, and the
//! broker's signed checkpoints say how current the set is.
//!
//! The set is current as of the latest checkpoint it has caught up to
//! ([`RevocationFeed`]): one that verifies under the broker's key and
//! names this broker, that is not older than the last one, and whose feed
//! position and head the set has reached by reading the feed in order.
//! A checkpoint that names revocations the set does not have sends it back
//! to the feed (`GET /v1/revocations?since=`); if they are held back
//! there too, it stays behind and ages. Bytes on the stream, keep-alive
//! comments included, refresh nothing. A verifier refuses every call once
//! the set is older than its bound ([`crate::DEFAULT_MAX_STALENESS`]).

use std::sync::{Arc, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::{Duration, Instant};

use futures_util::StreamExt as _;
use mandate_core::{Checkpointed, Policy, RevocationFeed, RevocationSet, TokenId};
use serde::Deserialize;

use crate::client::{Broker, FeedPage, Metadata, without_url};
use crate::sse::SseParser;
use crate::{AgentError, BrokerError, unix_now};

/// How long the stream may go without a checkpoint before it is taken for
/// dead and reopened. The broker signs one every 5 s by default.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(15);

/// The revoked grant ids known from one broker, and how current they are.
#[derive(Debug, Clone)]
pub struct Revocations {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    feed: RwLock<RevocationFeed>,
    policy: Policy,
}

#[derive(Deserialize)]
struct Pushed {
    grants: Vec<TokenId>,
    #[serde(default)]
    keys: Vec<mandate_core::Thumbprint>,
}

#[derive(Deserialize)]
struct PushedCheckpoint {
    checkpoint: String,
}

impl Revocations {
    /// Starts following `broker`, whose keys and name are `metadata`, on
    /// the current Tokio runtime. The set is empty, and never current,
    /// until a checkpoint is caught up to.
    pub fn follow(broker: Broker, metadata: &Metadata) -> Result<Revocations, AgentError> {
        Revocations::follow_with(broker, metadata, |_| {})
    }

    /// As [`Revocations::follow`], calling `seen` with each newly revoked id.
    pub fn follow_with(
        broker: Broker,
        metadata: &Metadata,
        seen: impl Fn(&TokenId) + Send + Sync + 'static,
    ) -> Result<Revocations, AgentError> {
        let set = Revocations::empty(metadata)?;
        let follower = set.clone();
        tokio::spawn(async move { follower.run(broker, seen).await });
        Ok(set)
    }

    /// Reads the whole feed once, now, and returns the set if a checkpoint
    /// matches it: `revocation.stale` if none does after a few tries (the
    /// feed kept moving, or entries were held back).
    pub async fn read(broker: &Broker, metadata: &Metadata) -> Result<Revocations, AgentError> {
        let set = Revocations::empty(metadata)?;
        for _ in 0..3 {
            match set.catch_up(broker, &|_| {}).await {
                Ok(()) | Err(AgentError::Token(mandate_core::Error::FeedDiverged)) => {}
                Err(e) => return Err(e),
            }
            if set.age().is_some() {
                return Ok(set);
            }
        }
        Err(AgentError::Stale(
            "no checkpoint of the broker matches its revocation feed as read".into(),
        ))
    }

    fn empty(metadata: &Metadata) -> Result<Revocations, AgentError> {
        let feed = RevocationFeed::new(metadata.issuer.clone(), metadata.keys()?);
        Ok(Revocations {
            inner: Arc::new(Inner {
                feed: RwLock::new(feed),
                policy: Policy::default(),
            }),
        })
    }

    /// How old the set is: now minus the time of the latest broker
    /// checkpoint it caught up to; `None` if it never caught up to one.
    pub fn age(&self) -> Option<Duration> {
        self.read_feed().age(unix_now()).map(Duration::from_secs)
    }

    /// How many grants are known revoked.
    pub fn len(&self) -> usize {
        self.read_feed().revoked().len()
    }

    /// Whether no grant is known revoked.
    pub fn is_empty(&self) -> bool {
        self.read_feed().revoked().is_empty()
    }

    /// A copy of the revoked grant ids known now.
    pub fn snapshot(&self) -> std::collections::HashSet<TokenId> {
        self.read_feed().revoked().clone()
    }

    /// A copy of the removed user keys known now.
    pub fn snapshot_keys(&self) -> std::collections::HashSet<mandate_core::Thumbprint> {
        self.read_feed().revoked_keys().clone()
    }

    /// Runs `f` with the current set: the revoked grants and the removed
    /// user keys.
    pub fn with<R>(&self, f: impl FnOnce(&dyn RevocationSet) -> R) -> R {
        f(&*self.read_feed())
    }

    fn read_feed(&self) -> RwLockReadGuard<'_, RevocationFeed> {
        self.inner
            .feed
            .read()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn write_feed(&self) -> RwLockWriteGuard<'_, RevocationFeed> {
        self.inner
            .feed
            .write()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Takes a checkpoint; whether the feed must be read to reach it. A
    /// checkpoint that does not verify is logged and dropped; one the feed
    /// read does not match ends the session, to read the feed again.
    fn checkpoint(&self, token: &str) -> Result<bool, AgentError> {
        let taken = self
            .write_feed()
            .checkpoint(token, &self.inner.policy, unix_now());
        match taken {
            Ok(Checkpointed::Ahead) => Ok(true),
            Ok(_) => Ok(false),
            Err(mandate_core::Error::FeedDiverged) => {
                tracing::warn!(
                    "the revocation feed read does not match the broker's checkpoint; reading it again"
                );
                Err(mandate_core::Error::FeedDiverged.into())
            }
            Err(e) => {
                tracing::warn!(code = e.code(), "a revocation checkpoint was refused");
                Ok(false)
            }
        }
    }

    /// Applies one page of the feed, then its checkpoint.
    fn apply(&self, page: &FeedPage, seen: &Seen) -> Result<(), AgentError> {
        {
            let mut feed = self.write_feed();
            for entry in &page.revoked {
                match (entry.grant, entry.key) {
                    (Some(grant), None) => {
                        if feed.apply(entry.seq, grant)? {
                            seen(&grant);
                        }
                    }
                    (None, Some(key)) => {
                        feed.apply_key(entry.seq, key)?;
                    }
                    // Neither or both: not an entry this follower can
                    // fold, so its head could not match; read it again.
                    _ => return Err(mandate_core::Error::FeedDiverged.into()),
                }
            }
        }
        if let Some(token) = &page.checkpoint {
            self.checkpoint(token)?;
        }
        Ok(())
    }

    /// Reads the feed from the position applied to its end.
    async fn catch_up(&self, broker: &Broker, seen: &Seen) -> Result<(), AgentError> {
        loop {
            let position = self.read_feed().position();
            let page = broker.revocations(position).await?;
            self.apply(&page, seen)?;
            if page.revoked.is_empty() {
                return Ok(());
            }
        }
    }

    async fn run(self, broker: Broker, seen: impl Fn(&TokenId) + Send + Sync + 'static) {
        let mut last_event = None;
        let mut backoff = Duration::from_millis(100);
        loop {
            match self.session(&broker, &mut last_event, &seen).await {
                Ok(()) => backoff = Duration::from_millis(100),
                Err(e) => tracing::warn!(error = %e, "revocation stream interrupted"),
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_secs(2));
        }
    }

    /// One connection: open the stream, catch up from the feed, then apply
    /// pushed revocations and checkpoints until the stream ends, goes
    /// without a checkpoint for [`IDLE_TIMEOUT`], or the feed diverges.
    async fn session(
        &self,
        broker: &Broker,
        last_event: &mut Option<String>,
        seen: &Seen,
    ) -> Result<(), AgentError> {
        let mut req = broker
            .http()
            .get(format!("{}/v1/revocations/events", broker.url()))
            .header("accept", "text/event-stream");
        if let Some(id) = last_event.as_deref() {
            req = req.header("last-event-id", id);
        }
        let res = tokio::time::timeout(IDLE_TIMEOUT, req.send())
            .await
            .map_err(|_| BrokerError::Unreachable("the revocation stream did not open".into()))?
            .map_err(|e| BrokerError::Unreachable(without_url(e)))?;
        if !res.status().is_success() {
            return Err(AgentError::from(BrokerError::Unreachable(format!(
                "the revocation stream answered {}",
                res.status()
            ))));
        }
        // The stream is subscribed: whatever was accepted before it is in
        // the feed, whatever comes after arrives on the stream.
        self.catch_up(broker, seen).await?;
        let mut bytes = res.bytes_stream();
        let mut parser = SseParser::default();
        let mut heard = Instant::now();
        loop {
            let silence = IDLE_TIMEOUT.saturating_sub(heard.elapsed());
            let chunk = match tokio::time::timeout(silence, bytes.next()).await {
                Err(_) => {
                    return Err(BrokerError::Unreachable(
                        "no checkpoint came on the revocation stream".into(),
                    )
                    .into());
                }
                Ok(None) => return Ok(()),
                Ok(Some(chunk)) => chunk.map_err(|e| BrokerError::Unreachable(without_url(e)))?,
            };
            for event in parser.feed(&chunk) {
                match event.name.as_str() {
                    "revoked" => {
                        let pushed: Pushed = serde_json::from_str(&event.data).map_err(|_| {
                            BrokerError::Unreachable("a revocation event is malformed".into())
                        })?;
                        let mut feed = self.write_feed();
                        for grant in pushed.grants {
                            if feed.push(grant) {
                                seen(&grant);
                            }
                        }
                        for key in pushed.keys {
                            feed.push_key(key);
                        }
                    }
                    "checkpoint" => {
                        heard = Instant::now();
                        let pushed: PushedCheckpoint =
                            serde_json::from_str(&event.data).map_err(|_| {
                                BrokerError::Unreachable("a checkpoint event is malformed".into())
                            })?;
                        if self.checkpoint(&pushed.checkpoint)? {
                            self.catch_up(broker, seen).await?;
                        }
                    }
                    "lagged" => {
                        return Err(
                            BrokerError::Unreachable("the stream fell behind".into()).into()
                        );
                    }
                    _ => {}
                }
                if event.id.is_some() {
                    *last_event = event.id;
                }
            }
        }
    }
}

type Seen = dyn Fn(&TokenId) + Send + Sync;
