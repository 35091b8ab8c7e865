//! `mandate-flood`: one attacker key and throwaway agent keys file
//! requests for one user at full speed, against a running broker.
//!
//!     mandate-flood --broker http://127.0.0.1:7700 --principal "$ISS#alice"
//!
//! While it runs, it prints `answered N of M` on stderr five times a
//! second; at the end, one JSON line on stdout: the broker's answers,
//! counted by HTTP status and error code. The app's flood test
//! (tests/webdriver/flood.test.mjs) runs it.

#![allow(clippy::print_stdout)]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use clap::Parser;
use mandate_e2e::flood::{Flood, filed};
use serde_json::json;

#[derive(Debug, Parser)]
struct Args {
    /// The broker.
    #[arg(long)]
    broker: String,
    /// The user's principal, `ISSUER#SUBJECT`.
    #[arg(long)]
    principal: String,
    /// Requests in all.
    #[arg(long, default_value_t = 6_000)]
    requests: usize,
    /// Throwaway keys, besides the attacker's.
    #[arg(long, default_value_t = 1_000)]
    keys: usize,
    /// Requests in flight at once.
    #[arg(long, default_value_t = 32)]
    concurrency: usize,
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    let flood = Flood {
        broker: args.broker,
        principal: args.principal,
        requests: args.requests,
        throwaway: args.keys,
        concurrency: args.concurrency,
    };
    let answered = Arc::new(AtomicUsize::new(0));
    let progress = {
        let (answered, requests) = (Arc::clone(&answered), flood.requests);
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_millis(200)).await;
                eprintln!(
                    "answered {} of {requests}",
                    answered.load(Ordering::Relaxed)
                );
            }
        })
    };
    let started = Instant::now();
    let tally = flood.run(&answered).await;
    let seconds = started.elapsed().as_secs_f64();
    progress.abort();
    let answers: Vec<_> = tally
        .iter()
        .map(|((status, code), count)| json!({ "status": status, "code": code, "count": count }))
        .collect();
    println!(
        "{}",
        json!({
            "requests": flood.requests,
            "keys": flood.throwaway + 1,
            "concurrency": flood.concurrency,
            "seconds": (seconds * 1000.0).round() / 1000.0,
            "filed": filed(&tally),
            "answers": answers,
        })
    );
}
