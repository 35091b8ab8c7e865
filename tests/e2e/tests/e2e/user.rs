//! The user's side, as the desktop app will do it: a real sign-in, an
//! enrolled key, the live inbox, signed decisions and revocations.

use std::time::Duration;

use futures_util::StreamExt as _;
use mandate_agent::sse::{SseEvent, SseParser};
use mandate_agent::unix_now;
use mandate_core::scope::AuthorizationDetail;
use mandate_core::{SigningKey, TokenId};
use rand_core::OsRng;
use serde_json::{Value, json};

use mandate_e2e::procs::sign_in_with_nonce;

pub struct User {
    pub key: SigningKey,
    pub bearer: String,
    pub principal: String,
    pub broker: String,
    pub http: reqwest::Client,
}

impl User {
    /// Signs `name` in at `issuer` and enrolls a fresh user key at `broker`.
    pub async fn enrolled(issuer: &str, name: &str, broker: &str) -> User {
        let session = SigningKey::generate(&mut OsRng);
        let nonce = session.thumbprint().to_string();
        let bearer = sign_in_with_nonce(issuer, name, "mandate-desktop", Some(&nonce)).await;
        let user = User {
            key: SigningKey::generate(&mut OsRng),
            bearer,
            principal: format!("{issuer}#{name}"),
            broker: broker.to_owned(),
            http: mandate_agent::client::http_client().unwrap(),
        };
        mandate_client::BrokerClient::new(broker)
            .unwrap()
            .enroll(
                &user.bearer,
                &user.key,
                Some(mandate_client::broker::NewKey {
                    session: &session,
                    device: "e2e device",
                }),
                unix_now(),
                &mut OsRng,
            )
            .await
            .unwrap();
        user
    }

    /// An authenticated call; returns the status and the JSON body.
    pub async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut req = self
            .http
            .request(method, format!("{}{path}", self.broker))
            .bearer_auth(&self.bearer)
            .timeout(Duration::from_secs(15));
        if let Some(body) = body {
            req = req.json(&body);
        }
        let res = req.send().await.unwrap();
        let status = res.status().as_u16();
        let body = res.json().await.unwrap_or(Value::Null);
        (status, body)
    }

    /// Opens the live inbox.
    pub async fn inbox_events(&self) -> Events {
        Events::open(
            self.http
                .get(format!("{}/v1/inbox/events", self.broker))
                .bearer_auth(&self.bearer),
        )
        .await
    }

    /// The pending request `id` from the inbox, as the app fetches it.
    pub async fn pending(&self, id: &str) -> String {
        let (status, body) = self.send(reqwest::Method::GET, "/v1/inbox", None).await;
        assert_eq!(status, 200, "{body}");
        body["requests"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["id"] == id)
            .unwrap_or_else(|| panic!("{id} is not in the inbox: {body}"))["request"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    /// Signs a root grant answering `request`, with `scopes` in place of
    /// what it asked for.
    pub fn grant(&self, request: &str, scopes: Vec<AuthorizationDetail>) -> String {
        let narrowing = mandate_client::Narrowing {
            scopes: Some(scopes),
            ..Default::default()
        };
        let principal = self.principal.clone().try_into().unwrap();
        mandate_client::decision::grant_for(
            request,
            &principal,
            &self.key,
            &narrowing,
            unix_now(),
            &mut OsRng,
        )
        .unwrap()
    }

    /// Posts a decision; returns the status and body.
    pub async fn decide(&self, id: &str, decision: Value) -> (u16, Value) {
        self.send(
            reqwest::Method::POST,
            &format!("/v1/requests/{id}/decision"),
            Some(decision),
        )
        .await
    }

    /// Has `agent` file `ask`, and approves it as asked.
    pub async fn approve(
        &self,
        agent: &mandate_agent::Agent,
        ask: &mandate_agent::Ask,
    ) -> mandate_agent::Mandate {
        let pending = agent.request(ask).await.unwrap();
        let request = self.pending(&pending.id.to_string()).await;
        let grant = self.grant(&request, ask.scopes.clone());
        let (status, body) = self
            .decide(&pending.id.to_string(), json!({ "grant": grant }))
            .await;
        assert_eq!(status, 200, "{body}");
        agent.wait(&pending, Duration::from_secs(10)).await.unwrap()
    }

    /// The user's confirmation, signed by `signer` (the user's key, or
    /// another to test a refusal), of `method` `url` with `body` by
    /// `agent` under `mandate`.
    pub fn confirmation(
        &self,
        signer: &SigningKey,
        agent: &mandate_agent::Agent,
        mandate: &mandate_agent::Mandate,
        method: &str,
        url: &str,
        body: &str,
    ) -> String {
        use mandate_core::Claims as _;
        use mandate_core::token::{ConfirmationClaims, Jti, body_hash, chain_hash};
        let now = unix_now();
        ConfirmationClaims {
            sub: self.principal.clone().try_into().unwrap(),
            cnf: mandate_core::token::Confirmation {
                jkt: agent.public_key().thumbprint(),
            },
            ath: chain_hash(&mandate.chain),
            htm: method.into(),
            htu: url.into(),
            bdh: body_hash(body.as_bytes()),
            iat: now,
            exp: now + 300,
            jti: Jti::random(&mut OsRng),
        }
        .sign(signer)
    }

    /// Signs and posts a revocation of `grants`.
    pub async fn revoke(&self, grants: &[TokenId]) -> (u16, Value) {
        let principal = self.principal.clone().try_into().unwrap();
        let revocation = mandate_client::decision::revocation_for(
            grants,
            &principal,
            &self.key,
            Some("no longer needed"),
            unix_now(),
            &mut OsRng,
        );
        self.send(
            reqwest::Method::POST,
            "/v1/revocations",
            Some(json!({ "revocation": revocation })),
        )
        .await
    }
}

/// A server-sent event stream being read.
pub struct Events {
    stream:
        std::pin::Pin<Box<dyn futures_util::Stream<Item = reqwest::Result<bytes::Bytes>> + Send>>,
    parser: SseParser,
    ready: std::collections::VecDeque<SseEvent>,
}

impl Events {
    pub async fn open(req: reqwest::RequestBuilder) -> Events {
        let res = tokio::time::timeout(Duration::from_secs(10), req.send())
            .await
            .expect("the stream did not open")
            .unwrap();
        assert_eq!(res.status(), 200);
        Events {
            stream: Box::pin(res.bytes_stream()),
            parser: SseParser::default(),
            ready: Default::default(),
        }
    }

    /// The next event named `name`, waiting at most `within`.
    pub async fn next_named(&mut self, name: &str, within: Duration) -> SseEvent {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            while let Some(event) = self.ready.pop_front() {
                if event.name == name {
                    return event;
                }
            }
            let chunk = tokio::time::timeout_at(deadline, self.stream.next())
                .await
                .unwrap_or_else(|_| panic!("no {name} event within {within:?}"))
                .expect("the stream ended")
                .unwrap();
            self.ready.extend(self.parser.feed(&chunk));
        }
    }
}
