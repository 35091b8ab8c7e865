//! `mandate-gateway` in front of a real MCP server on the official SDK
//! (tests/mcp/server.mjs), with a real provider and broker: an agent
//! calls tools under its mandate and under an access token, gets
//! `insufficient_scope` for a tool outside its grant, steps up with the
//! user's approval, and is refused once the user revokes. Every refusal
//! (another audience, a header that disagrees with the body, a batch, a
//! name by case or look-alike, hostile JSON-RPC) is a 4xx with a JSON-RPC
//! error, and none reaches the upstream.

use std::time::{Duration, Instant};

use mandate_agent::{AccessToken, Agent, Ask, Mandate};
use mandate_core::scope::AuthorizationDetail;
use serde_json::{Value, json};

use crate::journey::agent;
use crate::user::User;
use mandate_e2e::procs::{self, Proc};

/// How the calls present their authority.
#[derive(Clone, Copy)]
enum Cred<'a> {
    None,
    Mandate(&'a Mandate),
    Token(&'a AccessToken),
}

/// An MCP client over Streamable HTTP, by hand: one session.
struct Mcp<'a> {
    url: String,
    agent: &'a Agent,
    session: Option<String>,
}

/// An answer: its status, `WWW-Authenticate`, and the JSON-RPC message
/// (from JSON or from the last event of an SSE stream).
struct Answer {
    status: u16,
    challenge: String,
    body: Value,
}

impl Answer {
    /// Asserts a refusal with `status` whose challenge names `error`.
    fn refused(&self, status: u16, error: &str) {
        assert_eq!(self.status, status, "{}", self.body);
        assert!(
            self.challenge.contains(&format!("error=\"{error}\"")),
            "{}",
            self.challenge
        );
    }
}

impl<'a> Mcp<'a> {
    fn new(url: &str, agent: &'a Agent) -> Mcp<'a> {
        Mcp {
            url: url.to_owned(),
            agent,
            session: None,
        }
    }

    /// A POST to the endpoint under `cred`, in this session if one is open.
    fn request(&self, cred: Cred<'_>) -> reqwest::RequestBuilder {
        let mut req = mandate_agent::client::http_client()
            .unwrap()
            .post(&self.url)
            .timeout(Duration::from_secs(10))
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream")
            .header("mcp-protocol-version", "2025-11-25");
        match cred {
            Cred::None => {}
            Cred::Mandate(m) => {
                for (name, value) in self.agent.present(m, "POST", &self.url).unwrap() {
                    req = req.header(name, value);
                }
            }
            Cred::Token(t) => {
                req = req
                    .header("authorization", format!("DPoP {}", t.token))
                    .header("dpop", self.agent.dpop("POST", &self.url, Some(&t.token)));
            }
        }
        if let Some(s) = &self.session {
            req = req.header("mcp-session-id", s);
        }
        req
    }

    async fn raw(&self, cred: Cred<'_>, body: Vec<u8>, headers: &[(&str, &str)]) -> Answer {
        let mut req = self.request(cred);
        for (name, value) in headers {
            req = req.header(*name, *value);
        }
        let res = req.body(body).send().await.unwrap();
        let status = res.status().as_u16();
        let challenge = res
            .headers()
            .get("www-authenticate")
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default();
        let text = res.text().await.unwrap();
        let body = serde_json::from_str(&text).unwrap_or_else(|_| {
            text.lines()
                .filter_map(|l| l.strip_prefix("data: "))
                .filter_map(|d| serde_json::from_str(d).ok())
                .next_back()
                .unwrap_or(Value::Null)
        });
        Answer {
            status,
            challenge,
            body,
        }
    }

    /// Opens the session's event stream (a GET) with a Mandate chain,
    /// and leaves it open.
    async fn listen(&self, mandate: &Mandate) -> reqwest::Response {
        let mut req = mandate_agent::client::http_client()
            .unwrap()
            .get(&self.url)
            .header("accept", "text/event-stream")
            .header("mcp-protocol-version", "2025-11-25");
        for (name, value) in self.agent.present(mandate, "GET", &self.url).unwrap() {
            req = req.header(name, value);
        }
        if let Some(s) = &self.session {
            req = req.header("mcp-session-id", s);
        }
        req.send().await.unwrap()
    }

    async fn call(&self, cred: Cred<'_>, method: &str, params: Value) -> Answer {
        let body = json!({ "jsonrpc": "2.0", "id": 1, "method": method, "params": params });
        self.raw(cred, body.to_string().into_bytes(), &[]).await
    }

    /// Opens a session under `cred`.
    async fn initialize(&mut self, cred: Cred<'_>) {
        let params = json!({
            "protocolVersion": "2025-11-25",
            "capabilities": {},
            "clientInfo": { "name": "mandate-e2e", "version": "1" },
        });
        let body = json!({ "jsonrpc": "2.0", "id": 0, "method": "initialize", "params": params });
        let res = self
            .request(cred)
            .body(body.to_string())
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200, "initialize");
        self.session = Some(res.headers()["mcp-session-id"].to_str().unwrap().to_owned());
        let _ = res.text().await;
        let note = json!({ "jsonrpc": "2.0", "method": "notifications/initialized" });
        let a = self.raw(cred, note.to_string().into_bytes(), &[]).await;
        assert_eq!(a.status, 202, "{}", a.body);
    }

