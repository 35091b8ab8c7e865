//! The engine against a real OpenID Provider (`oidc-provider` on Node, on
//! loopback): sign-in through a browser, refresh, and each attack on the
//! flow refused with its own error.

#![allow(clippy::expect_used, clippy::unwrap_used)]

mod activity;
mod browser;
mod crash;
mod delegations;
mod devices;
mod engine;
mod hostile;
mod ingest;
mod journey;
mod lost_device;
mod narrow;
mod renewal;
mod secrets;
mod tamper;
mod tiers;
mod witness;

use std::time::Duration;

use browser::{Tamper, TestBrowser};
use mandate_client::{Provider, SignInError};
use mandate_e2e::procs;

const CLIENT: &str = "mandate-desktop";

/// A root grant `jti` by `user` to `agent`, for `detail`, with `purpose`
/// and `intent`, valid `span` seconds either side of `at`.
fn root_grant(
    user: &mandate_core::SigningKey,
    principal: &mandate_core::Principal,
    agent: &mandate_core::SigningKey,
    detail: mandate_core::scope::AuthorizationDetail,
    (purpose, intent): (&str, Option<&str>),
    (at, span): (i64, i64),
) -> String {
    use mandate_core::Claims as _;
    use mandate_core::token::{Actor, Confirmation, GrantClaims};
    GrantClaims {
        sub: principal.clone(),
        act: Actor {
            sub: agent.public().agent_id(),
        },
        cnf: Confirmation {
            jkt: agent.thumbprint(),
        },
        authorization_details: vec![detail],
        purpose: purpose.into(),
        intent: intent.map(Into::into),
        iat: at - span,
        nbf: at - span,
        exp: at + span,
        jti: "g-1".to_string().try_into().unwrap(),
        max_depth: 0,
        prf: None,
        req: None,
    }
    .sign(user)
}
const SCOPES: &[&str] = &["email", "profile", "offline_access"];

async fn sign_in(
    provider: &Provider,
    browser: &TestBrowser,
) -> Result<mandate_client::Session, SignInError> {
    let result = provider
        .sign_in(browser, SCOPES, Duration::from_secs(20))
        .await;
    if let Some(failure) = browser.failure.lock().unwrap().as_ref() {
        panic!("the test browser failed: {failure}");
    }
    result
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_person_signs_in_and_the_session_refreshes() {
    let idp = procs::idp().await;
    let provider = Provider::discover(&idp.url, CLIENT).await.unwrap();
    assert_eq!(provider.issuer(), idp.url);
    let session = sign_in(&provider, &TestBrowser::new("alice", Tamper::None))
        .await
        .unwrap();
    assert_eq!(session.principal, format!("{}#alice", idp.url));
    assert_eq!(session.email.as_deref(), Some("alice@example.test"));
    assert_eq!(session.name.as_deref(), Some("Alice Example"));
    provider.check(session.id_token.expose()).unwrap();
    let refresh = session
        .refresh_token()
        .expect("offline_access gives a refresh token");
    assert!(
        !format!("{session:?}").contains(refresh),
        "Debug never shows the refresh token"
    );
    assert!(!format!("{session:?}").contains(session.id_token.expose()));

    let again = provider.refresh(refresh, "alice").await.unwrap();
    assert_eq!(again.principal, session.principal);
    provider.check(again.id_token.expose()).unwrap();
    assert_ne!(
        again.refresh_token(),
        Some(refresh),
        "the provider rotates refresh tokens"
    );
    // A refreshed token for someone other than the session's user is refused.
    let newest = again.refresh_token().unwrap();
    assert_eq!(
        provider.refresh(newest, "bob").await.unwrap_err().code(),
        "signin.id_token_invalid"
    );
    // A spent refresh token is refused by the provider (which then revokes
    // the whole family, as reuse detection should).
    assert_eq!(
        provider.refresh(refresh, "alice").await.unwrap_err().code(),
        "signin.exchange"
    );
    idp.kill().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forged_state_is_ignored_until_the_sign_in_times_out() {
    let idp = procs::idp().await;
    let provider = Provider::discover(&idp.url, CLIENT).await.unwrap();
    let browser = TestBrowser::new("alice", Tamper::State);
    let e = provider
        .sign_in(&browser, SCOPES, Duration::from_secs(6))
        .await
        .unwrap_err();
    assert!(browser.failure.lock().unwrap().is_none());
    assert_eq!(e.code(), "signin.timed_out", "{e}");
    idp.kill().await;
}

/// A stranger's answers to the loopback listener, sent before the real
/// one, neither end the sign-in nor get in: the person is signed in.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_strangers_answers_do_not_abort_the_sign_in() {
    let idp = procs::idp().await;
    let provider = Provider::discover(&idp.url, CLIENT).await.unwrap();
    let session = sign_in(&provider, &TestBrowser::new("alice", Tamper::StrangerFirst))
        .await
        .unwrap();
    assert_eq!(session.principal, format!("{}#alice", idp.url));
    provider.check(session.id_token.expose()).unwrap();
    idp.kill().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_id_token_for_another_nonce_is_refused() {
    let idp = procs::idp().await;
    let provider = Provider::discover(&idp.url, CLIENT).await.unwrap();
    let e = sign_in(&provider, &TestBrowser::new("alice", Tamper::Nonce))
        .await
        .unwrap_err();
    assert_eq!(e.code(), "signin.nonce_mismatch", "{e}");
    idp.kill().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tampered_and_expired_id_tokens_are_refused() {
    let idp = procs::idp_with(&["--id-token-ttl", "2"]).await;
    let provider = Provider::discover(&idp.url, CLIENT).await.unwrap();
    let session = sign_in(&provider, &TestBrowser::new("alice", Tamper::None))
        .await
        .unwrap();
    // One claim changed: the signature no longer holds.
    let parts: Vec<&str> = session.id_token.expose().split('.').collect();
    let claims = mandate_core::base64url::decode(parts[1]).unwrap();
    let forged = String::from_utf8(claims)
        .unwrap()
        .replace("\"sub\":\"alice\"", "\"sub\":\"bob\"");
    assert!(forged.contains("\"sub\":\"bob\""));
    let tampered = format!(
        "{}.{}.{}",
        parts[0],
        mandate_core::base64url::encode(forged.as_bytes()),
        parts[2]
    );
    assert_eq!(
        provider.check(&tampered).unwrap_err().code(),
        "signin.id_token_invalid"
    );
    // And once its two seconds are over, the real one is expired.
    while unix_now() <= session.expires_at {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(
        provider
            .check(session.id_token.expose())
            .unwrap_err()
            .code(),
        "signin.expired"
    );
    idp.kill().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_provider_that_is_not_there_fails_discovery_clearly() {
    let e = Provider::discover("http://127.0.0.1:9", CLIENT)
        .await
        .unwrap_err();
    assert_eq!(e.code(), "signin.discovery");
}

pub fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}
