//! The event hub: follows the store's event log and fans events out to
//! live streams. Writes on this instance wake it at once; on Postgres,
//! writes on other instances wake it through LISTEN/NOTIFY; and it polls
//! every [`POLL`] in case an announcement was lost.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use mandate_store::{Event, EventKind, Store, Withdrawn};
use tokio::sync::{Notify, broadcast};

/// How often the hub looks for events it was not woken for.
pub const POLL: Duration = Duration::from_millis(250);

/// An event as the hub publishes it, with what the streams need looked up
/// once here rather than once per subscriber.
#[derive(Debug)]
pub struct Published {
    /// The event.
    pub event: Event,
    /// For a revocation, the grants it revoked first (or the user keys it
    /// removed); `None` for other events, or when they could not be read.
    pub revoked: Option<Vec<Withdrawn>>,
}

impl Published {
    /// Wraps `event`, looking up what a revocation revoked.
    pub async fn resolve(store: &Store, event: Event) -> Published {
        let revoked = match event.kind {
            EventKind::Revoked => match event.subject.parse() {
                Ok(id) => store
                    .revoked_by(&id)
                    .await
                    .map_err(|e| tracing::warn!(error = ?e, "reading a revocation failed"))
                    .ok(),
                Err(_) => None,
            },
            _ => None,
        };
        Published { event, revoked }
    }
}

/// The hub; cheap to share.
#[derive(Debug)]
pub struct Hub {
    tx: broadcast::Sender<Arc<Published>>,
    wake: Arc<Notify>,
    started: OnceLock<()>,
}

impl Default for Hub {
    fn default() -> Hub {
        let (tx, _) = broadcast::channel(4096);
        Hub {
            tx,
            wake: Arc::new(Notify::new()),
            started: OnceLock::new(),
        }
    }
}

impl Hub {
    /// Tells this hub, and through the store every other instance's hub,
    /// that events were written.
    pub async fn wake(&self, store: &Store) {
        self.wake.notify_one();
        if let Err(e) = store.announce().await {
            // Other instances still find the events within one poll.
            tracing::warn!(error = ?e, "announcing events failed");
        }
    }

    /// A live feed of events from now on. Starts the follower on first use;
    /// call from within the Tokio runtime.
    pub async fn subscribe(
        &self,
        store: &Store,
    ) -> Result<broadcast::Receiver<Arc<Published>>, mandate_store::StoreError> {
        let rx = self.tx.subscribe();
        if self.started.get().is_none() {
            let from = store.last_event().await?;
            if self.started.set(()).is_ok() {
                tokio::spawn(follow(
                    store.clone(),
                    self.tx.clone(),
                    Arc::clone(&self.wake),
                    from,
                ));
                tokio::spawn(listen(store.clone(), Arc::clone(&self.wake)));
            }
        }
        Ok(rx)
    }
}

/// Turns announcements from other instances (Postgres LISTEN/NOTIFY) into
/// wake-ups; reconnects after a failure.
async fn listen(store: Store, wake: Arc<Notify>) {
    loop {
        match store.listen().await {
            Ok(mut listener) => {
                while listener.changed().await.is_ok() {
                    wake.notify_one();
                }
            }
            Err(e) => tracing::warn!(error = ?e, "listening for events failed"),
        }
        tokio::time::sleep(POLL).await;
    }
}

async fn follow(
    store: Store,
    tx: broadcast::Sender<Arc<Published>>,
    wake: Arc<Notify>,
    mut last: i64,
) {
    const PAGE: i64 = 500;
    loop {
        let _ = tokio::time::timeout(POLL, wake.notified()).await;
        // Drain everything written since the last look, page by page.
        loop {
            match store.events_since(last, PAGE).await {
                Ok(events) => {
                    let full = events.len() as i64 == PAGE;
                    for event in events {
                        last = event.seq;
                        // No receivers is fine: nobody is listening right now.
                        let _ = tx.send(Arc::new(Published::resolve(&store, event).await));
                    }
                    if !full {
                        break;
                    }
                }
                Err(e) => {
                    tracing::warn!(error = ?e, "reading the event log failed");
                    break;
                }
            }
        }
    }
}
