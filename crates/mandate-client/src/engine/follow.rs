//! What runs in the background while someone is signed in: the broker's
//! event stream followed (requests, receipts, keys enrolled elsewhere),
//! the outbox retried with backoff, and the key's binding renewed.

use std::time::Duration;

use super::Engine;
use super::Update;
use crate::ClientError;
use crate::devices::Enrolled;

/// The longest pause between delivery attempts, and between reconnects.
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// How often a signed-in engine checks whether its key's binding is due
/// for renewal.
const RENEWAL_CHECK: Duration = Duration::from_secs(600);
/// The broker sends a keep-alive every few seconds; this long without
/// anything means the connection is gone.
const STREAM_IDLE: Duration = Duration::from_secs(30);

impl Engine {
    /// Keeps the signed-in user in step with the broker, in the
    /// background, until sign-out or shutdown: follows the inbox stream
    /// (each change re-reads the inbox and is announced on
    /// [`Engine::subscribe`]) and retries the outbox with backoff.
    pub fn follow(&self) {
        self.stop_tasks();
        let outbox = tokio::spawn(self.clone().run_outbox());
        let sync = tokio::spawn(self.clone().run_sync());
        let renewal = tokio::spawn(self.clone().run_renewal());
        if let Ok(mut tasks) = self.inner.tasks.lock() {
            tasks.push(outbox);
            tasks.push(sync);
            tasks.push(renewal);
        }
    }

    pub(super) fn stop_tasks(&self) {
        if let Ok(mut tasks) = self.inner.tasks.lock() {
            for task in tasks.drain(..) {
                task.abort();
            }
        }
    }

    /// Keeps the user key's binding alive while the user is signed in.
    async fn run_renewal(self) {
        loop {
            if let Err(e) = self.renew_binding().await {
                tracing::info!(
                    code = e.code(),
                    "the key's binding could not be renewed yet"
                );
            }
            tokio::time::sleep(RENEWAL_CHECK).await;
        }
    }

    /// Retries the outbox with backoff while it holds anything.
    async fn run_outbox(self) {
        let mut pause = Duration::from_secs(1);
        loop {
            match self.deliver().await {
                Ok(0) => pause = Duration::from_secs(1),
                Ok(_) | Err(_) => pause = (pause * 2).min(MAX_BACKOFF),
            }
            tokio::time::sleep(pause).await;
        }
    }

    /// Follows the broker's inbox stream; each change re-reads the inbox.
    /// Reconnects with backoff, resuming after the last event seen.
    async fn run_sync(self) {
        let mut last: Option<String> = None;
        let mut pause = Duration::from_millis(250);
        loop {
            match self.follow_once(&mut last).await {
                Ok(()) => pause = Duration::from_millis(250),
                Err(e) => {
                    tracing::info!(code = e.code(), "the inbox stream dropped");
                    pause = (pause * 2).min(MAX_BACKOFF);
                }
            }
            let _ = self
                .inner
                .updates
                .send(Update::Connection { online: false });
            tokio::time::sleep(pause).await;
        }
    }

    async fn follow_once(&self, last: &mut Option<String>) -> Result<(), ClientError> {
        use futures_util::StreamExt as _;
        let active = self.active().await?;
        let mut res = self
            .inner
            .broker
            .inbox_events(active.bearer.expose(), last.as_deref())
            .await?;
        let _ = self.inner.updates.send(Update::Connection { online: true });
        // Whatever happened while disconnected.
        self.fetch_inbox(&active).await?;
        let _ = self.inner.updates.send(Update::Calls);
        self.sync_activity().await?;
        let mut parser = mandate_agent::sse::SseParser::default();
        loop {
            let chunk = tokio::time::timeout(STREAM_IDLE, res.next())
                .await
                .map_err(|_| ClientError::unreachable("the inbox stream went quiet"))?;
            let Some(chunk) = chunk else {
                return Ok(());
            };
            let chunk = chunk.map_err(|e| ClientError::unreachable(e.without_url().to_string()))?;
            let (mut requests, mut receipts, mut calls) = (false, false, false);
            // New requests by id, read alone; any other change to the
            // requests (decided, expired, or an id that cannot be read)
            // reads the whole inbox.
            let mut created = Vec::new();
            let mut enrolled = Vec::new();
            for event in parser.feed(&chunk) {
                if let Some(id) = event.id {
                    *last = Some(id);
                }
                if event.name == "request.created"
                    && let Some(id) = created_request(&event.data)
                {
                    created.push(id);
                    continue;
                }
                requests |= event.name.starts_with("request.");
                receipts |= event.name == "receipt.stored";
                calls |= event.name.starts_with("confirmation.");
                if event.name == "key.enrolled" {
                    enrolled.extend(Enrolled::parse(&event.data));
                }
            }
            if enrolled.is_empty() && !requests && created.is_empty() && !receipts && !calls {
                continue;
            }
            if calls {
                let _ = self.inner.updates.send(Update::Calls);
            }
            // The bearer may have been refreshed since the stream began.
            let active = self.active().await?;
            for key in enrolled {
                // Never this computer's own key, which may not be the
                // signed-in one yet.
                if active.key.thumbprint() != key.jkt && !self.inner.session.enrolled_here(&key.jkt)
                {
                    self.inner.keys.announce(&active, key).await;
                }
            }
            if requests {
                self.fetch_inbox(&active).await?;
            } else if !created.is_empty() {
                self.fetch_new_requests(&active, &created).await?;
            }
            if receipts {
                self.sync_activity().await?;
            }
        }
    }
}

/// The request id a `request.created` event's data names
/// (`{"type":"request.created","request":ID}`), if it is one.
fn created_request(data: &str) -> Option<String> {
    let data: serde_json::Value = serde_json::from_str(data).ok()?;
    let id = data.get("request")?.as_str()?;
    id.parse::<mandate_core::TokenId>().ok()?;
    Some(id.to_owned())
}

#[cfg(test)]
mod tests {
    use super::created_request;

    #[test]
    fn a_created_event_names_its_request() {
        let id = "K26cQcWl4m-mA4TXgSWKzYgb8rdASzVgMt2n0gUt6hY";
        let data = format!(r#"{{"type":"request.created","request":"{id}"}}"#);
        assert_eq!(created_request(&data).as_deref(), Some(id));
        for bad in [
            "",
            "not json",
            r#"{"type":"request.created"}"#,
            r#"{"type":"request.created","request":7}"#,
            r#"{"type":"request.created","request":"short"}"#,
            r#"{"type":"request.created","request":"K26cQcWl4m-mA4TXgSWKzYgb8rdASzVgMt2n0gUt6h,"}"#,
        ] {
            assert_eq!(created_request(bad), None, "{bad}");
        }
    }
}
