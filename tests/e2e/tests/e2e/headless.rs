//! `mandate-engine` as docs/app.md shows it: the doc's session blocks
//! (```` ```sh session=NAME ````), run by bash in order against a real
//! provider, broker and resource server, with an agent asking, calling and
//! reporting between them. Revoking with `revoke` and with `revoke-all`
//! makes the resource server refuse the agent's next call.

use std::process::Stdio;
use std::time::{Duration, Instant};

use mandate_agent::{Action, AgentError, Ask, Mandate, Outcome, Report};
use mandate_core::token::{GrantClaims, peek};
use serde_json::Value;

use crate::journey::{agent, call, files};
use mandate_e2e::procs::{self, binary, repo};

/// Whether the real keyring is there (scripts/with-keyring.sh). Under
/// MANDATE_REQUIRE_KEYRING, as in `make test`, a missing one fails.
fn keyring_ready() -> bool {
    if std::env::var("MANDATE_KEYRING").as_deref() == Ok("secret-service") {
        return true;
    }
    assert!(
        std::env::var_os("MANDATE_REQUIRE_KEYRING").is_none(),
        "MANDATE_REQUIRE_KEYRING is set but no keyring session is: run under scripts/with-keyring.sh"
    );
    eprintln!("skipped: no OS keyring session (run under scripts/with-keyring.sh)");
    false
}

/// The session blocks of docs/app.md, by name, in order.
fn session_blocks() -> Vec<(String, String)> {
    let doc = std::fs::read_to_string(repo().join("docs/app.md")).expect("docs/app.md");
    let mut blocks = Vec::new();
    let mut open: Option<(String, String)> = None;
    for line in doc.lines() {
        match &mut open {
            None => {
                if let Some(name) = line.strip_prefix("```sh session=") {
                    open = Some((name.trim().to_owned(), String::new()));
                }
            }
            Some((_, body)) if line.starts_with("```") => {
                let _ = body;
                blocks.extend(open.take());
            }
            Some((_, body)) => {
                body.push_str(line);
                body.push('\n');
            }
        }
    }
    blocks
}

/// The member names a block's comments show: `"name":` in a `# ` line.
fn shown_members(block: &str) -> Vec<String> {
    let mut names = Vec::new();
    for comment in block.lines().filter_map(|l| l.trim().strip_prefix("# ")) {
        let mut rest = comment;
        while let Some(start) = rest.find('"') {
            let after = &rest[start + 1..];
            let Some(end) = after.find('"') else { break };
            let name = &after[..end];
            rest = &after[end + 1..];
            if rest.starts_with(':') && !names.iter().any(|n| n == name) {
                names.push(name.to_owned());
            }
        }
    }
    names
}

struct Session {
    blocks: Vec<(String, String)>,
    env: Vec<(&'static str, String)>,
}

impl Session {
    /// Runs the block `name` with bash, as a reader would paste it; checks
    /// that it succeeds and prints every member its comments show.
    /// Returns what it printed.
    async fn run(&self, name: &str) -> String {
        let (_, script) = self
            .blocks
            .iter()
            .find(|(n, _)| n == name)
            .unwrap_or_else(|| panic!("docs/app.md has no block session={name}"));
        let out = tokio::process::Command::new("bash")
            .args(["-euo", "pipefail", "-c", script])
            .envs(self.env.iter().map(|(k, v)| (*k, v.as_str())))
            .stdin(Stdio::null())
            .kill_on_drop(true)
            .output();
        let out = tokio::time::timeout(Duration::from_secs(90), out)
            .await
            .unwrap_or_else(|_| panic!("block {name} did not finish in 90 s"))
            .expect("bash runs");
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success(),
            "block {name} failed:\n{script}\nstdout: {stdout}\nstderr: {stderr}"
        );
        for member in shown_members(script) {
            assert!(
                stdout.contains(&format!("\"{member}\":")),
                "block {name}: the doc shows \"{member}\", which the output lacks:\n{stdout}"
            );
        }
        stdout
    }
}

impl Session {
    /// Runs `mandate-engine ARGS` (not from the doc); returns its stdout.
    async fn command(&self, args: &[&str]) -> String {
        let out = tokio::process::Command::new(binary("mandate-engine"))
            .args(args)
            .envs(self.env.iter().map(|(k, v)| (*k, v.as_str())))
            .stdin(Stdio::null())
            .kill_on_drop(true)
            .output();
        let out = tokio::time::timeout(Duration::from_secs(60), out)
            .await
            .expect("mandate-engine finishes in 60 s")
            .expect("mandate-engine runs");
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "mandate-engine {args:?}: {stdout}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        stdout
    }
}

