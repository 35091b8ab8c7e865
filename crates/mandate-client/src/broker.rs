//! The broker, as the signed-in user talks to it: enroll the user key,
//! read the inbox, post decisions and revocations. Every call carries the
//! session's ID token as its bearer.

use mandate_core::token::{PopClaims, chain_hash};
use mandate_core::{Claims as _, Jwk, SigningKey, TokenId, UnixTime};
use rand_core::CryptoRngCore;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::ClientError;

/// A broker, by its base URL.
#[derive(Debug, Clone)]
pub struct BrokerClient {
    url: String,
    http: reqwest::Client,
    /// For event streams: no overall timeout.
    streaming: reqwest::Client,
}

/// A user key's binding, as the broker signed it.
#[derive(Debug, Clone, Deserialize)]
pub struct Enrollment {
    /// The `mandate-binding+jwt`.
    pub binding: String,
    /// The key's thumbprint.
    pub jkt: String,
    /// When the binding lapses.
    pub expires_at: i64,
}

/// What enrolling a new key (not renewing one) takes.
#[derive(Clone, Copy)]
pub struct NewKey<'a> {
    /// The sign-in's session key: the ID token's nonce is its thumbprint.
    pub session: &'a SigningKey,
    /// This device's name, shown on the user's other devices.
    pub device: &'a str,
}

/// One of the user's keys, as the broker lists it.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct KeyItem {
    /// The key's thumbprint.
    pub jkt: String,
    /// The device's name, as given at enrollment.
    pub device: String,
    /// When the key was first enrolled.
    pub enrolled_at: i64,
    /// When the broker last accepted something the key signed.
    pub last_used_at: Option<i64>,
    /// When its current binding lapses.
    pub expires_at: i64,
}

/// A pending request in the user's inbox.
#[derive(Debug, Clone, Deserialize)]
pub struct InboxItem {
    /// The request's id.
    pub id: TokenId,
    /// The compact request; verify it before showing it.
    pub request: String,
    /// For a sub-agent's request, the chain behind it, root first.
    #[serde(default)]
    pub parent_chain: Vec<String>,
    /// The public keys of the agents that chain names; each link is
    /// verified with them before it is shown.
    #[serde(default)]
    pub keys: Vec<mandate_core::Jwk>,
    /// When the broker received it.
    pub received_at: i64,
    /// When it lapses.
    pub expires_at: i64,
    /// For `mcp` scopes, what the servers say of their tools, relayed by
    /// their gateways; verified before it is shown
    /// ([`crate::tool_claims`]).
    #[serde(default)]
    pub tools: Vec<crate::tool_claims::ToolsStatement>,
    /// When the user last denied this agent, within the last day, as the
    /// broker says: the app shows it beside the request.
    #[serde(default)]
    pub denied_before: Option<i64>,
}

#[derive(Deserialize)]
struct Inbox {
    requests: Vec<InboxItem>,
}

impl BrokerClient {
    /// A client for the broker at `url`, which must be `https://`, or
    /// `http://` to this machine (`broker.url_insecure` otherwise; the
    /// rule is [`mandate_agent::client::broker_url`], shared by every
    /// client of a broker).
    pub fn new(url: &str) -> Result<BrokerClient, ClientError> {
        let url = mandate_agent::client::broker_url(url)?;
        let http = crate::http::client().map_err(ClientError::unreachable)?;
        let streaming = crate::http::streaming_client().map_err(ClientError::unreachable)?;
        Ok(BrokerClient {
            url,
            http,
            streaming,
        })
    }

