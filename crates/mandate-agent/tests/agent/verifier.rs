//! The verifier middleware fails closed: a call its server declares no
//! need for is refused, and a need's identifier and amount are held to the
//! mandate's scope. Every refusal checks its stable code and that the
//! handler did not run.
//!
//! The broker is a stub on loopback that serves an empty revocation feed
//! and a live event stream, both with checkpoints it signs, so the
//! verifier's revocation set is current; the resource server is called
//! with `oneshot`.

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::Path;
use axum::http::{Method, Request, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::routing::{get, post};
use axum::{Json, Router};
use http_body_util::BodyExt as _;
use mandate_agent::client::Metadata;
use mandate_agent::{
    Agent, AgentInfo, Broker, Mandate, Need, NoNeed, ResourceVerifier, Revocations, VerifierConfig,
    require_mandate, unix_now,
};
use mandate_core::scope::{AuthorizationDetail, Confirm, Money};
use mandate_core::token::{
    Actor, BindingClaims, CheckpointClaims, Confirmation, ConfirmationClaims, GrantClaims,
};
use mandate_core::{Claims as _, FeedHead, SigningKey, TokenId};
use serde_json::{Value, json};
use tower::ServiceExt as _;

/// How agents address the resource server; proofs name it.
const ORIGIN: &str = "http://resource.test";
/// The most any one step of a test may take.
const PATIENCE: Duration = Duration::from_secs(10);
/// The body limit the verifier is configured with.
const MAX_BODY: usize = 1024;

/// A resource server behind the verifier, an agent holding a mandate for
/// it, and a count of the calls that reached a handler.
pub struct World {
    app: Router,
    agent: Agent,
    mandate: Mandate,
    /// Alice's key, bound to her by the stub broker.
    alice: SigningKey,
    handled: Arc<AtomicUsize>,
    broker: tokio::task::JoinHandle<()>,
}

impl Drop for World {
    fn drop(&mut self) {
        self.broker.abort();
    }
}

/// What the test server's routes need.
///
/// - `GET /files/{path}`: `files` `read` on `https://files.example/{path}`.
/// - `GET /accounts/{id}`: `accounts` `read` on the accounts, for account `id`.
/// - `POST /orders`: `purchase_order` `place`, for the body's `amount`.
/// - `POST /careless-orders`: the same, but the server forgot the amount.
/// - `GET /undeclared`: routed, but no need is declared for it.
fn needs(method: &Method, path: &str, body: &[u8]) -> Result<Need, NoNeed> {
    let need = |kind: &str, action: &str, location: String| Need {
        kind: kind.into(),
        action: action.into(),
        location,
        identifier: None,
        amount: None,
    };
    match (method, path) {
        (&Method::GET, _) if path.starts_with("/files/") => Ok(need(
            "files",
            "read",
            format!("https://files.example/{}", &path["/files/".len()..]),
        )),
        (&Method::GET, _) if path.starts_with("/accounts/") => Ok(Need {
            identifier: Some(path["/accounts/".len()..].to_owned()),
            ..need("accounts", "read", "https://bank.example/accounts".into())
        }),
        (&Method::POST, "/orders") => {
            #[derive(serde::Deserialize)]
            struct Order {
                amount: Money,
            }
            let order: Order = serde_json::from_slice(body)
                .map_err(|_| NoNeed::Unreadable("the body must be an order with an amount"))?;
            Ok(Need {
                amount: Some(order.amount),
                ..need(
                    "purchase_order",
                    "place",
                    "https://shop.example/orders".into(),
                )
            })
        }
        (&Method::POST, "/careless-orders") => Ok(need(
            "purchase_order",
            "place",
            "https://shop.example/orders".into(),
        )),
        _ => Err(NoNeed::Undeclared),
    }
}

/// How the stub broker signs the checkpoints of its feed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signing {
    /// As a broker does: its key, its name, position 0, now.
    Honest,
    /// With another key than the one its metadata names.
    ForeignKey,
    /// Naming another broker.
    ForeignIssuer,
    /// One honest checkpoint first, then only checkpoints older than it.
    OlderAfterOne,
    /// Naming a revocation at position 1 that the feed never serves.
    Withheld,
}

