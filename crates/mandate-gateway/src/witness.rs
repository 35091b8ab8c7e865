//! Witness receipts: the gateway's own signed account of each call to a
//! tool, resource or prompt (docs/protocol.md 4.10; a batch at a time
//! under one `mandate-witness-report+jwt`), beside the agent's receipt,
//! reported to the broker, which
//! trusts the gateway's key as the witness of its resource
//! (`--witness URI=THUMBPRINT`).
//!
//! A call's outcome is read from the upstream's answer as it streams past
//! ([`Tap`]): `failed` if the answer is a JSON-RPC error, or a tool result
//! with `isError: true`, or never comes whole; `succeeded` otherwise. A
//! call the gateway refuses (outside the grant, or to a tool it never
//! passes) is `refused`. Receipts are recorded as calls end, then signed
//! and reported in the background, in batches, so that no call waits on
//! a signature or on the broker; if the broker is away, they wait in a
//! bounded queue and are retried.

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Bytes;
use futures_util::Stream;
use mandate_core::token::{
    Action, Jti, Outcome, ToolsClaims, WitnessClaims, WitnessReport, digest_of,
};
use mandate_core::{Claims as _, SigningKey, Thumbprint, TokenId};
use serde_json::{Value, json};
use tokio::sync::{mpsc, watch};

use crate::rpc::Call;
use crate::tools::Catalog;

/// The most receipts waiting to be reported; more are dropped, counted
/// and logged.
pub const QUEUE: usize = 16_384;

/// The most receipts one report carries (the broker's limit).
pub const BATCH: usize = mandate_core::token::MAX_WITNESS_REPORT;

/// The most of an answer read for its outcome: 1 MiB. A longer answer
/// whose status is a success counts as `succeeded`.
pub const MAX_TAP: usize = 1024 * 1024;

/// How long the reporter waits, after a receipt, for more to send with
/// it.
const LINGER: Duration = Duration::from_millis(250);

/// How long a batch is retried while the broker is away: a little under
/// the ten minutes the broker takes receipts for.
const RETRY_FOR: Duration = Duration::from_secs(480);

/// What the gateway saw of one call, before its outcome.
#[derive(Debug, Clone)]
pub struct Seen {
    /// The leaf grant it was made under.
    pub grant: TokenId,
    /// The key that made it.
    pub holder: Thumbprint,
    /// The method.
    pub method: String,
    /// The tool, prompt or resource it named.
    pub name: Option<String>,
    /// The digest of the request body.
    pub dig: String,
    /// The W3C trace id it carried.
    pub trace: Option<String>,
}

impl Seen {
    /// What the gateway saw of `call`, made under `chain` by `holder`,
    /// with the request `body`; `None` for a method that is not an action
    /// (a list, a ping), or a chain that is empty.
    pub fn of(
        call: &Call,
        chain: &[TokenId],
        holder: &str,
        body: &[u8],
        trace: Option<&str>,
    ) -> Option<Seen> {
        call.method.names_target()?;
        Some(Seen {
            grant: *chain.last()?,
            holder: holder.parse().ok()?,
            method: call.method_name.clone(),
            name: call
                .target
                .clone()
                .filter(|n| n.len() <= mandate_core::token::MAX_WITNESS_NAME),
            dig: digest_of(body),
            trace: trace
                .filter(|t| mandate_core::token::valid_trace_id(t))
                .map(str::to_owned),
        })
    }
}

/// The key a gateway signs witness receipts with; its `Debug` shows only
/// the key's thumbprint.
#[derive(Clone)]
pub struct WitnessKey(Arc<SigningKey>);

impl WitnessKey {
    /// Hands `key` to the gateway.
    pub fn new(key: SigningKey) -> WitnessKey {
        WitnessKey(Arc::new(key))
    }

    /// Its RFC 7638 thumbprint, which the broker's `--witness` names.
    pub fn thumbprint(&self) -> Thumbprint {
        self.0.thumbprint()
    }
}

impl std::fmt::Debug for WitnessKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "WitnessKey({})", self.thumbprint())
    }
}

/// Signs witness receipts and reports them to the broker.
pub struct Witness {
    key: WitnessKey,
    resource: String,
    queue: mpsc::Sender<WitnessClaims>,
    dropped: AtomicU64,
    /// Set when the gateway stops: the reporter sends what waits, at
    /// once, and ends.
    stopping: watch::Sender<bool>,
    reporter: std::sync::Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl std::fmt::Debug for Witness {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Witness")
            .field("key", &self.key)
            .finish_non_exhaustive()
    }
}

