//! The `mandate` CLI, command by command as docs/agents.md shows it,
//! against a real broker, provider and resource server.

use std::process::Stdio;
use std::time::Duration;

use mandate_core::TokenId;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt as _, BufReader};

use crate::user::User;
use mandate_e2e::procs::{self, binary, cli};

fn json_of(out: &str) -> Value {
    serde_json::from_str(out.trim()).unwrap_or_else(|e| panic!("{e}: {out}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_asks_delegates_calls_reports_verifies_and_follows() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let procs::Stack { idp, broker } = procs::stack(d).await;
    let files_server = procs::resource_server(&broker.url, 5).await;
    let alice = User::enrolled(&idp.url, "alice", &broker.url).await;
    let mut inbox = alice.inbox_events().await;
    let env = [("MANDATE_BROKER", broker.url.as_str())];
    let path = |name: &str| d.join(name).display().to_string();
    let (planner_key, reader_key) = (path("planner.key"), path("reader.key"));

    // mandate agent init
    let (ok, out, err) = cli(&["agent", "init", "--key", &planner_key], &env).await;
    assert!(ok, "{err}");
    let planner = json_of(&out);
    assert!(
        planner["agent_id"]
            .as_str()
            .unwrap()
            .starts_with("urn:ietf:params:oauth:jwk-thumbprint:sha-256:")
    );
    let (ok, _, err) = cli(&["agent", "init", "--key", &planner_key], &env).await;
    assert!(
        !ok && err.contains("already exists"),
        "never overwrites a key: {err}"
    );

    // mandate agent request ... --wait, answered by the user meanwhile.
    let mut request = tokio::process::Command::new(binary("mandate"));
    request
        .args(["agent", "request", "--key", &planner_key])
        .args(["--principal", &alice.principal])
        .args(["--scope", "files:read:https://files.example/reports/"])
        .args(["--purpose", "Summarize the Q3 reports"])
        .args(["--intent", "Summarize Q3 for me"])
        .args(["--wait", "--timeout", "60", "--out", &path("mandate.json")])
        .envs(env)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let waiting = request.spawn().unwrap();
    let event = inbox
        .next_named("request.created", Duration::from_secs(15))
        .await;
    let id = json_of(&event.data)["request"].as_str().unwrap().to_owned();
    let token = alice.pending(&id).await;
    let grant = alice.grant(
        &token,
        vec![
            mandate_core::AuthorizationDetail::new(
                "files",
                ["read"],
                ["https://files.example/reports/"],
            )
            .unwrap(),
        ],
    );
    let (status, body) = alice.decide(&id, json!({ "grant": grant })).await;
    assert_eq!(status, 200, "{body}");
    let done = tokio::time::timeout(Duration::from_secs(30), waiting.wait_with_output())
        .await
        .expect("request --wait did not finish")
        .unwrap();
    let stderr = String::from_utf8_lossy(&done.stderr);
    assert!(done.status.success(), "{stderr}");
    let code = mandate_core::token::peek::<mandate_core::token::RequestClaims>(&token)
        .unwrap()
        .1
        .binding_code;
    assert!(
        stderr.contains(code.as_str()),
        "shows the binding code: {stderr}"
    );

    // mandate agent delegate
    let (ok, out, err) = cli(&["agent", "init", "--key", &reader_key], &env).await;
    assert!(ok, "{err}");
    let reader = json_of(&out)["agent_id"].as_str().unwrap().to_owned();
    let (ok, _, err) = cli(
        &[
            "agent",
            "delegate",
            "--key",
            &planner_key,
            "--mandate",
            &path("mandate.json"),
            "--to",
            &reader,
            "--scope",
            "files:read:https://files.example/reports/q3/",
            "--purpose",
            "Fetch the Q3 reports",
            "--out",
            &path("reader.json"),
        ],
        &env,
    )
    .await;
    assert!(ok, "{err}");

    // mandate agent call
    let url = format!("{}/files/reports/q3/revenue.txt", files_server.url);
    let (ok, out, err) = cli(
        &[
            "agent",
            "call",
            "--key",
            &reader_key,
            "--mandate",
            &path("reader.json"),
            "GET",
            &url,
        ],
        &env,
    )
    .await;
    assert!(ok, "{err}");
    let answer = json_of(&out);
    assert_eq!(answer["status"], 200);
    assert_eq!(answer["body"]["agent"], reader);
    let q4 = format!("{}/files/reports/q4/revenue.txt", files_server.url);
    let (ok, out, err) = cli(
        &[
            "agent",
            "call",
            "--key",
            &reader_key,
            "--mandate",
            &path("reader.json"),
            "GET",
            &q4,
        ],
        &env,
    )
    .await;
    assert!(!ok && err.contains("call.out_of_scope"), "{out} {err}");

    // mandate agent report
    let (ok, out, err) = cli(
        &[
            "agent",
            "report",
            "--key",
            &reader_key,
            "--mandate",
            &path("reader.json"),
            "--action",
            "files.read",
            "--target",
            "https://files.example/reports/q3/revenue.txt",
            "--summary",
            "Read the Q3 revenue report",
        ],
        &env,
    )
    .await;
    assert!(ok, "{err}");
    let receipt = json_of(&out)["receipt"].as_str().unwrap().to_owned();
    let (_, receipts) = alice
        .send(reqwest::Method::GET, "/v1/receipts?since=0", None)
        .await;
    assert_eq!(receipts["receipts"][0]["id"], receipt);

    // mandate verify
    let (ok, out, err) = cli(&["verify", "--mandate", &path("reader.json")], &env).await;
    assert!(ok, "{err}");
    let verified = json_of(&out);
    assert_eq!(verified["agent"], reader);
    assert_eq!(verified["links"], 2);
    assert_eq!(verified["principal"], alice.principal);

    // mandate agent request --parent ... --endorse-key ...: the reader's
    // depth is used up, so its own sub-agent asks the user, endorsed.
    let helper_key = path("helper.key");
    let (ok, _, err) = cli(&["agent", "init", "--key", &helper_key], &env).await;
    assert!(ok, "{err}");
    let escalate = |extra: &'static [&'static str]| {
        let mut args = vec![
            "agent",
            "request",
            "--key",
            helper_key.as_str(),
            "--principal",
            alice.principal.as_str(),
            "--scope",
            "files:read:https://files.example/reports/q3/",
            "--purpose",
            "Help the reader",
        ];
        args.extend_from_slice(extra);
        args.iter()
            .map(|a| (*a).to_owned())
            .collect::<Vec<String>>()
    };
    let reader_mandate = path("reader.json");
    let mut args = escalate(&[]);
    args.extend([
        "--parent".into(),
        reader_mandate.clone(),
        "--endorse-key".into(),
        reader_key.clone(),
    ]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let (ok, out, err) = cli(&args, &env).await;
    assert!(ok, "{err}");
    let escalated = json_of(&out)["id"].as_str().unwrap().to_owned();
    let (_, inbox) = alice.send(reqwest::Method::GET, "/v1/inbox", None).await;
    let item = inbox["requests"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["id"] == escalated)
        .expect("the escalated request is in the inbox");
    assert_eq!(
        item["parent_chain"].as_array().unwrap().len(),
        2,
        "user, planner, reader"
    );

    // mandate revocations follow, while the user revokes the root.
    let mut follow = tokio::process::Command::new(binary("mandate"));
    follow
        .args(["revocations", "follow"])
        .envs(env)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .kill_on_drop(true);
    let mut following = follow.spawn().unwrap();
    let mut lines = BufReader::new(following.stdout.take().unwrap()).lines();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let root = TokenId::of(&grant);
    let (status, body) = alice.revoke(&[root]).await;
    assert_eq!(status, 201, "{body}");
    let line = tokio::time::timeout(Duration::from_secs(5), lines.next_line())
        .await
        .expect("follow printed nothing")
        .unwrap()
        .unwrap();
    assert_eq!(json_of(&line), json!({ "revoked": root.to_string() }));
    let _ = following.start_kill();
    let _ = tokio::time::timeout(Duration::from_secs(5), following.wait()).await;

    let (ok, _, err) = cli(&["verify", "--mandate", &path("reader.json")], &env).await;
    assert!(!ok && err.starts_with("error chain.revoked"), "{err}");
    // A revoked chain can no longer put a sub-agent in front of the user.
    let (ok, _, err) = cli(&args, &env).await;
    assert!(!ok && err.starts_with("error chain.revoked"), "{err}");

    for p in [files_server, broker, idp] {
        p.kill().await;
    }
}