    /// The broker's base URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Enrolls `key` for the signed-in user, or renews its binding, proving
    /// possession of it for this very sign-in (the proof's `ath` is the
    /// hash of the bearer). A key the broker has not bound (or whose
    /// binding lapsed) needs `new`: the sign-in's session key, whose
    /// thumbprint was the sign-in's nonce, and this device's name.
    pub async fn enroll(
        &self,
        bearer: &str,
        key: &SigningKey,
        new: Option<NewKey<'_>>,
        now: UnixTime,
        rng: &mut impl CryptoRngCore,
    ) -> Result<Enrollment, ClientError> {
        let mut proof = |by: &SigningKey| {
            PopClaims {
                htm: "POST".into(),
                htu: format!("{}/v1/keys", self.url),
                iat: now,
                jti: mandate_core::token::Jti::random(rng),
                ath: chain_hash(&[bearer]),
            }
            .sign(by)
        };
        let jwk: Jwk = key.public().to_jwk();
        let mut body = json!({ "jwk": jwk, "proof": proof(key) });
        if let Some(new) = new {
            body["device"] = json!(new.device);
            body["session_jwk"] = json!(new.session.public().to_jwk());
            body["session_proof"] = json!(proof(new.session));
        }
        self.send(reqwest::Method::POST, "/v1/keys", bearer, Some(body))
            .await
    }

    /// Removes user keys: `revocation` is a `mandate-key-revocation+jwt`
    /// signed by one of the user's keys.
    pub async fn remove_keys(&self, bearer: &str, revocation: &str) -> Result<(), ClientError> {
        self.send::<Value>(
            reqwest::Method::POST,
            "/v1/keys/revocations",
            bearer,
            Some(json!({ "revocation": revocation })),
        )
        .await
        .map(|_| ())
    }

    /// The signed-in user's keys, oldest first.
    pub async fn keys(&self, bearer: &str) -> Result<Vec<KeyItem>, ClientError> {
        #[derive(Deserialize)]
        struct Keys {
            keys: Vec<KeyItem>,
        }
        self.send::<Keys>(reqwest::Method::GET, "/v1/keys", bearer, None)
            .await
            .map(|k| k.keys)
    }

    /// The user's pending requests, oldest first.
    pub async fn inbox(&self, bearer: &str) -> Result<Vec<InboxItem>, ClientError> {
        let inbox: Inbox = self
            .send(reqwest::Method::GET, "/v1/inbox", bearer, None)
            .await?;
        Ok(inbox.requests)
    }

    /// Those of the requests `ids` (at most
    /// [`mandate_broker::handlers::MAX_INBOX_IDS`]) that are
    /// pending in the user's inbox: `GET /v1/inbox?ids=`.
    pub async fn inbox_among(
        &self,
        bearer: &str,
        ids: &[String],
    ) -> Result<Vec<InboxItem>, ClientError> {
        // Request ids are base64url: nothing in them needs escaping.
        let path = format!("/v1/inbox?ids={}", ids.join(","));
        let inbox: Inbox = self.send(reqwest::Method::GET, &path, bearer, None).await?;
        Ok(inbox.requests)
    }

    /// Opens the user's inbox stream (server-sent events), resuming after
    /// the event `last` when given. The caller reads the body's chunks.
    pub async fn inbox_events(
        &self,
        bearer: &str,
        last: Option<&str>,
    ) -> Result<
        impl futures_util::Stream<Item = reqwest::Result<bytes::Bytes>> + Unpin + use<>,
        ClientError,
    > {
        let mut req = self
            .streaming
            .get(format!("{}/v1/inbox/events", self.url))
            .bearer_auth(bearer)
            .header("accept", "text/event-stream");
        if let Some(last) = last {
            req = req.header("last-event-id", last);
        }
        let res = req
            .send()
            .await
            .map_err(|e| ClientError::unreachable(e.without_url().to_string()))?;
        let status = res.status();
        if !status.is_success() {
            let bytes = res.bytes().await.unwrap_or_default();
            return Err(mandate_agent::client::refusal(status, &bytes).into());
        }
        Ok(res.bytes_stream())
    }

    /// Posts a signed grant (from [`crate::decision::grant_for`]) answering
    /// the request `id`.
    pub async fn approve(
        &self,
        bearer: &str,
        id: &TokenId,
        grant: &str,
    ) -> Result<(), ClientError> {
        let path = format!("/v1/requests/{id}/decision");
        self.send::<Value>(
            reqwest::Method::POST,
            &path,
            bearer,
            Some(json!({ "grant": grant })),
        )
        .await
        .map(drop)
    }

    /// Posts a signed denial of the request `id`.
    pub async fn deny(&self, bearer: &str, id: &TokenId, denial: &str) -> Result<(), ClientError> {
        let path = format!("/v1/requests/{id}/decision");
        self.send::<Value>(
            reqwest::Method::POST,
            &path,
            bearer,
            Some(json!({ "denial": denial })),
        )
        .await
        .map(drop)
    }

