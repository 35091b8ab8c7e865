//! `tools/call` through `mandate-gateway` against the same calls through a
//! plain proxy that checks nothing (`mcp-plain-proxy`, which forwards with
//! the gateway's own code), in the same run, with a warm grant: the test
//! provider, a release broker, the MCP server on the official SDK
//! (tests/mcp/server.mjs), the release gateway and the proxy, all on this
//! machine.
//!
//!     cargo build --release --bins -p mandate-broker -p mandate-gateway -p mandate-e2e
//!     cargo bench -p mandate-e2e --bench gateway [-- SECONDS ROUNDS]
//!
//! Each caller opens a session at each target, then calls `read_file`;
//! each call's proof (a DPoP proof for the token, a Mandate proof of
//! possession for the chain) is signed before its clock starts, as the
//! same bytes go to the proxy, which ignores them. Latency comes from
//! paired rounds, where each caller calls the gateway and the proxy in
//! turn, so that both meet the same conditions call by call; calls a
//! second come from rounds of each target alone, alternating, and which
//! goes first alternates too. Reports p50,
//! p99 and calls a second for one caller and for eight, and the ratios to
//! the proxy; then what a call costs each process in CPU time over the
//! rounds of each target alone (from `/proc/PID/stat`), and the two
//! paths' ratio: a figure that the scheduling noise of a small machine
//! moves far less than calls a second, and that bounds the rate ratio
//! when the CPU is what runs out (eight callers).

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::print_stdout)]

#[allow(dead_code)]
#[path = "../tests/e2e/user.rs"]
mod user;

use std::time::{Duration, Instant};

use mandate_agent::{AccessToken, Agent, AgentInfo, Ask, Broker, Mandate};
use mandate_core::scope::AuthorizationDetail;
use mandate_e2e::procs::{self, Proc};
use serde_json::json;

use user::User;

/// What a caller presents.
#[derive(Clone, Copy)]
enum Cred<'a> {
    Token(&'a AccessToken),
    Mandate(&'a Mandate),
}

impl Cred<'_> {
    fn name(self) -> &'static str {
        match self {
            Cred::Token(_) => "gateway, DPoP token",
            Cred::Mandate(_) => "gateway, Mandate chain",
        }
    }
}

/// One caller's session at `url` (the gateway's or the proxy's): each call
/// is signed for the gateway's URL, where the proofs are checked.
struct Caller<'a> {
    http: reqwest::Client,
    url: String,
    resource: String,
    agent: &'a Agent,
    cred: Cred<'a>,
    session: String,
}

impl<'a> Caller<'a> {
    async fn open(url: &str, resource: &str, agent: &'a Agent, cred: Cred<'a>) -> Caller<'a> {
        let mut c = Caller {
            http: mandate_agent::client::http_client().unwrap(),
            url: url.to_owned(),
            resource: resource.to_owned(),
            agent,
            cred,
            session: String::new(),
        };
        let init = json!({ "jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
            "protocolVersion": "2025-11-25", "capabilities": {},
            "clientInfo": { "name": "bench", "version": "1" } } });
        let res = c.request(&init.to_string()).send().await.unwrap();
        if res.status() != 200 {
            let status = res.status();
            panic!(
                "initialize at {url}: {status} {}",
                res.text().await.unwrap()
            );
        }
        c.session = res.headers()["mcp-session-id"].to_str().unwrap().to_owned();
        let _ = res.bytes().await;
        let note = json!({ "jsonrpc": "2.0", "method": "notifications/initialized" });
        let res = c.request(&note.to_string()).send().await.unwrap();
        assert_eq!(res.status(), 202);
        c
    }

    fn request(&self, body: &str) -> reqwest::RequestBuilder {
        let mut req = self
            .http
            .post(&self.url)
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream")
            .header("mcp-protocol-version", "2025-11-25")
            .body(body.to_owned());
        if !self.session.is_empty() {
            req = req.header("mcp-session-id", &self.session);
        }
        match self.cred {
            Cred::Token(t) => req
                .header("authorization", format!("DPoP {}", t.token))
                .header(
                    "dpop",
                    self.agent.dpop("POST", &self.resource, Some(&t.token)),
                ),
            Cred::Mandate(m) => self
                .agent
                .present(m, "POST", &self.resource)
                .unwrap()
                .into_iter()
                .fold(req, |r, (n, v)| r.header(n, v)),
        }
    }

    /// One `tools/call`; its latency, from after the proof was signed.
    async fn call(&self, id: u64) -> Duration {
        let body = json!({ "jsonrpc": "2.0", "id": id, "method": "tools/call",
            "params": { "name": "read_file", "arguments": { "path": "README.md" } } })
        .to_string();
        let req = self.request(&body);
        let t = Instant::now();
        let res = req.send().await.unwrap();
        let status = res.status();
        let bytes = res.bytes().await.unwrap();
        let took = t.elapsed();
        assert_eq!(status, 200, "{}", String::from_utf8_lossy(&bytes));
        assert!(
            bytes.windows(13).any(|w| w == b"# The project"),
            "{}",
            String::from_utf8_lossy(&bytes)
        );
        took
    }
}

