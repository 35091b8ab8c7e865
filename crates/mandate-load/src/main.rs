//! `mandate-load`: load for a running broker, measured end to end.
//!
//!     mandate-load --broker http://127.0.0.1:7700 --bearer "$ID_TOKEN" --principal "$ISS#alice"
//!
//! Three phases, each against the real HTTP API:
//!
//! 1. **Ingest.** Pre-signed requests from 256 agent keys, sent as fast as
//!    `--concurrency` connections allow. Reports accepted requests a second.
//! 2. **Inbox latency.** Requests at a fixed `--rate` (open loop: each is
//!    sent at its scheduled instant, whether or not earlier ones have been
//!    answered), while the user's SSE inbox is read. Reports the time from
//!    the start of each submit to its event on the inbox, p50/p99/max.
//! 3. **Revocation fan-out.** `--followers` SSE connections on the
//!    revocation stream; the user revokes grants one at a time. Reports the
//!    time from the start of each revocation's POST to its arrival at each
//!    follower.
//!
//! Every accepted request must reach the inbox and every revocation every
//! follower; whatever does not is counted lost. The inbox reader resumes
//! with `Last-Event-ID` if the broker drops a lagging stream. Requests are
//! signed before the clock starts: signing is the agent's cost, not the
//! broker's. The broker must run with rate limits raised (scripts/load.sh).

#![allow(clippy::print_stdout)]

mod measure;

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use clap::Parser;
use mandate_agent::unix_now;
use mandate_client::BrokerClient;
use mandate_client::decision::{Narrowing, grant_for, revocation_for};
use mandate_core::scope::AuthorizationDetail;
use mandate_core::token::{AgentInfo, BindingCode, Jti, RequestClaims};
use mandate_core::{Claims as _, Principal, SigningKey, TokenId};
use measure::{Arrivals, follow, missing, now_ms, percentiles, request_key, revocation_key};
use rand_core::OsRng;
use serde_json::json;

#[derive(Debug, Parser)]
struct Args {
    /// The broker.
    #[arg(long)]
    broker: String,
    /// An ID token from an issuer the broker trusts.
    #[arg(long, env = "MANDATE_LOAD_BEARER", hide_env_values = true)]
    bearer: mandate_core::Secret,
    /// That user's principal, `ISSUER#SUBJECT`.
    #[arg(long)]
    principal: String,
    /// Requests in the ingest phase.
    #[arg(long, default_value_t = 20_000)]
    requests: usize,
    /// Connections in the ingest phase.
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    /// Requests a second in the latency phase.
    #[arg(long, default_value_t = 500)]
    rate: u32,
    /// Seconds of the latency phase.
    #[arg(long, default_value_t = 10)]
    seconds: u32,
    /// SSE followers of the revocation stream.
    #[arg(long, default_value_t = 100)]
    followers: usize,
    /// Revocations in the fan-out phase.
    #[arg(long, default_value_t = 20)]
    revocations: usize,
    /// The phases to run.
    #[arg(long, value_delimiter = ',', default_value = "ingest,latency,fan-out")]
    phases: Vec<String>,
    /// The key file of the sign-in's session key: the bearer's `nonce` is
    /// its thumbprint, which `mandate-load session-nonce FILE` makes and
    /// prints, so that the bearer may enroll the load's user key.
    #[arg(long)]
    session_key: std::path::PathBuf,
}

struct Ctx {
    args: Args,
    http: reqwest::Client,
    broker: BrokerClient,
    principal: Principal,
    user: SigningKey,
    agents: Vec<SigningKey>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // `mandate-load session-nonce FILE`: makes the session key (when
    // missing) and prints the nonce to sign in with.
    let argv: Vec<String> = std::env::args().collect();
    if let [_, command, file] = argv.as_slice()
        && command == "session-nonce"
    {
        let key = mandate_keyfile::load_or_create(std::path::Path::new(file))?;
        println!("{}", key.thumbprint());
        return Ok(());
    }
    let args = Args::parse();
    let http = mandate_agent::client::http_client()?;
    let cx = Ctx {
        broker: BrokerClient::new(&args.broker)?,
        principal: args
            .principal
            .clone()
            .try_into()
            .map_err(|_| anyhow::anyhow!("--principal is not ISSUER#SUBJECT"))?,
        user: SigningKey::generate(&mut OsRng),
        agents: (0..256).map(|_| SigningKey::generate(&mut OsRng)).collect(),
        args,
        http,
    };
    enroll(&cx).await?;
    println!(
        "broker {} · {} cores",
        cx.args.broker,
        std::thread::available_parallelism().map_or(0, usize::from)
    );
    let wants = |p: &str| cx.args.phases.iter().any(|x| x == p);
    if wants("ingest") {
        ingest(&cx).await?;
    }
    if wants("latency") {
        latency(&cx).await?;
    }
    if wants("fan-out") {
        fan_out(&cx).await?;
    }
    Ok(())
}

