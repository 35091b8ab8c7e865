//! Faults, with nothing lost and nothing repeated (issue 15, item 4).
//!
//! Two broker processes on one Postgres database, under load: agents file
//! signed requests at either instance and wait for their user's decision,
//! polling with proofs of possession; the user approves each (now and then
//! denies one) and revokes some of the grants; 100 followers read the
//! revocation stream, spread over both instances, resuming with
//! `Last-Event-ID` after every disconnect (on the other instance); and two
//! resource servers, one following each instance, are called under each
//! chain before and after its revocation. Meanwhile, at moments drawn from
//! a seeded generator (the seed is printed; `MANDATE_CHAOS_SEED` repeats
//! the faults, if not the load's timing), one at a time:
//! - `kill -9` of one instance, restarted on its port a moment later;
//! - a Postgres restart: at once, or stopped for a few seconds;
//! - `SIGSTOP` of one instance for several seconds, then `SIGCONT`;
//! - the connections of some followers dropped.
//!
//! Clients retry against the other instance while one does not answer.
//! Once both instances answer again after each fault, and at the end:
//! - every request the broker took (a 201, or `request.replayed` on a retry
//!   after an attempt that got no answer) is in the store, and no first
//!   attempt is refused as a replay;
//! - every acknowledged decision (200) is the request's one decision in
//!   the store, and reached its agent, the same from both instances;
//! - every acknowledged revocation reached every follower, once;
//! - no resource server accepts a chain once its revocation is older than
//!   the verifier's max staleness plus [`SLACK`].
//!
//! The faults go on for `MANDATE_CHAOS_SECONDS` (a short run by default,
//! in `make test`; `make chaos` runs 10 minutes), and the run ends with one
//! summary line of figures. It restarts Postgres, so it runs on a server
//! of its own ([`procs::PgCluster`]), not the one other tests share. The
//! processes' logs go to `chaos-logs/PID` beside the workspace's binaries.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use futures_util::StreamExt as _;
use mandate_agent::client::RequestView;
use mandate_agent::sse::{SseEvent, SseParser};
use mandate_agent::{Agent, AgentInfo, Broker, Mandate, POP_HEADER, unix_now};
use mandate_client::decision::{denial_for, revocation_for};
use mandate_core::token::{Jti, PopClaims, chain_hash};
use mandate_core::{Claims as _, SigningKey, TokenId};
use rand_core::{OsRng, RngCore as _};
use serde_json::{Value, json};
use sqlx::PgPool;
use tokio::sync::{Notify, mpsc};
use tokio::task::JoinSet;
use tokio::time::{Instant, sleep, sleep_until, timeout};

use crate::journey::files;
use crate::user::User;
use mandate_e2e::flood::signed_request;
use mandate_e2e::procs::{self, PgCluster, Proc};

/// How long the faults go on unless `MANDATE_CHAOS_SECONDS` says.
const DEFAULT_SECONDS: u64 = 120;
/// Followers of the revocation stream.
const FOLLOWERS: usize = 100;
/// Agents filing requests at once, each one request at a time.
const AGENTS: usize = 8;
/// Each agent's key files this many requests before it takes a new one:
/// a key's first request waits in the fair inbox's new lane, and once the
/// user has approved one, its next in the known lane.
const REQUESTS_PER_KEY: u64 = 5;
/// The resource servers' max staleness, in seconds.
const MAX_STALENESS: u64 = 5;
/// Added to the max staleness for the machine: a revocation acknowledged
/// this long plus the max staleness ago must be honoured.
const SLACK: Duration = Duration::from_secs(10);
/// How long one attempt (one HTTP exchange) may take.
const ATTEMPT: Duration = Duration::from_secs(5);
/// How long a client keeps retrying one submit, decision or revocation.
const RETRY_FOR: Duration = Duration::from_secs(120);
/// How long an agent keeps polling for its decision.
const POLL_FOR: Duration = Duration::from_secs(240);
/// How long a check waits for decisions and revocations to arrive.
const SETTLE: Duration = Duration::from_secs(120);
/// How long both instances may take to answer again after a fault.
const RECOVER: Duration = Duration::from_secs(120);
/// A follower's stream is taken for dead after this long without a byte
/// (the brokers send a keep-alive every second).
const SILENCE: Duration = Duration::from_secs(5);
/// How long winding down (the last requests decided, the last
/// revocations checked) may take.
const WIND_DOWN: Duration = Duration::from_secs(400);
/// Every limit of the fair inbox, raised: the load is not refused by design.
const BIG: &str = "1000000000";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn faults_lose_nothing_and_repeat_nothing() {
    let Some(cluster) = PgCluster::start().await else {
        return;
    };
    let seconds = std::env::var("MANDATE_CHAOS_SECONDS")
        .ok()
        .map_or(DEFAULT_SECONDS, |s| {
            s.parse().expect("MANDATE_CHAOS_SECONDS is a number")
        });
    let seed = std::env::var("MANDATE_CHAOS_SEED").ok().map_or_else(
        || OsRng.next_u64(),
        |s| s.parse().expect("MANDATE_CHAOS_SEED is a number"),
    );
    eprintln!(
        "chaos: seed {seed} (MANDATE_CHAOS_SEED={seed} repeats the faults), {seconds} s of faults"
    );
    // Every wait has its own timeout; this one bounds the whole, and
    // dropping the run kills every process it started.
    let budget = Duration::from_secs(seconds) + Duration::from_secs(900);
    timeout(budget, run(cluster, seconds, seed))
        .await
        .unwrap_or_else(|_| panic!("the chaos test did not finish within {budget:?}"));
}

/// A small seeded generator (SplitMix64): the same seed, the same faults.
struct Rng(u64);

impl Rng {
    /// The generator for `stream` (the faults, or one task) of `seed`.
    fn new(seed: u64, stream: u64) -> Rng {
        Rng(seed ^ stream.wrapping_add(1).wrapping_mul(0xD1B5_4A32_D192_ED03))
    }

    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number below `n`.
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    /// True `percent` times in 100.
    fn chance(&mut self, percent: usize) -> bool {
        self.below(100) < percent
    }