/// `callers` callers in a closed loop for `seconds`: every latency, and
/// the calls a second.
async fn round(callers: &[Caller<'_>], seconds: f64) -> (Vec<Duration>, f64) {
    let end = Instant::now() + Duration::from_secs_f64(seconds);
    let t0 = Instant::now();
    let runs = callers.iter().map(|c| async move {
        let mut lat = Vec::new();
        let mut id = 1;
        while Instant::now() < end {
            lat.push(c.call(id).await);
            id += 1;
        }
        lat
    });
    let all: Vec<Duration> = futures_util::future::join_all(runs)
        .await
        .into_iter()
        .flatten()
        .collect();
    let rate = all.len() as f64 / t0.elapsed().as_secs_f64();
    (all, rate)
}

/// Each caller calls the gateway and the proxy in turn (the order
/// swapped each time) for `seconds`: the latencies of each, measured
/// under the same conditions, call by call.
async fn paired_round(
    gateway: &[Caller<'_>],
    proxy: &[Caller<'_>],
    seconds: f64,
) -> (Vec<Duration>, Vec<Duration>) {
    let end = Instant::now() + Duration::from_secs_f64(seconds);
    let runs = gateway.iter().zip(proxy).map(|(g, p)| async move {
        let (mut gl, mut pl) = (Vec::new(), Vec::new());
        let mut id = 1;
        while Instant::now() < end {
            if id % 2 == 0 {
                gl.push(g.call(id).await);
                pl.push(p.call(id).await);
            } else {
                pl.push(p.call(id).await);
                gl.push(g.call(id).await);
            }
            id += 1;
        }
        (gl, pl)
    });
    let (mut gl, mut pl) = (Vec::new(), Vec::new());
    for (g, p) in futures_util::future::join_all(runs).await {
        gl.extend(g);
        pl.extend(p);
    }
    (gl, pl)
}

fn pct(sorted: &[Duration], p: f64) -> f64 {
    let i = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i].as_secs_f64() * 1e6
}

/// p50 and p99 in µs, and calls a second, over all rounds.
struct Measured {
    p50: f64,
    p99: f64,
    rate: f64,
}

fn summarize(mut lat: Vec<Duration>, rates: &[f64]) -> Measured {
    lat.sort();
    Measured {
        p50: pct(&lat, 0.50),
        p99: pct(&lat, 0.99),
        rate: rates.iter().sum::<f64>() / rates.len() as f64,
    }
}

/// CPU seconds (user and system) that process `pid` has used so far, from
/// `/proc/PID/stat` (its 14th and 15th fields, in ticks of 1/100 s).
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // After the command name, which is in parentheses and may hold spaces,
    // the fields run from the 3rd (the state).
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .unwrap()
        .1
        .split_whitespace()
        .collect();
    let ticks = |i: usize| fields[i - 3].parse::<f64>().unwrap();
    (ticks(14) + ticks(15)) / 100.0
}

/// The processes whose CPU a round costs: the gateway, the proxy, the
/// broker (which stores the gateway's witness receipts), the upstream, and
/// this process (the callers).
struct Pids {
    gateway: u32,
    proxy: u32,
    broker: u32,
    upstream: u32,
    callers: u32,
}

/// CPU seconds of each of [`Pids`], in that order.
type Cpu = [f64; 5];

impl Pids {
    fn now(&self) -> Cpu {
        [
            self.gateway,
            self.proxy,
            self.broker,
            self.upstream,
            self.callers,
        ]
        .map(cpu_seconds)
    }
}

fn spent(from: Cpu, to: Cpu) -> Cpu {
    std::array::from_fn(|i| to[i] - from[i])
}

/// Files a request for `read_file` at `resource` and approves it.
async fn granted(alice: &User, agent: &Agent, resource: &str) -> Mandate {
    let scopes = vec![AuthorizationDetail::new("mcp", ["read_file"], [resource]).unwrap()];
    let ask = Ask {
        principal: alice.principal.clone(),
        scopes,
        purpose: "Benchmark".into(),
        intent: None,
        lifetime: 3600,
        max_depth: 0,
        expires_in: 600,
    };
    alice.approve(agent, &ask).await
}

/// How long a round in which the gateway took calls is followed by
/// nothing: twice the witness's linger, so that its last report is made
/// and stored before the next round.
const SETTLE: Duration = Duration::from_millis(500);

/// CPU a call costs each process, in µs, over the rounds of each target
/// alone. A gateway round's CPU is counted until [`SETTLE`] after it, so
/// that the witness's last report of it and the broker's storing of that
/// report count to the gateway's calls. The gateway and the broker do
/// nothing in the proxy's rounds, nor the proxy in the gateway's; each
/// is counted over both all the same.
struct Costs {
    name: &'static str,
    gateway: f64,
    proxy: f64,
    broker: f64,
    upstream: (f64, f64),
    callers: (f64, f64),
}

impl Costs {
    fn of(name: &'static str, gw: Cpu, px: Cpu, gw_calls: usize, px_calls: usize) -> Costs {
        let per = |s: f64, calls: usize| s * 1e6 / calls.max(1) as f64;
        Costs {
            name,
            gateway: per(gw[0] + px[0], gw_calls),
            proxy: per(gw[1] + px[1], px_calls),
            broker: per(gw[2] + px[2], gw_calls),
            upstream: (per(gw[3], gw_calls), per(px[3], px_calls)),
            callers: (per(gw[4], gw_calls), per(px[4], px_calls)),
        }
    }

    /// The CPU of a call by each path: what bounds calls a second when
    /// the CPU is what runs out.
    fn paths(&self) -> (f64, f64) {
        (
            self.gateway + self.broker + self.upstream.0 + self.callers.0,
            self.proxy + self.upstream.1 + self.callers.1,
        )
    }

    fn print(costs: &[Costs]) {
        println!("\nCPU a call (user and system, µs), rounds of each target alone:\n");
        println!(
            "| target | gateway or proxy | broker | upstream | callers | the path | proxy path / gateway path |"
        );
        println!("|---|---|---|---|---|---|---|");
        for c in costs {
            let (gw, px) = c.paths();
            println!(
                "| plain proxy | {:.0} | | {:.0} | {:.0} | {:.0} | |",
                c.proxy, c.upstream.1, c.callers.1, px
            );
            println!(
                "| {} | {:.0} | {:.0} | {:.0} | {:.0} | {:.0} | {:.2} |",
                c.name,
                c.gateway,
                c.broker,
                c.upstream.0,
                c.callers.0,
                gw,
                px / gw
            );
        }
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    // `cargo bench` passes --bench; `cargo test --all-targets` (make
    // test) runs this without it: then one short round, to show that the
    // benchmark still runs, measuring nothing.
    let measuring = std::env::args().any(|a| a == "--bench");
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    let (seconds, rounds): (f64, usize) = if measuring {
        (
            args.first().and_then(|a| a.parse().ok()).unwrap_or(5.0),
            args.get(1).and_then(|a| a.parse().ok()).unwrap_or(3),
        )
    } else {
        println!("a smoke run (cargo test): the numbers below measure nothing");
        (0.2, 1)
    };

    let dir = tempfile::tempdir().unwrap();
    let project = procs::mcp_project(dir.path());
    let port = procs::free_port();
    let resource = format!("http://127.0.0.1:{port}/mcp");
    let idp = procs::idp().await;
    // The gateway witnesses every call, as deployed (docs/mcp.md): it
    // signs a receipt of each and reports them to the broker in batches.
    // MANDATE_BENCH_WITNESS=off measures it without, for the difference;
    // =untrusted has the gateway witness every call to a broker that does
    // not trust its key and refuses each report at once (the gateway logs
    // each refusal): the gateway's share of the cost, apart from the
    // broker's.
    let mode = std::env::var("MANDATE_BENCH_WITNESS").unwrap_or_default();
    let witnessing = mode != "off";
    let trusted = mode != "untrusted";
    println!(
        "witness receipts: {}",
        match (witnessing, trusted) {
            (false, _) => "off",
            (true, false) => "signed and sent, refused by the broker",
            (true, true) => "on",
        }
    );
    let witness_key = dir.path().join("witness.key");
    let witness_key = witness_key.to_str().unwrap();
    let witness = procs::witness_key(std::path::Path::new(witness_key));
    let database = format!("sqlite://{}/broker.db", dir.path().display());
    let witness_arg = format!("{resource}={witness}");
    let mut broker_args = vec!["--oauth-resource", &resource];
    if trusted {
        broker_args.extend(["--witness", &witness_arg]);
    }
    // MANDATE_BENCH_BROKER_NICE=N runs the broker at nice N (all its
    // threads): with 19 it takes only the CPU nothing else here wants, a
    // stand-in for a broker on a machine of its own, as deployed. Unset,
    // it competes for these two cores like everything else.
    let broker_cmd = procs::broker_command(
        "127.0.0.1:0",
        &database,
        &idp.url,
        &dir.path().join("broker"),
        &broker_args,
    );
    let broker_cmd = match std::env::var("MANDATE_BENCH_BROKER_NICE") {
        Ok(n) => {
            println!("broker at nice {n}");
            let std = broker_cmd.as_std();
            let mut niced = tokio::process::Command::new("nice");
            niced
                .args(["-n", &n])
                .arg(std.get_program())
                .args(std.get_args())
                .envs(std.get_envs().filter_map(|(k, v)| Some((k, v?))));
            niced
        }
        Err(_) => broker_cmd,
    };
    let broker = Proc::start("mandate-broker", broker_cmd, procs::BROKER_PREFIX).await;
    // One agent's proofs fill its share of the replay cache (a sixteenth)
    // at some 200 calls a second sustained over their two minutes; one
    // caller on a fast machine makes 900, for rounds of up to a minute in
    // all. Four times the default keeps six rounds of 5 s within it.
    let mut gateway_args = vec!["--replay-capacity", "1600000"];
    if witnessing {
        gateway_args.extend(["--witness-key", witness_key]);
    }
    let upstream = procs::mcp_upstream(&project, &[]).await;
    let gateway = procs::gateway(port, &upstream.url, &broker.url, &gateway_args).await;
    let mut cmd = tokio::process::Command::new(procs::binary("mcp-plain-proxy"));
    cmd.args(["--listen", "127.0.0.1:0", "--upstream", &upstream.url]);
    let proxy = Proc::start("mcp-plain-proxy", cmd, "mcp-plain-proxy listening on ").await;
    let pids = Pids {
        gateway: gateway.pid().unwrap(),
        proxy: proxy.pid().unwrap(),
        broker: broker.pid().unwrap(),
        upstream: upstream.pid().unwrap(),
        callers: std::process::id(),
    };

    // One agent per caller, each with its own grant and token, as many
    // agents would call a gateway: a key's proofs share one partition of
    // the replay cache (docs/mcp.md, `--replay-capacity`).
    let alice = User::enrolled(&idp.url, "alice", &broker.url).await;
    let mut agents = Vec::new();
    for i in 0..8 {
        let key = mandate_keyfile::create(&dir.path().join(format!("coder{i}.key"))).unwrap();
        let agent = Agent::new(
            key,
            Broker::new(&broker.url).unwrap(),
            AgentInfo {
                name: format!("bench coder {i}"),
                publisher: None,
                version: None,
            },
        );
        let mandate = granted(&alice, &agent, &resource).await;
        agents.push((agent, mandate));
    }

    println!("tools/call read_file, {rounds} rounds of {seconds} s per target, alternating; µs");
    for concurrency in [1usize, 8] {
        let mut costs = Vec::new();
        let mut orders = Vec::new();
        println!("\n{concurrency} caller(s):\n");
        println!("| target | p50 | p99 | calls a second | p50 ratio | p99 ratio | rate ratio |");
        println!("|---|---|---|---|---|---|---|");
        for by_token in [true, false] {
            // Access tokens drawn now: a run of many rounds outlasts one.
            let mut tokens = Vec::new();
            for (agent, mandate) in &agents[..concurrency] {
                tokens.push(agent.exchange(mandate, &resource).await.unwrap());
            }
            let mut gw_callers = Vec::new();
            let mut px_callers = Vec::new();
            for ((agent, mandate), token) in agents[..concurrency].iter().zip(&tokens) {
                let cred = if by_token {
                    Cred::Token(token)
                } else {
                    Cred::Mandate(mandate)
                };
                gw_callers.push(Caller::open(&gateway.url, &resource, agent, cred).await);
                px_callers.push(Caller::open(&proxy.url, &resource, agent, cred).await);
            }
            // Warm both: connections, the link cache, the token cache.
            let _ = round(&gw_callers, 0.5).await;
            let _ = round(&px_callers, 0.5).await;
            let (mut gw_lat, mut px_lat, mut gw_rates, mut px_rates) =
                (Vec::new(), Vec::new(), Vec::new(), Vec::new());
            // The CPU of the rounds of each target alone, and their calls.
            let (mut gw_cpu, mut px_cpu, mut gw_calls, mut px_calls) =
                ([0.0; 5], [0.0; 5], 0usize, 0usize);
            // Latency from paired rounds; calls a second from each
            // target alone, in rounds that alternate.
            for r in 0..rounds {
                let (g, p) = paired_round(&gw_callers, &px_callers, seconds).await;
                gw_lat.extend(g);
                px_lat.extend(p);
                // A pause after each round in which the gateway took
                // calls: its witness reports them within 250 ms, and the
                // broker stores them, before the next round begins. So
                // neither that work nor its CPU falls in the next round.
                tokio::time::sleep(SETTLE).await;
                // The gateway alone first in even rounds, the proxy in odd
                // ones: what one round leaves the machine (the upstream's
                // garbage, its JIT, caches) falls on each target alike.
                for gateway_now in [r % 2 == 0, r % 2 == 1] {
                    let before = pids.now();
                    if gateway_now {
                        let (calls, rate) = round(&gw_callers, seconds).await;
                        tokio::time::sleep(SETTLE).await;
                        gw_rates.push(rate);
                        gw_calls += calls.len();
                    } else {
                        let (calls, rate) = round(&px_callers, seconds).await;
                        px_rates.push(rate);
                        px_calls += calls.len();
                    }
                    let used = spent(before, pids.now());
                    let cpu = if gateway_now {
                        &mut gw_cpu
                    } else {
                        &mut px_cpu
                    };
                    for (total, u) in cpu.iter_mut().zip(used) {
                        *total += u;
                    }
                }
            }
            costs.push(Costs::of(
                gw_callers[0].cred.name(),
                gw_cpu,
                px_cpu,
                gw_calls,
                px_calls,
            ));
            // Calls a second by place in the round: each target went first
            // in half the rounds (the gateway in even ones).
            let mean_of = |rates: &[f64], even: bool| {
                let picked: Vec<f64> = rates
                    .iter()
                    .enumerate()
                    .filter(|(r, _)| (r % 2 == 0) == even)
                    .map(|(_, rate)| *rate)
                    .collect();
                picked.iter().sum::<f64>() / picked.len().max(1) as f64
            };
            orders.push(format!(
                "{}: gateway {:.0} first, {:.0} second; proxy {:.0} first, {:.0} second",
                gw_callers[0].cred.name(),
                mean_of(&gw_rates, true),
                mean_of(&gw_rates, false),
                mean_of(&px_rates, false),
                mean_of(&px_rates, true),
            ));
            let gw = summarize(gw_lat, &gw_rates);
            let px = summarize(px_lat, &px_rates);
            println!(
                "| plain proxy | {:.0} | {:.0} | {:.0} | | | |",
                px.p50, px.p99, px.rate
            );
            println!(
                "| {} | {:.0} | {:.0} | {:.0} | {:.2} | {:.2} | {:.2} |",
                gw_callers[0].cred.name(),
                gw.p50,
                gw.p99,
                gw.rate,
                gw.p50 / px.p50,
                gw.p99 / px.p99,
                gw.rate / px.rate
            );
        }
        println!("\nCalls a second by place in the round:\n");
        for line in &orders {
            println!("- {line}");
        }
        Costs::print(&costs);
    }
    proxy.kill().await;
    gateway.kill().await;
    upstream.kill().await;
    broker.kill().await;
    idp.kill().await;
}