impl Witness {
    /// A witness for `resource` signing with `key`, reporting to the
    /// broker at `broker_url` with `http`.
    ///
    /// It also relays what the upstream says of its tools, as `catalog`
    /// learns it, in a tools statement ([`describe`]).
    pub fn start(
        key: WitnessKey,
        resource: String,
        broker_url: &str,
        http: reqwest::Client,
        catalog: Arc<Catalog>,
    ) -> Arc<Witness> {
        let (queue, receipts) = mpsc::channel(QUEUE);
        tokio::spawn(describe(
            catalog,
            key.clone(),
            resource.clone(),
            format!("{broker_url}/v1/witness/tools"),
            http.clone(),
        ));
        let (stopping, stop) = watch::channel(false);
        let reporter = tokio::spawn(report(
            receipts,
            key.clone(),
            format!("{broker_url}/v1/witness"),
            http,
            stop,
        ));
        Arc::new(Witness {
            key,
            resource,
            queue,
            dropped: AtomicU64::new(0),
            stopping,
            reporter: std::sync::Mutex::new(Some(reporter)),
        })
    }

    /// Reports every receipt still queued, without waiting out the
    /// linger, and stops the reporter; call once no more calls come (the
    /// server has stopped). Gives up after `within`, while the broker is
    /// away, and logs how many receipts were left: false then.
    pub async fn stop(&self, within: Duration) -> bool {
        let _ = self.stopping.send(true);
        let reporter = self
            .reporter
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
        let Some(reporter) = reporter else {
            return true;
        };
        let abort = reporter.abort_handle();
        if tokio::time::timeout(within, reporter).await.is_ok() {
            return true;
        }
        abort.abort();
        tracing::warn!(
            queued = self.queue.max_capacity() - self.queue.capacity(),
            "stopping with witness receipts not reported: the broker did not take them in time"
        );
        false
    }

    /// Queues the receipt of a call that ended `outcome`; the reporter
    /// signs it, off the call's path.
    pub fn record(&self, seen: &Seen, outcome: Outcome) {
        let summary = match (&seen.name, seen.method.as_str()) {
            (Some(n), "tools/call") => format!("Called the tool {n}"),
            (Some(n), "resources/read") => format!("Read the resource {n}"),
            (Some(n), "prompts/get") => format!("Got the prompt {n}"),
            (Some(n), m) => format!("{m} {n}"),
            (None, m) => m.to_owned(),
        };
        let claims = WitnessClaims {
            grant: seen.grant,
            holder: seen.holder,
            action: Action {
                kind: seen.method.clone(),
                target: self.resource.clone(),
                summary,
            },
            name: seen.name.clone(),
            dig: seen.dig.clone(),
            outcome,
            trace: seen.trace.clone(),
            iat: mandate_agent::unix_now(),
            jti: Jti::random(&mut rand_core::OsRng),
        };
        if self.queue.try_send(claims).is_err() {
            let n = self.dropped.fetch_add(1, Ordering::Relaxed) + 1;
            tracing::warn!(
                dropped = n,
                "a witness receipt was dropped: the queue is full"
            );
        }
    }
}

/// Reports queued receipts, a batch at a time, until the gateway stops;
/// then reports what still waits, and ends.
async fn report(
    mut receipts: mpsc::Receiver<WitnessClaims>,
    key: WitnessKey,
    url: String,
    http: reqwest::Client,
    mut stop: watch::Receiver<bool>,
) {
    let jwk = json!(key.0.public().to_jwk());
    let mut batch: Vec<WitnessClaims> = Vec::with_capacity(BATCH);
    loop {
        // `recv_many` is cancel safe: what it took is in `batch`. A
        // dropped `Witness` stops the reporter too.
        let stopping = tokio::select! {
            n = receipts.recv_many(&mut batch, BATCH) => n == 0,
            _ = stop.wait_for(|s| *s) => true,
        };
        // Let what comes within LINGER of the first gather, without waking
        // the reporter for each receipt as it comes (a wake a call, a
        // thread unparked a call, at a thousand calls a second); then
        // report all that waits, a batch at a time: one report, one
        // transaction at the broker, for many calls.
        if !stopping && batch.len() < BATCH {
            tokio::select! {
                () = tokio::time::sleep(LINGER) => {}
                _ = stop.wait_for(|s| *s) => {}
            }
        }
        loop {
            while batch.len() < BATCH {
                match receipts.try_recv() {
                    Ok(claims) => batch.push(claims),
                    Err(_) => break,
                }
            }
            if batch.is_empty() {
                break;
            }
            let full = batch.len() == BATCH;
            report_batch(&mut batch, &key, &jwk, &url, &http).await;
            // Stopping, go on until nothing waits: receipts of the last
            // calls may have come while this report went.
            if !full && !*stop.borrow() {
                break;
            }
        }
        if stopping || *stop.borrow() {
            return;
        }
    }
}