    /// Posts a grant re-issued in place of `replaces` (a revoked grant
    /// answering the same request).
    pub async fn reissue(
        &self,
        bearer: &str,
        request_id: &str,
        grant: &str,
        replaces: &str,
    ) -> Result<(), ClientError> {
        let path = format!("/v1/requests/{request_id}/decision");
        self.send::<Value>(
            reqwest::Method::POST,
            &path,
            bearer,
            Some(json!({ "grant": grant, "replaces": replaces })),
        )
        .await
        .map(drop)
    }

    /// Posts a signed revocation.
    pub async fn revoke(&self, bearer: &str, revocation: &str) -> Result<(), ClientError> {
        let body = json!({ "revocation": revocation });
        self.send::<Value>(reqwest::Method::POST, "/v1/revocations", bearer, Some(body))
            .await
            .map(drop)
    }

    /// The user's receipts after feed position `since`, oldest first, one
    /// page (at most 500) at a time.
    pub async fn receipts(
        &self,
        bearer: &str,
        since: i64,
    ) -> Result<Vec<ReceiptItem>, ClientError> {
        #[derive(Deserialize)]
        struct Receipts {
            receipts: Vec<ReceiptItem>,
        }
        self.send::<Receipts>(
            reqwest::Method::GET,
            &format!("/v1/receipts?since={since}"),
            bearer,
            None,
        )
        .await
        .map(|r| r.receipts)
    }

    /// The user's grants, oldest first, with their revocation state.
    pub async fn grants(&self, bearer: &str) -> Result<Vec<GrantItem>, ClientError> {
        #[derive(Deserialize)]
        struct Grants {
            grants: Vec<GrantItem>,
        }
        self.send::<Grants>(reqwest::Method::GET, "/v1/grants", bearer, None)
            .await
            .map(|g| g.grants)
    }

    /// The signed-in user's calls waiting to be confirmed, oldest first.
    pub async fn confirmations(&self, bearer: &str) -> Result<Vec<CallItem>, ClientError> {
        #[derive(Deserialize)]
        struct Calls {
            confirmations: Vec<CallItem>,
        }
        self.send::<Calls>(reqwest::Method::GET, "/v1/confirmations", bearer, None)
            .await
            .map(|c| c.confirmations)
    }

    /// Answers a call to confirm: the user's signed confirmation, or a
    /// refusal with an optional reason.
    pub async fn answer_call(
        &self,
        bearer: &str,
        id: &str,
        confirmation: Option<&str>,
        reason: Option<&str>,
    ) -> Result<(), ClientError> {
        let mut body = json!({});
        if let Some(token) = confirmation {
            body["confirmation"] = json!(token);
        }
        if let Some(reason) = reason {
            body["reason"] = json!(reason);
        }
        self.send::<Value>(
            reqwest::Method::POST,
            &format!("/v1/confirmations/{id}/decision"),
            bearer,
            Some(body),
        )
        .await
        .map(drop)
    }

    /// Blocks an agent for the signed-in user ("deny always"): `policy` is
    /// a `mandate-policy+jwt` with effect `deny`, signed by the user's key.
    pub async fn block(&self, bearer: &str, policy: &str) -> Result<BlockItem, ClientError> {
        self.send(
            reqwest::Method::POST,
            "/v1/blocks",
            bearer,
            Some(json!({ "policy": policy })),
        )
        .await
    }

    /// The signed-in user's blocks in force, newest first.
    pub async fn blocks(&self, bearer: &str) -> Result<Vec<BlockItem>, ClientError> {
        #[derive(Deserialize)]
        struct Blocks {
            blocks: Vec<BlockItem>,
        }
        self.send::<Blocks>(reqwest::Method::GET, "/v1/blocks", bearer, None)
            .await
            .map(|b| b.blocks)
    }

