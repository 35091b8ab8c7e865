//! Server-sent event streams: a user's inbox, and the revocation feed.
//!
//! Each event's SSE id is its sequence number in the event log. A client
//! that reconnects with `Last-Event-ID` gets what it missed, then live
//! events, with nothing repeated.
//!
//! The revocation stream also carries the feed's signed checkpoints
//! (`event: checkpoint`, with no id): the latest one when the backlog has
//! been sent, then each new one, once per keep-alive interval and after
//! each revocation.

use crate::error::Code;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use mandate_store::{Event, EventKind, Withdrawn};
use serde_json::json;
use std::convert::Infallible;
use std::sync::Arc;
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::watch;
use tokio_stream::Stream;

use crate::checkpoint::Checkpoint;
use crate::hub::Published;
use crate::{ApiError, AppState};

/// Which events a stream carries, and how each is written.
#[derive(Debug, Clone)]
pub enum Filter {
    /// A user's inbox: their requests, filed, decided or lapsed, the
    /// receipts agents reported to them, and each key enrolled for them.
    Inbox(String),
    /// Every revocation.
    Revocations,
}

impl Filter {
    fn wants(&self, e: &Event) -> bool {
        match self {
            Filter::Inbox(p) => {
                e.principal.as_deref() == Some(p)
                    && matches!(
                        e.kind,
                        EventKind::RequestCreated
                            | EventKind::RequestDecided
                            | EventKind::RequestExpired
                            | EventKind::ReceiptStored
                            | EventKind::KeyEnrolled
                    )
            }
            Filter::Revocations => e.kind == EventKind::Revoked,
        }
    }

    /// The SSE event for `p`, if this stream carries it.
    fn emit(&self, p: &Published) -> Option<SseEvent> {
        let e = &p.event;
        if !self.wants(e) {
            return None;
        }
        let data = match self {
            Filter::Inbox(_) if e.kind == EventKind::ReceiptStored => {
                json!({ "type": e.kind.as_str(), "receipt": e.subject })
            }
            Filter::Inbox(_) if e.kind == EventKind::KeyEnrolled => {
                json!({ "type": e.kind.as_str(), "key": e.subject, "at": e.created_at })
            }
            Filter::Inbox(_) => json!({ "type": e.kind.as_str(), "request": e.subject }),
            Filter::Revocations => {
                let revoked = p.revoked.as_ref()?;
                let grants: Vec<String> = revoked
                    .iter()
                    .filter_map(|w| match w {
                        Withdrawn::Grant(id) => Some(id.to_string()),
                        Withdrawn::Key(_) => None,
                    })
                    .collect();
                let keys: Vec<String> = revoked
                    .iter()
                    .filter_map(|w| match w {
                        Withdrawn::Key(jkt) => Some(jkt.to_string()),
                        Withdrawn::Grant(_) => None,
                    })
                    .collect();
                if keys.is_empty() {
                    json!({ "type": "revoked", "revocation": e.subject, "grants": grants })
                } else {
                    json!({ "type": "revoked", "revocation": e.subject, "grants": grants, "keys": keys })
                }
            }
        };
        Some(
            SseEvent::default()
                .id(e.seq.to_string())
                .event(e.kind.as_str())
                .data(data.to_string()),
        )
    }
}

/// How many events a stream reads from the log at a time.
const PAGE: i64 = 500;

