//! Token exchange (`POST /oauth/token`, docs/oauth.md) against its floor.
//!
//!     cargo bench -p mandate-broker --bench exchange
//!
//! One client, one exchange at a time, through the broker's router (no
//! socket), on SQLite in a temporary directory: a chain of two grants
//! (user → agent 1 → agent 2), presented by agent 2 with a fresh DPoP proof
//! each time (made before the timing starts). The link cache and the
//! chain-state cache are warm after the first exchange. Each exchange
//! verifies the proof, takes the user's bindings and each grant's
//! revocation state from memory (the store is read again only after a
//! write changed them), checks the chain, spends the proof in the replay
//! cache and signs the token. The store reads a cache miss makes are
//! measured alone after.
//!
//! The floor, measured in the same run on the same bytes: the chain
//! verified cold (its two agents' keys decompressed, both grants'
//! signatures checked, every rule applied) plus one Ed25519 signature over
//! a payload of the token's size: the cheapest way to check the chain and
//! issue a token. The goal: p50 of an exchange within 1.5 times
//! the floor's p50.

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::print_stdout)]

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::Request;
use ed25519_dalek::Signer as _;
use http_body_util::BodyExt as _;
use mandate_broker::oauth::Resource;
use mandate_broker::oidc::OidcVerifier;
use mandate_broker::{AppState, Limits, router};
use mandate_core::scope::AuthorizationDetail;
use mandate_core::token::{Actor, Confirmation, GrantClaims};
use mandate_core::{BindingSet, Claims as _, Context, KeySet, Principal, SigningKey, base64url};
use mandate_store::{Binding, Store};
use tower::ServiceExt as _;

const URL: &str = "http://127.0.0.1:7700";
const NOW: i64 = 1_796_320_000;
const RUNS: usize = 5_000;
const WARM_UP: usize = 300;

fn grant(
    to: &SigningKey,
    by: &SigningKey,
    principal: &Principal,
    location: &str,
    prf: Option<mandate_core::TokenId>,
    depth: u8,
) -> String {
    GrantClaims {
        sub: principal.clone(),
        act: Actor {
            sub: to.public().agent_id(),
        },
        cnf: Confirmation {
            jkt: to.thumbprint(),
        },
        authorization_details: vec![
            AuthorizationDetail::new("files", ["read"], [location]).unwrap(),
        ],
        purpose: "Read the Q3 reports".into(),
        intent: None,
        iat: NOW,
        nbf: NOW,
        exp: NOW + 3600,
        jti: format!("g{depth}").try_into().unwrap(),
        max_depth: depth,
        prf,
        req: None,
    }
    .sign(by)
}

fn dpop(key: &SigningKey, jti: usize) -> String {
    let header =
        serde_json::json!({ "typ": "dpop+jwt", "alg": "EdDSA", "jwk": key.public().to_jwk() });
    let claims = serde_json::json!({ "jti": format!("p{jti}"), "htm": "POST", "htu": format!("{URL}/oauth/token"), "iat": NOW });
    let input = format!(
        "{}.{}",
        base64url::encode(header.to_string().as_bytes()),
        base64url::encode(claims.to_string().as_bytes())
    );
    let signature = ed25519_dalek::SigningKey::from_bytes(&key.to_seed()).sign(input.as_bytes());
    format!("{input}.{}", base64url::encode(signature.to_bytes()))
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

fn report(name: &str, mut times: Vec<Duration>, total: Duration) -> Duration {
    times.sort_unstable();
    let p50 = percentile(&times, 0.50);
    println!(
        "{name:>9}: {} runs, p50 {:>7.1} µs, p99 {:>7.1} µs, {:>6.0} a second",
        times.len(),
        p50.as_secs_f64() * 1e6,
        percentile(&times, 0.99).as_secs_f64() * 1e6,
        times.len() as f64 / total.as_secs_f64()
    );
    p50
}

fn main() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(run());
}