    /// Lifts the signed-in user's block of the agent key `agent`.
    pub async fn lift_block(&self, bearer: &str, agent: &str) -> Result<(), ClientError> {
        let res = self
            .http
            .delete(format!("{}/v1/blocks/{agent}", self.url))
            .bearer_auth(bearer)
            .send()
            .await
            .map_err(|e| ClientError::unreachable(e.without_url().to_string()))?;
        let status = res.status();
        if status.is_success() {
            return Ok(());
        }
        let bytes = res
            .bytes()
            .await
            .map_err(|e| ClientError::unreachable(e.without_url().to_string()))?;
        Err(mandate_agent::client::refusal(status, &bytes).into())
    }

    async fn send<T: DeserializeOwned>(
        &self,
        method: reqwest::Method,
        path: &str,
        bearer: &str,
        body: Option<Value>,
    ) -> Result<T, ClientError> {
        let mut req = self
            .http
            .request(method, format!("{}{path}", self.url))
            .bearer_auth(bearer);
        if let Some(body) = body {
            req = req.json(&body);
        }
        Ok(mandate_agent::client::read_json(req).await?)
    }
}

/// A call an agent asks the user to confirm, as the broker serves it:
/// verify the chain and hash the body before showing it.
#[derive(Debug, Clone, Deserialize)]
pub struct CallItem {
    /// Its id.
    pub id: String,
    /// The chain the call runs under, root first.
    pub chain: Vec<String>,
    /// The agents' public keys.
    #[serde(default)]
    pub keys: Vec<Jwk>,
    /// The method.
    pub method: String,
    /// The URI, with its query.
    pub uri: String,
    /// The body, base64url.
    pub body: String,
    /// The agent's own account of it.
    pub summary: String,
    /// When the broker received it.
    pub received_at: i64,
    /// When it lapses.
    pub expires_at: i64,
}

/// An agent the user denies always, as the broker lists it.
#[derive(Debug, Clone, Serialize, Deserialize, ts_rs::TS)]
pub struct BlockItem {
    /// The agent key's thumbprint.
    pub agent: String,
    /// The id of the user's signed policy.
    pub policy_id: String,
    /// The signed policy (`mandate-policy+jwt`, effect `deny`).
    pub policy: String,
    /// The user's name for it.
    pub label: Option<String>,
    /// When the broker stored it.
    pub created_at: i64,
    /// When it ends.
    pub expires_at: i64,
    /// How many requests it refused.
    pub refusals: i64,
}

/// One of the user's grants, as the broker holds it.
#[derive(Debug, Clone, Serialize, Deserialize, ts_rs::TS)]
pub struct GrantItem {
    /// The grant's id.
    pub id: String,
    /// The compact grant.
    pub grant: String,
    /// Its parent, for sub-delegations.
    pub parent: Option<String>,
    /// When it expires (unix seconds).
    pub expires_at: i64,
    /// Whether it has been revoked.
    pub revoked: bool,
    /// When it was revoked.
    #[serde(default)]
    pub revoked_at: Option<i64>,
}

/// A receipt from the user's feed, with what it takes to check it. The
/// broker checked it too, but the app trusts only its own check.
#[derive(Debug, Clone, Deserialize)]
pub struct ReceiptItem {
    /// Its position in the feed.
    pub seq: i64,
    /// The compact receipt.
    pub receipt: String,
    /// When the broker accepted it.
    pub received_at: i64,
    /// The chain it was made under, root first.
    #[serde(default)]
    pub chain: Vec<String>,
    /// The agents' public keys; for a witness receipt, the witness's.
    #[serde(default)]
    pub keys: Vec<Jwk>,
    /// For a witness receipt (docs/protocol.md 4.10), the thumbprint of
    /// the key the broker trusts as the witness that signed it.
    #[serde(default)]
    pub witness: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::BrokerClient;

    #[test]
    fn the_app_reaches_a_broker_over_https_or_on_this_machine_only() {
        let refused = BrokerClient::new("http://broker.example").unwrap_err();
        assert_eq!(refused.code(), "broker.url_insecure");
        assert_eq!(
            BrokerClient::new("broker.example").unwrap_err().code(),
            "broker.url_malformed"
        );
        for ok in ["https://broker.example/", "http://127.0.0.1:7700"] {
            let client = BrokerClient::new(ok).unwrap();
            assert_eq!(client.url(), ok.trim_end_matches('/'));
        }
    }
}
