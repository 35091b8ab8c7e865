//! Measuring: SSE followers that note when each id arrives, waiting for
//! stragglers, and percentiles.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use futures_util::StreamExt as _;
use mandate_agent::sse::SseParser;
use serde_json::Value;

/// When each id arrived.
pub type Arrivals = Arc<Mutex<HashMap<String, Instant>>>;

/// Milliseconds from `t0` to `t`.
pub fn now_ms(t0: Instant, t: Instant) -> f64 {
    t.duration_since(t0).as_secs_f64() * 1000.0
}

/// The count, p50, p90, p99 and maximum of `ms`, for the report.
pub fn percentiles(mut ms: Vec<f64>) -> String {
    if ms.is_empty() {
        return "no samples".into();
    }
    ms.sort_by(f64::total_cmp);
    let at = |p: f64| ms[((ms.len() as f64 * p).ceil() as usize).clamp(1, ms.len()) - 1];
    format!(
        "n={} p50={:.1} ms p90={:.1} ms p99={:.1} ms max={:.1} ms",
        ms.len(),
        at(0.50),
        at(0.90),
        at(0.99),
        at(1.0)
    )
}

/// Reads an SSE stream into `arrivals`, keyed by `key(data)`, resuming
/// with Last-Event-ID whenever the stream drops; runs until aborted.
pub fn follow(
    http: reqwest::Client,
    url: String,
    bearer: Option<mandate_core::Secret>,
    key: fn(&Value) -> Vec<String>,
    arrivals: Arrivals,
    connected: Arc<AtomicUsize>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut last: Option<String> = None;
        let mut first = true;
        loop {
            let mut req = http.get(&url);
            if let Some(b) = &bearer {
                req = req.bearer_auth(b.expose());
            }
            if let Some(id) = &last {
                req = req.header("last-event-id", id.as_str());
            }
            let Ok(res) = req.send().await else {
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            };
            if first {
                connected.fetch_add(1, Ordering::SeqCst);
                first = false;
            }
            let mut stream = res.bytes_stream();
            let mut parser = SseParser::default();
            while let Some(Ok(chunk)) = stream.next().await {
                let at = Instant::now();
                for event in parser.feed(&chunk) {
                    if let Ok(data) = serde_json::from_str::<Value>(&event.data) {
                        let mut map = arrivals.lock().unwrap_or_else(PoisonError::into_inner);
                        for k in key(&data) {
                            map.entry(k).or_insert(at);
                        }
                    }
                    if event.id.is_some() {
                        last = event.id;
                    }
                }
            }
        }
    })
}

/// The request id a `request.created` inbox event names.
pub fn request_key(data: &Value) -> Vec<String> {
    if data["type"] == "request.created" {
        data["request"]
            .as_str()
            .map(str::to_owned)
            .into_iter()
            .collect()
    } else {
        vec![]
    }
}

/// The grant ids a revocation event names.
pub fn revocation_key(data: &Value) -> Vec<String> {
    data["grants"]
        .as_array()
        .map(|g| {
            g.iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

/// Waits up to `grace` for every id in `wanted` to arrive; returns how many never did.
pub async fn missing(arrivals: &Arrivals, wanted: &[String], grace: Duration) -> usize {
    let deadline = Instant::now() + grace;
    loop {
        let lost = {
            let map = arrivals.lock().unwrap_or_else(PoisonError::into_inner);
            wanted.iter().filter(|id| !map.contains_key(*id)).count()
        };
        if lost == 0 || Instant::now() >= deadline {
            return lost;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