    /// A duration from `lo` to `hi` milliseconds.
    fn millis(&mut self, lo: u64, hi: u64) -> Duration {
        Duration::from_millis(lo + self.next() % (hi - lo + 1))
    }
}

/// One fault.
#[derive(Debug, Clone)]
enum Fault {
    /// `kill -9` of an instance, restarted after `down`.
    Kill { instance: usize, down: Duration },
    /// Postgres restarted: at once, or stopped for the time given.
    Postgres { down: Option<Duration> },
    /// An instance stopped (`SIGSTOP`) for the time given.
    Stop { instance: usize, stopped: Duration },
    /// These followers' connections dropped.
    Drop { followers: Vec<usize> },
}

/// The kinds of fault, as the figures name them.
const KINDS: [&str; 4] = ["kill", "postgres", "stop", "drop"];

impl Fault {
    fn kind(&self) -> usize {
        match self {
            Fault::Kill { .. } => 0,
            Fault::Postgres { .. } => 1,
            Fault::Stop { .. } => 2,
            Fault::Drop { .. } => 3,
        }
    }
}

/// The faults, drawn from the seed: every kind once in each round of
/// four, in a drawn order, each after a drawn pause.
struct Plan {
    rng: Rng,
    round: Vec<usize>,
}

impl Plan {
    fn new(seed: u64) -> Plan {
        Plan {
            rng: Rng::new(seed, 0),
            round: vec![],
        }
    }

    /// The pause before the next fault, and the fault.
    fn next(&mut self) -> (Duration, Fault) {
        if self.round.is_empty() {
            self.round = vec![0, 1, 2, 3];
            for i in (1..4).rev() {
                let j = self.rng.below(i + 1);
                self.round.swap(i, j);
            }
        }
        let kind = self.round.pop().unwrap();
        let r = &mut self.rng;
        let pause = r.millis(3_000, 10_000);
        let fault = match kind {
            0 => Fault::Kill {
                instance: r.below(2),
                down: r.millis(500, 4_000),
            },
            1 => Fault::Postgres {
                down: r.chance(50).then(|| r.millis(1_000, 5_000)),
            },
            2 => Fault::Stop {
                instance: r.below(2),
                stopped: r.millis(3_000, 8_000),
            },
            _ => {
                let n = 10 + r.below(41);
                let mut followers: Vec<usize> = (0..FOLLOWERS).collect();
                for i in 0..n {
                    let j = i + r.below(FOLLOWERS - i);
                    followers.swap(i, j);
                }
                followers.truncate(n);
                followers.sort_unstable();
                Fault::Drop { followers }
            }
        };
        (pause, fault)
    }
}

/// Sends `kill -NAME` to `pid`; whether it was delivered.
fn signal(name: &str, pid: u32) -> bool {
    std::process::Command::new("kill")
        .arg(format!("-{name}"))
        .arg(pid.to_string())
        .stdin(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// A process stopped with `SIGSTOP`, continued with `SIGCONT` when this is
/// dropped, however the test goes on.
struct Stopped(u32);

impl Stopped {
    fn stop(pid: u32) -> Stopped {
        assert!(signal("STOP", pid), "kill -STOP {pid}");
        Stopped(pid)
    }
}

impl Drop for Stopped {
    fn drop(&mut self) {
        signal("CONT", self.0);
    }
}

/// Appends a process's standard error to `log`.
fn log_to(log: &Path) -> Stdio {
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .map(Stdio::from)
        .unwrap_or_else(|e| panic!("opening {}: {e}", log.display()))
}

/// One broker instance, restarted on its own port.
struct Instance {
    name: &'static str,
    /// `127.0.0.1:PORT`.
    listen: String,
    url: String,
    database: String,
    issuer: String,
    data: PathBuf,
    extra: Vec<String>,
    log: PathBuf,
    proc: Option<Proc>,
}

impl Instance {
    async fn start(
        name: &'static str,
        database: &str,
        issuer: &str,
        data: &Path,
        extra: Vec<String>,
        logs: &Path,
    ) -> Instance {
        let mut instance = Instance {
            name,
            listen: "127.0.0.1:0".into(),
            url: String::new(),
            database: database.into(),
            issuer: issuer.into(),
            data: data.into(),
            extra,
            log: logs.join(format!("broker-{name}.log")),
            proc: None,
        };
        let proc = instance
            .spawn()
            .await
            .unwrap_or_else(|e| panic!("starting broker {name}: {e}"));
        instance.url = proc.url.clone();
        instance.listen = proc.url.trim_start_matches("http://").to_owned();
        instance.proc = Some(proc);
        instance
    }

    async fn spawn(&self) -> Result<Proc, String> {
        let extra: Vec<&str> = self.extra.iter().map(String::as_str).collect();
        let mut cmd = procs::broker_command(
            &self.listen,
            &self.database,
            &self.issuer,
            &self.data,
            &extra,
        );
        cmd.stderr(log_to(&self.log));
        Proc::try_start("mandate-broker", cmd, procs::BROKER_PREFIX).await
    }

    /// Starts the instance again, on its port.
    async fn restart(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            match self.spawn().await {
                Ok(proc) => {
                    assert_eq!(proc.url, self.url);
                    self.proc = Some(proc);
                    return;
                }
                // Its port may take a moment to be free again.
                Err(e) if Instant::now() < deadline => {
                    eprintln!("chaos: restarting broker {}: {e}; again", self.name);
                    sleep(Duration::from_millis(500)).await;
                }
                Err(e) => panic!("restarting broker {}: {e}", self.name),
            }
        }
    }

    /// `kill -9`.
    async fn kill(&mut self) {
        if let Some(proc) = self.proc.take() {
            proc.kill().await;
        }
    }

    fn pid(&self) -> u32 {
        self.proc
            .as_ref()
            .and_then(Proc::pid)
            .expect("the instance runs")
    }
}

/// A request the broker took, for the user to decide.
struct Filed {
    id: String,
    token: String,
}

/// An approved request's mandate and its agent's key, for the user to
/// revoke.
struct Approved {
    mandate: Mandate,
    key: SigningKey,
}

/// A follower of the revocation stream.
#[derive(Default)]
struct Follower {
    state: Mutex<Followed>,
    /// Drops the current connection.
    cut: Notify,
}

#[derive(Default)]
struct Followed {
    /// The last event id taken.
    last: i64,
    /// The grants it was told are revoked.
    grants: HashSet<String>,
    /// Events it was sent again: `seq`, or the grant.
    repeats: Vec<String>,
    connections: u64,
}

impl Follower {
    fn state(&self) -> MutexGuard<'_, Followed> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn take(&self, event: &SseEvent) {
        if event.name != "revoked" {
            return;
        }
        let seq: i64 = event
            .id
            .as_deref()
            .and_then(|id| id.parse().ok())
            .unwrap_or_default();
        let data: Value = serde_json::from_str(&event.data).unwrap_or_default();
        let mut state = self.state();
        if seq <= state.last {
            state.repeats.push(format!("event {seq}"));
            return;
        }
        state.last = seq;
        for grant in data["grants"].as_array().into_iter().flatten() {
            let grant = grant.as_str().unwrap_or_default().to_owned();
            if !state.grants.insert(grant.clone()) {
                state.repeats.push(format!("grant {grant}"));
            }
        }
    }
}

