//! Requests as an attacker files them: signed requests for any user from
//! keys that cost nothing to make, and a flood of them against one user
//! (one attacker key and many throwaway keys, as fast as the broker
//! answers). The end-to-end tests and `mandate-flood`, which the app's
//! flood test runs, share this one copy.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use futures_util::StreamExt as _;
use mandate_agent::unix_now;
use mandate_core::scope::AuthorizationDetail;
use mandate_core::token::{AgentInfo, RequestClaims};
use mandate_core::{Claims as _, SigningKey};
use rand_core::OsRng;
use serde_json::json;

/// How long one flood request may wait for its answer.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(30);

/// A `files` scope: `actions` at `location`.
pub fn files(actions: &[&str], location: &str) -> AuthorizationDetail {
    AuthorizationDetail::new("files", actions.iter().copied(), [location]).unwrap()
}

/// A request for `principal`, signed by `agent`, that the broker takes.
pub fn signed_request(agent: &SigningKey, principal: &str, jti: &str) -> String {
    let now = unix_now();
    RequestClaims {
        principal_hint: Some(principal.into()),
        agent: AgentInfo {
            name: "Prize bot".into(),
            publisher: None,
            version: None,
        },
        authorization_details: vec![files(&["read"], "https://files.example/reports/")],
        purpose: "Read the reports".into(),
        intent: None,
        lifetime: 3600,
        max_depth: 1,
        parent_chain: vec![],
        binding_code: "ABCD-EF12".to_string().try_into().unwrap(),
        jti: jti.to_string().try_into().unwrap(),
        iat: now,
        exp: now + 600,
        oauth_client: None,
    }
    .sign(agent)
}

/// The broker's answers to a flood: how many of each HTTP status and
/// error code (empty when the body had none). A request the broker did
/// not answer counts as status 0, code `unanswered`.
pub type Tally = BTreeMap<(u16, String), usize>;

/// A flood of requests for one user.
#[derive(Debug, Clone)]
pub struct Flood {
    /// The broker's URL.
    pub broker: String,
    /// The user's principal, `ISSUER#SUBJECT`.
    pub principal: String,
    /// Requests in all.
    pub requests: usize,
    /// Throwaway keys, besides the attacker's.
    pub throwaway: usize,
    /// Requests in flight at once.
    pub concurrency: usize,
}

impl Flood {
    /// Files the requests, every other one the attacker's and the rest
    /// round the throwaway keys, each signed as it is sent; counts each
    /// answer into `answered` as it comes.
    pub async fn run(&self, answered: &AtomicUsize) -> Tally {
        let attacker = SigningKey::generate(&mut OsRng);
        let throwaway: Vec<SigningKey> = (0..self.throwaway.max(1))
            .map(|_| SigningKey::generate(&mut OsRng))
            .collect();
        let url = format!("{}/v1/requests", self.broker);
        let http = mandate_agent::client::http_client().unwrap();
        let answers = futures_util::stream::iter(0..self.requests)
            .map(|n| {
                let key = if n % 2 == 0 {
                    &attacker
                } else {
                    &throwaway[(n / 2) % throwaway.len()]
                };
                let body = json!({
                    "request": signed_request(key, &self.principal, &format!("flood-{n}"))
                });
                let req = http.post(&url).json(&body).timeout(ANSWER_TIMEOUT);
                async move {
                    let answer = match req.send().await {
                        Ok(res) => {
                            let status = res.status().as_u16();
                            let body: serde_json::Value = res.json().await.unwrap_or_default();
                            (status, body["code"].as_str().unwrap_or("").to_owned())
                        }
                        Err(_) => (0, "unanswered".to_owned()),
                    };
                    answered.fetch_add(1, Ordering::Relaxed);
                    answer
                }
            })
            .buffer_unordered(self.concurrency.max(1))
            .collect::<Vec<_>>()
            .await;
        let mut tally = Tally::new();
        for a in answers {
            *tally.entry(a).or_default() += 1;
        }
        tally
    }
}

/// Requests the broker filed (201).
pub fn filed(tally: &Tally) -> usize {
    tally
        .iter()
        .filter(|((status, _), _)| *status == 201)
        .map(|(_, n)| n)
        .sum()
}
