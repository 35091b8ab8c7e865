//! A hostile broker lies about the chain of agents behind a sub-agent's
//! request, and the app shows none of its lies: no hop, no name, no count.
//!
//! The broker is the real process. Its lies are written straight into its
//! SQLite database, as a compromised broker would serve them: a chain that
//! is not the one the request signed, an extra hop, and requests invented
//! by an attacker that name a chain "You → Trusted planner → attacker" in
//! which a link is forged, broken, widened, rooted in another key, or
//! served with the wrong keys. The honest chain, filed through the same
//! broker, is shown hop by hop.

use std::path::Path;

use mandate_client::Narrowing;
use mandate_client::engine::Engine;
use mandate_client::history::RequestState;
use mandate_client::view::Role;
use mandate_core::scope::AuthorizationDetail;
use mandate_core::token::{
    Actor, AgentInfo, BindingCode, Confirmation, GrantClaims, Jti, RequestClaims,
};
use mandate_core::{Claims as _, SigningKey, TokenId};
use mandate_e2e::procs::cli;
use rand_core::OsRng;
use serde_json::Value;

use crate::engine::{Stack, keyring_ready};
use crate::journey::agent_got_grant;
use crate::tamper::sqlite;
use crate::unix_now;

const SCOPE: &str = "files:read,write:https://files.example/reports/";

/// `mandate agent request` by `key` for `principal`, named `name`;
/// `parent` (a mandate and its holder's key) makes it a sub-agent's
/// request. With `wait`, the running CLI is returned to await the grant.
fn agent_request(
    stack: &Stack,
    key: &str,
    name: &str,
    principal: &str,
    parent: Option<(&str, &str)>,
    out: Option<&str>,
) -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new(mandate_e2e::procs::binary("mandate"));
    cmd.args(["agent", "request", "--key", &stack.path(key)])
        .args(["--principal", principal, "--name", name])
        .args(["--scope", SCOPE, "--purpose", "Sort the reports"])
        .args(["--lifetime", "3600", "--max-depth", "1", "--timeout", "60"])
        .env("MANDATE_BROKER", &stack.broker.url)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true);
    if let Some((mandate, holder)) = parent {
        cmd.args(["--parent", &stack.path(mandate)])
            .args(["--endorse-key", &stack.path(holder)]);
    }
    if let Some(out) = out {
        cmd.args(["--wait", "--out", &stack.path(out)]);
    }
    cmd
}

/// Files a request and returns its id, without waiting for a decision.
async fn file(
    stack: &Stack,
    key: &str,
    name: &str,
    principal: &str,
    parent: (&str, &str),
) -> String {
    let out = tokio::time::timeout(
        std::time::Duration::from_secs(30),
        agent_request(stack, key, name, principal, Some(parent), None).output(),
    )
    .await
    .unwrap()
    .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let filed: Value = serde_json::from_slice(&out.stdout).unwrap();
    filed["id"].as_str().unwrap().to_owned()
}

/// Reads the engine's inbox from the broker; returns the pending ids.
async fn pending(engine: &Engine) -> Vec<String> {
    engine
        .inbox()
        .await
        .unwrap()
        .into_iter()
        .filter(|r| r.state == RequestState::Pending)
        .map(|r| r.id)
        .collect()
}

fn detail(kind: &str) -> AuthorizationDetail {
    AuthorizationDetail::new(kind, ["read"], ["https://files.example/reports/"]).unwrap()
}

/// A grant from `by` to `to` below `parent` (none at the root), for `sub`.
fn grant(
    by: &SigningKey,
    to: &SigningKey,
    sub: &str,
    prf: Option<TokenId>,
    scope: AuthorizationDetail,
    depth: u8,
) -> String {
    let now = unix_now();
    GrantClaims {
        sub: sub.to_owned().try_into().unwrap(),
        act: Actor {
            sub: to.public().agent_id(),
        },
        cnf: Confirmation {
            jkt: to.thumbprint(),
        },
        authorization_details: vec![scope],
        purpose: "Sort the reports".into(),
        intent: None,
        iat: now - 10,
        nbf: now - 10,
        exp: now + 1800,
        jti: Jti::random(&mut OsRng),
        max_depth: depth,
        prf,
        req: None,
    }
    .sign(by)
}

