//! The approval tiers in the engine, headless, with the OS keyring, the
//! real provider, a real broker process and an agent using the `mandate`
//! CLI: a rule made when approving approves a later request that fits it,
//! and a request that goes past it comes as a prompt with the difference;
//! an ended rule approves nothing; "deny always" has the broker refuse the
//! agent until the block is lifted; a high-risk request needs the agent's
//! code, and three wrong codes deny it and flag it.

use std::process::Stdio;
use std::time::Duration;

use mandate_client::Narrowing;
use mandate_client::decision::Tier;
use mandate_client::engine::{Engine, Update};
use mandate_client::history::RequestState;
use mandate_e2e::procs::{binary, cli};
use tokio::sync::broadcast;

use crate::engine::{Stack, keyring_ready, next_new};
use crate::journey::agent_got_grant;

/// `mandate agent request ... --wait` for `scope`, `lifetime` and `depth`.
fn ask(
    stack: &Stack,
    principal: &str,
    scope: &str,
    lifetime: u32,
    depth: u8,
) -> tokio::process::Child {
    tokio::process::Command::new(binary("mandate"))
        .args(["agent", "request", "--key", &stack.path("agent.key")])
        .args(["--principal", principal, "--scope", scope])
        .args(["--purpose", "Tidy the reports"])
        .args(["--lifetime", &lifetime.to_string()])
        .args(["--max-depth", &depth.to_string()])
        .args([
            "--wait",
            "--timeout",
            "60",
            "--out",
            &stack.path("mandate.json"),
        ])
        .env("MANDATE_BROKER", &stack.broker.url)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap()
}

/// A stack with alice signed in and following her inbox, and an agent's
/// key made.
async fn signed_in_with_an_agent() -> (Stack, Engine, String, broadcast::Receiver<Update>) {
    let stack = Stack::start().await;
    let (engine, principal) = stack.signed_in("alice").await;
    let updates = engine.subscribe();
    engine.follow();
    let env = [("MANDATE_BROKER", stack.broker.url.as_str())];
    let (ok, _, err) = cli(&["agent", "init", "--key", &stack.path("agent.key")], &env).await;
    assert!(ok, "{err}");
    (stack, engine, principal, updates)
}