/// What a problem is: something lost, or something repeated.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
enum Problem {
    /// A request the broker took is not in the store.
    RequestLost,
    /// The broker answered `request.not_found` for a request it took.
    RequestNotFound,
    /// An acknowledged decision is not the request's decision in the store.
    DecisionLost,
    /// An acknowledged decision never reached its agent.
    DecisionUndelivered,
    /// An approval came without its binding or user key.
    ApprovalIncomplete,
    /// An acknowledged revocation never reached a follower.
    RevocationUndelivered,
    /// A resource server accepted a chain after its revocation and the bound.
    AcceptedAfterRevocation,
    /// A first attempt at filing was refused as a replay.
    FalseReplay,
    /// The request's decision differs from the one acknowledged, or from
    /// what its agent was told, or between two polls.
    DecisionConflict,
    /// A second, different decision was taken.
    SecondDecision,
    /// More than one grant was stored for one request.
    GrantTwice,
    /// A follower was sent a revocation again.
    RevocationRepeated,
}

impl Problem {
    fn is_loss(self) -> bool {
        self < Problem::FalseReplay
    }
}

/// What the run counted.
#[derive(Default)]
struct Ledger {
    submitted: u64,
    accepted: u64,
    retried: u64,
    replayed_after_retry: u64,
    unanswered: Vec<String>,
    refused: BTreeMap<String, u64>,
    /// Attempts that went unanswered, or answered with a server error,
    /// by what was attempted and why: what the faults cost the clients.
    retries: BTreeMap<String, u64>,
    /// Requests the broker took.
    stored: Vec<String>,
    /// Acknowledged decisions: request id, decision token.
    decided: HashMap<String, String>,
    approved: u64,
    denied: u64,
    own_conflicts: u64,
    second_refused: u64,
    decide_unanswered: u64,
    /// The decision each agent was given.
    seen: HashMap<String, String>,
    poll_gave_up: HashSet<String>,
    /// Acknowledged revocations: grant id, when.
    revoked: HashMap<String, Instant>,
    revocations_created: u64,
    revocations_replayed_after_retry: u64,
    revoke_unanswered: u64,
    /// The resource servers' answers before each revocation, and once the
    /// bound had passed.
    before: BTreeMap<String, u64>,
    after: BTreeMap<String, u64>,
    problems: BTreeMap<Problem, BTreeSet<String>>,
}

impl Ledger {
    /// Notes an attempt at `what` answered `answered`, to be tried again.
    fn retry(&mut self, what: &str, answered: Option<&(u16, Value)>) {
        let why = match answered {
            Some((status, body)) => format!("{what} {status} {}", code(body)),
            None => format!("{what} unanswered"),
        };
        *self.retries.entry(why).or_default() += 1;
    }

    fn problem(&mut self, what: Problem, which: impl Into<String>) {
        self.problems.entry(what).or_default().insert(which.into());
    }

    fn count(&self, losses: bool) -> usize {
        self.problems
            .iter()
            .filter(|(p, _)| p.is_loss() == losses)
            .map(|(_, ids)| ids.len())
            .sum()
    }
}

/// What every task shares.
struct Ctx {
    urls: [String; 2],
    /// The URL proofs name: the first instance's, which both answer for.
    public: String,
    resource_servers: [String; 2],
    http: reqwest::Client,
    user: User,
    followers: Vec<Follower>,
    ledger: Mutex<Ledger>,
    stop: AtomicBool,
    seed: u64,
}