/// A request by `agent` naming `named` as the chain behind it.
fn request_naming(agent: &SigningKey, principal: &str, named: &[String]) -> String {
    let now = unix_now();
    RequestClaims {
        principal_hint: Some(principal.to_owned()),
        agent: AgentInfo {
            name: "Report helper".into(),
            publisher: None,
            version: None,
        },
        authorization_details: vec![detail("files")],
        purpose: "Sort the reports".into(),
        intent: None,
        lifetime: 600,
        max_depth: 0,
        parent_chain: named.iter().map(|g| TokenId::of(g)).collect(),
        binding_code: BindingCode::random(&mut OsRng),
        jti: Jti::random(&mut OsRng),
        iat: now - 5,
        exp: now + 600,
        oauth_client: None,
    }
    .sign(agent)
}

fn jwks(keys: &[&SigningKey]) -> String {
    serde_json::to_string(&keys.iter().map(|k| k.public().to_jwk()).collect::<Vec<_>>()).unwrap()
}

/// The broker's database serves `request` to `principal` with `served`
/// as its chain and `keys` as the agents' keys: a row the broker's own
/// checks never saw.
async fn plant(
    db: &Path,
    principal: &str,
    agent: &SigningKey,
    request: &str,
    served: &[String],
    keys: &str,
) -> String {
    let id = TokenId::of(request).to_string();
    let now = unix_now();
    let sql = format!(
        "INSERT INTO requests (id, agent_jkt, principal, token, parent_chain, parent_keys, status, created_at, expires_at) \
         VALUES ('{id}', '{}', '{principal}', '{request}', '{}', '{keys}', 'pending', {now}, {});",
        agent.thumbprint(),
        served.join("\n"),
        now + 600
    );
    sqlite(db, &sql).await;
    id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hostile_brokers_chains_are_never_shown() {
    if !keyring_ready() {
        return;
    }
    let stack = Stack::start().await;
    let (engine, principal) = stack.signed_in("alice").await;
    let db = stack.dir.path().join("broker.db");
    let env = [("MANDATE_BROKER", stack.broker.url.as_str())];
    for key in ["planner.key", "helper.key", "other.key"] {
        let (ok, _, err) = cli(&["agent", "init", "--key", &stack.path(key)], &env).await;
        assert!(ok, "{err}");
    }

    // Alice approves the "Trusted planner", and a second agent.
    let mut granted = Vec::new();
    for (key, name, out) in [
        ("planner.key", "Trusted planner", "planner.json"),
        ("other.key", "Other agent", "other.json"),
    ] {
        let waiting = agent_request(&stack, key, name, &principal, None, Some(out))
            .spawn()
            .unwrap();
        let id = loop {
            if let Some(id) = pending(&engine).await.into_iter().next() {
                break id;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        };
        engine.approve(&id, &Narrowing::default()).await.unwrap();
        agent_got_grant(waiting).await;
        granted.push(id);
    }
    let chain_of = |file: &str| -> Vec<String> {
        let m: Value =
            serde_json::from_str(&std::fs::read_to_string(stack.path(file)).unwrap()).unwrap();
        m["chain"]
            .as_array()
            .unwrap()
            .iter()
            .map(|g| g.as_str().unwrap().to_owned())
            .collect()
    };
    let planner_chain = chain_of("planner.json");
    let other_chain = chain_of("other.json");

    // The honest sub-agent request, through the same broker: shown.
    let honest = file(
        &stack,
        "helper.key",
        "Report helper",
        &principal,
        ("planner.json", "planner.key"),
    )
    .await;
    assert_eq!(pending(&engine).await, vec![honest.clone()]);
    let shown = engine.detail(&honest).await.unwrap();
    assert_eq!(shown.chain_warning, None);
    let who: Vec<(Role, &str)> = shown
        .chain
        .iter()
        .map(|h| (h.role, h.who.as_str()))
        .collect();
    assert_eq!(
        who,
        [
            (Role::User, who[0].1),
            (Role::Agent, "Trusted planner"),
            (Role::SubAgent, "Report helper"),
        ]
    );
    let row = engine.inbox_rows().await.unwrap();
    assert_eq!((row[0].hops, row[0].chain_refused), (2, false));

    // Lies the broker tells about requests it really received.
    let swapped = file(
        &stack,
        "helper.key",
        "Report helper",
        &principal,
        ("planner.json", "planner.key"),
    )
    .await;
    sqlite(
        &db,
        &format!(
            "UPDATE requests SET parent_chain = '{}' WHERE id = '{swapped}';",
            other_chain.join("\n")
        ),
    )
    .await;
    let extra_hop = file(
        &stack,
        "helper.key",
        "Report helper",
        &principal,
        ("planner.json", "planner.key"),
    )
    .await;
    sqlite(
        &db,
        &format!(
            "UPDATE requests SET parent_chain = '{}' WHERE id = '{extra_hop}';",
            [planner_chain.clone(), other_chain.clone()]
                .concat()
                .join("\n")
        ),
    )
    .await;

    // Requests the broker invents for an attacker, naming chains that put
    // the attacker behind the "Trusted planner".
    let planner = mandate_keyfile::load(Path::new(&stack.path("planner.key"))).unwrap();
    let attacker = SigningKey::generate(&mut OsRng);
    let stranger = SigningKey::generate(&mut OsRng);
    let root = planner_chain[0].clone();
    let root_id = TokenId::of(&root);
    let mut lies = vec![("substituted chain", swapped), ("extra hop", extra_hop)];
    let invented: Vec<(&str, Vec<String>, String)> = vec![
        (
            // The link below the planner signed by the attacker itself.
            "forged link",
            vec![
                root.clone(),
                grant(
                    &attacker,
                    &attacker,
                    &principal,
                    Some(root_id),
                    detail("files"),
                    0,
                ),
            ],
            jwks(&[&planner, &attacker]),
        ),
        (
            "broken linkage",
            vec![
                root.clone(),
                grant(
                    &planner,
                    &attacker,
                    &principal,
                    Some(TokenId::of("another grant")),
                    detail("files"),
                    0,
                ),
            ],
            jwks(&[&planner, &attacker]),
        ),
        (
            "widened scope",
            vec![
                root.clone(),
                grant(
                    &planner,
                    &attacker,
                    &principal,
                    Some(root_id),
                    detail("payments"),
                    0,
                ),
            ],
            jwks(&[&planner, &attacker]),
        ),
        (
            "root not alice's",
            vec![grant(
                &stranger,
                &planner,
                &principal,
                None,
                detail("files"),
                2,
            )],
            jwks(&[&planner]),
        ),
        (
            "wrong keys",
            vec![
                root.clone(),
                grant(
                    &planner,
                    &attacker,
                    &principal,
                    Some(root_id),
                    detail("files"),
                    0,
                ),
            ],
            jwks(&[&stranger, &attacker]),
        ),
    ];
    for (what, chain, keys) in invented {
        let request = request_naming(&attacker, &principal, &chain);
        let id = plant(&db, &principal, &attacker, &request, &chain, &keys).await;
        lies.push((what, id));
    }
    let ids = pending(&engine).await;
    let rows = engine.inbox_rows().await.unwrap();
    for (what, id) in &lies {
        assert!(ids.contains(id), "{what}: the engine kept the request");
        let shown = engine.detail(id).await.unwrap();
        assert!(
            shown.chain.is_empty(),
            "{what}: a chain was shown: {:?}",
            shown.chain
        );
        let warning = shown.chain_warning.unwrap_or_default();
        assert!(
            warning.contains("treat the request as its own"),
            "{what}: {warning}"
        );
        let row = rows.iter().find(|r| &r.id == id).unwrap();
        assert_eq!((row.hops, row.chain_refused), (1, true), "{what}");
        let json = serde_json::to_string(&engine.detail(id).await.unwrap()).unwrap();
        assert!(
            !json.contains("Trusted planner"),
            "{what}: the planner's name was shown"
        );
    }
    // The honest request is still shown whole beside them.
    assert_eq!(engine.detail(&honest).await.unwrap().chain.len(), 3);
    engine.shutdown().await;
    stack.stop(Some(&principal)).await;
}
