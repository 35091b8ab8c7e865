//! Server-sent event streams: a user's inbox, and the revocation feed.
//!
//! Each event's SSE id is its sequence number in the event log. A client
//! that reconnects with `Last-Event-ID` gets what it missed, then live
//! events, with nothing repeated.

use std::convert::Infallible;
use std::sync::Arc;

use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use mandate_core::TokenId;
use mandate_store::{Event, EventKind};
use serde_json::json;
use tokio::sync::broadcast::error::RecvError;
use tokio_stream::Stream;

use crate::{ApiError, AppState};

/// Which events a stream carries, and how each is written.
#[derive(Debug, Clone)]
pub enum Filter {
    /// A user's inbox: their requests, filed, decided or lapsed.
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
                    )
            }
            Filter::Revocations => e.kind == EventKind::Revoked,
        }
    }

    /// The SSE event for `e`, if this stream carries it.
    async fn emit(&self, state: &AppState, e: &Event) -> Option<SseEvent> {
        if !self.wants(e) {
            return None;
        }
        let data = match self {
            Filter::Inbox(_) => json!({ "type": e.kind.as_str(), "request": e.subject }),
            Filter::Revocations => {
                let id: TokenId = e.subject.parse().ok()?;
                let grants = state.store().revoked_by(&id).await.ok()?;
                json!({ "type": "revoked", "revocation": e.subject, "grants": grants })
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

/// An SSE response for `filter`, resuming after `last_seen` when given.
pub async fn stream(
    state: AppState,
    filter: Filter,
    last_seen: Option<i64>,
) -> Result<Sse<impl Stream<Item = Result<SseEvent, Infallible>>>, ApiError> {
    // Subscribe before reading the backlog, so that nothing falls between.
    let mut live = state.inner.hub.subscribe(state.store()).await?;
    let mut backlog: Vec<Arc<Event>> = Vec::new();
    if let Some(mut cursor) = last_seen {
        loop {
            let page = state.store().events_since(cursor, 500).await?;
            let Some(tail) = page.last() else { break };
            cursor = tail.seq;
            backlog.extend(page.into_iter().map(Arc::new));
        }
    }
    let stream = async_stream::stream! {
        let mut sent = last_seen.unwrap_or(0);
        for e in backlog {
            if let Some(ev) = filter.emit(&state, &e).await {
                yield Ok(ev);
            }
            sent = e.seq;
        }
        loop {
            match live.recv().await {
                Ok(e) => {
                    if e.seq <= sent {
                        continue;
                    }
                    sent = e.seq;
                    if let Some(ev) = filter.emit(&state, &e).await {
                yield Ok(ev);
            }
                }
                Err(RecvError::Lagged(_)) => {
                    // Too slow to keep up: tell the client to resume from
                    // its last id, and stop.
                    yield Ok(SseEvent::default().event("lagged").data("{\"type\":\"lagged\"}"));
                    break;
                }
                Err(RecvError::Closed) => break,
            }
        }
    };
    Ok(Sse::new(stream).keep_alive(KeepAlive::default()))
}