/// Waits for the agent's request to end in failure; its stderr.
async fn refused(waiting: tokio::process::Child) -> String {
    let done = tokio::time::timeout(Duration::from_secs(30), waiting.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    assert!(!done.status.success());
    String::from_utf8_lossy(&done.stderr).into_owned()
}

/// Waits for the engine to approve a request by a rule; the request's id.
async fn auto_approved(updates: &mut broadcast::Receiver<Update>) -> (String, String) {
    tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            if let Update::AutoApproved {
                request_id,
                rule_id,
                ..
            } = updates.recv().await.unwrap()
            {
                return (request_id, rule_id);
            }
        }
    })
    .await
    .expect("a request is approved by a rule")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rule_approves_what_fits_and_prompts_for_what_goes_past_it() {
    if !keyring_ready() {
        return;
    }
    let (stack, engine, principal, mut updates) = signed_in_with_an_agent().await;
    let reports = "files:read,write:https://files.example/reports/";

    // The first request: approved as asked, with a rule for 30 days.
    let waiting = ask(&stack, &principal, reports, 3600, 1);
    let id = next_new(&mut updates).await;
    let decision = engine
        .approve(
            &id,
            &Narrowing {
                tier: Tier::Rule { days: 30 },
                ..Narrowing::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(decision.tier, "rule");
    agent_got_grant(waiting).await;
    let rules = engine.rules().await.unwrap();
    assert_eq!(rules.len(), 1);
    let rule = &rules[0];
    assert_eq!(
        (rule.max_lifetime, rule.max_depth, rule.matched),
        (3600, 1, 0)
    );

    // A narrower request fits: approved at once, by the rule, signed with
    // the user's key, and recorded so.
    let waiting = ask(
        &stack,
        &principal,
        "files:read:https://files.example/reports/q3/",
        600,
        0,
    );
    let (auto, by) = auto_approved(&mut updates).await;
    assert_eq!(by, rule.id);
    agent_got_grant(waiting).await;
    let decision = engine.request(&auto).await.unwrap();
    assert_eq!(decision.state, RequestState::Approved);
    let detail = engine.detail(&auto).await.unwrap();
    let decided = detail.decision.expect("a decision");
    assert_eq!(
        (decided.tier.as_str(), decided.rule_id.as_deref()),
        ("auto", Some(rule.id.as_str()))
    );
    let rules = engine.rules().await.unwrap();
    assert_eq!(rules[0].matched, 1);
    let recent: Vec<&str> = rules[0].recent.iter().map(|m| m.purpose.as_str()).collect();
    assert_eq!(recent, ["Tidy the reports"], "what the rule approved");
    assert_eq!(Some(rules[0].recent[0].at), rules[0].last_matched_at);

    // Slightly more (delete, and longer) is a prompt, with the difference.
    let waiting = ask(
        &stack,
        &principal,
        "files:read,delete:https://files.example/reports/",
        7200,
        0,
    );
    let id = next_new(&mut updates).await;
    let detail = engine.detail(&id).await.unwrap();
    assert_eq!(detail.rules.len(), 1, "{:?}", detail.rules);
    let differences = detail.rules[0].differences.join(" | ");
    assert!(
        differences.contains("an action the rule does not allow"),
        "{differences}"
    );
    assert!(
        differences.contains("asks for 2 hours, the rule allows 1 hour"),
        "{differences}"
    );
    engine.deny(&id, Some("no deleting"), false).await.unwrap();
    drop(waiting);

    // Ended, the rule approves nothing: the same narrow request prompts.
    engine.end_rule(&rule.id).await.unwrap();
    assert!(engine.end_rule(&rule.id).await.is_err(), "ended once");
    let waiting = ask(
        &stack,
        &principal,
        "files:read:https://files.example/reports/q4/",
        600,
        0,
    );
    let id = next_new(&mut updates).await;
    assert_eq!(
        engine.request(&id).await.unwrap().state,
        RequestState::Pending
    );
    assert!(engine.detail(&id).await.unwrap().rules.is_empty());

    // Deny always: the agent's next request is refused by the broker, and
    // never reaches the inbox, until the block is lifted.
    let decision = engine.deny(&id, None, true).await.unwrap();
    assert_eq!(decision.tier, "block");
    drop(waiting);
    let stderr = refused(ask(&stack, &principal, reports, 60, 0)).await;
    assert!(stderr.contains("request.blocked"), "{stderr}");
    let blocks = engine.blocks().await.unwrap();
    assert_eq!(blocks.len(), 1);
    assert_eq!(blocks[0].refusals, 1);
    engine.lift_block(&blocks[0].agent).await.unwrap();
    assert!(engine.blocks().await.unwrap().is_empty());
    let waiting = ask(
        &stack,
        &principal,
        "files:list:https://files.example/reports/",
        60,
        0,
    );
    let id = next_new(&mut updates).await;
    assert_eq!(
        engine.request(&id).await.unwrap().state,
        RequestState::Pending
    );
    drop(waiting);
    assert!(
        engine.verify_history().await.is_ok(),
        "the history verifies"
    );
    stack.stop(Some(&principal)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_high_risk_request_needs_the_agents_code() {
    if !keyring_ready() {
        return;
    }
    let (stack, engine, principal, mut updates) = signed_in_with_an_agent().await;
    let risky = "files:read,delete:https://files.example/reports/";

    let waiting = ask(&stack, &principal, risky, 600, 0);
    let id = next_new(&mut updates).await;
    let detail = engine.detail(&id).await.unwrap();
    assert!(detail.needs_code, "deleting is high risk");
    // Approving before the code is typed is refused.
    let e = engine
        .approve(&id, &Narrowing::default())
        .await
        .unwrap_err();
    assert_eq!(e.code(), "input.invalid");
    let wrong = engine.match_code(&id, "0000-0000").await.unwrap();
    assert_eq!(
        (wrong.matched, wrong.misses_left, wrong.denied),
        (false, 2, false)
    );
    // The app does not show the code; the agent does (it is in its
    // signed request).
    assert_eq!(detail.binding_code, "", "the code is typed, not shown");
    let request = engine.request(&id).await.unwrap().request;
    let (_, asked) =
        mandate_core::token::peek::<mandate_core::token::RequestClaims>(&request).unwrap();
    let right = engine
        .match_code(&id, &asked.binding_code.to_string().to_lowercase())
        .await
        .unwrap();
    assert!(right.matched);
    assert!(!engine.detail(&id).await.unwrap().needs_code);
    engine.approve(&id, &Narrowing::default()).await.unwrap();
    agent_got_grant(waiting).await;

    // Three wrong codes deny the request and flag it.
    let waiting = ask(&stack, &principal, risky, 600, 0);
    let id = next_new(&mut updates).await;
    for left in [2, 1] {
        let check = engine.match_code(&id, "ZZZZ-ZZZZ").await.unwrap();
        assert_eq!((check.misses_left, check.denied), (left, false));
    }
    let check = engine.match_code(&id, "ZZZZ-ZZZZ").await.unwrap();
    assert!(check.denied);
    let detail = engine.detail(&id).await.unwrap();
    assert_eq!(detail.state, RequestState::Denied);
    assert!(detail.flagged);
    let stderr = refused(waiting).await;
    assert!(stderr.contains("request.denied"), "{stderr}");
    assert!(
        engine.match_code(&id, "ZZZZ-ZZZZ").await.is_err(),
        "decided"
    );
    stack.stop(Some(&principal)).await;
}