/// The stub broker's signing key.
pub fn broker_key() -> SigningKey {
    SigningKey::from_seed(&[1; 32])
}

/// A stub broker on loopback: no revocations, a feed page and an event
/// stream that carry checkpoints signed as `signing` says (on the stream,
/// every 200 ms, with a keep-alive comment as often). Its URL and its task.
pub async fn stub_broker(signing: Signing) -> (String, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let issuer = url.clone();
    let started = unix_now();
    let checkpoint = move |n: u64| {
        let withheld = FeedHead::EMPTY.next(1, &TokenId::of("a withheld grant"));
        let honest = CheckpointClaims {
            iss: issuer.clone(),
            seq: 0,
            head: FeedHead::EMPTY,
            iat: unix_now(),
        };
        match signing {
            Signing::Honest => honest.sign(&broker_key()),
            Signing::ForeignKey => honest.sign(&SigningKey::from_seed(&[42; 32])),
            Signing::ForeignIssuer => CheckpointClaims {
                iss: "http://other-broker.test".into(),
                ..honest
            }
            .sign(&broker_key()),
            Signing::OlderAfterOne if n == 0 => honest.sign(&broker_key()),
            Signing::OlderAfterOne => CheckpointClaims {
                iat: started - 1,
                ..honest
            }
            .sign(&broker_key()),
            Signing::Withheld => CheckpointClaims {
                seq: 1,
                head: withheld,
                ..honest
            }
            .sign(&broker_key()),
        }
    };
    let sent = Arc::new(AtomicU64::new(0));
    let (for_feed, for_stream) = (checkpoint.clone(), checkpoint);
    let (feed_sent, stream_sent) = (sent.clone(), sent);
    let app = Router::new()
        .route(
            "/v1/revocations",
            get(move || async move {
                let n = feed_sent.fetch_add(1, Ordering::SeqCst);
                Json(json!({ "revoked": [], "next": 0, "checkpoint": for_feed(n) }))
            }),
        )
        .route(
            "/v1/revocations/events",
            get(move || async move {
                let events = futures_util::stream::unfold(
                    (for_stream, stream_sent),
                    |(sign, sent)| async move {
                        tokio::time::sleep(Duration::from_millis(200)).await;
                        let n = sent.fetch_add(1, Ordering::SeqCst);
                        let data = json!({ "type": "checkpoint", "checkpoint": sign(n) });
                        let event = Event::default().event("checkpoint").data(data.to_string());
                        Some((Ok::<_, Infallible>(event), (sign, sent)))
                    },
                );
                Sse::new(events).keep_alive(KeepAlive::new().interval(Duration::from_millis(200)))
            }),
        );
    let task = tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    });
    (url, task)
}

/// A server behind a verifier that trusts a stub broker, and an agent
/// whose mandate, from alice through that broker, holds `scopes`.
async fn world(scopes: Vec<AuthorizationDetail>) -> World {
    world_with(scopes, Signing::Honest, Duration::from_secs(60)).await
}