/// Calls until the resource server refuses `mandate` with 403
/// `chain.revoked`, for up to 15 s.
async fn refused_soon(agent: &mandate_agent::Agent, mandate: &Mandate, url: &str) {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let (status, body) = call(agent, mandate, url).await;
        if (status, body["code"].as_str()) == (403, Some("chain.revoked")) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "still not refused 15 s after the revocation: {status} {body}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn ask(principal: &str, purpose: &str) -> Ask {
    Ask {
        principal: principal.into(),
        scopes: vec![files(&["read", "write"], "https://files.example/reports/")],
        purpose: purpose.into(),
        intent: Some("Summarize Q3 for me".into()),
        lifetime: 3600,
        max_depth: 1,
        expires_in: 600,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mandate_engine_runs_the_documented_session() {
    if !keyring_ready() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let procs::Stack { idp, broker } = procs::stack(d).await;
    let server = procs::resource_server(&broker.url, 5).await;
    let bin = binary("mandate-engine");
    let path = format!(
        "{}:{}",
        bin.parent().unwrap().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let browse = repo().join("tests/idp/browse.mjs");
    let session = Session {
        blocks: session_blocks(),
        env: vec![
            ("PATH", path),
            ("MANDATE_ISSUER", idp.url.clone()),
            ("MANDATE_BROKER", broker.url.clone()),
            ("MANDATE_DATA_DIR", d.join("engine").display().to_string()),
            (
                "MANDATE_KEYRING_SERVICE",
                format!("mandate-headless-{}", std::process::id()),
            ),
            (
                "MANDATE_BROWSER",
                format!("node {} --user alice", browse.display()),
            ),
            ("MANDATE_DEVICE_NAME", "Alice's terminal".into()),
        ],
    };
    let names: Vec<&str> = session.blocks.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        [
            "signin",
            "review",
            "approve",
            "deny",
            "revoke",
            "revoke-all",
            "review-activity"
        ],
        "the test drives the agent between these blocks"
    );
    let principal = format!("{}#alice", idp.url);
    let url = format!("{}/files/reports/q3/revenue.txt", server.url);

    let account = session.run("signin").await;
    assert!(account.contains(&principal), "{account}");

    // An agent asks; the user reviews and approves it narrowed.
    let planner = agent(&broker.url, "Planner", d);
    let first = planner
        .request(&ask(&principal, "Summarize the Q3 reports"))
        .await
        .unwrap();
    let review = session.run("review").await;
    assert!(review.contains(&first.binding_code), "{review}");
    // The same, for people.
    let inbox = session.command(&["--output", "text", "inbox"]).await;
    assert!(
        inbox.contains(&format!("code {}", first.binding_code)),
        "{inbox}"
    );
    assert!(
        inbox.contains("Planner") && inbox.contains("Summarize the Q3 reports"),
        "{inbox}"
    );
    let id = first.id.to_string();
    let shown = session.command(&["--output", "text", "show", &id]).await;
    for line in [
        format!("Binding code: {}", first.binding_code),
        "Agent: Planner".to_owned(),
        "0. Files: read (Read files), write".to_owned(),
        "Chain:".to_owned(),
        "user: alice@example.test".to_owned(),
    ] {
        assert!(shown.contains(&line), "{line:?} not in:\n{shown}");
    }
    session.run("approve").await;
    let mandate = planner.wait(&first, Duration::from_secs(30)).await.unwrap();
    let (_, leaf) = peek::<GrantClaims>(mandate.chain.last().unwrap()).unwrap();
    assert_eq!(leaf.authorization_details.len(), 1);
    let kept: Vec<&str> = leaf.authorization_details[0]
        .actions
        .iter()
        .map(String::as_str)
        .collect();
    assert_eq!(kept, ["read"], "write was not kept");
    assert!(leaf.exp - leaf.nbf <= 600, "10 minutes, not the hour asked");
    let (status, body) = call(&planner, &mandate, &url).await;
    assert_eq!(status, 200, "{body}");
    planner
        .report(
            &mandate,
            &Report {
                action: Action {
                    kind: "files.read".into(),
                    target: "https://files.example/reports/q3/revenue.txt".into(),
                    summary: "Read the Q3 revenue report".into(),
                },
                outcome: Outcome::Succeeded,
                rationale: Some("The summary needs the revenue".into()),
                cause: Some(first.id),
            },
        )
        .await
        .unwrap();

    // The next request, to write only, is denied, with the reason the
    // agent sees. (Asking the same scopes again would wait out the
    // broker's cooldown; the next request asks for more.)
    let second = planner
        .request(&Ask {
            scopes: vec![files(&["write"], "https://files.example/reports/")],
            ..ask(&principal, "File the Q3 summary")
        })
        .await
        .unwrap();
    session.run("deny").await;
    match planner.wait(&second, Duration::from_secs(30)).await {
        Err(AgentError::Denied(Some(reason))) => assert_eq!(reason, "Not this quarter"),
        other => panic!("expected a denial with its reason, got {other:?}"),
    }

    // Revoking the grant: the resource server refuses the next call.
    session.run("revoke").await;
    refused_soon(&planner, &mandate, &url).await;

    // Approved again, then everything revoked at once.
    let third = planner
        .request(&ask(&principal, "Summarize the Q3 reports again"))
        .await
        .unwrap();
    session.run("approve").await;
    let again = planner.wait(&third, Duration::from_secs(30)).await.unwrap();
    let (status, body) = call(&planner, &again, &url).await;
    assert_eq!(status, 200, "{body}");
    session.run("revoke-all").await;
    refused_soon(&planner, &again, &url).await;

    // The receipt shows, verified, and the history holds.
    let activity = session.run("review-activity").await;
    let mut lines = activity.lines();
    let rows: Value = serde_json::from_str(lines.next().unwrap_or("")).unwrap();
    assert_eq!(rows[0]["kind"], "files.read", "{activity}");
    assert_eq!(rows[0]["status"], "verified", "{activity}");
    let verified: Value = serde_json::from_str(lines.next().unwrap_or("")).unwrap();
    assert!(verified["events"].as_i64().unwrap() > 0, "{activity}");
    drop(server);
}