/// Signs and reports one batch, retrying while the broker is away, and
/// empties it.
async fn report_batch(
    batch: &mut Vec<WitnessClaims>,
    key: &WitnessKey,
    jwk: &Value,
    url: &str,
    http: &reqwest::Client,
) {
    // One signature for the batch, over the head of the Merkle tree of its
    // receipts (docs/protocol.md, 4.10): one signing and some 200 hashes,
    // where it was 100 signings on a blocking thread.
    let claims = std::mem::take(batch);
    let signed = WitnessReport::sign(
        &claims,
        &key.0,
        mandate_agent::unix_now(),
        Jti::random(&mut rand_core::OsRng),
    );
    let count = signed.receipts.len();
    let body = json!({ "key": jwk, "report": signed.report, "receipts": signed.receipts });
    let mut wait = Duration::from_millis(250);
    let started = tokio::time::Instant::now();
    loop {
        match send(http, url, &body).await {
            Ok(results) => {
                log_refusals(&results);
                break;
            }
            Err(Retry::No(why)) => {
                tracing::warn!(receipts = count, %why, "the broker refused witness receipts");
                break;
            }
            Err(Retry::Later(why)) if started.elapsed() < RETRY_FOR => {
                tracing::info!(%why, "reporting witness receipts again shortly");
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(Duration::from_secs(30));
            }
            Err(Retry::Later(why)) => {
                tracing::warn!(receipts = count, %why, "witness receipts could not be reported");
                break;
            }
        }
    }
}

/// How often the tools statement is sent again when nothing changed: a
/// broker that restarted holds it again within this.
const RESTATE: Duration = Duration::from_secs(300);

/// Sends the broker a tools statement (`mandate-tools+jwt`, docs/protocol.md
/// 4.11) whenever a listing changes what `catalog` knows, and every
/// [`RESTATE`], until the gateway stops. The user's app shows it beside a
/// request for those tools, as the server's claim.
async fn describe(
    catalog: Arc<Catalog>,
    key: WitnessKey,
    resource: String,
    url: String,
    http: reqwest::Client,
) {
    let jwk = json!(key.0.public().to_jwk());
    loop {
        let _ = tokio::time::timeout(RESTATE, catalog.changed()).await;
        let mut claims = ToolsClaims {
            resource: resource.clone(),
            tools: catalog.statement(),
            iat: mandate_agent::unix_now(),
            jti: Jti::random(&mut rand_core::OsRng),
        };
        // A token is at most 16 KiB: as many tools as fit, in name order;
        // the rest are shown as unknown.
        let mut statement = claims.sign(&key.0);
        while statement.len() > mandate_core::jws::MAX_TOKEN_BYTES && !claims.tools.is_empty() {
            let keep = claims.tools.len() * 3 / 4;
            claims.tools.truncate(keep);
            statement = claims.sign(&key.0);
        }
        if claims.tools.is_empty() {
            continue;
        }
        let body = json!({ "key": jwk, "statement": statement });
        if let Err(Retry::No(why) | Retry::Later(why)) = send(&http, &url, &body).await {
            tracing::warn!(%why, "the broker did not take the tools statement; it goes again at the next change, or in five minutes");
        }
    }
}

enum Retry {
    No(String),
    Later(String),
}

async fn send(http: &reqwest::Client, url: &str, body: &Value) -> Result<Value, Retry> {
    let res = http
        .post(url)
        .json(body)
        .timeout(Duration::from_secs(30))
        .send()
        .await
        .map_err(|e| Retry::Later(e.without_url().to_string()))?;
    let status = res.status();
    let answer: Value = res.json().await.unwrap_or(Value::Null);
    if status.is_success() {
        return Ok(answer);
    }
    let why = format!("{status}: {}", answer["code"].as_str().unwrap_or("no code"));
    if status.is_server_error() || status.as_u16() == 429 {
        Err(Retry::Later(why))
    } else {
        Err(Retry::No(why))
    }
}

/// Logs the receipts the broker refused, one line for each code with how
/// many and one id, rather than a line a receipt: a misconfigured broker
/// refuses every one.
fn log_refusals(results: &Value) {
    let mut refused: std::collections::BTreeMap<&str, (usize, Option<&str>)> =
        std::collections::BTreeMap::new();
    for r in results["results"].as_array().into_iter().flatten() {
        if let Some(code) = r["error"]["code"].as_str()
            && code != "receipt.replayed"
        {
            let entry = refused.entry(code).or_insert((0, r["id"].as_str()));
            entry.0 += 1;
        }
    }
    for (code, (count, id)) in refused {
        tracing::warn!(code, count, id, "the broker refused witness receipts");
    }
}

/// The upstream's answer to one call, passed on as it streams, read on
/// the way for the call's outcome; the receipt is recorded when the
/// answer ends, breaks off, or is dropped unfinished.
pub struct Tap<S> {
    inner: S,
    read: Vec<u8>,
    overflow: bool,
    sse: bool,
    success: bool,
    id: Value,
    done: Option<(Arc<Witness>, Seen)>,
}