/// An SSE response for `filter`, resuming after `last_seen` when given.
///
/// The missed events are read from the log a page at a time as the client
/// takes them, so a follower resuming from 0 holds one page in memory, not
/// the log. A follower that falls behind the live events catches up from
/// the log the same way. The revocation feed, which needs no sign-in,
/// takes one of [`crate::Limits::max_followers`] places for as long as it
/// is open; when none is free it is `feed.busy` (503).
pub async fn stream(
    state: AppState,
    filter: Filter,
    last_seen: Option<i64>,
) -> Result<Sse<impl Stream<Item = Result<SseEvent, Infallible>>>, ApiError> {
    let place = match filter {
        Filter::Revocations => Some(
            Arc::clone(&state.inner.followers)
                .try_acquire_owned()
                .map_err(|_| {
                    ApiError::new(
                        Code::FeedBusy,
                        "the revocation feed has as many followers as it takes; try again soon",
                    )
                })?,
        ),
        Filter::Inbox(_) => None,
    };
    // Subscribe before reading the log, so that nothing falls between.
    let mut live = state.inner.hub.subscribe(state.store()).await?;
    let start = match last_seen {
        Some(seq) => seq,
        // Live from here: everything already in the log counts as seen.
        None => state.store().last_event().await?,
    };
    let mut checkpoints =
        matches!(filter, Filter::Revocations).then(|| state.inner.checkpoints.subscribe(&state));
    let keepalive = KeepAlive::new().interval(state.inner.limits.sse_keepalive);
    let stream = async_stream::stream! {
        let _place = place;
        let mut sent = start;
        let mut catching_up = last_seen.is_some();
        // The latest checkpoint is sent once the stream has caught up.
        let mut owe_checkpoint = true;
        'stream: loop {
            if catching_up {
                let page = match state.store().events_since(sent, PAGE).await {
                    Ok(page) => page,
                    Err(e) => {
                        // The client resumes from its last id.
                        tracing::warn!(error = %e, "event stream could not read the log");
                        break;
                    }
                };
                catching_up = page.len() as i64 == PAGE;
                for event in page {
                    let seq = event.seq;
                    // Look up only what this stream will show.
                    if filter.wants(&event) {
                        let published = Published::resolve(state.store(), event).await;
                        let Some(ev) = filter.emit(&published) else {
                            // Never skip what it should carry: end here, and
                            // the client resumes from the last id it got.
                            tracing::warn!(seq, "an event could not be read; the stream ends before it");
                            break 'stream;
                        };
                        yield Ok(ev);
                    }
                    sent = seq;
                }
                continue;
            }
            if std::mem::take(&mut owe_checkpoint)
                && let Some(latest) = checkpoints.as_mut().and_then(|rx| rx.borrow_and_update().clone())
            {
                yield Ok(checkpoint_event(&latest));
            }
            let next = tokio::select! {
                live = live.recv() => Next::Live(live),
                Some(c) = next_checkpoint(&mut checkpoints) => Next::Checkpoint(c),
            };
            match next {
                Next::Live(Ok(p)) => {
                    if p.event.seq <= sent {
                        continue;
                    }
                    if filter.wants(&p.event) {
                        let Some(ev) = filter.emit(&p) else {
                            tracing::warn!(seq = p.event.seq, "an event could not be read; the stream ends before it");
                            break 'stream;
                        };
                        yield Ok(ev);
                    }
                    sent = p.event.seq;
                }
                // Too slow to keep up with the live events: read what was
                // missed from the log, then carry on.
                Next::Live(Err(RecvError::Lagged(_))) => {
                    catching_up = true;
                    owe_checkpoint = true;
                }
                Next::Live(Err(RecvError::Closed)) => break,
                Next::Checkpoint(c) => yield Ok(checkpoint_event(&c)),
            }
        }
    };
    Ok(Sse::new(stream).keep_alive(keepalive))
}

/// What a stream sends next.
enum Next {
    Live(Result<Arc<Published>, RecvError>),
    Checkpoint(Arc<Checkpoint>),
}

/// The next checkpoint signed; never, for a stream without checkpoints or
/// once the signer is gone.
async fn next_checkpoint(
    rx: &mut Option<watch::Receiver<Option<Arc<Checkpoint>>>>,
) -> Option<Arc<Checkpoint>> {
    loop {
        let Some(watching) = rx.as_mut() else {
            return std::future::pending().await;
        };
        if watching.changed().await.is_err() {
            *rx = None;
            continue;
        }
        if let Some(c) = watching.borrow_and_update().clone() {
            return Some(c);
        }
    }
}

/// A checkpoint as an SSE event: `event: checkpoint`, no id (it is not in
/// the event log), `data: {"type":"checkpoint","checkpoint":…}`.
fn checkpoint_event(c: &Checkpoint) -> SseEvent {
    let data = json!({ "type": "checkpoint", "checkpoint": c.token });
    SseEvent::default()
        .event("checkpoint")
        .data(data.to_string())
}
