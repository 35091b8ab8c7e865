//! The whole engine, headless, with the OS keyring (Secret Service under a
//! private D-Bus session, see scripts/with-keyring.sh), its SQLite
//! history, the real provider, a real broker process and agents using the
//! `mandate` CLI.

use std::time::Duration;

use mandate_client::engine::{BrokerMode, Config, Engine, Update};
use mandate_client::history::{DecisionKind, History, RequestState};
use mandate_client::vault::Vault;
use mandate_client::view::Role;
use mandate_client::{ClientError, Narrowing};
use mandate_core::scope::AuthorizationDetail;
use mandate_e2e::procs::{self, Proc, cli};
use tokio::sync::broadcast;

use crate::browser::{Tamper, TestBrowser};
use crate::journey::{agent_got_denial, agent_got_grant, request};

/// Whether the real keyring is there. `make test` runs the tests under
/// scripts/with-keyring.sh and sets MANDATE_REQUIRE_KEYRING, so there a
/// missing keyring fails instead of skipping.
pub fn keyring_ready() -> bool {
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

/// A keyring service of this test's own.
pub fn service() -> String {
    use rand_core::RngCore as _;
    format!("mandate-test-{:016x}", rand_core::OsRng.next_u64())
}

pub struct Stack {
    pub dir: tempfile::TempDir,
    pub idp: Proc,
    pub broker: Proc,
    pub service: String,
}

impl Stack {
    pub async fn start() -> Stack {
        Stack::start_with(&[]).await
    }

    /// With extra broker flags.
    pub async fn start_with(broker_args: &[&str]) -> Stack {
        let dir = tempfile::tempdir().unwrap();
        let idp = procs::idp().await;
        let db = format!("sqlite://{}", dir.path().join("broker.db").display());
        let broker = procs::broker(&db, &idp.url, &dir.path().join("broker"), broker_args).await;
        Stack {
            dir,
            idp,
            broker,
            service: service(),
        }
    }

    pub fn path(&self, name: &str) -> String {
        self.dir.path().join(name).display().to_string()
    }

    pub fn config(&self) -> Config {
        Config {
            data_dir: self.dir.path().join("app"),
            issuer: self.idp.url.clone(),
            client_id: crate::CLIENT.into(),
            broker: BrokerMode::Remote {
                url: self.broker.url.clone(),
            },
            keyring_service: self.service.clone(),
            device: "Test laptop (linux)".into(),
            oauth_resources: Vec::new(),
            witnesses: Vec::new(),
        }
    }

    /// An engine on this stack with `user` signed in, and their principal.
    pub async fn signed_in(&self, user: &'static str) -> (Engine, String) {
        let engine = Engine::start(self.config()).await.unwrap();
        let principal = engine
            .sign_in(&TestBrowser::new(user, Tamper::None))
            .await
            .unwrap()
            .principal;
        (engine, principal)
    }

    pub async fn stop(self, principal: Option<&str>) {
        if let Some(p) = principal {
            let vault = Vault::new(&self.service);
            vault.forget_session(p).await.unwrap();
            vault.forget_user_key(p).await.unwrap();
        }
        self.broker.kill().await;
        self.idp.kill().await;
    }
}

/// Waits for an inbox update announcing a new request; returns its id.
pub async fn next_new(updates: &mut broadcast::Receiver<Update>) -> String {
    tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            if let Update::Inbox { new, .. } = updates.recv().await.unwrap()
                && let Some(id) = new.into_iter().next()
            {
                return id;
            }
        }
    })
    .await
    .expect("a new request is announced")
}

