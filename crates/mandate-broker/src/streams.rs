//! Server-sent event streams: a user's inbox, and the revocation feed
//! ([`INBOX_EVENTS`], [`REVOCATION_EVENTS`]).
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

/// One kind of event a stream carries: its SSE `event` name, the `data`
/// it carries, and when it comes. docs/broker-api.md is generated from
/// these lists, and the inbox stream carries exactly its list's kinds.
#[derive(Debug, Clone, Copy)]
pub struct StreamEvent {
    /// The SSE `event` field.
    pub event: &'static str,
    /// The SSE `data` field's JSON, with each value's meaning for a value.
    pub data: &'static str,
    /// When it comes.
    pub when: &'static str,
}

/// The events of `GET /v1/inbox/events`; each has as its SSE `id` its
/// position in the event log.
pub const INBOX_EVENTS: &[StreamEvent] = &[
    StreamEvent {
        event: "request.created",
        data: r#"{"type":"request.created","request":REQUEST_ID}"#,
        when: "a request was filed in the user's inbox: read `GET /v1/inbox`",
    },
    StreamEvent {
        event: "request.decided",
        data: r#"{"type":"request.decided","request":REQUEST_ID}"#,
        when: "a request was approved or denied, on any of the user's devices",
    },
    StreamEvent {
        event: "request.expired",
        data: r#"{"type":"request.expired","request":REQUEST_ID}"#,
        when: "a request lapsed undecided",
    },
    StreamEvent {
        event: "receipt.stored",
        data: r#"{"type":"receipt.stored","receipt":RECEIPT_ID}"#,
        when: "an agent reported a receipt under one of the user's grants: read `GET /v1/receipts`",
    },
    StreamEvent {
        event: "confirmation.created",
        data: r#"{"type":"confirmation.created","confirmation":CONFIRMATION_ID}"#,
        when: "an agent asks the user to confirm a call: read `GET /v1/confirmations`",
    },
    StreamEvent {
        event: "confirmation.decided",
        data: r#"{"type":"confirmation.decided","confirmation":CONFIRMATION_ID}"#,
        when: "the user confirmed or refused a call, on any of their devices",
    },
    StreamEvent {
        event: "key.enrolled",
        data: r#"{"type":"key.enrolled","key":THUMBPRINT,"at":UNIX_TIME}"#,
        when: "a user key was enrolled for the user, on this device or another",
    },
];

/// The events of `GET /v1/revocations/events`.
pub const REVOCATION_EVENTS: &[StreamEvent] = &[
    StreamEvent {
        event: "revoked",
        data: r#"{"type":"revoked","revocation":REVOCATION_ID,"grants":[GRANT_ID],"keys":[THUMBPRINT]}"#,
        when: "grants were revoked (`keys` only when user keys were removed); its SSE `id` is its \
               position in the event log",
    },
    StreamEvent {
        event: "checkpoint",
        data: r#"{"type":"checkpoint","checkpoint":CHECKPOINT_JWT}"#,
        when: "the latest signed checkpoint, when the stream opens or a resuming stream has \
               caught up, then each new one; it has no SSE `id`",
    },
];

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
                    && INBOX_EVENTS.iter().any(|s| s.event == e.kind.as_str())
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
            Filter::Inbox(_) => inbox_data(e),
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

/// The `data` of an inbox event, as [`INBOX_EVENTS`] documents it.
fn inbox_data(e: &Event) -> serde_json::Value {
    match e.kind {
        EventKind::ReceiptStored => json!({ "type": e.kind.as_str(), "receipt": e.subject }),
        EventKind::KeyEnrolled => {
            json!({ "type": e.kind.as_str(), "key": e.subject, "at": e.created_at })
        }
        EventKind::ConfirmationCreated | EventKind::ConfirmationDecided => {
            json!({ "type": e.kind.as_str(), "confirmation": e.subject })
        }
        _ => json!({ "type": e.kind.as_str(), "request": e.subject }),
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The member names of a documented `data`, whose values are
    /// placeholders.
    fn members(data: &str) -> Vec<String> {
        data.split('"')
            .enumerate()
            .filter(|(i, piece)| i % 2 == 1 && data.contains(&format!("\"{piece}\":")))
            .map(|(_, piece)| piece.to_owned())
            .collect()
    }

    #[test]
    fn the_inbox_events_are_as_documented() {
        for documented in INBOX_EVENTS {
            let kind = [
                EventKind::RequestCreated,
                EventKind::RequestDecided,
                EventKind::RequestExpired,
                EventKind::GrantStored,
                EventKind::Revoked,
                EventKind::ReceiptStored,
                EventKind::BindingStored,
                EventKind::KeyEnrolled,
                EventKind::ConfirmationCreated,
                EventKind::ConfirmationDecided,
            ]
            .into_iter()
            .find(|k| k.as_str() == documented.event)
            .expect("an event kind");
            let e = Event {
                seq: 7,
                kind,
                principal: Some("https://idp.example#alice".into()),
                agent: None,
                subject: "x".into(),
                created_at: 1,
            };
            let data = inbox_data(&e);
            let mut have: Vec<String> = data
                .as_object()
                .expect("an object")
                .keys()
                .cloned()
                .collect();
            let mut want = members(documented.data);
            have.sort();
            want.sort();
            assert_eq!(have, want, "{}", documented.event);
            assert_eq!(data["type"], documented.event);
            assert!(Filter::Inbox("https://idp.example#alice".into()).wants(&e));
        }
        assert_eq!(
            members(REVOCATION_EVENTS[0].data),
            ["type", "revocation", "grants", "keys"]
        );
    }
}