    /// A session under `reading`, a grant of `read_file` alone, whose
    /// listing taught the gateway the upstream's tools.
    async fn listed(url: &str, agent: &'a Agent, reading: &Mandate) -> Mcp<'a> {
        let mut session = Mcp::new(url, agent);
        session.initialize(Cred::Mandate(reading)).await;
        assert_eq!(
            session.tool_names(Cred::Mandate(reading)).await,
            ["read_file"]
        );
        session
    }

    async fn tool(&self, cred: Cred<'_>, name: &str, arguments: Value) -> Answer {
        self.call(
            cred,
            "tools/call",
            json!({ "name": name, "arguments": arguments }),
        )
        .await
    }

    async fn tool_names(&self, cred: Cred<'_>) -> Vec<String> {
        let a = self.call(cred, "tools/list", json!({})).await;
        assert_eq!(a.status, 200, "{}", a.body);
        let mut names: Vec<String> = a.body["result"]["tools"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["name"].as_str().unwrap().to_owned())
            .collect();
        names.sort();
        names
    }
}

fn mcp(actions: &[&str], resource: &str) -> AuthorizationDetail {
    AuthorizationDetail::new("mcp", actions.iter().copied(), [resource]).unwrap()
}

/// Files a request for `scopes` and approves it as asked.
async fn granted(user: &User, agent: &Agent, scopes: Vec<AuthorizationDetail>) -> Mandate {
    let ask = Ask {
        principal: user.principal.clone(),
        scopes,
        purpose: "Fix the failing test in the project".into(),
        intent: Some("Fix the build".into()),
        lifetime: 3600,
        max_depth: 0,
        expires_in: 600,
    };
    user.approve(agent, &ask).await
}

/// An agent granted `read_file` at the gateway, alone, and its mandate.
async fn reader(s: &Setup, dir: &std::path::Path) -> (Agent, Mandate) {
    let coder = agent(&s.broker.url, "coder", dir);
    let scopes = vec![mcp(&["read_file"], &s.gateway.url)];
    let reading = granted(&s.alice, &coder, scopes).await;
    (coder, reading)
}

/// The JSON-RPC messages the upstream has received.
async fn upstream_calls(upstream: &Proc) -> Vec<Value> {
    let url = upstream.url.trim_end_matches("/mcp").to_owned() + "/calls";
    reqwest::get(url).await.unwrap().json().await.unwrap()
}

struct Setup {
    _dir: tempfile::TempDir,
    idp: Proc,
    broker: Proc,
    upstream: Proc,
    gateway: Proc,
    other_resource: String,
    alice: User,
    /// The thumbprint of the gateway's witness key.
    witness: String,
}

async fn setup() -> Setup {
    setup_with(&[], &[]).await
}

/// [`setup`], with the gateway given these arguments and environment
/// variables too.
async fn setup_with(gateway_args: &[&str], gateway_env: &[(&str, &str)]) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let project = procs::mcp_project(dir.path());
    let port = procs::free_port();
    let resource = format!("http://127.0.0.1:{port}/mcp");
    let other_resource = "http://127.0.0.1:9/other-mcp".to_owned();
    let idp = procs::idp().await;
    // The gateway's witness key, made first: the broker must trust it.
    let witness_key = dir.path().join("witness.key");
    let witness_key = witness_key.to_str().unwrap();
    let witness = procs::witness_key(std::path::Path::new(witness_key));
    let database = format!("sqlite://{}/broker.db", dir.path().display());
    let broker = procs::broker(
        &database,
        &idp.url,
        &dir.path().join("broker"),
        &[
            "--oauth-resource",
            &resource,
            "--oauth-resource",
            &other_resource,
            "--witness",
            &format!("{resource}={witness}"),
        ],
    )
    .await;
    let upstream = procs::mcp_upstream(&project, &[]).await;
    let mut args = vec!["--witness-key", witness_key];
    args.extend_from_slice(gateway_args);
    let gateway = procs::gateway_env(port, &upstream.url, &broker.url, &args, gateway_env).await;
    assert_eq!(gateway.url, resource);
    let alice = User::enrolled(&idp.url, "alice", &broker.url).await;
    Setup {
        _dir: dir,
        idp,
        broker,
        upstream,
        gateway,
        other_resource,
        alice,
        witness,
    }
}

/// A gateway told to stop (SIGTERM, as a service manager stops it) ends
/// the calls in flight and then reports the witness receipts it still
/// holds, before it exits: none is lost to the reporter's linger. A
/// client's open event stream, which never ends by itself, does not hold
/// it up past its grace.
#[tokio::test(flavor = "multi_thread")]
async fn a_stopping_gateway_reports_what_it_witnessed() {
    let s = setup().await;
    let dir = tempfile::tempdir().unwrap();
    let (coder, reading) = reader(&s, dir.path()).await;
    let session = Mcp::listed(&s.gateway.url, &coder, &reading).await;
    let stream = session.listen(&reading).await;
    assert_eq!(stream.status(), 200);
    assert_eq!(
        stream.headers()["content-type"].to_str().unwrap(),
        "text/event-stream"
    );
    let a = session
        .call(
            Cred::Mandate(&reading),
            "tools/call",
            json!({ "name": "read_file", "arguments": { "path": "README.md" } }),
        )
        .await;
    assert_eq!(a.status, 200, "{}", a.body);
    // At once: the receipt still waits out the reporter's 250 ms.
    let status = s.gateway.terminate(Duration::from_secs(20)).await;
    assert!(
        status.is_some_and(|s| s.success()),
        "the gateway exits cleanly on SIGTERM: {status:?}"
    );
    let seen = witnessed(&s.alice, 1).await;
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert_eq!(seen[0].0["name"], "read_file", "{:?}", seen[0].0);
    assert_eq!(seen[0].0["outcome"], "succeeded", "{:?}", seen[0].0);
    drop(stream);
}