async fn enroll(cx: &Ctx) -> anyhow::Result<()> {
    let session = mandate_keyfile::load(&cx.args.session_key).context("reading --session-key")?;
    let new = mandate_client::broker::NewKey {
        session: &session,
        device: "mandate-load",
    };
    cx.broker
        .enroll(
            cx.args.bearer.expose(),
            &cx.user,
            Some(new),
            unix_now(),
            &mut OsRng,
        )
        .await
        .context("enrolling the user key")?;
    Ok(())
}

fn sign_requests(cx: &Ctx, n: usize) -> Vec<String> {
    let detail = AuthorizationDetail::new("files", ["read"], ["https://files.example/load/"])
        .unwrap_or_else(|e| panic!("a constant detail: {e}"));
    let now = unix_now();
    (0..n)
        .map(|i| {
            RequestClaims {
                principal_hint: Some(cx.args.principal.clone()),
                agent: AgentInfo {
                    name: "load".into(),
                    publisher: None,
                    version: None,
                },
                authorization_details: vec![detail.clone()],
                purpose: "Load test".into(),
                intent: None,
                lifetime: 3600,
                max_depth: 1,
                parent_chain: vec![],
                binding_code: BindingCode::random(&mut OsRng),
                jti: Jti::random(&mut OsRng),
                iat: now,
                exp: now + 3600,
                oauth_client: None,
            }
            .sign(&cx.agents[i % cx.agents.len()])
        })
        .collect()
}

async fn submit(http: &reqwest::Client, broker: &str, token: &str) -> u16 {
    match http
        .post(format!("{broker}/v1/requests"))
        .json(&json!({ "request": token }))
        .timeout(Duration::from_secs(30))
        .send()
        .await
    {
        Ok(res) => res.status().as_u16(),
        Err(_) => 0,
    }
}

async fn inbox_follower(cx: &Ctx) -> (tokio::task::JoinHandle<()>, Arrivals) {
    let arrivals: Arrivals = Arc::default();
    let connected = Arc::new(AtomicUsize::new(0));
    let task = follow(
        cx.http.clone(),
        format!("{}/v1/inbox/events", cx.args.broker),
        Some(cx.args.bearer.clone()),
        request_key,
        Arc::clone(&arrivals),
        Arc::clone(&connected),
    );
    while connected.load(Ordering::SeqCst) == 0 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    (task, arrivals)
}

async fn ingest(cx: &Ctx) -> anyhow::Result<()> {
    let tokens = Arc::new(sign_requests(cx, cx.args.requests));
    let (follower, arrivals) = inbox_follower(cx).await;
    let next = Arc::new(AtomicUsize::new(0));
    let statuses = Arc::new(Mutex::new(HashMap::<u16, usize>::new()));
    let accepted = Arc::new(Mutex::new(Vec::new()));
    let t0 = Instant::now();
    let workers: Vec<_> = (0..cx.args.concurrency)
        .map(|_| {
            let (http, broker) = (cx.http.clone(), cx.args.broker.clone());
            let (tokens, next) = (Arc::clone(&tokens), Arc::clone(&next));
            let (statuses, accepted) = (Arc::clone(&statuses), Arc::clone(&accepted));
            tokio::spawn(async move {
                loop {
                    let i = next.fetch_add(1, Ordering::SeqCst);
                    let Some(token) = tokens.get(i) else { break };
                    let status = submit(&http, &broker, token).await;
                    *statuses
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .entry(status)
                        .or_default() += 1;
                    if status == 201 {
                        accepted
                            .lock()
                            .unwrap_or_else(PoisonError::into_inner)
                            .push(TokenId::of(token).to_string());
                    }
                }
            })
        })
        .collect();
    for w in workers {
        w.await.context("a worker failed")?;
    }
    let elapsed = t0.elapsed();
    let accepted = std::mem::take(&mut *accepted.lock().unwrap_or_else(PoisonError::into_inner));
    let lost = missing(&arrivals, &accepted, Duration::from_secs(30)).await;
    follower.abort();
    println!(
        "ingest: {} requests, {} connections: {} accepted in {:.2} s = {:.0} requests/s; statuses {:?}; lost {}",
        tokens.len(),
        cx.args.concurrency,
        accepted.len(),
        elapsed.as_secs_f64(),
        accepted.len() as f64 / elapsed.as_secs_f64(),
        statuses.lock().unwrap_or_else(PoisonError::into_inner),
        lost
    );
    Ok(())
}

