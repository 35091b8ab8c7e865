//! One attacker key and 1,000 throwaway agent keys file requests at full
//! speed against one user. The user's real agent, approved before, still
//! reaches her inbox; the flood gets no more than the new lane's share;
//! and the broker's memory stays bounded.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use mandate_agent::Ask;

use crate::journey::{agent, approved, files};
use crate::user::User;
use mandate_e2e::flood::{Flood, filed};
use mandate_e2e::procs;

/// Requests the flood files, in all.
const FLOOD: usize = 6_000;
/// Throwaway keys.
const THROWAWAY: usize = 1_000;

/// The peak resident memory of process `pid`, in KiB (`VmHWM`).
fn peak_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM in /proc/PID/status")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_throwaway_agents_does_not_keep_a_known_agent_from_its_user() {
    let dir = tempfile::tempdir().unwrap();
    let procs::Stack { idp, broker } = procs::stack(dir.path()).await;
    let pid = broker.pid().expect("the broker runs");
    let alice = User::enrolled(&idp.url, "alice", &broker.url).await;
    let planner = agent(&broker.url, "planner", dir.path());
    approved(&alice, &planner).await;
    let mut inbox = alice.inbox_events().await;
    let before = peak_kib(pid);

    let sent = Arc::new(AtomicUsize::new(0));
    let flood = {
        let flood = Flood {
            broker: broker.url.clone(),
            principal: alice.principal.to_string(),
            requests: FLOOD,
            throwaway: THROWAWAY,
            concurrency: 32,
        };
        let sent = Arc::clone(&sent);
        tokio::spawn(async move { flood.run(&sent).await })
    };

    // Mid-flood, the planner asks again.
    while sent.load(Ordering::Relaxed) < FLOOD / 4 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let ask = Ask {
        principal: alice.principal.clone(),
        scopes: vec![files(&["read"], "https://files.example/reports/q4/")],
        purpose: "Read the Q4 reports".into(),
        intent: None,
        lifetime: 600,
        max_depth: 0,
        expires_in: 600,
    };
    let asked = Instant::now();
    let pending = planner
        .request(&ask)
        .await
        .expect("the known agent files during the flood");
    let wanted = pending.id.to_string();
    let reached = loop {
        let event = inbox
            .next_named("request.created", Duration::from_secs(30))
            .await;
        if event.data.contains(&wanted) {
            break asked.elapsed();
        }
    };
    let during = sent.load(Ordering::Relaxed);
    let tally = tokio::time::timeout(Duration::from_secs(300), flood)
        .await
        .expect("the flood ends")
        .unwrap();
    let peak = peak_kib(pid);
    eprintln!(
        "flood: {FLOOD} requests from 1 attacker key and {THROWAWAY} throwaway keys; \
         answers {tally:?}; the known agent's request was filed and reached the inbox stream \
         in {} ms, with {during} flood requests sent; broker peak RSS {} MiB before, {} MiB after",
        reached.as_millis(),
        before / 1024,
        peak / 1024
    );
    assert!(
        filed(&tally) <= 20,
        "the flood got only the new lane's share: {tally:?}"
    );
    assert!(
        tally.keys().all(|(status, _)| [201, 429].contains(status)),
        "only filed or refused as too many: {tally:?}"
    );
    assert!(peak < 256 * 1024, "the broker's peak RSS {peak} KiB");
    let (status, body) = alice.send(reqwest::Method::GET, "/v1/inbox", None).await;
    assert_eq!(status, 200);
    assert!(
        body["requests"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["id"] == wanted.as_str()),
        "the planner's request is in the inbox"
    );
    for p in [broker, idp] {
        p.kill().await;
    }
}