async fn run() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::connect(&format!("sqlite://{}/broker.db", dir.path().display()))
        .await
        .unwrap();
    let user = SigningKey::from_seed(&[1; 32]);
    let (planner, reader) = (
        SigningKey::from_seed(&[2; 32]),
        SigningKey::from_seed(&[3; 32]),
    );
    let principal: Principal = "https://idp.example#alice".to_owned().try_into().unwrap();
    store
        .put_binding(&Binding {
            jkt: user.thumbprint(),
            key: *user.public(),
            principal: principal.clone(),
            token: "b".into(),
            issued_at: NOW,
            expires_at: NOW + 86_400,
            device: "bench".into(),
            enrolled_at: NOW,
            last_used_at: None,
        })
        .await
        .unwrap();
    let limits = Limits {
        agent_calls: mandate_broker::ratelimit::Rate {
            burst: 1_000_000,
            per_second: 1_000_000.0,
        },
        ..Limits::default()
    };
    let state = AppState::new(
        store,
        SigningKey::from_seed(&[9; 32]),
        URL,
        OidcVerifier::new(vec![]).unwrap(),
        Arc::new(|| NOW),
        limits,
    )
    .serving(vec![Resource::parse("https://files.example/").unwrap()]);
    let app = router(state);
    let root = grant(
        &planner,
        &user,
        &principal,
        "https://files.example/reports/",
        None,
        1,
    );
    let child = grant(
        &reader,
        &planner,
        &principal,
        "https://files.example/reports/q3/",
        Some(mandate_core::TokenId::of(&root)),
        0,
    );
    let form = serde_urlencoded::to_string([
        (
            "grant_type",
            "urn:ietf:params:oauth:grant-type:token-exchange",
        ),
        ("subject_token", &format!("{root},{child}")),
        (
            "subject_token_type",
            "urn:mandate:params:oauth:token-type:chain",
        ),
        ("resource", "https://files.example/"),
        (
            "mandate_keys",
            &base64url::encode(planner.public().as_bytes()),
        ),
    ])
    .unwrap();
    let proofs: Vec<String> = (0..WARM_UP + RUNS).map(|i| dpop(&reader, i)).collect();

    // The exchange, warm after the first.
    let mut times = Vec::with_capacity(RUNS);
    let mut token_len = 0;
    let mut started = Instant::now();
    for (i, proof) in proofs.iter().enumerate() {
        if i == WARM_UP {
            started = Instant::now();
        }
        let req = Request::post("/oauth/token")
            .header("host", "127.0.0.1:7700")
            .header("content-type", "application/x-www-form-urlencoded")
            .header("dpop", proof)
            .body(Body::from(form.clone()))
            .unwrap();
        let t = Instant::now();
        let res = app.clone().oneshot(req).await.unwrap();
        assert_eq!(res.status(), 200);
        let body = res.into_body().collect().await.unwrap().to_bytes();
        let elapsed = t.elapsed();
        if i >= WARM_UP {
            times.push(elapsed);
        }
        token_len = body.len();
    }
    let exchange = report("exchange", times, started.elapsed());

    // The floor: the chain cold, and one signature of a token's size.
    let chain = [root.as_str(), child.as_str()];
    let (planner_jwk, reader_jwk) = (planner.public().to_jwk(), reader.public().to_jwk());
    let payload = vec![b'a'; token_len];
    let signer = ed25519_dalek::SigningKey::from_bytes(&[9; 32]);
    let revoked: HashSet<mandate_core::TokenId> = HashSet::new();
    let mut times = Vec::with_capacity(RUNS);
    let mut started = Instant::now();
    for i in 0..WARM_UP + RUNS {
        if i == WARM_UP {
            started = Instant::now();
        }
        let t = Instant::now();
        let mut keys = KeySet::new();
        keys.insert(*user.public());
        keys.insert_jwk(&planner_jwk).unwrap();
        keys.insert_jwk(&reader_jwk).unwrap();
        let mut bindings = BindingSet::new();
        bindings
            .insert(principal.clone(), user.thumbprint())
            .unwrap();
        let cx = Context {
            now: NOW,
            policy: mandate_core::Policy::default(),
            keys: &keys,
            bindings: &bindings,
            revoked: &revoked,
        };
        let verified = mandate_core::verify_chain(&chain, &cx).unwrap();
        let signature = signer.sign(&payload);
        std::hint::black_box((verified, signature));
        let elapsed = t.elapsed();
        if i >= WARM_UP {
            times.push(elapsed);
        }
    }
    let floor = report("floor", times, started.elapsed());

    // Where an exchange's time goes: the store's reads it makes.
    let store = Store::connect(&format!("sqlite://{}/broker.db", dir.path().display()))
        .await
        .unwrap();
    let id = mandate_core::TokenId::of(&root);
    let mut times = Vec::with_capacity(RUNS);
    let started = Instant::now();
    for _ in 0..RUNS {
        let t = Instant::now();
        std::hint::black_box(store.bindings_of(&principal).await.unwrap());
        times.push(t.elapsed());
    }
    report("bindings", times, started.elapsed());
    let mut times = Vec::with_capacity(RUNS);
    let started = Instant::now();
    for _ in 0..RUNS {
        let t = Instant::now();
        std::hint::black_box(store.is_revoked(&id).await.unwrap());
        times.push(t.elapsed());
    }
    report("revoked", times, started.elapsed());
    println!(
        "    ratio: exchange p50 / floor p50 = {:.2} (goal: at most 1.5)",
        exchange.as_secs_f64() / floor.as_secs_f64()
    );
}