async fn latency(cx: &Ctx) -> anyhow::Result<()> {
    let n = (cx.args.rate * cx.args.seconds) as usize;
    let tokens = sign_requests(cx, n);
    let (follower, arrivals) = inbox_follower(cx).await;
    let interval = Duration::from_secs_f64(1.0 / f64::from(cx.args.rate));
    let t0 = Instant::now();
    let mut sent = Vec::with_capacity(n);
    let mut tasks = Vec::with_capacity(n);
    for (i, token) in tokens.into_iter().enumerate() {
        let at = t0 + interval * u32::try_from(i).unwrap_or(u32::MAX);
        tokio::time::sleep_until(at.into()).await;
        let (http, broker) = (cx.http.clone(), cx.args.broker.clone());
        let id = TokenId::of(&token).to_string();
        let start = Instant::now();
        sent.push((id, start));
        tasks.push(tokio::spawn(
            async move { submit(&http, &broker, &token).await },
        ));
    }
    let mut accepted = Vec::new();
    let mut refused = 0;
    for ((id, start), task) in sent.into_iter().zip(tasks) {
        if task.await.unwrap_or(0) == 201 {
            accepted.push((id, start));
        } else {
            refused += 1;
        }
    }
    let wall = t0.elapsed();
    let ids: Vec<String> = accepted.iter().map(|(id, _)| id.clone()).collect();
    let lost = missing(&arrivals, &ids, Duration::from_secs(10)).await;
    follower.abort();
    let map = arrivals.lock().unwrap_or_else(PoisonError::into_inner);
    let samples: Vec<f64> = accepted
        .iter()
        .filter_map(|(id, start)| map.get(id).map(|at| now_ms(*start, *at)))
        .collect();
    println!(
        "inbox latency at {} requests/s for {} s (sent over {:.2} s): {}; refused {refused}; lost {lost}",
        cx.args.rate,
        cx.args.seconds,
        wall.as_secs_f64(),
        percentiles(samples)
    );
    Ok(())
}

async fn fan_out(cx: &Ctx) -> anyhow::Result<()> {
    // Grants to revoke: the user approves that many requests.
    let tokens = sign_requests(cx, cx.args.revocations);
    let mut grants = Vec::new();
    for token in &tokens {
        if submit(&cx.http, &cx.args.broker, token).await != 201 {
            bail!("filing a request to approve failed");
        }
        let grant = grant_for(
            token,
            &cx.principal,
            &cx.user,
            &Narrowing::default(),
            unix_now(),
            &mut OsRng,
        )?;
        cx.broker
            .approve(cx.args.bearer.expose(), &TokenId::of(token), &grant)
            .await
            .context("approving")?;
        grants.push(TokenId::of(&grant));
    }
    let arrivals: Vec<Arrivals> = (0..cx.args.followers)
        .map(|_| Arrivals::default())
        .collect();
    let connected = Arc::new(AtomicUsize::new(0));
    let followers: Vec<_> = arrivals
        .iter()
        .map(|a| {
            follow(
                cx.http.clone(),
                format!("{}/v1/revocations/events", cx.args.broker),
                None,
                revocation_key,
                Arc::clone(a),
                Arc::clone(&connected),
            )
        })
        .collect();
    let deadline = Instant::now() + Duration::from_secs(30);
    while connected.load(Ordering::SeqCst) < cx.args.followers {
        if Instant::now() > deadline {
            bail!(
                "only {} followers connected",
                connected.load(Ordering::SeqCst)
            );
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let mut posted = Vec::new();
    for grant in &grants {
        let revocation = revocation_for(
            &[*grant],
            &cx.principal,
            &cx.user,
            None,
            unix_now(),
            &mut OsRng,
        );
        let start = Instant::now();
        cx.broker
            .revoke(cx.args.bearer.expose(), &revocation)
            .await
            .context("revoking")?;
        posted.push((grant.to_string(), start));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let ids: Vec<String> = posted.iter().map(|(id, _)| id.clone()).collect();
    let mut lost = 0;
    for a in &arrivals {
        lost += missing(a, &ids, Duration::from_secs(5)).await;
    }
    for f in followers {
        f.abort();
    }
    let mut samples = Vec::new();
    for a in &arrivals {
        let map = a.lock().unwrap_or_else(PoisonError::into_inner);
        for (id, start) in &posted {
            if let Some(at) = map.get(id) {
                samples.push(now_ms(*start, *at));
            }
        }
    }
    println!(
        "revocation fan-out to {} SSE followers, {} revocations: {}; lost {lost}",
        cx.args.followers,
        posted.len(),
        percentiles(samples)
    );
    Ok(())
}
