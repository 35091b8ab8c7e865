//! The revocation feed's checkpoints: the broker's signed statement of
//! the position and head its feed reached, and when
//! (`mandate-checkpoint+jwt`, [`CheckpointClaims`]).
//!
//! One task per broker instance folds the feed as it grows and signs a
//! checkpoint once per keep-alive interval ([`crate::Limits::sse_keepalive`])
//! and after each revocation, from this instance or another. Every
//! revocation stream and every read of the feed shares the latest one, so
//! signing costs one signature per interval, whatever the number of
//! followers. The task starts when the feed is first followed, and stops
//! with the broker.
//!
//! A checkpoint is signed only after the feed was read: while the store
//! cannot be read, the last one ages, and followers go stale.

use crate::error::Code;
use std::sync::{Arc, OnceLock, Weak};
use std::time::{Duration, Instant};

use mandate_core::token::CheckpointClaims;
use mandate_core::{Claims as _, FeedHead};
use mandate_store::{EventKind, StoreError, Withdrawn};
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::{broadcast, watch};

use crate::hub::Published;
use crate::revocation_service::FEED_PAGE;
use crate::state::Inner;
use crate::{ApiError, AppState};

/// How long a read of the feed waits for the first checkpoint.
const FIRST: Duration = Duration::from_secs(10);

/// A signed checkpoint.
#[derive(Debug)]
pub(crate) struct Checkpoint {
    /// The compact `mandate-checkpoint+jwt`.
    pub token: String,
}

/// The latest checkpoint of this instance, shared.
#[derive(Debug)]
pub(crate) struct Checkpoints {
    latest: watch::Sender<Option<Arc<Checkpoint>>>,
    started: OnceLock<()>,
}

impl Default for Checkpoints {
    fn default() -> Checkpoints {
        Checkpoints {
            latest: watch::Sender::new(None),
            started: OnceLock::new(),
        }
    }
}

impl Checkpoints {
    /// Each new checkpoint, from the latest on. Starts the signer on first
    /// use; call from within the Tokio runtime.
    pub fn subscribe(&self, state: &AppState) -> watch::Receiver<Option<Arc<Checkpoint>>> {
        if self.started.set(()).is_ok() {
            tokio::spawn(sign_checkpoints(
                Arc::downgrade(&state.inner),
                self.latest.clone(),
            ));
        }
        self.latest.subscribe()
    }

    /// The latest checkpoint, waiting for the first one if none was signed
    /// yet.
    pub async fn latest(&self, state: &AppState) -> Result<Arc<Checkpoint>, ApiError> {
        let mut rx = self.subscribe(state);
        let unavailable = || {
            ApiError::new(
                Code::CheckpointUnavailable,
                "the revocation feed has no checkpoint yet",
            )
        };
        let first = tokio::time::timeout(FIRST, rx.wait_for(Option::is_some))
            .await
            .map_err(|_| unavailable())?
            .map_err(|_| unavailable())?;
        first.clone().ok_or_else(unavailable)
    }
}

/// Folds the feed and signs checkpoints until the broker is gone.
async fn sign_checkpoints(state: Weak<Inner>, latest: watch::Sender<Option<Arc<Checkpoint>>>) {
    let mut events = match state.upgrade() {
        Some(inner) => match inner.hub.subscribe(&inner.store).await {
            Ok(rx) => Some(rx),
            Err(e) => {
                // Then only the interval wakes the signer.
                tracing::warn!(error = ?e, "following the event log for checkpoints failed");
                None
            }
        },
        None => return,
    };
    let mut feed = (0u64, FeedHead::EMPTY);
    let mut signed: Option<(u64, Instant)> = None;
    loop {
        let Some(inner) = state.upgrade() else {
            return;
        };
        let interval = inner.limits.sse_keepalive;
        match fold(&inner, &mut feed).await {
            Ok(()) => {
                let due = signed.is_none_or(|(seq, at)| seq != feed.0 || at.elapsed() >= interval);
                if due {
                    let iat = (inner.clock)();
                    let token = CheckpointClaims {
                        iss: inner.public_url.clone(),
                        seq: feed.0,
                        head: feed.1,
                        iat,
                    }
                    .sign(&inner.key);
                    signed = Some((feed.0, Instant::now()));
                    latest.send_replace(Some(Arc::new(Checkpoint { token })));
                }
            }
            Err(e) => {
                tracing::warn!(error = ?e, "reading the revocation feed for a checkpoint failed")
            }
        }
        drop(inner);
        let wait = match signed {
            Some((_, at)) => interval.saturating_sub(at.elapsed()),
            None => interval,
        };
        tokio::select! {
            () = tokio::time::sleep(wait.max(Duration::from_millis(10))) => {}
            () = revoked(&mut events) => {}
        }
    }
}

/// Applies the feed's entries after `feed`'s position to it.
async fn fold(inner: &Inner, feed: &mut (u64, FeedHead)) -> Result<(), StoreError> {
    loop {
        let after = i64::try_from(feed.0).unwrap_or(i64::MAX);
        let page = inner.store.revoked_since(after, FEED_PAGE).await?;
        if page.is_empty() {
            return Ok(());
        }
        let full = page.len() as i64 == FEED_PAGE;
        for entry in &page {
            // The store's positions are positive and increasing.
            let seq = u64::try_from(entry.seq).unwrap_or(0);
            feed.1 = match &entry.withdrawn {
                Withdrawn::Grant(id) => feed.1.next(seq, id),
                Withdrawn::Key(jkt) => feed.1.next_key(seq, jkt),
            };
            feed.0 = seq;
        }
        if !full {
            return Ok(());
        }
    }
}

/// Returns when a revocation was written, here or on another instance, or
/// when events may have been missed; never, when not following events.
async fn revoked(events: &mut Option<broadcast::Receiver<Arc<Published>>>) {
    let Some(rx) = events else {
        return std::future::pending().await;
    };
    loop {
        match rx.recv().await {
            Ok(p) if p.event.kind == EventKind::Revoked => return,
            Ok(_) => {}
            Err(RecvError::Lagged(_)) => return,
            Err(RecvError::Closed) => {
                *events = None;
                return std::future::pending().await;
            }
        }
    }
}