/// The witness receipts in the user's feed, once there are at least
/// `count`, as (claims, the feed item).
async fn witnessed(user: &User, count: usize) -> Vec<(Value, Value)> {
    let started = Instant::now();
    loop {
        let (status, page) = user.send(reqwest::Method::GET, "/v1/receipts", None).await;
        assert_eq!(status, 200, "{page}");
        let found: Vec<(Value, Value)> = page["receipts"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| r.get("witness").is_some())
            .map(|r| {
                // Each stands on its own: a receipt of the gateway's signed
                // report, with its audit path, under the key the broker
                // names as the witness.
                let token = r["receipt"].as_str().unwrap();
                assert_eq!(token.split('~').count(), 4, "{token}");
                let key: mandate_core::Jwk = serde_json::from_value(r["keys"][0].clone()).unwrap();
                let key = mandate_core::PublicKey::from_jwk(&key).unwrap();
                assert_eq!(r["witness"], json!(key.thumbprint().to_string()));
                let (id, claims) = mandate_core::token::verify_witness(
                    token,
                    &key,
                    &mandate_core::Policy::default(),
                    mandate_agent::unix_now(),
                )
                .unwrap();
                assert_eq!(r["id"], json!(id.to_string()), "{r}");
                (serde_json::to_value(claims).unwrap(), r.clone())
            })
            .collect();
        if found.len() >= count {
            return found;
        }
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "{} witness receipts, not {count}",
            found.len()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The inbox item of the pending request `id`, once it carries a tools
/// statement: the gateway sends one in the background after a listing.
async fn server_says_in_inbox(user: &User, id: &str) -> Value {
    for _ in 0..50 {
        let (status, body) = user.send(reqwest::Method::GET, "/v1/inbox", None).await;
        assert_eq!(status, 200, "{body}");
        let item = body["requests"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["id"] == id)
            .unwrap_or_else(|| panic!("{id} is not in the inbox: {body}"))
            .clone();
        if item["tools"].as_array().is_some_and(|t| !t.is_empty()) {
            return item;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("no tools statement came with the request {id} within 5 s");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tools_are_called_per_grant_with_step_up_and_revocation() {
    let s = setup().await;
    let dir = tempfile::tempdir().unwrap();
    let resource = s.gateway.url.clone();
    let coder = agent(&s.broker.url, "coder", dir.path());
    let reading = granted(
        &s.alice,
        &coder,
        vec![mcp(&["read_file", "list_files"], &resource)],
    )
    .await;

    // Without a credential: a challenge that names the resource metadata,
    // which names the broker.
    let mut session = Mcp::new(&resource, &coder);
    let a = session.call(Cred::None, "tools/list", json!({})).await;
    assert_eq!(a.status, 401);
    assert!(a.challenge.starts_with("DPoP "), "{}", a.challenge);
    let metadata_url = a
        .challenge
        .split("resource_metadata=\"")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .unwrap()
        .to_owned();
    let metadata: Value = reqwest::get(&metadata_url)
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(metadata["resource"], resource);
    assert_eq!(metadata["authorization_servers"], json!([s.broker.url]));
    assert_eq!(metadata["dpop_bound_access_tokens_required"], true);

    // Under the mandate: only the granted tools are listed, and callable.
    session.initialize(Cred::Mandate(&reading)).await;
    assert_eq!(
        session.tool_names(Cred::Mandate(&reading)).await,
        ["list_files", "read_file"]
    );
    let a = session
        .tool(
            Cred::Mandate(&reading),
            "read_file",
            json!({ "path": "README.md" }),
        )
        .await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(a.body["result"]["content"][0]["text"], "# The project\n");

    // A tool outside the grant: insufficient_scope, with what to ask for.
    let a = session
        .tool(
            Cred::Mandate(&reading),
            "run_command",
            json!({ "command": "make test" }),
        )
        .await;
    a.refused(403, "insufficient_scope");
    assert!(
        a.challenge
            .contains(r#"scope="mcp:list_files mcp:read_file mcp:run_command""#),
        "{}",
        a.challenge
    );
    let data = &a.body["error"]["data"];
    assert_eq!(data["code"], "gateway.insufficient_scope");
    assert_eq!(data["tool"], "run_command");
    assert_eq!(data["hints"]["destructive"], true, "{data}");
    assert_eq!(data["hints"]["read_only"], false, "{data}");
    let needed: Vec<AuthorizationDetail> =
        serde_json::from_value(data["authorization_details"].clone()).unwrap();
    assert_eq!(needed, vec![mcp(&["run_command"], &resource)]);
    let seen = upstream_calls(&s.upstream).await;
    assert!(
        !seen.iter().any(|c| c["name"] == "run_command"),
        "the refused call reached the upstream: {seen:?}"
    );

    // Step-up: the agent asks for what the refusal names; once the user
    // approves, the call goes through.
    let mut wider = reading.leaf().unwrap().authorization_details;
    wider.extend(needed);
    let ask = Ask {
        principal: s.alice.principal.clone(),
        scopes: wider.clone(),
        purpose: "Run the tests".into(),
        intent: Some("Fix the build".into()),
        lifetime: 3600,
        max_depth: 0,
        expires_in: 600,
    };
    let pending = coder.request(&ask).await.unwrap();
    // The user's inbox serves, beside the request, what the server said
    // of its tools in its listing, relayed and signed by the gateway; the
    // app's own check reads it as the server's claim.
    let item = server_says_in_inbox(&s.alice, &pending.id.to_string()).await;
    let statements: Vec<mandate_client::tool_claims::ToolsStatement> =
        serde_json::from_value(item["tools"].clone()).unwrap();
    assert_eq!(statements.len(), 1, "{item}");
    let key = mandate_core::PublicKey::from_jwk(&statements[0].key).unwrap();
    assert_eq!(key.thumbprint().to_string(), s.witness);
    let said = mandate_client::tool_claims::ServerSays::of(
        &statements,
        item["expires_at"].as_i64().unwrap(),
    );
    let run = said
        .claim(&wider[1], "run_command")
        .expect("run_command described");
    assert!(
        run.destructive && !run.read_only && run.open_world,
        "{run:?}"
    );
    assert_eq!(run.relayed_by, key.agent_id().fingerprint());
    let read = said
        .claim(&wider[0], "read_file")
        .expect("read_file described");
    assert!(
        read.read_only && !read.destructive && !read.open_world,
        "{read:?}"
    );
    let request = s.alice.pending(&pending.id.to_string()).await;
    let grant = s.alice.grant(&request, wider);
    let (status, body) = s
        .alice
        .decide(&pending.id.to_string(), json!({ "grant": grant }))
        .await;
    assert_eq!(status, 200, "{body}");
    let running = coder.wait(&pending, Duration::from_secs(10)).await.unwrap();
    let a = session
        .tool(
            Cred::Mandate(&running),
            "run_command",
            json!({ "command": "make test" }),
        )
        .await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(a.body["result"]["content"][0]["text"], "ran: make test");

    // The gateway witnessed each call to a tool, and the broker keeps its
    // receipts in the user's feed beside the agents' own: the tool, the
    // digest of the request, the outcome (refused, succeeded, and failed
    // for a tool's own error), the grant, and the trace the call carried.
    let outside = json!({ "jsonrpc": "2.0", "id": 9, "method": "tools/call",
        "params": { "name": "read_file", "arguments": { "path": "../outside" } } })
    .to_string();
    let trace = "4bf92f3577b34da6a3ce929d0e0e4736";
    let a = session
        .raw(
            Cred::Mandate(&running),
            outside.clone().into_bytes(),
            &[("traceparent", &format!("00-{trace}-00f067aa0ba902b7-01"))],
        )
        .await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(a.body["result"]["isError"], true, "{}", a.body);
    let seen = witnessed(&s.alice, 4).await;
    let summary: Vec<(String, String, String)> = seen
        .iter()
        .map(|(c, _)| {
            (
                c["name"].as_str().unwrap().to_owned(),
                c["outcome"].as_str().unwrap().to_owned(),
                c["grant"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let (reading_id, running_id) = (
        reading.leaf_id().unwrap().to_string(),
        running.leaf_id().unwrap().to_string(),
    );
    assert_eq!(
        summary,
        [
            ("read_file".into(), "succeeded".into(), reading_id.clone()),
            ("run_command".into(), "refused".into(), reading_id),
            ("run_command".into(), "succeeded".into(), running_id.clone()),
            ("read_file".into(), "failed".into(), running_id),
        ]
    );
    let (last, item) = &seen[3];
    assert_eq!(
        last["dig"],
        mandate_core::token::digest_of(outside.as_bytes())
    );
    assert_eq!(last["trace"], trace);
    assert_eq!(last["action"]["type"], "tools/call");
    assert_eq!(last["action"]["target"], resource.as_str());
    assert_eq!(last["holder"], coder.id().thumbprint().to_string());
    assert_eq!(item["witness"], s.witness.as_str());
    assert_eq!(seen[0].0["trace"], Value::Null, "no trace was sent");

    // Each verifies elsewhere as the app exports it (`mandate verify
    // --receipts`): the mandate it was made under, the keys with the
    // witness's among them, and the witness named. Named as the agent's
    // own, the same receipt fails.
    let record = |n: usize, witness: &str| {
        let (_, item) = &seen[n];
        let m = if n < 2 { &reading } else { &running };
        let token = item["receipt"].as_str().unwrap();
        let mut keys = serde_json::to_value(&m.keys).unwrap();
        keys.as_array_mut()
            .unwrap()
            .extend(item["keys"].as_array().unwrap().iter().cloned());
        json!({
            "id": mandate_core::token::receipt_id(token).to_string(),
            "receipt": token,
            "chain": m.chain,
            "keys": keys,
            "binding": m.binding,
            "received_at": item["received_at"],
            "witness": witness,
        })
        .to_string()
    };
    let export = s._dir.path().join("witnessed.jsonl");
    let lines: Vec<String> = (0..4).map(|n| record(n, &s.witness)).collect();
    std::fs::write(&export, lines.join("\n")).unwrap();
    let env = [("MANDATE_BROKER", s.broker.url.as_str())];
    let path = export.display().to_string();
    let (ok, out, err) = procs::cli(&["verify", "--receipts", &path], &env).await;
    assert!(ok, "{out}{err}");
    assert_eq!(out.matches("\"valid\":true").count(), 4, "{out}");
    let agent_jkt = coder.id().thumbprint().to_string();
    std::fs::write(&export, record(3, &agent_jkt)).unwrap();
    let (ok, out, _) = procs::cli(&["verify", "--receipts", &path], &env).await;
    assert!(!ok, "{out}");
    assert!(out.contains("\"error\":\"header.kid_mismatch\""), "{out}");

    // An access token for the gateway, exchanged from the same mandate and
    // bound to the agent's key. The session is the key's: the same agent
    // goes on in it with the token.
    let token = coder.exchange(&running, &resource).await.unwrap();
    let a = session
        .tool(Cred::Token(&token), "list_files", json!({ "path": "." }))
        .await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(a.body["result"]["content"][0]["text"], "README.md");
    // The client's credentials never went upstream.
    for call in upstream_calls(&s.upstream).await {
        assert_eq!(call["authorization"], Value::Null, "{call}");
        assert_eq!(call["dpop"], Value::Null, "{call}");
    }

    // Another agent cannot use this session, even with a grant of its own.
    let other = agent(&s.broker.url, "other", dir.path());
    let others = granted(&s.alice, &other, vec![mcp(&["read_file"], &resource)]).await;
    let mut stolen = Mcp::new(&resource, &other);
    stolen.session.clone_from(&session.session);
    let a = stolen
        .tool(
            Cred::Mandate(&others),
            "read_file",
            json!({ "path": "README.md" }),
        )
        .await;
    assert_eq!(a.status, 404, "{}", a.body);
    assert_eq!(a.body["error"]["data"]["code"], "gateway.session");

    // A token for another resource is refused here.
    let other_grant = granted(
        &s.alice,
        &coder,
        vec![mcp(&["read_file"], &s.other_resource)],
    )
    .await;
    let elsewhere = coder
        .exchange(&other_grant, &s.other_resource)
        .await
        .unwrap();
    let a = session
        .tool(
            Cred::Token(&elsewhere),
            "read_file",
            json!({ "path": "README.md" }),
        )
        .await;
    a.refused(401, "invalid_token");
    assert!(
        a.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("another resource"),
        "{}",
        a.body
    );

    // A replayed proof, a bearer token and a proof for another token are
    // refused.
    let proof = coder.dpop("POST", &resource, Some(&token.token));
    let replay = |proof: String| {
        let token = token.token.clone();
        let session = session.session.clone().unwrap();
        let url = resource.clone();
        async move {
            mandate_agent::client::http_client()
                .unwrap()
                .post(url)
                .header("content-type", "application/json")
                .header("accept", "application/json, text/event-stream")
                .header("mcp-session-id", session)
                .header("authorization", format!("DPoP {token}"))
                .header("dpop", proof)
                .body(r#"{"jsonrpc":"2.0","id":5,"method":"tools/list"}"#)
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };
    assert_eq!(replay(proof.clone()).await, 200);
    assert_eq!(replay(proof).await, 401, "a replayed proof");
    let foreign = coder.dpop("POST", &resource, Some(&elsewhere.token));
    assert_eq!(replay(foreign).await, 401, "a proof for another token");
    let bearer = mandate_agent::client::http_client()
        .unwrap()
        .post(&resource)
        .header("content-type", "application/json")
        .header("authorization", format!("Bearer {}", token.token))
        .body(r#"{"jsonrpc":"2.0","id":5,"method":"tools/list"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(bearer.status(), 401, "a bearer token");

    // The user revokes: the next calls are refused, under the mandate and
    // under the token drawn on it, as soon as the gateway's revocation
    // set has it (pushed on the broker's stream).
    let revoked_at = Instant::now();
    let (status, body) = s.alice.revoke(&[running.leaf_id().unwrap()]).await;
    assert_eq!(status, 201, "{body}");
    let refused_after = loop {
        let a = session
            .tool(
                Cred::Token(&token),
                "read_file",
                json!({ "path": "README.md" }),
            )
            .await;
        if a.status == 401 {
            assert!(
                a.body["error"]["message"]
                    .as_str()
                    .unwrap()
                    .contains("revoked")
            );
            break revoked_at.elapsed();
        }
        assert_eq!(a.status, 200, "{}", a.body);
        assert!(
            revoked_at.elapsed() < Duration::from_secs(10),
            "the gateway never refused the revoked grant"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    eprintln!(
        "gateway: a revoked grant was refused {refused_after:?} after the revocation was accepted"
    );
    let a = session
        .tool(
            Cred::Mandate(&running),
            "read_file",
            json!({ "path": "README.md" }),
        )
        .await;
    a.refused(401, "invalid_token");
    assert_eq!(
        a.body["error"]["data"]["rule"], "chain.revoked",
        "{}",
        a.body
    );
    // The narrower grant, not revoked, still reads.
    let a = session
        .tool(
            Cred::Mandate(&reading),
            "read_file",
            json!({ "path": "README.md" }),
        )
        .await;
    assert_eq!(a.status, 200, "{}", a.body);

    s.gateway.kill().await;
    s.upstream.kill().await;
    s.broker.kill().await;
    s.idp.kill().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_json_rpc_never_reaches_the_upstream() {
    let s = setup().await;
    let dir = tempfile::tempdir().unwrap();
    let resource = s.gateway.url.clone();
    let (coder, reading) = reader(&s, dir.path()).await;
    let session = Mcp::listed(&resource, &coder, &reading).await;
    let before = upstream_calls(&s.upstream).await.len();

    let call = |name: &str| {
        json!({ "jsonrpc": "2.0", "id": 1, "method": "tools/call",
                "params": { "name": name, "arguments": { "path": "README.md" } } })
        .to_string()
    };
    let deep = format!(
        r#"{{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{{"name":"read_file","arguments":{{"path":{}"x"{}}}}}}}"#,
        "[".repeat(100),
        "]".repeat(100)
    );
    let oversized = format!(
        r#"{{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{{"name":"read_file","arguments":{{"path":"{}"}}}}}}"#,
        "a".repeat(2 * 1024 * 1024)
    );
    // What is sent, the headers beside it, the status and JSON-RPC code.
    type Case<'a> = (&'a str, String, Vec<(&'a str, &'a str)>, u16, Option<i64>);
    let cases: Vec<Case> = vec![
        ("malformed JSON", "{\"jsonrpc\":".into(), vec![], 400, Some(-32700)),
        ("not JSON at all", "\u{0}\u{ff}".into(), vec![], 400, Some(-32700)),
        ("an oversized body", oversized, vec![], 413, None),
        ("deep nesting", deep, vec![], 400, Some(-32600)),
        (
            "a batch that hides a second call",
            format!("[{},{}]", call("read_file"), call("run_command")),
            vec![],
            400,
            Some(-32600),
        ),
        (
            "a member given twice",
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"read_file","name":"run_command"}}"#.into(),
            vec![],
            400,
            Some(-32600),
        ),
        (
            "a method of the wrong type",
            r#"{"jsonrpc":"2.0","id":1,"method":["tools/call"]}"#.into(),
            vec![],
            400,
            Some(-32600),
        ),
        (
            "a name of the wrong type",
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":{"x":1}}}"#.into(),
            vec![],
            400,
            Some(-32602),
        ),
        (
            "an id of the wrong type",
            r#"{"jsonrpc":"2.0","id":[1],"method":"tools/list"}"#.into(),
            vec![],
            400,
            Some(-32600),
        ),
        (
            "an unknown method",
            r#"{"jsonrpc":"2.0","id":1,"method":"admin/exec","params":{}}"#.into(),
            vec![],
            404,
            Some(-32601),
        ),
        (
            "a header that names another tool than the body",
            call("run_command"),
            vec![("mcp-method", "tools/call"), ("mcp-name", "read_file")],
            400,
            Some(-32020),
        ),
        (
            "a header that names another method than the body",
            call("read_file"),
            vec![("mcp-method", "tools/list")],
            400,
            Some(-32020),
        ),
        (
            "a web page's origin",
            call("read_file"),
            vec![("origin", "https://evil.example")],
            403,
            Some(-32001),
        ),
        (
            "a name that differs only by case",
            call("READ_FILE"),
            vec![],
            400,
            None,
        ),
        ("a Unicode look-alike name", call("read_fіle"), vec![], 400, None),
        (
            "a name with a zero-width space",
            call("read\u{200b}_file"),
            vec![],
            400,
            None,
        ),
    ];
    for (what, body, headers, status, rpc_code) in cases {
        let a = session
            .raw(Cred::Mandate(&reading), body.into_bytes(), &headers)
            .await;
        assert_eq!(a.status, status, "{what}: {}", a.body);
        assert_eq!(a.body["jsonrpc"], "2.0", "{what}: a JSON-RPC error");
        assert!(a.body["error"]["message"].is_string(), "{what}: {}", a.body);
        if let Some(code) = rpc_code {
            assert_eq!(a.body["error"]["code"], code, "{what}: {}", a.body);
        }
    }
    let after = upstream_calls(&s.upstream).await;
    assert_eq!(
        after.len(),
        before,
        "a refused message reached the upstream: {:?}",
        &after[before..]
    );
    // The same call, well formed, goes through, with its trace context.
    let traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let a = session
        .raw(
            Cred::Mandate(&reading),
            call("read_file").into_bytes(),
            &[("traceparent", traceparent)],
        )
        .await;
    assert_eq!(a.status, 200, "{}", a.body);
    let last = upstream_calls(&s.upstream).await.pop().unwrap();
    assert_eq!(last["name"], "read_file");
    assert_eq!(last["traceparent"], traceparent, "{last}");

    s.gateway.kill().await;
    s.upstream.kill().await;
    s.broker.kill().await;
    s.idp.kill().await;
}

/// The broker holds a tools statement only from the key it trusts as the
/// witness of the statement's resource, fresh and well formed, and serves
/// the newest it holds beside a request for that resource's tools.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tools_statements_come_only_from_the_witness() {
    use mandate_core::token::{Claims as _, ToolHints, ToolsClaims};
    let s = setup().await;
    let resource = s.gateway.url.clone();
    let witness = mandate_keyfile::load_or_create(&s._dir.path().join("witness.key")).unwrap();
    assert_eq!(witness.thumbprint().to_string(), s.witness);
    let stranger = mandate_core::SigningKey::generate(&mut rand_core::OsRng);
    let now = mandate_agent::unix_now();
    let tool = |name: &str, read_only: bool| ToolHints {
        name: name.into(),
        title: None,
        read_only,
        destructive: !read_only,
        idempotent: false,
        open_world: false,
    };
    let statement = |resource: &str, iat: i64, tools: Vec<ToolHints>| ToolsClaims {
        resource: resource.to_owned(),
        tools,
        iat,
        jti: mandate_core::token::Jti::random(&mut rand_core::OsRng),
    };
    let http = reqwest::Client::new();
    let post = |key: &mandate_core::SigningKey, claims: ToolsClaims| {
        let body = json!({ "key": key.public().to_jwk(), "statement": claims.sign(key) });
        let req = http
            .post(format!("{}/v1/witness/tools", s.broker.url))
            .json(&body)
            .timeout(Duration::from_secs(10));
        async move {
            let res = req.send().await.unwrap();
            let status = res.status().as_u16();
            (status, res.json::<Value>().await.unwrap_or(Value::Null))
        }
    };
    let fine = vec![tool("read_file", true), tool("wipe", false)];
    let refusals = [
        (
            &stranger,
            statement(&resource, now, fine.clone()),
            403,
            "witness.unknown",
        ),
        (
            &witness,
            statement(&s.other_resource, now, fine.clone()),
            422,
            "witness.target",
        ),
        (
            &witness,
            statement(&resource, now - 700, fine.clone()),
            422,
            "witness.late",
        ),
        (
            &witness,
            statement(
                &resource,
                now,
                vec![tool("wipe", false), tool("wipe", true)],
            ),
            400,
            "token.malformed",
        ),
        (
            &witness,
            statement(&resource, now, vec![tool("wipe\u{200b}", false)]),
            400,
            "token.malformed",
        ),
    ];
    for (key, claims, status, code) in refusals {
        let (got, body) = post(key, claims).await;
        assert_eq!((got, body["code"].as_str()), (status, Some(code)), "{body}");
    }
    // A body with a member it does not know.
    let res = http
        .post(format!("{}/v1/witness/tools", s.broker.url))
        .json(&json!({ "key": witness.public().to_jwk(), "statement": "x", "more": 1 }))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 400);

    // Held: the newest, not an older one sent after it.
    let (status, body) = post(&witness, statement(&resource, now, fine.clone())).await;
    assert_eq!(status, 204, "{body}");
    let older = vec![tool("read_file", true), tool("wipe", true)];
    let (status, _) = post(&witness, statement(&resource, now - 60, older)).await;
    assert_eq!(status, 204);
    let dir = tempfile::tempdir().unwrap();
    let coder = agent(&s.broker.url, "coder", dir.path());
    let scopes = vec![mcp(&["wipe"], &resource)];
    let pending = coder
        .request(&Ask {
            principal: s.alice.principal.clone(),
            scopes: scopes.clone(),
            purpose: "Clean up".into(),
            intent: None,
            lifetime: 600,
            max_depth: 0,
            expires_in: 600,
        })
        .await
        .unwrap();
    let item = server_says_in_inbox(&s.alice, &pending.id.to_string()).await;
    let statements: Vec<mandate_client::tool_claims::ToolsStatement> =
        serde_json::from_value(item["tools"].clone()).unwrap();
    let said = mandate_client::tool_claims::ServerSays::of(
        &statements,
        item["expires_at"].as_i64().unwrap(),
    );
    let wipe = said.claim(&scopes[0], "wipe").unwrap();
    assert!(
        wipe.destructive && !wipe.read_only,
        "the newer statement stands: {wipe:?}"
    );
    // A request for tools at another resource carries no statement.
    let elsewhere = coder
        .request(&Ask {
            principal: s.alice.principal.clone(),
            scopes: vec![mcp(&["wipe"], &s.other_resource)],
            purpose: "Clean up elsewhere".into(),
            intent: None,
            lifetime: 600,
            max_depth: 0,
            expires_in: 600,
        })
        .await
        .unwrap();
    let (_, inbox) = s.alice.send(reqwest::Method::GET, "/v1/inbox", None).await;
    let other = inbox["requests"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["id"] == elsewhere.id.to_string())
        .unwrap();
    assert_eq!(other["tools"], json!([]), "{other}");
}

/// An OTLP/HTTP collector on loopback: it decodes each export with the
/// OpenTelemetry protocol's own message types, and keeps the spans with
/// their service's name.
struct Collector {
    url: String,
    spans: std::sync::Arc<std::sync::Mutex<Vec<(String, otlp::Span)>>>,
    task: tokio::task::JoinHandle<()>,
}

mod otlp {
    pub use opentelemetry_proto::tonic::collector::trace::v1::{
        ExportTraceServiceRequest, ExportTraceServiceResponse,
    };
    pub use opentelemetry_proto::tonic::common::v1::any_value::Value;
    pub use opentelemetry_proto::tonic::trace::v1::Span;
    pub use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
    pub use opentelemetry_proto::tonic::trace::v1::status::StatusCode;
}

/// A span's attribute, as text.
fn attribute(span: &otlp::Span, key: &str) -> Option<String> {
    let value = span.attributes.iter().find(|kv| kv.key == key)?;
    Some(match value.value.as_ref()?.value.as_ref()? {
        otlp::Value::StringValue(s) => s.clone(),
        otlp::Value::IntValue(i) => i.to_string(),
        other => format!("{other:?}"),
    })
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl Collector {
    async fn start() -> Collector {
        use prost::Message as _;
        let spans = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let kept = spans.clone();
        let app = axum::Router::new().route(
            "/v1/traces",
            axum::routing::post(move |headers: axum::http::HeaderMap, body: bytes::Bytes| {
                let kept = kept.clone();
                async move {
                    assert_eq!(headers["content-type"], "application/x-protobuf");
                    let export = otlp::ExportTraceServiceRequest::decode(body).unwrap();
                    for resource in export.resource_spans {
                        let service = resource
                            .resource
                            .iter()
                            .flat_map(|r| &r.attributes)
                            .find(|kv| kv.key == "service.name")
                            .and_then(|kv| match kv.value.as_ref()?.value.as_ref()? {
                                otlp::Value::StringValue(s) => Some(s.clone()),
                                _ => None,
                            })
                            .unwrap_or_default();
                        for scope in resource.scope_spans {
                            for span in scope.spans {
                                kept.lock().unwrap().push((service.clone(), span));
                            }
                        }
                    }
                    (
                        [("content-type", "application/x-protobuf")],
                        otlp::ExportTraceServiceResponse::default().encode_to_vec(),
                    )
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/v1/traces", listener.local_addr().unwrap());
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        Collector { url, spans, task }
    }

    /// The first span of `trace` named `name`, once it has come.
    async fn span(&self, trace: &str, name: &str) -> (String, otlp::Span) {
        let started = Instant::now();
        loop {
            if let Some(found) = self
                .spans
                .lock()
                .unwrap()
                .iter()
                .find(|(_, s)| hex(&s.trace_id) == trace && s.name == name)
            {
                return found.clone();
            }
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "no span {name:?} of the trace {trace}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    fn traces(&self) -> Vec<String> {
        let spans = self.spans.lock().unwrap();
        spans.iter().map(|(_, s)| hex(&s.trace_id)).collect()
    }
}

/// The `traceparent` the upstream saw last, split: trace id, parent id
/// and flags.
async fn upstream_traceparent(upstream: &Proc) -> (String, String, String) {
    let last = upstream_calls(upstream).await.pop().unwrap();
    let parts: Vec<String> = last["traceparent"]
        .as_str()
        .unwrap_or_else(|| panic!("no traceparent upstream: {last}"))
        .split('-')
        .map(str::to_owned)
        .collect();
    assert_eq!((parts.len(), parts[0].as_str()), (4, "00"), "{parts:?}");
    (parts[1].clone(), parts[2].clone(), parts[3].clone())
}

/// With an OTLP collector named (`--otlp-traces`), the gateway exports a
/// span of each call: a child of the trace context the call carried (in
/// its headers or its `_meta`), named by OpenTelemetry's MCP conventions,
/// and the parent of the call upstream. The witness receipt records the
/// same trace, so one trace id links the agent, the gateway, the upstream
/// and the receipt. A context the agent does not sample is passed on and
/// not exported; a call without one starts a trace of the gateway's.
#[tokio::test(flavor = "multi_thread")]
async fn one_trace_links_agent_gateway_upstream_and_receipt() {
    let collector = Collector::start().await;
    let s = setup_with(
        &["--otlp-traces", &collector.url],
        &[("OTEL_BSP_SCHEDULE_DELAY", "50")],
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let resource = s.gateway.url.clone();
    let (coder, reading) = reader(&s, dir.path()).await;
    let session = Mcp::listed(&resource, &coder, &reading).await;
    let call = |id: u32, name: &str, meta: Option<&str>| {
        let mut params = json!({ "name": name, "arguments": { "path": "README.md" } });
        if let Some(traceparent) = meta {
            params["_meta"] = json!({ "traceparent": traceparent });
        }
        json!({ "jsonrpc": "2.0", "id": id, "method": "tools/call", "params": params })
            .to_string()
            .into_bytes()
    };
    let cred = Cred::Mandate(&reading);

    // The agent does not sample this trace: the gateway passes it on, as
    // the parent of a span of its own that it does not export.
    let unsampled = "0af7651916cd43dd8448eb211c80319c";
    let a = session
        .raw(
            cred,
            call(6, "read_file", None),
            &[(
                "traceparent",
                &format!("00-{unsampled}-b7ad6b7169203331-00"),
            )],
        )
        .await;
    assert_eq!(a.status, 200, "{}", a.body);
    let (up_trace, up_parent, up_flags) = upstream_traceparent(&s.upstream).await;
    assert_eq!((up_trace.as_str(), up_flags.as_str()), (unsampled, "00"));
    assert_ne!(up_parent, "b7ad6b7169203331");

    // A sampled trace in the headers.
    let (trace, agent_span) = ("4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7");
    let a = session
        .raw(
            cred,
            call(7, "read_file", None),
            &[("traceparent", &format!("00-{trace}-{agent_span}-01"))],
        )
        .await;
    assert_eq!(a.status, 200, "{}", a.body);
    let (up_trace, up_parent, up_flags) = upstream_traceparent(&s.upstream).await;
    let (service, span) = collector.span(trace, "tools/call read_file").await;
    assert_eq!(service, "mandate-gateway");
    assert_eq!(hex(&span.parent_span_id), agent_span, "the agent's span");
    assert_eq!(span.kind, otlp::SpanKind::Server as i32);
    assert_eq!(
        (up_trace.as_str(), up_parent, up_flags.as_str()),
        (trace, hex(&span.span_id), "01"),
        "the upstream's parent is the gateway's span"
    );
    let grant = reading.leaf_id().unwrap().to_string();
    for (key, value) in [
        ("mcp.method.name", "tools/call"),
        ("gen_ai.tool.name", "read_file"),
        ("jsonrpc.request.id", "7"),
        ("mcp.session.id", session.session.as_deref().unwrap()),
        ("mandate.grant", &grant),
        ("http.response.status_code", "200"),
    ] {
        assert_eq!(attribute(&span, key).as_deref(), Some(value), "{key}");
    }
    assert_eq!(attribute(&span, "error.type"), None);
    assert!(span.end_time_unix_nano >= span.start_time_unix_nano);

    // A refused call, its trace in `_meta` only: the span says why, and
    // nothing goes upstream.
    let before = upstream_calls(&s.upstream).await.len();
    let meta_trace = "5bf92f3577b34da6a3ce929d0e0e4737";
    let a = session
        .raw(
            cred,
            call(
                8,
                "run_command",
                Some(&format!("00-{meta_trace}-10f067aa0ba902b8-01")),
            ),
            &[],
        )
        .await;
    a.refused(403, "insufficient_scope");
    assert_eq!(upstream_calls(&s.upstream).await.len(), before);
    let (_, span) = collector.span(meta_trace, "tools/call run_command").await;
    assert_eq!(hex(&span.parent_span_id), "10f067aa0ba902b8");
    assert_eq!(
        attribute(&span, "error.type").as_deref(),
        Some("gateway.insufficient_scope")
    );
    assert_eq!(
        attribute(&span, "http.response.status_code").as_deref(),
        Some("403")
    );
    let status = span.status.as_ref().unwrap();
    assert_eq!(status.code, otlp::StatusCode::Error as i32);
    assert!(
        status.message.contains("does not cover"),
        "{}",
        status.message
    );

    // No trace context at all: the gateway's span begins a trace, which
    // goes upstream.
    let a = session.raw(cred, call(9, "read_file", None), &[]).await;
    assert_eq!(a.status, 200, "{}", a.body);
    let (root_trace, root_parent, root_flags) = upstream_traceparent(&s.upstream).await;
    assert_eq!(root_flags, "01");
    let (_, span) = collector.span(&root_trace, "tools/call read_file").await;
    assert_eq!(hex(&span.span_id), root_parent);
    assert!(span.parent_span_id.is_empty(), "a root span");

    // The spans come in the order they ended: the unsampled trace, ended
    // first, was never exported.
    assert!(!collector.traces().contains(&unsampled.to_owned()));

    // Each witness receipt names the trace of its call.
    let seen = witnessed(&s.alice, 4).await;
    let mut traces: Vec<(String, String)> = seen
        .iter()
        .map(|(c, _)| {
            (
                c["name"].as_str().unwrap().to_owned(),
                c["trace"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    traces.sort();
    let mut expected = vec![
        ("read_file".to_owned(), unsampled.to_owned()),
        ("read_file".to_owned(), trace.to_owned()),
        ("read_file".to_owned(), root_trace.clone()),
        ("run_command".to_owned(), meta_trace.to_owned()),
    ];
    expected.sort();
    assert_eq!(traces, expected);

    s.gateway.kill().await;
    s.upstream.kill().await;
    s.broker.kill().await;
    s.idp.kill().await;
    collector.task.abort();
}

/// The code and the protocol rule of a refusal.
fn refusal(a: &Answer) -> (u16, String, String) {
    let data = &a.body["error"]["data"];
    let text = |v: &Value| v.as_str().unwrap_or_default().to_owned();
    (a.status, text(&data["code"]), text(&data["rule"]))
}

/// The gateway holds a tool call to what the grant asks of each call, as
/// a resource server's verifier does: `max_calls` is counted per grant,
/// whether the chain or an access token minted from it presents the call,
/// so a grant of two calls serves two in all; and a scope that asks for
/// the user's confirmation refuses a call without one, with a confirmation
/// of another body, a replayed one, and an access token, which cannot
/// carry one. None of the refused calls reaches the upstream.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counted_and_confirmed_scopes_hold_at_the_gateway() {
    let s = setup().await;
    let dir = tempfile::tempdir().unwrap();
    let resource = s.gateway.url.clone();
    let coder = agent(&s.broker.url, "coder", dir.path());
    let mut twice = mcp(&["read_file", "list_files"], &resource);
    twice.limits.max_calls = Some(2);
    let counted = granted(&s.alice, &coder, vec![twice]).await;
    let mut session = Mcp::new(&resource, &coder);
    // Opening the session and listing are not calls of a tool: not counted.
    session.initialize(Cred::Mandate(&counted)).await;
    assert_eq!(
        session.tool_names(Cred::Mandate(&counted)).await,
        ["list_files", "read_file"]
    );
    let token = coder.exchange(&counted, &resource).await.unwrap();
    // The token carries the grant whose calls it counts against, as
    // docs/oauth.md lays it out.
    let claims = token.token.split('.').nth(1).unwrap();
    let claims: Value =
        serde_json::from_slice(&mandate_core::base64url::decode(claims).unwrap()).unwrap();
    let leaf = counted.leaf().unwrap();
    assert_eq!(
        claims["mandate_limits"],
        json!([{
            "grant": counted.leaf_id().unwrap().to_string(),
            "exp": leaf.exp,
            "details": [{ "index": 0, "detail": leaf.authorization_details[0] }],
        }])
    );
    let listing = json!({ "path": "." });
    for cred in [Cred::Mandate(&counted), Cred::Token(&token)] {
        let a = session.tool(cred, "list_files", listing.clone()).await;
        assert_eq!(a.status, 200, "{}", a.body);
    }
    let reached = upstream_calls(&s.upstream).await.len();
    for cred in [Cred::Token(&token), Cred::Mandate(&counted)] {
        let a = session
            .tool(cred, "read_file", json!({ "path": "README.md" }))
            .await;
        assert_eq!(
            refusal(&a),
            (
                403,
                "gateway.limit_exceeded".into(),
                "limit.exceeded".into()
            ),
            "{}",
            a.body
        );
    }

    // Each call of read_file confirmed by the user.
    let mut confirmed = mcp(&["read_file"], &resource);
    confirmed.limits.confirm = Some(mandate_core::scope::Confirm { above: None });
    let reading = granted(&s.alice, &coder, vec![confirmed]).await;
    let read = |path: &str| {
        json!({
            "jsonrpc": "2.0", "id": 7, "method": "tools/call",
            "params": { "name": "read_file", "arguments": { "path": path } },
        })
        .to_string()
    };
    let body = read("README.md");
    let a = session
        .raw(Cred::Mandate(&reading), body.clone().into_bytes(), &[])
        .await;
    let required = (
        403,
        "gateway.confirmation".into(),
        "confirm.required".into(),
    );
    assert_eq!(refusal(&a), required, "{}", a.body);
    let token = coder.exchange(&reading, &resource).await.unwrap();
    let a = session
        .raw(Cred::Token(&token), body.clone().into_bytes(), &[])
        .await;
    assert_eq!(refusal(&a), required, "{}", a.body);
    let yes = s
        .alice
        .confirmation(&s.alice.key, &coder, &reading, "POST", &resource, &body);
    let with_yes = [(mandate_agent::CONFIRMATION_HEADER, yes.as_str())];
    let a = session
        .raw(
            Cred::Mandate(&reading),
            read("../secrets").into_bytes(),
            &with_yes,
        )
        .await;
    assert_eq!(
        refusal(&a),
        (
            403,
            "gateway.confirmation".into(),
            "confirm.body_mismatch".into()
        ),
        "{}",
        a.body
    );
    assert_eq!(upstream_calls(&s.upstream).await.len(), reached);
    let a = session
        .raw(
            Cred::Mandate(&reading),
            body.clone().into_bytes(),
            &with_yes,
        )
        .await;
    assert_eq!(a.status, 200, "{}", a.body);
    let a = session
        .raw(Cred::Mandate(&reading), body.into_bytes(), &with_yes)
        .await;
    assert_eq!(
        refusal(&a),
        (
            403,
            "gateway.confirmation".into(),
            "confirm.replayed".into()
        ),
        "{}",
        a.body
    );
    assert_eq!(upstream_calls(&s.upstream).await.len(), reached + 1);
}