/// As [`world`], with the stub broker signing its checkpoints as
/// `signing` says and the verifier's bound `max_staleness`. It waits for
/// the verifier to be current when the broker signs an honest checkpoint
/// at all; otherwise the verifier is built at once, not current.
pub async fn world_with(
    scopes: Vec<AuthorizationDetail>,
    signing: Signing,
    max_staleness: Duration,
) -> World {
    let (url, broker) = stub_broker(signing).await;
    let broker_key = broker_key();
    let alice_key = SigningKey::from_seed(&[2; 32]);
    let agent_key = SigningKey::from_seed(&[3; 32]);
    let alice: mandate_core::Principal = "http://idp.test#alice".to_owned().try_into().unwrap();
    let now = unix_now();
    let binding = BindingClaims {
        iss: url.clone(),
        sub: alice.clone(),
        cnf: Confirmation {
            jkt: alice_key.thumbprint(),
        },
        iat: now - 10,
        exp: now + 3600,
        jti: "binding".to_owned().try_into().unwrap(),
    }
    .sign(&broker_key);
    let grant = GrantClaims {
        sub: alice,
        act: Actor {
            sub: agent_key.public().agent_id(),
        },
        cnf: Confirmation {
            jkt: agent_key.thumbprint(),
        },
        authorization_details: scopes,
        purpose: "test the verifier".into(),
        intent: None,
        iat: now - 10,
        nbf: now - 10,
        exp: now + 3600,
        jti: "grant".to_owned().try_into().unwrap(),
        max_depth: 0,
        prf: None,
        req: None,
    }
    .sign(&alice_key);
    let mandate = Mandate {
        chain: vec![grant],
        binding,
        keys: vec![alice_key.public().to_jwk()],
    };

    let metadata: Metadata = serde_json::from_value(json!({
        "issuer": url,
        "jwks": { "keys": [broker_key.public().to_jwk()] },
    }))
    .unwrap();
    let revocations = Revocations::follow(Broker::new(&url).unwrap(), &metadata).unwrap();
    if matches!(signing, Signing::Honest | Signing::OlderAfterOne) {
        tokio::time::timeout(PATIENCE, async {
            while revocations.age().is_none() {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
        .await
        .expect("the stub broker's revocations are followed");
    }
    let config = VerifierConfig {
        origin: ORIGIN.into(),
        max_staleness,
        needs: Box::new(needs),
        max_body: MAX_BODY,
        replay_capacity: mandate_agent::DEFAULT_REPLAY_CAPACITY,
        clock_skew: mandate_agent::DEFAULT_CLOCK_SKEW,
    };
    let verifier = ResourceVerifier::new(config, &metadata, revocations).unwrap();

    let handled = Arc::new(AtomicUsize::new(0));
    let count = |handled: &Arc<AtomicUsize>| {
        let handled = handled.clone();
        move || {
            handled.fetch_add(1, Ordering::SeqCst);
        }
    };
    let (files, accounts, orders, careless, undeclared) = (
        count(&handled),
        count(&handled),
        count(&handled),
        count(&handled),
        count(&handled),
    );
    let app = Router::new()
        .route(
            "/files/{*path}",
            get(move |Path(path): Path<String>| async move {
                files();
                Json(json!({ "file": path }))
            }),
        )
        .route(
            "/accounts/{id}",
            get(move |Path(id): Path<String>| async move {
                accounts();
                Json(json!({ "account": id }))
            }),
        )
        .route(
            "/orders",
            post(move |body: Bytes| async move {
                orders();
                // The handler gets the body the verifier read.
                let order: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
                (StatusCode::CREATED, Json(json!({ "placed": order })))
            }),
        )
        .route(
            "/careless-orders",
            post(move || async move {
                careless();
                StatusCode::CREATED
            }),
        )
        .route(
            "/undeclared",
            get(move || async move {
                undeclared();
                "anything goes"
            }),
        )
        .layer(axum::middleware::from_fn_with_state(
            verifier,
            require_mandate,
        ));
    let agent = Agent::new(
        agent_key,
        Broker::new(&url).unwrap(),
        AgentInfo {
            name: "Tester".into(),
            publisher: None,
            version: None,
        },
    );
    World {
        app,
        agent,
        mandate,
        alice: SigningKey::from_seed(&[2; 32]),
        handled,
        broker,
    }
}

impl World {
    /// Calls `path` with `body` under the mandate and a fresh proof; the
    /// status and the JSON answer.
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        body: impl Into<Body>,
    ) -> (StatusCode, Value) {
        self.call_with(method, path, body, None).await
    }

    /// [`World::call`], with a confirmation when given.
    pub async fn call_with(
        &self,
        method: Method,
        path: &str,
        body: impl Into<Body>,
        confirmation: Option<&str>,
    ) -> (StatusCode, Value) {
        let url = format!("{ORIGIN}{path}");
        let mut req = Request::builder().method(method.clone()).uri(path);
        if let Some(token) = confirmation {
            req = req.header(mandate_agent::CONFIRMATION_HEADER, token);
        }
        for (name, value) in self
            .agent
            .present(&self.mandate, method.as_str(), &url)
            .unwrap()
        {
            req = req.header(name, value);
        }
        let req = req.body(body.into()).unwrap();
        let res = tokio::time::timeout(PATIENCE, self.app.clone().oneshot(req))
            .await
            .expect("the server answers in time")
            .unwrap();
        let status = res.status();
        let bytes = res.into_body().collect().await.unwrap().to_bytes();
        (
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        )
    }

    /// Calls `path` as [`World::call`] does, and checks that it is refused
    /// with `status` and `code` and that no handler ran.
    pub async fn refused(
        &self,
        method: Method,
        path: &str,
        body: impl Into<Body>,
        expected: (StatusCode, &str),
    ) {
        self.refused_with(method, path, body, None, expected).await;
    }

    /// [`World::refused`], with a confirmation when given.
    pub async fn refused_with(
        &self,
        method: Method,
        path: &str,
        body: impl Into<Body>,
        confirmation: Option<&str>,
        (status, code): (StatusCode, &str),
    ) {
        let before = self.handled();
        let (got, answer) = self.call_with(method, path, body, confirmation).await;
        assert_eq!(
            (got, answer["code"].as_str()),
            (status, Some(code)),
            "{path}: {answer}"
        );
        assert_eq!(self.handled(), before, "{path}: the handler ran");
    }

    /// How many calls reached a handler.
    fn handled(&self) -> usize {
        self.handled.load(Ordering::SeqCst)
    }
}

pub fn detail(kind: &str, action: &str, location: &str) -> AuthorizationDetail {
    AuthorizationDetail::new(kind, [action], [location]).unwrap()
}

fn money(amount: &str, currency: &str) -> Money {
    serde_json::from_value(json!({ "amount": amount, "currency": currency })).unwrap()
}

fn order(amount: &str, currency: &str) -> String {
    json!({ "amount": { "amount": amount, "currency": currency } }).to_string()
}

/// An order detail limited to `max` per call.
fn orders_up_to(max: &str) -> AuthorizationDetail {
    let mut d = detail("purchase_order", "place", "https://shop.example/orders");
    d.limits.max_amount = Some(money(max, "USD"));
    d
}

#[tokio::test]
async fn a_call_with_no_declared_need_is_refused_under_a_valid_mandate() {
    let w = world(vec![detail("files", "read", "https://files.example/")]).await;
    // The mandate and its proofs are good: a declared route takes them.
    let (status, answer) = w.call(Method::GET, "/files/q3.txt", Body::empty()).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(w.handled(), 1);
    // A route the server declares no need for refuses the same mandate.
    w.refused(
        Method::GET,
        "/undeclared",
        Body::empty(),
        (StatusCode::FORBIDDEN, "call.no_need"),
    )
    .await;
    // So does another method on a declared path.
    w.refused(
        Method::DELETE,
        "/files/q3.txt",
        Body::empty(),
        (StatusCode::FORBIDDEN, "call.no_need"),
    )
    .await;
}

#[tokio::test]
async fn a_call_for_another_identifier_is_refused() {
    let mut account = detail("accounts", "read", "https://bank.example/accounts");
    account.identifier = Some("acct-1".into());
    let w = world(vec![account]).await;
    w.refused(
        Method::GET,
        "/accounts/acct-2",
        Body::empty(),
        (StatusCode::FORBIDDEN, "call.out_of_scope"),
    )
    .await;
    let (status, answer) = w.call(Method::GET, "/accounts/acct-1", Body::empty()).await;
    assert_eq!(
        (status, &answer["account"]),
        (StatusCode::OK, &json!("acct-1"))
    );
    assert_eq!(w.handled(), 1);
}

#[tokio::test]
async fn an_amount_past_the_per_call_limit_or_in_another_currency_is_refused() {
    let w = world(vec![orders_up_to("100")]).await;
    for (amount, currency) in [("100.01", "USD"), ("5000", "USD"), ("50", "EUR")] {
        w.refused(
            Method::POST,
            "/orders",
            order(amount, currency),
            (StatusCode::FORBIDDEN, "call.out_of_scope"),
        )
        .await;
    }
    // Up to the limit, in its currency, the order goes through, body and all.
    for amount in ["100.00", "0.01"] {
        let (status, answer) = w.call(Method::POST, "/orders", order(amount, "USD")).await;
        assert_eq!(status, StatusCode::CREATED, "{answer}");
        assert_eq!(answer["placed"]["amount"]["amount"], amount);
    }
    assert_eq!(w.handled(), 2);
}

#[tokio::test]
async fn a_spending_call_that_states_no_amount_is_refused() {
    let w = world(vec![orders_up_to("100")]).await;
    // The server forgot to state what the route spends: the money limit
    // cannot be checked, so the call is refused.
    w.refused(
        Method::POST,
        "/careless-orders",
        Body::empty(),
        (StatusCode::FORBIDDEN, "call.amount_missing"),
    )
    .await;
    // An order whose body does not say how much is not read at all.
    for body in [
        "",
        "not json",
        r#"{"vendor":"Contoso"}"#,
        &order("-5", "USD"),
    ] {
        w.refused(
            Method::POST,
            "/orders",
            body.to_owned(),
            (StatusCode::BAD_REQUEST, "call.unreadable"),
        )
        .await;
    }
}

#[tokio::test]
async fn a_call_with_no_amount_passes_a_detail_without_a_money_limit() {
    let unlimited = detail("purchase_order", "place", "https://shop.example/orders");
    let w = world(vec![unlimited]).await;
    let (status, _) = w
        .call(Method::POST, "/careless-orders", Body::empty())
        .await;
    assert_eq!(status, StatusCode::CREATED);
    // Any amount, in any currency, when the user set no limit.
    let (status, _) = w
        .call(Method::POST, "/orders", order("999999", "JPY"))
        .await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(w.handled(), 2);
}

#[tokio::test]
async fn a_body_past_the_limit_is_refused_unread() {
    let w = world(vec![orders_up_to("100")]).await;
    let padded = format!(
        r#"{{"amount":{{"amount":"1","currency":"USD"}},"pad":"{}"}}"#,
        "x".repeat(MAX_BODY)
    );
    w.refused(
        Method::POST,
        "/orders",
        padded,
        (StatusCode::PAYLOAD_TOO_LARGE, "call.too_large"),
    )
    .await;
}

/// `signer`'s confirmation, for alice, of `method` on `target` with `body`
/// by the world's agent under its mandate.
fn confirmation(w: &World, signer: &SigningKey, method: &str, target: &str, body: &str) -> String {
    let now = unix_now();
    ConfirmationClaims {
        sub: "http://idp.test#alice".to_owned().try_into().unwrap(),
        cnf: Confirmation {
            jkt: w.agent.public_key().thumbprint(),
        },
        ath: mandate_core::token::chain_hash(&w.mandate.chain),
        htm: method.into(),
        htu: format!("{ORIGIN}{target}"),
        bdh: mandate_core::token::body_hash(body.as_bytes()),
        iat: now,
        exp: now + 300,
        jti: mandate_core::token::Jti::random(&mut rand_core::OsRng),
    }
    .sign(signer)
}

/// Orders up to 100 USD, each confirmed.
fn confirmed_orders() -> AuthorizationDetail {
    let mut d = orders_up_to("100");
    d.limits.confirm = Some(Confirm { above: None });
    d
}

#[tokio::test]
async fn a_confirmed_call_goes_through_once_with_its_exact_body() {
    let w = world(vec![confirmed_orders()]).await;
    let body = order("40", "USD");
    // Without a confirmation the order is refused.
    w.refused(
        Method::POST,
        "/orders?dry_run=false",
        body.clone(),
        (StatusCode::FORBIDDEN, "confirm.required"),
    )
    .await;
    let token = confirmation(&w, &w.alice, "POST", "/orders?dry_run=false", &body);
    // A body that differs by one byte is refused.
    w.refused_with(
        Method::POST,
        "/orders?dry_run=false",
        order("41", "USD"),
        Some(&token),
        (StatusCode::FORBIDDEN, "confirm.body_mismatch"),
    )
    .await;
    // So is another query, and another path.
    w.refused_with(
        Method::POST,
        "/orders?dry_run=true",
        body.clone(),
        Some(&token),
        (StatusCode::FORBIDDEN, "confirm.mismatch"),
    )
    .await;
    // The exact call goes through, with the body the user saw.
    let (status, answer) = w
        .call_with(
            Method::POST,
            "/orders?dry_run=false",
            body.clone(),
            Some(&token),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{answer}");
    assert_eq!(answer["placed"]["amount"]["amount"], "40");
    // Once.
    w.refused_with(
        Method::POST,
        "/orders?dry_run=false",
        body.clone(),
        Some(&token),
        (StatusCode::FORBIDDEN, "confirm.replayed"),
    )
    .await;
    assert_eq!(w.handled(), 1);
}

#[tokio::test]
async fn a_confirmation_from_another_key_is_refused() {
    let w = world(vec![confirmed_orders()]).await;
    let body = order("40", "USD");
    // The agent confirming its own call: its key is in the mandate's key
    // set (it signs the proofs), but not bound to alice.
    let token = confirmation(
        &w,
        &SigningKey::from_seed(&[3; 32]),
        "POST",
        "/orders",
        &body,
    );
    w.refused_with(
        Method::POST,
        "/orders",
        body.clone(),
        Some(&token),
        (StatusCode::UNAUTHORIZED, "signer.not_bound"),
    )
    .await;
    // A stranger's key is not even in the key set.
    let token = confirmation(
        &w,
        &SigningKey::from_seed(&[9; 32]),
        "POST",
        "/orders",
        &body,
    );
    w.refused_with(
        Method::POST,
        "/orders",
        body,
        Some(&token),
        (StatusCode::UNAUTHORIZED, "key.unknown"),
    )
    .await;
}

#[tokio::test]
async fn a_confirmation_above_an_amount_is_needed_only_above_it() {
    let mut d = orders_up_to("100");
    d.limits.confirm = Some(Confirm {
        above: Some(money("50", "USD")),
    });
    let w = world(vec![d]).await;
    let (status, answer) = w.call(Method::POST, "/orders", order("50", "USD")).await;
    assert_eq!(status, StatusCode::CREATED, "{answer}");
    w.refused(
        Method::POST,
        "/orders",
        order("50.01", "USD"),
        (StatusCode::FORBIDDEN, "confirm.required"),
    )
    .await;
}

#[tokio::test]
async fn a_grant_for_one_call_serves_one_call() {
    let mut once = detail("files", "read", "https://files.example/");
    once.limits.max_calls = Some(1);
    let w = world(vec![once]).await;
    let (status, answer) = w.call(Method::GET, "/files/q3.txt", Body::empty()).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    w.refused(
        Method::GET,
        "/files/q4.txt",
        Body::empty(),
        (StatusCode::FORBIDDEN, "limit.exceeded"),
    )
    .await;
    // A call the grant does not permit is refused for that, and counts nothing.
    w.refused(
        Method::GET,
        "/accounts/acct-1",
        Body::empty(),
        (StatusCode::FORBIDDEN, "call.out_of_scope"),
    )
    .await;
}