impl Ctx {
    fn ledger(&self) -> MutexGuard<'_, Ledger> {
        self.ledger.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The status and JSON body of an answer; `None` when none came in time.
async fn answer(sent: Result<reqwest::Response, reqwest::Error>) -> Option<(u16, Value)> {
    let res = sent.ok()?;
    let status = res.status().as_u16();
    // A status came: what it says holds even if the body was cut.
    let body = res.bytes().await.unwrap_or_default();
    Some((status, serde_json::from_slice(&body).unwrap_or_default()))
}

fn code(body: &Value) -> &str {
    body["code"].as_str().unwrap_or("")
}

/// A short pause before trying again.
async fn pause() {
    sleep(Duration::from_millis(200)).await;
}

async fn run(cluster: PgCluster, seconds: u64, seed: u64) {
    let dir = tempfile::tempdir().unwrap();
    let logs = procs::log_dir("chaos-logs");
    eprintln!("chaos: the processes' logs are in {}", logs.display());

    let idp = procs::idp().await;
    // Both instances share the database and the signing key.
    let data = dir.path().join("shared");
    let mut limits: Vec<String> = [
        "--max-pending-new",
        BIG,
        "--max-pending-known",
        BIG,
        "--max-pending-per-agent",
        BIG,
    ]
    .map(String::from)
    .to_vec();
    for kind in [
        "agent_requests",
        "user_prompts",
        "agent_calls",
        "user_calls",
        "receipts",
        "revocations",
    ] {
        limits.extend(["--rate".into(), format!("{kind}={BIG}:{BIG}")]);
    }
    let one = Instance::start("one", &cluster.url, &idp.url, &data, limits.clone(), &logs).await;
    let mut extra = limits;
    extra.extend(["--public-url".into(), one.url.clone()]);
    let two = Instance::start("two", &cluster.url, &idp.url, &data, extra, &logs).await;
    let mut instances = [one, two];
    let mut resource_servers = Vec::new();
    for instance in &instances {
        let mut cmd = procs::resource_server_command(
            &procs::binary("mandate-resource-example"),
            &instance.url,
            MAX_STALENESS,
        );
        cmd.stderr(log_to(&logs.join(format!("rs-{}.log", instance.name))));
        resource_servers.push(
            Proc::start(
                "mandate-resource-example",
                cmd,
                procs::RESOURCE_SERVER_PREFIX,
            )
            .await,
        );
    }
    let user = User::enrolled(&idp.url, "alice", &instances[0].url).await;
    let db = sqlx::postgres::PgPoolOptions::new()
        .max_connections(2)
        .connect(&cluster.url)
        .await
        .unwrap();
    // The followers start from here: whatever is revoked later reaches
    // them however often they reconnect.
    let start: i64 = sqlx::query_scalar("SELECT COALESCE(MAX(seq), 0) FROM events")
        .fetch_one(&db)
        .await
        .unwrap();

    let public = instances[0].url.clone();
    let ctx = Arc::new(Ctx {
        urls: [instances[0].url.clone(), instances[1].url.clone()],
        public,
        resource_servers: [
            resource_servers[0].url.clone(),
            resource_servers[1].url.clone(),
        ],
        http: mandate_agent::client::http_client().unwrap(),
        user,
        followers: (0..FOLLOWERS)
            .map(|_| {
                let f = Follower::default();
                f.state().last = start;
                f
            })
            .collect(),
        ledger: Mutex::default(),
        stop: AtomicBool::new(false),
        seed,
    });

    let followers: Vec<_> = (0..FOLLOWERS)
        .map(|i| tokio::spawn(follow(Arc::clone(&ctx), i)))
        .collect();
    let deadline = Instant::now() + Duration::from_secs(60);
    while ctx.followers.iter().any(|f| f.state().connections == 0) {
        assert!(Instant::now() < deadline, "the followers did not connect");
        sleep(Duration::from_millis(50)).await;
    }

    let (decide_tx, decide_rx) = mpsc::channel(4096);
    let (revoke_tx, revoke_rx) = mpsc::channel(4096);
    let mut load = JoinSet::new();
    for n in 0..AGENTS {
        load.spawn(agent(
            Arc::clone(&ctx),
            n,
            decide_tx.clone(),
            revoke_tx.clone(),
        ));
    }
    drop((decide_tx, revoke_tx));
    let user_side = [
        // The user decides each request taken, and revokes each grant
        // sent to revoke, at once.
        tokio::spawn(each(Arc::clone(&ctx), decide_rx, 10_000, decide)),
        tokio::spawn(each(Arc::clone(&ctx), revoke_rx, 1_000_000, revoke)),
    ];

    let began = Instant::now();
    let end = began + Duration::from_secs(seconds);
    let mut plan = Plan::new(seed);
    let mut faults = [0u64; 4];
    let mut dropped = 0;
    let mut checks = 0;
    loop {
        let (gap, fault) = plan.next();
        if Instant::now() + gap >= end {
            break;
        }
        sleep(gap).await;
        eprintln!("chaos: at {:>3} s: {fault:?}", began.elapsed().as_secs());
        match &fault {
            Fault::Kill { instance, down } => {
                instances[*instance].kill().await;
                sleep(*down).await;
                instances[*instance].restart().await;
            }
            Fault::Postgres { down: None } => cluster.restart().await,
            Fault::Postgres { down: Some(down) } => {
                cluster.stop().await;
                sleep(*down).await;
                cluster.start_again().await;
            }
            Fault::Stop { instance, stopped } => {
                let _stopped = Stopped::stop(instances[*instance].pid());
                sleep(*stopped).await;
            }
            Fault::Drop { followers } => {
                for &f in followers {
                    ctx.followers[f].cut.notify_one();
                }
                dropped += followers.len();
            }
        }
        faults[fault.kind()] += 1;
        recovered(&ctx).await;
        check(&ctx, &db, &format!("after {}", KINDS[fault.kind()])).await;
        checks += 1;
    }
    sleep_until(end).await;

    // Wind down: no new requests; the last ones decided and revoked.
    ctx.stop.store(true, Ordering::SeqCst);
    timeout(WIND_DOWN, async {
        while let Some(done) = load.join_next().await {
            done.expect("an agent panicked");
        }
        for task in user_side {
            task.await.expect("the user's side panicked");
        }
    })
    .await
    .expect("the load wound down");
    check(&ctx, &db, "at the end").await;
    checks += 1;
    for f in followers {
        f.abort();
    }
    for p in resource_servers {
        p.kill().await;
    }
    for instance in &mut instances {
        instance.kill().await;
    }
    idp.kill().await;
    // Both lanes of the fair inbox were used, through the faults.
    let lanes: BTreeMap<String, i64> =
        sqlx::query_as::<_, (String, i64)>("SELECT lane, COUNT(*) FROM requests GROUP BY lane")
            .fetch_all(&db)
            .await
            .unwrap()
            .into_iter()
            .collect();
    db.close().await;

    let l = ctx.ledger();
    let connections: u64 = ctx.followers.iter().map(|f| f.state().connections).sum();
    let deliveries: usize = ctx.followers.iter().map(|f| f.state().grants.len()).sum();
    let (losses, duplicates) = (l.count(true), l.count(false));
    let faults_line: Vec<String> = KINDS
        .iter()
        .zip(faults)
        .map(|(k, n)| format!("{k}={n}"))
        .collect();
    eprintln!(
        "chaos summary: seed={seed} seconds={seconds} faults[{} followers_dropped={dropped}] checks={checks} \
         requests[submitted={} accepted={} retried={} replayed_after_retry={} unanswered={} refused={:?}] \
         decisions[approved={} denied={} own_retry_conflicts={} second_refused={} unanswered={} seen={}] \
         revocations[acknowledged={} created={} replayed_after_retry={} unanswered={} deliveries={deliveries} follower_connections={connections}] \
         resource_servers[before={:?} after_bound={:?}] retried_attempts={:?} lanes={lanes:?} losses={losses} duplicates={duplicates}",
        faults_line.join(" "),
        l.submitted,
        l.accepted,
        l.retried,
        l.replayed_after_retry,
        l.unanswered.len(),
        l.refused,
        l.approved,
        l.denied,
        l.own_conflicts,
        l.second_refused,
        l.decide_unanswered,
        l.seen.len(),
        l.revoked.len(),
        l.revocations_created,
        l.revocations_replayed_after_retry,
        l.revoke_unanswered,
        l.before,
        l.after,
        l.retries,
    );
    let mut counts = BTreeMap::new();
    for (problem, ids) in &l.problems {
        let some: Vec<&String> = ids.iter().take(10).collect();
        eprintln!("chaos: {problem:?}: {} (first: {some:?})", ids.len());
        counts.insert(*problem, ids.len());
    }
    assert_eq!(
        (losses, duplicates),
        (0, 0),
        "nothing lost and nothing repeated: {counts:?}"
    );
    // A short run may end before every kind came round.
    assert!(
        seconds < DEFAULT_SECONDS || faults.iter().all(|&n| n > 0),
        "every kind of fault was injected: {faults_line:?}"
    );
    assert!(l.accepted > 0 && !l.revoked.is_empty() && !l.after.is_empty());
    assert!(
        lanes.get("known").is_some_and(|&n| n > 0) && lanes.get("new").is_some_and(|&n| n > 0),
        "requests waited in both lanes: {lanes:?}"
    );
}

/// Waits until both instances read the store again.
async fn recovered(ctx: &Ctx) {
    let deadline = Instant::now() + RECOVER;
    for url in &ctx.urls {
        loop {
            let res = ctx
                .http
                .get(format!("{url}/v1/revocations?since=9007199254740991"))
                .timeout(Duration::from_secs(15))
                .send()
                .await;
            if matches!(answer(res).await, Some((200, _))) {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "{url} did not recover within {RECOVER:?}"
            );
            pause().await;
        }
    }
}

/// Reads rows about `ids` from the store, retrying a little while it
/// comes back.
async fn rows<T>(db: &PgPool, sql: &'static str, ids: &[String]) -> Vec<T>
where
    T: for<'r> sqlx::FromRow<'r, sqlx::postgres::PgRow> + Send + Unpin,
{
    let mut tries = 0;
    loop {
        match sqlx::query_as::<_, T>(sql).bind(ids).fetch_all(db).await {
            Ok(rows) => return rows,
            Err(e) if tries < 20 => {
                eprintln!("chaos: reading the store: {e}; again");
                tries += 1;
                sleep(Duration::from_secs(1)).await;
            }
            Err(e) => panic!("reading the store: {e}"),
        }
    }
}

/// Waits up to [`SETTLE`] for `done`; whether it came.
async fn settled(mut done: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + SETTLE;
    while !done() {
        if Instant::now() >= deadline {
            return false;
        }
        sleep(Duration::from_millis(100)).await;
    }
    true
}

/// Checks what was acknowledged so far; notes each problem found.
async fn check(ctx: &Ctx, db: &PgPool, label: &str) {
    let (stored, decided, revoked) = {
        let l = ctx.ledger();
        let revoked: Vec<String> = l.revoked.keys().cloned().collect();
        (l.stored.clone(), l.decided.clone(), revoked)
    };
    // Every request taken is in the store.
    let found: HashSet<String> =
        rows::<(String,)>(db, "SELECT id FROM requests WHERE id = ANY($1)", &stored)
            .await
            .into_iter()
            .map(|(id,)| id)
            .collect();
    // Every acknowledged decision is the request's decision there, and
    // each request has at most one grant.
    let ids: Vec<String> = decided.keys().cloned().collect();
    let decisions: HashMap<String, Option<String>> = rows::<(String, Option<String>)>(
        db,
        "SELECT id, decision FROM requests WHERE id = ANY($1)",
        &ids,
    )
    .await
    .into_iter()
    .collect();
    let twice = rows::<(String,)>(
        db,
        "SELECT request_id FROM grants WHERE request_id = ANY($1) \
         GROUP BY request_id HAVING COUNT(*) > 1",
        &ids,
    )
    .await;
    {
        let mut l = ctx.ledger();
        for id in stored.iter().filter(|id| !found.contains(*id)) {
            l.problem(Problem::RequestLost, id);
        }
        for (id, token) in &decided {
            match decisions.get(id) {
                Some(Some(stored)) if stored == token => {}
                Some(Some(_)) => l.problem(Problem::DecisionConflict, format!("{id} in the store")),
                _ => l.problem(Problem::DecisionLost, id),
            }
        }
        for (id,) in twice {
            l.problem(Problem::GrantTwice, id);
        }
    }
    // Every acknowledged decision reached its agent.
    settled(|| {
        let l = ctx.ledger();
        decided
            .keys()
            .all(|id| l.seen.contains_key(id) || l.poll_gave_up.contains(id))
    })
    .await;
    {
        let mut l = ctx.ledger();
        for (id, token) in &decided {
            match l.seen.get(id) {
                Some(seen) if seen == token => {}
                Some(_) => l.problem(Problem::DecisionConflict, format!("{id} at its agent")),
                None => l.problem(Problem::DecisionUndelivered, id),
            }
        }
    }
    // Every acknowledged revocation reached every follower.
    settled(|| {
        ctx.followers.iter().all(|f| {
            let state = f.state();
            revoked.iter().all(|g| state.grants.contains(g))
        })
    })
    .await;
    let mut missing = Vec::new();
    let mut repeats = Vec::new();
    for (i, f) in ctx.followers.iter().enumerate() {
        let state = f.state();
        for g in revoked.iter().filter(|g| !state.grants.contains(*g)) {
            missing.push(format!("{g} at follower {i}"));
        }
        for r in &state.repeats {
            repeats.push(format!("{r} at follower {i}"));
        }
    }
    let mut l = ctx.ledger();
    for m in missing {
        l.problem(Problem::RevocationUndelivered, m);
    }
    for r in repeats {
        l.problem(Problem::RevocationRepeated, r);
    }
    eprintln!(
        "chaos: check {label}: {} requests taken, {} decisions, {} revocations to {FOLLOWERS} followers: {} lost, {} repeated so far",
        stored.len(),
        decided.len(),
        revoked.len(),
        l.count(true),
        l.count(false)
    );
}

/// One follower of the revocation stream: reads it, and on any
/// disconnect (or silence) resumes from its last event id on the other
/// instance.
async fn follow(ctx: Arc<Ctx>, i: usize) {
    let me = &ctx.followers[i];
    let mut rng = Rng::new(ctx.seed, 1_000 + i as u64);
    for n in i.. {
        let last = me.state().last;
        let req = ctx
            .http
            .get(format!("{}/v1/revocations/events", ctx.urls[n % 2]))
            .header("last-event-id", last.to_string());
        let res = match timeout(ATTEMPT, req.send()).await {
            Ok(Ok(res)) if res.status() == 200 => res,
            _ => {
                pause().await;
                continue;
            }
        };
        me.state().connections += 1;
        let mut stream = res.bytes_stream();
        let mut parser = SseParser::default();
        loop {
            tokio::select! {
                () = me.cut.notified() => break,
                chunk = timeout(SILENCE, stream.next()) => match chunk {
                    Ok(Some(Ok(bytes))) => {
                        for event in parser.feed(&bytes) {
                            me.take(&event);
                        }
                    }
                    _ => break,
                },
            }
        }
        sleep(rng.millis(50, 300)).await;
    }
}

/// A proof of possession for polling request `id`, filed as `token`.
fn poll_proof(ctx: &Ctx, key: &SigningKey, id: &str, token: &str) -> String {
    PopClaims {
        htm: "GET".into(),
        htu: format!("{}/v1/requests/{id}", ctx.public),
        iat: unix_now(),
        jti: Jti::random(&mut OsRng),
        ath: chain_hash(&[token]),
    }
    .sign(key)
}

/// One agent: files a request, waits for its decision, and again, until
/// the run ends.
async fn agent(
    ctx: Arc<Ctx>,
    n: usize,
    decide: mpsc::Sender<Filed>,
    revoke: mpsc::Sender<Approved>,
) {
    let mut rng = Rng::new(ctx.seed, 100 + n as u64);
    let mut key = SigningKey::generate(&mut OsRng);
    for k in 0_u64.. {
        if ctx.stop.load(Ordering::SeqCst) {
            return;
        }
        if k % REQUESTS_PER_KEY == 0 {
            key = SigningKey::generate(&mut OsRng);
        }
        let token = signed_request(&key, &ctx.user.principal, &format!("chaos-{n}-{k}"));
        let id = TokenId::of(&token).to_string();
        if submit(&ctx, &id, &token, &mut rng).await {
            let filed = Filed {
                id: id.clone(),
                token: token.clone(),
            };
            decide.send(filed).await.expect("the user decides");
            if let Some(view) = wait_decision(&ctx, &id, &token, &key, &mut rng).await
                && view.status == "approved"
                && rng.chance(20)
            {
                let mandate = match (view.grant, view.binding, view.user_key) {
                    (Some(grant), Some(binding), Some(user_key)) => Mandate {
                        chain: vec![grant],
                        binding,
                        keys: vec![user_key],
                    },
                    _ => {
                        ctx.ledger().problem(Problem::ApprovalIncomplete, &id);
                        continue;
                    }
                };
                revoke
                    .send(Approved {
                        mandate,
                        key: SigningKey::from_seed(&key.to_seed()),
                    })
                    .await
                    .expect("the user revokes");
            }
        }
        sleep(rng.millis(100, 400)).await;
    }
}

/// Files `token`, retrying on the other instance while no answer comes;
/// whether the broker took it.
async fn submit(ctx: &Ctx, id: &str, token: &str, rng: &mut Rng) -> bool {
    ctx.ledger().submitted += 1;
    let deadline = Instant::now() + RETRY_FOR;
    let first = rng.below(2);
    // Whether an attempt went unanswered: it may have been stored.
    let mut unanswered = false;
    let mut attempt = 0;
    loop {
        let url = format!("{}/v1/requests", ctx.urls[(first + attempt) % 2]);
        let sent = ctx
            .http
            .post(url)
            .json(&json!({ "request": token }))
            .timeout(ATTEMPT)
            .send()
            .await;
        let answered = answer(sent).await;
        {
            let mut l = ctx.ledger();
            match answered {
                Some((201, _)) => {
                    l.accepted += 1;
                    l.retried += u64::from(attempt > 0);
                    l.stored.push(id.to_owned());
                    return true;
                }
                Some((409, body)) if code(&body) == "request.replayed" => {
                    if unanswered {
                        l.replayed_after_retry += 1;
                        l.stored.push(id.to_owned());
                        return true;
                    }
                    l.problem(Problem::FalseReplay, id);
                    return false;
                }
                Some((status, body)) if status < 500 => {
                    *l.refused
                        .entry(format!("{status} {}", code(&body)))
                        .or_default() += 1;
                    return false;
                }
                other => {
                    l.retry("submit", other.as_ref());
                    unanswered = true;
                }
            }
            if Instant::now() >= deadline {
                l.unanswered.push(id.to_owned());
                return false;
            }
        }
        attempt += 1;
        pause().await;
    }
}

/// One poll of request `id` at instance `at`, held up to 2 s.
async fn poll(
    ctx: &Ctx,
    id: &str,
    token: &str,
    key: &SigningKey,
    at: usize,
) -> Option<(u16, Value)> {
    let sent = ctx
        .http
        .get(format!("{}/v1/requests/{id}?wait=2", ctx.urls[at]))
        .header(POP_HEADER, poll_proof(ctx, key, id, token))
        .timeout(ATTEMPT + Duration::from_secs(2))
        .send()
        .await;
    answer(sent).await
}

/// The request's decision or lapse, as one poll reads it: `None` while
/// pending or unanswered.
fn decided_view(ctx: &Ctx, id: &str, answered: Option<(u16, Value)>) -> Option<RequestView> {
    match answered? {
        (200, body) => serde_json::from_value::<RequestView>(body)
            .ok()
            .filter(|v| v.status != "pending"),
        (404, body) if code(&body) == "request.not_found" => {
            ctx.ledger().problem(Problem::RequestNotFound, id);
            None
        }
        _ => None,
    }
}

/// Polls until the request is decided; checks that the other instance
/// tells the same, and notes what the agent was given.
async fn wait_decision(
    ctx: &Ctx,
    id: &str,
    token: &str,
    key: &SigningKey,
    rng: &mut Rng,
) -> Option<RequestView> {
    let deadline = Instant::now() + POLL_FOR;
    let mut at = rng.below(2);
    let view = loop {
        if Instant::now() >= deadline {
            ctx.ledger().poll_gave_up.insert(id.to_owned());
            return None;
        }
        let answered = poll(ctx, id, token, key, at).await;
        let unanswered = !matches!(answered, Some((200, _)));
        if unanswered {
            ctx.ledger().retry("poll", answered.as_ref());
        }
        if let Some(view) = decided_view(ctx, id, answered) {
            break view;
        }
        if unanswered {
            at = 1 - at;
            pause().await;
        }
    };
    let given = view.grant.clone().or_else(|| view.denial.clone());
    // The other instance tells the same.
    let again = Instant::now() + RETRY_FOR;
    let other = loop {
        if let Some(other) = decided_view(ctx, id, poll(ctx, id, token, key, 1 - at).await) {
            break Some(other);
        }
        if Instant::now() >= again {
            break None;
        }
        pause().await;
    };
    let mut l = ctx.ledger();
    if let Some(other) = other
        && (other.status != view.status || other.grant.or(other.denial) != given)
    {
        l.problem(Problem::DecisionConflict, format!("{id} between instances"));
    }
    l.seen.insert(id.to_owned(), given.unwrap_or_default());
    Some(view)
}

/// How a decision or revocation was answered, retries done.
enum Posted {
    Taken,
    Conflict,
    NotFound,
    Refused(String),
    Unanswered,
}

/// Posts `body` to `path` as the user, retrying on the other instance
/// while no answer comes; also whether an attempt went unanswered.
/// `expected` is the status of success, `conflict` the code of a
/// conflict. With `idempotent` (the same body posted again is taken), a
/// conflict after an unanswered attempt is tried again a few times: that
/// attempt may still be committing (on an instance stopped mid-write).
async fn post_as_user(
    ctx: &Ctx,
    what: &str,
    path: &str,
    body: &Value,
    (expected, conflict, idempotent): (u16, &str, bool),
    rng: &mut Rng,
) -> (Posted, bool) {
    let deadline = Instant::now() + RETRY_FOR;
    let mut at = rng.below(2);
    let mut unanswered = false;
    let mut conflicts = 0;
    loop {
        let sent = ctx
            .http
            .post(format!("{}{path}", ctx.urls[at]))
            .bearer_auth(&ctx.user.bearer)
            .json(body)
            .timeout(ATTEMPT)
            .send()
            .await;
        match answer(sent).await {
            Some((status, _)) if status == expected => return (Posted::Taken, unanswered),
            Some((409, b)) if code(&b) == conflict => {
                if !(idempotent && unanswered) || conflicts == 5 {
                    return (Posted::Conflict, unanswered);
                }
                conflicts += 1;
                ctx.ledger().own_conflicts += 1;
            }
            Some((404, b)) if code(&b) == "request.not_found" => {
                return (Posted::NotFound, unanswered);
            }
            Some((status, b)) if status < 500 => {
                let why = format!("{status} {}", code(&b));
                return (Posted::Refused(why), unanswered);
            }
            other => {
                ctx.ledger().retry(what, other.as_ref());
                unanswered = true;
            }
        }
        if Instant::now() >= deadline {
            return (Posted::Unanswered, unanswered);
        }
        at = 1 - at;
        pause().await;
    }
}

/// Runs `work` at once on each item that comes, until every sender is
/// gone and all the work is done; each with its own generator, the
/// streams from `stream` on.
async fn each<T, W, F>(ctx: Arc<Ctx>, mut items: mpsc::Receiver<T>, stream: u64, work: W)
where
    T: Send + 'static,
    W: Fn(Arc<Ctx>, T, Rng) -> F,
    F: Future<Output = ()> + Send + 'static,
{
    let mut tasks = JoinSet::new();
    let mut n = stream;
    while let Some(item) = items.recv().await {
        n += 1;
        tasks.spawn(work(Arc::clone(&ctx), item, Rng::new(ctx.seed, n)));
    }
    while let Some(done) = tasks.join_next().await {
        done.expect("the user's work panicked");
    }
}

/// Approves request `f` (or, one time in ten, denies it).
async fn decide(ctx: Arc<Ctx>, f: Filed, mut rng: Rng) {
    let user = &ctx.user;
    let principal: mandate_core::Principal = user.principal.clone().try_into().unwrap();
    let id: TokenId = f.id.parse().unwrap();
    let decision = |deny: bool| {
        if deny {
            let reason = Some("not now");
            let denial = denial_for(id, &principal, &user.key, reason, unix_now(), &mut OsRng);
            ("denial", denial)
        } else {
            let scopes = vec![files(&["read"], "https://files.example/reports/")];
            ("grant", user.grant(&f.token, scopes))
        }
    };
    let deny = rng.chance(10);
    let path = format!("/v1/requests/{}/decision", f.id);
    let mut ours = true;
    loop {
        let (field, token) = decision(if ours { deny } else { !deny });
        let body = json!({ field: token });
        // Our own decision may meet a conflict from an attempt of its own
        // still committing, and is tried again; the second device's can
        // only be refused.
        let answers = (200, "request.already_decided", ours);
        let (posted, _) = post_as_user(&ctx, "decision", &path, &body, answers, &mut rng).await;
        let again = {
            let mut l = ctx.ledger();
            match (ours, posted) {
                (true, Posted::Taken) => {
                    if deny {
                        l.denied += 1;
                    } else {
                        l.approved += 1;
                    }
                    l.decided.insert(f.id.clone(), token);
                }
                // Only this user decides, once: no other decision can be there.
                (true, Posted::Conflict) => {
                    l.problem(Problem::SecondDecision, format!("{} before ours", f.id));
                }
                (false, Posted::Conflict) => l.second_refused += 1,
                (false, Posted::Taken) => l.problem(Problem::SecondDecision, &f.id),
                (_, Posted::NotFound) => l.problem(Problem::RequestNotFound, &f.id),
                (_, Posted::Refused(why)) => {
                    *l.refused.entry(format!("decision {why}")).or_default() += 1;
                }
                (_, Posted::Unanswered) => l.decide_unanswered += 1,
            }
            ours && l.decided.contains_key(&f.id)
        };
        // Now and then a second device sends the other decision, which
        // must be refused.
        if !(again && rng.chance(5)) {
            return;
        }
        ours = false;
    }
}

/// A call by `agent` under `mandate` at resource server `rs`: `200`, or
/// the status and code of the refusal.
async fn call(ctx: &Ctx, agent: &Agent, mandate: &Mandate, rs: usize) -> String {
    let url = format!("{}/files/reports/chaos.txt", ctx.resource_servers[rs]);
    let Ok(headers) = agent.present(mandate, "GET", &url) else {
        return "not presentable".into();
    };
    let mut req = ctx.http.get(&url).timeout(Duration::from_secs(10));
    for (name, value) in headers {
        req = req.header(name, value);
    }
    match answer(req.send().await).await {
        Some((status, body)) if status == 200 || code(&body).is_empty() => status.to_string(),
        Some((status, body)) => format!("{status} {}", code(&body)),
        None => "no answer".into(),
    }
}

/// Revokes `a`'s grant, calling both resource servers under it before
/// and once the bound has passed.
async fn revoke(ctx: Arc<Ctx>, a: Approved, mut rng: Rng) {
    let info = AgentInfo {
        name: "Prize bot".into(),
        publisher: None,
        version: None,
    };
    let agent = Agent::new(a.key, Broker::new(&ctx.public).unwrap(), info);
    let mandate = a.mandate;
    for rs in 0..2 {
        let answer = call(&ctx, &agent, &mandate, rs).await;
        *ctx.ledger().before.entry(answer).or_default() += 1;
    }
    let grant = TokenId::of(&mandate.chain[0]);
    let principal: mandate_core::Principal = ctx.user.principal.clone().try_into().unwrap();
    let revocation = revocation_for(
        &[grant],
        &principal,
        &ctx.user.key,
        Some("chaos"),
        unix_now(),
        &mut OsRng,
    );
    let body = json!({ "revocation": revocation });
    let answers = (201, "revocation.replayed", false);
    let (posted, retried) = post_as_user(
        &ctx,
        "revocation",
        "/v1/revocations",
        &body,
        answers,
        &mut rng,
    )
    .await;
    let acknowledged = Instant::now();
    {
        let mut l = ctx.ledger();
        match posted {
            Posted::Taken => l.revocations_created += 1,
            // Refused as posted before: an earlier attempt stored it.
            Posted::Conflict if retried => l.revocations_replayed_after_retry += 1,
            Posted::Conflict => {
                l.problem(Problem::FalseReplay, format!("revocation of {grant}"));
                return;
            }
            Posted::NotFound | Posted::Refused(_) | Posted::Unanswered => {
                if let Posted::Refused(why) = posted {
                    *l.refused.entry(format!("revocation {why}")).or_default() += 1;
                } else {
                    l.revoke_unanswered += 1;
                }
                return;
            }
        }
        l.revoked.insert(grant.to_string(), acknowledged);
    }
    // Once the bound has passed, neither resource server accepts the chain.
    sleep_until(acknowledged + Duration::from_secs(MAX_STALENESS) + SLACK).await;
    for rs in 0..2 {
        let answer = call(&ctx, &agent, &mandate, rs).await;
        let mut l = ctx.ledger();
        if answer == "200" {
            l.problem(
                Problem::AcceptedAfterRevocation,
                format!("{grant} at resource server {rs}"),
            );
        } else {
            *l.after.entry(answer).or_default() += 1;
        }
    }
}
