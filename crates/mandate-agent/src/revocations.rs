//! A revocation set kept current from the broker: the feed catches up,
//! then the SSE stream delivers each revocation as it is accepted.
//!
//! The set knows how fresh it is. It counts as current while the stream
//! is connected and bytes keep arriving (the broker sends a keep-alive
//! comment on an idle stream); from the last byte on, it ages. A
//! verifier refuses calls once it is older than its bound.

use std::collections::HashSet;
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{Duration, Instant};

use futures_util::StreamExt as _;
use mandate_core::{RevocationSet, TokenId};
use serde::Deserialize;

use crate::AgentError;
use crate::client::{Broker, without_url};
use crate::sse::SseParser;

/// How long the stream may stay silent before it is taken for dead and
/// reopened. The broker's keep-alive is 5 s by default.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(15);

/// The revoked grant ids known from one broker, and how current they are.
#[derive(Debug, Clone)]
pub struct Revocations {
    inner: Arc<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    revoked: RwLock<HashSet<TokenId>>,
    heard: Mutex<Option<Instant>>,
}

#[derive(Deserialize)]
struct Pushed {
    grants: Vec<TokenId>,
}

impl Revocations {
    /// Starts following `broker` on the current Tokio runtime. The set is
    /// empty, and never current, until the first catch-up completes.
    pub fn follow(broker: Broker) -> Revocations {
        Revocations::follow_with(broker, |_| {})
    }

    /// As [`Revocations::follow`], calling `seen` with each newly revoked id.
    pub fn follow_with(
        broker: Broker,
        seen: impl Fn(&TokenId) + Send + Sync + 'static,
    ) -> Revocations {
        let set = Revocations {
            inner: Arc::default(),
        };
        let follower = set.clone();
        tokio::spawn(async move { follower.run(broker, seen).await });
        set
    }

    /// How long ago the set was last known to be current; `None` if never.
    pub fn age(&self) -> Option<Duration> {
        self.heard().map(|t| t.elapsed())
    }

    /// How many grants are known revoked.
    pub fn len(&self) -> usize {
        self.read().len()
    }

    /// Whether no grant is known revoked.
    pub fn is_empty(&self) -> bool {
        self.read().is_empty()
    }

    /// Runs `f` with the current set.
    pub fn with<R>(&self, f: impl FnOnce(&dyn RevocationSet) -> R) -> R {
        f(&*self.read())
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, HashSet<TokenId>> {
        self.inner
            .revoked
            .read()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn heard(&self) -> Option<Instant> {
        *self
            .inner
            .heard
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn touch(&self) {
        *self
            .inner
            .heard
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(Instant::now());
    }

    fn add(&self, ids: impl IntoIterator<Item = TokenId>, seen: &Seen) {
        let mut set = self
            .inner
            .revoked
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        for id in ids {
            if !set.contains(&id) {
                seen(&id);
                set.insert(id);
            }
        }
    }

    async fn run(self, broker: Broker, seen: impl Fn(&TokenId) + Send + Sync + 'static) {
        let mut cursor = Cursor::default();
        let mut backoff = Duration::from_millis(100);
        loop {
            match self.session(&broker, &mut cursor, &seen).await {
                Ok(()) => backoff = Duration::from_millis(100),
                Err(e) => tracing::warn!(error = %e, "revocation stream interrupted"),
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_secs(2));
        }
    }

    /// One connection: open the stream, catch up from the feed, then apply
    /// pushed events until the stream ends.
    async fn session(
        &self,
        broker: &Broker,
        cursor: &mut Cursor,
        seen: &Seen,
    ) -> Result<(), AgentError> {
        let mut req = broker
            .http()
            .get(format!("{}/v1/revocations/events", broker.url()))
            .header("accept", "text/event-stream");
        if let Some(id) = &cursor.event {
            req = req.header("last-event-id", id.as_str());
        }
        let res = tokio::time::timeout(IDLE_TIMEOUT, req.send())
            .await
            .map_err(|_| AgentError::Unreachable("the revocation stream did not open".into()))?
            .map_err(|e| AgentError::Unreachable(without_url(e)))?;
        if !res.status().is_success() {
            return Err(AgentError::Unreachable(format!(
                "the revocation stream answered {}",
                res.status()
            )));
        }
        // The stream is subscribed: whatever was accepted before it is in
        // the feed, whatever comes after arrives on the stream.
        let (caught_up, next) = broker.revocations_after(cursor.feed).await?;
        cursor.feed = next;
        self.add(caught_up, seen);
        self.touch();
        let mut bytes = res.bytes_stream();
        let mut parser = SseParser::default();
        loop {
            let chunk = match tokio::time::timeout(IDLE_TIMEOUT, bytes.next()).await {
                Err(_) => return Err(AgentError::Unreachable("the stream went silent".into())),
                Ok(None) => return Ok(()),
                Ok(Some(chunk)) => chunk.map_err(|e| AgentError::Unreachable(without_url(e)))?,
            };
            for event in parser.feed(&chunk) {
                match event.name.as_str() {
                    "revoked" => {
                        let pushed: Pushed = serde_json::from_str(&event.data).map_err(|_| {
                            AgentError::Unreachable("a revocation event is malformed".into())
                        })?;
                        self.add(pushed.grants, seen);
                    }
                    "lagged" => {
                        return Err(AgentError::Unreachable("the stream fell behind".into()));
                    }
                    _ => {}
                }
                if event.id.is_some() {
                    cursor.event = event.id;
                }
            }
            self.touch();
        }
    }
}

type Seen = dyn Fn(&TokenId) + Send + Sync;

#[derive(Debug, Default)]
struct Cursor {
    /// The last SSE event id seen, to resume the stream.
    event: Option<String>,
    /// The feed position read up to.
    feed: i64,
}