impl<S> Tap<S> {
    /// Taps `inner`, the answer to the call `id`, of HTTP status
    /// `success` or not, as SSE or JSON.
    pub fn new(
        inner: S,
        id: Value,
        sse: bool,
        success: bool,
        witness: Arc<Witness>,
        seen: Seen,
    ) -> Tap<S> {
        Tap {
            inner,
            read: Vec::new(),
            overflow: false,
            sse,
            success,
            id,
            done: Some((witness, seen)),
        }
    }

    /// Records the receipt, once: `ended` when the answer reached its end.
    fn finish(&mut self, ended: bool) {
        if let Some((witness, seen)) = self.done.take() {
            let outcome = match (self.success, self.overflow) {
                (false, _) => Outcome::Failed,
                (true, true) if ended => Outcome::Succeeded,
                (true, true) => Outcome::Failed,
                (true, false) => outcome_of(&self.read, self.sse, &self.id),
            };
            witness.record(&seen, outcome);
        }
    }
}

impl<S, E> Stream for Tap<S>
where
    S: Stream<Item = Result<Bytes, E>> + Unpin,
{
    type Item = Result<Bytes, E>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_next(cx) {
            Poll::Ready(Some(Ok(chunk))) => {
                if !this.overflow {
                    if this.read.len() + chunk.len() > MAX_TAP {
                        this.overflow = true;
                        this.read = Vec::new();
                    } else {
                        this.read.extend_from_slice(&chunk);
                    }
                }
                Poll::Ready(Some(Ok(chunk)))
            }
            Poll::Ready(Some(Err(e))) => {
                this.finish(false);
                Poll::Ready(Some(Err(e)))
            }
            Poll::Ready(None) => {
                this.finish(true);
                Poll::Ready(None)
            }
            Poll::Pending => Poll::Pending,
        }
    }
}

impl<S> Drop for Tap<S> {
    fn drop(&mut self) {
        // Dropped before its end (the client went away): the outcome is
        // what had come by then.
        self.finish(false);
    }
}

/// The outcome an answer, whole in `body`, gives the call `id`.
pub fn outcome_of(body: &[u8], sse: bool, id: &Value) -> Outcome {
    let mut messages: VecDeque<Value> = VecDeque::new();
    if sse {
        let Ok(text) = std::str::from_utf8(body) else {
            return Outcome::Failed;
        };
        let text = text.replace("\r\n", "\n");
        for (_, data) in crate::tools::events(&text) {
            if let Some(m) = data.and_then(|d| serde_json::from_str(&d).ok()) {
                messages.push_back(m);
            }
        }
    } else if let Ok(m) = serde_json::from_slice(body) {
        messages.push_back(m);
    }
    let Some(answer) = messages.into_iter().find(|m| {
        m.get("id") == Some(id) && (m.get("result").is_some() || m.get("error").is_some())
    }) else {
        return Outcome::Failed;
    };
    match answer.get("result") {
        Some(r) if r.get("isError") != Some(&Value::Bool(true)) => Outcome::Succeeded,
        _ => Outcome::Failed,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_outcome_is_read_from_the_answer() {
        let id = json!(7);
        let ok = br#"{"jsonrpc":"2.0","id":7,"result":{"content":[]}}"#;
        let tool_error = br#"{"jsonrpc":"2.0","id":7,"result":{"isError":true,"content":[]}}"#;
        let rpc_error = br#"{"jsonrpc":"2.0","id":7,"error":{"code":-32602,"message":"no"}}"#;
        let other_id = br#"{"jsonrpc":"2.0","id":8,"result":{}}"#;
        assert_eq!(outcome_of(ok, false, &id), Outcome::Succeeded);
        assert_eq!(outcome_of(tool_error, false, &id), Outcome::Failed);
        assert_eq!(outcome_of(rpc_error, false, &id), Outcome::Failed);
        assert_eq!(outcome_of(other_id, false, &id), Outcome::Failed);
        assert_eq!(outcome_of(b"{not json", false, &id), Outcome::Failed);
        assert_eq!(outcome_of(b"", false, &id), Outcome::Failed);
        // As SSE, after a notification, with CRLF line ends.
        let sse = b"event: message\r\ndata: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/progress\"}\r\n\r\nevent: message\r\ndata: {\"jsonrpc\":\"2.0\",\"id\":7,\"result\":{}}\r\n\r\n";
        assert_eq!(outcome_of(sse, true, &id), Outcome::Succeeded);
        let sse_error = b"data: {\"jsonrpc\":\"2.0\",\"id\":7,\"result\":{\"isError\":true}}\n\n";
        assert_eq!(outcome_of(sse_error, true, &id), Outcome::Failed);
        // The string id "7" is not the number 7.
        assert_eq!(outcome_of(ok, false, &json!("7")), Outcome::Failed);
    }
}