fn files(actions: &[&str], location: &str) -> AuthorizationDetail {
    AuthorizationDetail::new("files", actions.iter().copied(), [location]).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_engine_signs_in_decides_and_keeps_a_history_that_verifies() {
    if !keyring_ready() {
        return;
    }
    let stack = Stack::start().await;
    let engine = Engine::start(stack.config()).await.unwrap();
    assert_eq!(engine.resume().await.unwrap(), None, "nobody signed in yet");
    assert_eq!(
        engine.inbox().await.unwrap_err().code(),
        "session.signed_out"
    );

    // Sign in: the key is generated into the keyring and enrolled.
    let account = engine
        .sign_in(&TestBrowser::new("alice", Tamper::None))
        .await
        .unwrap();
    let principal = account.principal.clone();
    assert_eq!(principal, format!("{}#alice", stack.idp.url));
    let vault = Vault::new(&stack.service);
    let key = vault
        .user_key(&principal)
        .await
        .unwrap()
        .expect("key in the keyring");
    assert_eq!(
        account.key_fingerprint,
        key.public().agent_id().fingerprint()
    );
    let stored = vault
        .session(&principal)
        .await
        .unwrap()
        .expect("session in the keyring");
    assert!(stored.refresh_token.is_some());

    // Requests arrive live: the engine follows the broker's stream.
    let mut updates = engine.subscribe();
    engine.follow();
    let env = [("MANDATE_BROKER", stack.broker.url.as_str())];
    let (ok, _, err) = cli(&["agent", "init", "--key", &stack.path("agent.key")], &env).await;
    assert!(ok, "{err}");
    let waiting = request(
        &stack.broker.url,
        &stack.path("agent.key"),
        &principal,
        &stack.path("mandate.json"),
    );
    let id = next_new(&mut updates).await;
    let shown = engine.request(&id).await.unwrap();
    assert_eq!(shown.state, RequestState::Pending);

    // Approve narrowed: read only, Q3 only, ten minutes, no further hops.
    let narrowed = vec![files(&["read"], "https://files.example/reports/q3/")];
    let wider = Narrowing {
        scopes: Some(vec![files(
            &["read", "delete"],
            "https://files.example/reports/",
        )]),
        ..Narrowing::default()
    };
    assert_eq!(
        engine.approve(&id, &wider).await.unwrap_err().code(),
        "input.invalid"
    );
    let decision = engine
        .approve(
            &id,
            &Narrowing {
                scopes: Some(narrowed.clone()),
                lifetime: Some(600),
                max_depth: Some(0),
                ..Narrowing::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(decision.kind, DecisionKind::Grant);
    assert!(
        decision.delivered_at.is_some(),
        "delivered at once: {decision:?}"
    );
    agent_got_grant(waiting).await;
    let mandate: mandate_agent::Mandate =
        serde_json::from_str(&std::fs::read_to_string(stack.path("mandate.json")).unwrap())
            .unwrap();
    assert_eq!(mandate.chain, vec![decision.token.clone()]);
    assert_eq!(mandate.leaf().unwrap().authorization_details, narrowed);
    let (ok, _, err) = cli(&["verify", "--mandate", &stack.path("mandate.json")], &env).await;
    assert!(ok, "{err}");
    // Decided is decided.
    assert_eq!(
        engine.deny(&id, None, false).await.unwrap_err().code(),
        "input.invalid"
    );

    // Deny another: the agent sees the denial and the reason.
    let waiting = request(
        &stack.broker.url,
        &stack.path("agent.key"),
        &principal,
        &stack.path("denied.json"),
    );
    let denied = next_new(&mut updates).await;
    let decision = engine.deny(&denied, Some("not now"), false).await.unwrap();
    assert_eq!(decision.kind, DecisionKind::Denial);
    agent_got_denial(waiting, "not now").await;

    // The history: sign-in, two requests seen, two decisions signed and
    // delivered; it verifies.
    let verified = engine.verify_history().await.unwrap();
    assert_eq!(
        verified.events,
        7,
        "{:?}",
        engine.history().events(&principal).await.unwrap()
    );
    let kinds: Vec<String> = engine
        .history()
        .events(&principal)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.kind)
        .collect();
    assert_eq!(
        kinds,
        [
            "key.enrolled",
            "request.seen",
            "grant.signed",
            "decision.delivered",
            "request.seen",
            "denial.signed",
            "decision.delivered"
        ]
    );

    // Another start picks the sign-in up from the keyring, no browser.
    engine.shutdown().await;
    let again = Engine::start(stack.config()).await.unwrap();
    assert_eq!(again.resume().await.unwrap(), Some(account.clone()));
    assert_eq!(again.decisions().await.unwrap().len(), 2);

    // Sign-out revokes the refresh token at the provider and forgets the
    // tokens, but keeps the key and the history.
    let stored = vault.session(&principal).await.unwrap().unwrap();
    let refresh_token = stored.refresh_token.clone().unwrap();
    again.sign_out().await.unwrap();
    assert!(vault.session(&principal).await.unwrap().is_none());
    let provider = mandate_client::Provider::discover(&stack.idp.url, crate::CLIENT)
        .await
        .unwrap();
    let subject = principal.rsplit_once('#').unwrap().1;
    let refused = provider
        .refresh(refresh_token.expose(), subject)
        .await
        .unwrap_err();
    assert!(
        refused.to_string().contains("invalid_grant"),
        "the revoked refresh token still works: {refused}"
    );
    assert!(vault.user_key(&principal).await.unwrap().is_some());
    assert_eq!(again.resume().await.unwrap(), None);
    again.shutdown().await;
    stack.stop(Some(&principal)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_history_changed_behind_the_apps_back_fails_verification() {
    if !keyring_ready() {
        return;
    }
    let stack = Stack::start().await;
    let (engine, principal) = stack.signed_in("bob").await;
    let env = [("MANDATE_BROKER", stack.broker.url.as_str())];
    let (ok, _, err) = cli(&["agent", "init", "--key", &stack.path("agent.key")], &env).await;
    assert!(ok, "{err}");
    for n in 0..2 {
        let waiting = request(
            &stack.broker.url,
            &stack.path("agent.key"),
            &principal,
            &stack.path(&format!("m{n}.json")),
        );
        let id = loop {
            let inbox = engine.inbox().await.unwrap();
            if let Some(r) = inbox.first() {
                break r.id.clone();
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        engine.approve(&id, &Narrowing::default()).await.unwrap();
        drop(waiting);
    }
    let good = engine.verify_history().await.unwrap();
    assert_eq!(good.events, 7);
    engine.shutdown().await;

    let db_path = stack.dir.path().join("app/history.sqlite");
    let raw = |sql: &'static str| {
        let db_path = db_path.clone();
        async move {
            let url = format!("sqlite://{}", db_path.display());
            let pool = sqlx::SqlitePool::connect(&url).await.unwrap();
            let r = sqlx::query(sql)
                .execute(&pool)
                .await
                .map(|r| r.rows_affected());
            pool.close().await;
            r
        }
    };
    let verify = || async {
        let history = History::open(&db_path).await.unwrap();
        let key = mandate_core::PublicKey::from_jwk_json(
            &history.profile(&principal).await.unwrap().unwrap().user_jwk,
        )
        .unwrap();
        let r = history.verify(&principal, &key).await;
        history.close().await;
        r
    };

    // The log refuses edits and deletions outright.
    let e = raw("UPDATE events SET subject = 'x' WHERE seq = 2")
        .await
        .unwrap_err();
    assert!(e.to_string().contains("append-only"), "{e}");
    let e = raw("DELETE FROM events WHERE seq = 7").await.unwrap_err();
    assert!(e.to_string().contains("append-only"), "{e}");
    // Dropping the guards and editing a row is caught by the hashes.
    raw("DROP TRIGGER events_append_only_update").await.unwrap();
    raw("DROP TRIGGER events_append_only_delete").await.unwrap();
    raw("UPDATE events SET at = at + 1 WHERE seq = 3")
        .await
        .unwrap();
    let e = verify().await.unwrap_err();
    assert!(matches!(e, ClientError::Tampered(_)), "{e}");
    assert_eq!(e.code(), "history.tampered");
    assert!(e.to_string().contains("event 3"), "{e}");
    raw("UPDATE events SET at = at - 1 WHERE seq = 3")
        .await
        .unwrap();
    assert_eq!(verify().await.unwrap(), good, "restored, it verifies again");
    // Cutting the tail off is caught by the signed head.
    raw("DELETE FROM events WHERE seq = 7").await.unwrap();
    let e = verify().await.unwrap_err();
    assert!(e.to_string().contains("head"), "{e}");
    // Rewriting the head to the new tail needs the user's signature.
    raw("UPDATE heads SET seq = 6, hash = (SELECT hash FROM events WHERE seq = 6)")
        .await
        .unwrap();
    let e = verify().await.unwrap_err();
    assert!(e.to_string().contains("signature"), "{e}");
    // Removing a row from the middle breaks the next link.
    raw("DELETE FROM events WHERE seq = 4").await.unwrap();
    let e = verify().await.unwrap_err();
    assert!(e.to_string().contains("event 5"), "{e}");
    stack.stop(Some(&principal)).await;
}

/// `mandate agent request` in the background, with the given extra flags.
fn ask(
    stack: &Stack,
    principal: &str,
    key: &str,
    name: &str,
    scope: &str,
    extra: &[&str],
) -> tokio::process::Child {
    tokio::process::Command::new(procs::binary("mandate"))
        .args([
            "agent",
            "request",
            "--key",
            &stack.path(key),
            "--principal",
            principal,
        ])
        .args([
            "--scope",
            scope,
            "--purpose",
            "Tidy the Q3 reports",
            "--name",
            name,
        ])
        .args([
            "--intent",
            "Clean up my reports folder",
            "--lifetime",
            "3600",
        ])
        .args(extra)
        .env("MANDATE_BROKER", &stack.broker.url)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap()
}

/// The page keeps its inbox rows and asks only for what changed
/// (`Engine::inbox_changes`): the rows it lacks, in the inbox's order, and
/// the ids it holds that are no longer pending.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_inbox_list_is_kept_current_by_its_changes() {
    if !keyring_ready() {
        return;
    }
    let stack = Stack::start().await;
    let (engine, principal) = stack.signed_in("alice").await;
    let updates = engine.subscribe();
    engine.follow();
    let env = [("MANDATE_BROKER", stack.broker.url.as_str())];
    let (ok, _, err) = cli(&["agent", "init", "--key", &stack.path("a.key")], &env).await;
    assert!(ok, "{err}");
    let file = |updates: &broadcast::Receiver<Update>| {
        let asking = ask(
            &stack,
            &principal,
            "a.key",
            "Report Bot",
            "files:read:https://files.example/reports/",
            &[],
        );
        let mut updates = updates.resubscribe();
        async move {
            let out = asking.wait_with_output().await.unwrap();
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            next_new(&mut updates).await
        }
    };
    let mut filed = Vec::new();
    for _ in 0..3 {
        filed.push(file(&updates).await);
    }
    let ids = |rows: &[mandate_client::view::InboxRow]| -> Vec<String> {
        rows.iter().map(|r| r.id.clone()).collect()
    };

    // A list that holds nothing gets every row, in the inbox's order.
    let all = engine.inbox_changes(&[]).await.unwrap();
    let rows = engine.inbox_rows().await.unwrap();
    assert_eq!(ids(&all.added), ids(&rows));
    let mut sorted = filed.clone();
    sorted.sort();
    let mut got = ids(&all.added);
    got.sort();
    assert_eq!(got, sorted, "the three filed");
    assert!(
        all.added
            .windows(2)
            .all(|w| (std::cmp::Reverse(w[0].received_at), &w[0].id)
                < (std::cmp::Reverse(w[1].received_at), &w[1].id)),
        "newest first, then by id"
    );
    assert!(all.gone.is_empty());
    assert_eq!(all.pending, 3);

    // A list that holds them all: nothing to change.
    let held = ids(&rows);
    let same = engine.inbox_changes(&held).await.unwrap();
    assert!(same.added.is_empty() && same.gone.is_empty(), "{same:?}");
    assert_eq!(same.pending, 3);

    // One decided, one more filed, and an id the list holds that was never
    // pending: the new row comes, and both ids go.
    engine
        .approve(&filed[0], &Narrowing::default())
        .await
        .unwrap();
    let fourth = file(&updates).await;
    let mut held = held;
    held.push("no-such-request".into());
    let changes = engine.inbox_changes(&held).await.unwrap();
    assert_eq!(ids(&changes.added), [fourth]);
    let mut gone = changes.gone.clone();
    gone.sort();
    let mut expected = vec![filed[0].clone(), "no-such-request".to_owned()];
    expected.sort();
    assert_eq!(gone, expected);
    assert_eq!(changes.pending, 3);
    engine.shutdown().await;
    stack.stop(Some(&principal)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_detail_shows_the_chain_and_flags_deceptive_names() {
    if !keyring_ready() {
        return;
    }
    let stack = Stack::start().await;
    let (engine, principal) = stack.signed_in("carol").await;
    let mut updates = engine.subscribe();
    engine.follow();
    let env = [("MANDATE_BROKER", stack.broker.url.as_str())];
    for key in ["a.key", "b.key", "c.key"] {
        let (ok, _, err) = cli(&["agent", "init", "--key", &stack.path(key)], &env).await;
        assert!(ok, "{err}");
    }
    let reports = "files:read,write:https://files.example/reports/";

    // Agent A, first time: unknown, no warnings; the chain is user, agent.
    let mandate = stack.path("a.json");
    let waiting = ask(
        &stack,
        &principal,
        "a.key",
        "Report Bot",
        reports,
        &["--wait", "--out", &mandate, "--max-depth", "1"],
    );
    let id = next_new(&mut updates).await;
    let d = engine.detail(&id).await.unwrap();
    assert_eq!(d.agent.name, "Report Bot");
    assert!(!d.agent.known);
    assert!(d.agent.warnings.is_empty(), "{:?}", d.agent.warnings);
    assert_eq!(d.intent.as_deref(), Some("Clean up my reports folder"));
    assert_eq!(d.interpretation, "Tidy the Q3 reports");
    assert_eq!(d.binding_code.len(), 9);
    assert_eq!(d.lifetime, 3600);
    assert_eq!(d.scopes[0].label.as_deref(), Some("Files"));
    assert_eq!(d.risk, mandate_client::view::Risk::Medium);
    let roles: Vec<Role> = d.chain.iter().map(|h| h.role).collect();
    assert_eq!(roles, [Role::User, Role::Agent]);
    assert_eq!(d.chain[0].who, "carol@example.test");
    engine.approve(&id, &Narrowing::default()).await.unwrap();
    agent_got_grant(waiting).await;

    // Sub-agent B asks the user for more than A holds, endorsed by A: the
    // chain is user, agent A, sub-agent B, and B's hop shows what it adds
    // (delete) and loses.
    let _b = ask(
        &stack,
        &principal,
        "b.key",
        "Shredder",
        "files:read,delete:https://files.example/reports/q3/",
        &[
            "--parent",
            &mandate,
            "--endorse-key",
            &stack.path("a.key"),
            "--max-depth",
            "0",
        ],
    );
    let id = next_new(&mut updates).await;
    let d = engine.detail(&id).await.unwrap();
    let roles: Vec<Role> = d.chain.iter().map(|h| h.role).collect();
    assert_eq!(roles, [Role::User, Role::Agent, Role::SubAgent]);
    assert_eq!(
        d.chain[1].who, "Report Bot",
        "the agent's name as it gave it before"
    );
    assert_eq!(d.chain[2].who, "Shredder");
    assert_eq!(
        d.chain[2].adds,
        ["files: delete at https://files.example/reports/q3/"]
    );
    assert_eq!(
        d.chain[2].loses,
        [
            "files: read at https://files.example/reports/",
            "files: write at https://files.example/reports/"
        ]
    );
    assert_eq!(d.risk, mandate_client::view::Risk::High);
    assert!(
        d.scopes[0]
            .actions
            .iter()
            .any(|a| a.name == "delete" && a.irreversible)
    );

    // Key C calls itself "Report Bot" with Cyrillic letters: flagged twice.
    let _c = ask(
        &stack,
        &principal,
        "c.key",
        "R\u{0435}p\u{043e}rt Bot",
        reports,
        &[],
    );
    let id = next_new(&mut updates).await;
    let d = engine.detail(&id).await.unwrap();
    assert!(!d.agent.known);
    assert_eq!(d.agent.warnings.len(), 2, "{:?}", d.agent.warnings);
    assert!(d.agent.warnings.iter().any(|w| w.contains("alphabets")));
    assert!(
        d.agent
            .warnings
            .iter()
            .any(|w| w.contains("another key used this name"))
    );

    // A again: known now.
    let _a = ask(&stack, &principal, "a.key", "Report Bot", reports, &[]);
    let id = next_new(&mut updates).await;
    let d = engine.detail(&id).await.unwrap();
    assert!(d.agent.known);
    assert!(d.agent.warnings.is_empty());
    engine.shutdown().await;
    stack.stop(Some(&principal)).await;
}
