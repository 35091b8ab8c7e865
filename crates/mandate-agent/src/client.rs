//! The broker's HTTP API, as agents and verifiers use it.

use std::time::Duration;

use mandate_core::{Jwk, PublicKey, TokenId};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::json;

use crate::{AgentError, BrokerError, LocalCode};

/// How long one HTTP exchange may take, besides a long-poll's wait.
const TIMEOUT: Duration = Duration::from_secs(15);

/// A broker, by its base URL.
#[derive(Debug, Clone)]
pub struct Broker {
    url: String,
    http: reqwest::Client,
}

/// The broker's answer to a filed request.
#[derive(Debug, Clone, Deserialize)]
pub struct Submitted {
    /// The request's id.
    pub id: TokenId,
    /// `pending`.
    pub status: String,
    /// The code to show the user.
    pub binding_code: String,
    /// When the request lapses undecided.
    pub expires_at: i64,
}

/// A request as the broker reports it to its agent.
#[derive(Debug, Clone, Deserialize)]
pub struct RequestView {
    /// The request's id.
    pub id: TokenId,
    /// `pending`, `approved`, `denied` or `expired`.
    pub status: String,
    /// When it lapses.
    pub expires_at: i64,
    /// The root grant, once approved.
    #[serde(default)]
    pub grant: Option<String>,
    /// The binding of the user key that signed it.
    #[serde(default)]
    pub binding: Option<String>,
    /// That user key.
    #[serde(default)]
    pub user_key: Option<Jwk>,
    /// The denial, once denied.
    #[serde(default)]
    pub denial: Option<String>,
}

/// The broker's metadata.
#[derive(Debug, Clone, Deserialize)]
pub struct Metadata {
    /// The broker's URL, the `iss` of its bindings.
    pub issuer: String,
    /// Its signing keys.
    pub jwks: Jwks,
}

impl Metadata {
    /// The broker's signing keys, refusing an unusable one.
    pub fn keys(&self) -> Result<Vec<PublicKey>, mandate_core::Error> {
        self.jwks.keys.iter().map(PublicKey::from_jwk).collect()
    }
}

/// A JWK set.
#[derive(Debug, Clone, Deserialize)]
pub struct Jwks {
    /// The keys.
    pub keys: Vec<Jwk>,
}

/// One entry of the feed: a revoked grant, or a removed user key.
#[derive(Debug, Clone, Deserialize)]
pub struct Revoked {
    /// Its position in the feed.
    pub seq: u64,
    /// The grant.
    #[serde(default)]
    pub grant: Option<TokenId>,
    /// The removed user key's thumbprint.
    #[serde(default)]
    pub key: Option<mandate_core::Thumbprint>,
}

/// One page of the revocation feed.
#[derive(Debug, Clone, Deserialize)]
pub struct FeedPage {
    /// The entries after the position asked for, oldest first.
    pub revoked: Vec<Revoked>,
    /// Where to resume.
    pub next: u64,
    /// The broker's latest signed checkpoint (`mandate-checkpoint+jwt`);
    /// a broker that signs none is never current.
    #[serde(default)]
    pub checkpoint: Option<String>,
}

#[derive(Deserialize)]
struct ErrorBody {
    code: String,
    message: String,
    #[serde(default)]
    retry_after: Option<u64>,
}

/// A call filed for the user to confirm.
#[derive(Debug, Clone, Deserialize)]
pub struct AskedConfirmation {
    /// Its id.
    pub id: String,
    /// When it lapses undecided.
    pub expires_at: i64,
}

/// Where a call to confirm stands.
#[derive(Debug, Clone, Deserialize)]
pub struct ConfirmationState {
    /// `pending`, `confirmed`, `refused` or `expired`.
    pub status: String,
    /// Once confirmed: the user's confirmation.
    #[serde(default)]
    pub confirmation: Option<String>,
    /// Once refused: the user's reason.
    #[serde(default)]
    pub reason: Option<String>,
}

#[derive(Deserialize)]
struct ReceiptAccepted {
    id: TokenId,
}

/// Why a broker URL was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BrokerUrlError {
    /// Not an absolute URL with a host, or one with credentials, a query
    /// or a fragment: `broker.url_malformed`.
    #[error(
        "the broker URL must be an absolute URL with a host, and no credentials, query or fragment"
    )]
    Malformed,
    /// Plain `http://` to a host that is not this machine, or another
    /// scheme: `broker.url_insecure`.
    #[error(
        "the broker must be reached over https; plain http only to 127.0.0.0/8, ::1 or localhost"
    )]
    Insecure,
}

impl BrokerUrlError {
    /// The stable code.
    pub fn code(&self) -> &'static str {
        match self {
            BrokerUrlError::Malformed => LocalCode::UrlMalformed.as_str(),
            BrokerUrlError::Insecure => LocalCode::UrlInsecure.as_str(),
        }
    }
}

/// A broker's base URL, checked: `https://` to any host, `http://` only to
/// this machine ([`mandate_core::transport::secure_or_loopback`]), with
/// no credentials, query or fragment; returned without a trailing `/`.
/// Every client of a broker (the SDK, the verifier, the CLI and the
/// desktop app) builds its URL with this.
pub fn broker_url(url: &str) -> Result<String, BrokerUrlError> {
    let parsed = reqwest::Url::parse(url).map_err(|_| BrokerUrlError::Malformed)?;
    if !parsed.username().is_empty()
        || parsed.password().is_some()
        || parsed.query().is_some()
        || parsed.fragment().is_some()
    {
        return Err(BrokerUrlError::Malformed);
    }
    if !secure_or_loopback(&parsed) {
        return Err(BrokerUrlError::Insecure);
    }
    Ok(url.trim_end_matches('/').to_owned())
}

/// Whether `url` is `https://`, or `http://` to this machine: the rule of
/// [`mandate_core::transport::secure_or_loopback`] on a parsed URL.
pub fn secure_or_loopback(url: &reqwest::Url) -> bool {
    use mandate_core::transport::Host;
    let host = url.host_str().map(|h| {
        // The parser writes IPv6 addresses in brackets and IPv4 addresses
        // in dotted decimal, whatever form the URL gave them in.
        if let Some(v6) = h.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
            v6.parse().map_or(Host::Domain(h), Host::Ipv6)
        } else {
            h.parse().map_or(Host::Domain(h), Host::Ipv4)
        }
    });
    mandate_core::transport::secure_or_loopback(url.scheme(), host)
}

impl Broker {
    /// A client for the broker at `url`, which must be `https://`, or
    /// `http://` to this machine ([`broker_url`]).
    pub fn new(url: &str) -> Result<Broker, AgentError> {
        let url = broker_url(url)?;
        let http = http_client()?;
        Ok(Broker { url, http })
    }

    /// The broker's base URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The underlying HTTP client, for streams.
    pub(crate) fn http(&self) -> &reqwest::Client {
        &self.http
    }

    /// Fetches the broker's metadata.
    pub async fn metadata(&self) -> Result<Metadata, AgentError> {
        let req = self.http.get(format!("{}/.well-known/mandate", self.url));
        read(req.timeout(TIMEOUT)).await
    }

    /// Files a signed request.
    pub async fn submit(&self, request: &str) -> Result<Submitted, AgentError> {
        let req = self
            .http
            .post(format!("{}/v1/requests", self.url))
            .json(&json!({ "request": request }));
        read(req.timeout(TIMEOUT)).await
    }

    /// Files a sub-agent's signed request with the chain it extends, the
    /// keys along it and the delegating agent's endorsement.
    pub async fn submit_sub(
        &self,
        request: &str,
        parent_chain: &[String],
        keys: &[Jwk],
        endorsement: &str,
    ) -> Result<Submitted, AgentError> {
        let req = self
            .http
            .post(format!("{}/v1/requests", self.url))
            .json(&json!({
                "request": request,
                "parent_chain": parent_chain,
                "keys": keys,
                "endorsement": endorsement,
            }));
        read(req.timeout(TIMEOUT)).await
    }

    /// The URL of a request, which its polls prove possession for.
    pub fn request_url(&self, id: &TokenId) -> String {
        format!("{}/v1/requests/{id}", self.url)
    }

    /// Polls a request, holding the poll open up to `wait` for a decision.
    pub async fn poll(
        &self,
        id: &TokenId,
        pop: &str,
        wait: Duration,
    ) -> Result<RequestView, AgentError> {
        let req = self
            .http
            .get(format!("{}?wait={}", self.request_url(id), wait.as_secs()))
            .header(crate::mandate::POP_HEADER, pop)
            .timeout(TIMEOUT + wait);
        read(req).await
    }

    /// Files a call for the chain's user to confirm
    /// (`POST /v1/confirmations`).
    pub async fn ask_confirmation(
        &self,
        body: &serde_json::Value,
    ) -> Result<AskedConfirmation, AgentError> {
        let req = self
            .http
            .post(format!("{}/v1/confirmations", self.url))
            .json(body);
        read(req.timeout(TIMEOUT)).await
    }

    /// The URL of a call to confirm, which its polls prove possession for.
    pub fn confirmation_url(&self, id: &str) -> String {
        format!("{}/v1/confirmations/{id}", self.url)
    }

    /// Polls a call to confirm, holding the poll open up to `wait`.
    pub async fn poll_confirmation(
        &self,
        id: &str,
        pop: &str,
        wait: Duration,
    ) -> Result<ConfirmationState, AgentError> {
        let req = self
            .http
            .get(format!(
                "{}?wait={}",
                self.confirmation_url(id),
                wait.as_secs()
            ))
            .header(crate::mandate::POP_HEADER, pop)
            .timeout(TIMEOUT + wait);
        read(req).await
    }

    /// Sends a receipt with the chain it was made under.
    pub async fn report(
        &self,
        receipt: &str,
        chain: &[String],
        keys: &[Jwk],
    ) -> Result<TokenId, AgentError> {
        let req = self
            .http
            .post(format!("{}/v1/receipts", self.url))
            .json(&json!({ "receipt": receipt, "chain": chain, "keys": keys }));
        Ok(read::<ReceiptAccepted>(req.timeout(TIMEOUT)).await?.id)
    }

    /// Posts a signed revocation, with the chain that shows the signer's
    /// authority when the signer is an agent.
    pub async fn revoke(
        &self,
        revocation: &str,
        chain: &[String],
        keys: &[Jwk],
    ) -> Result<(), AgentError> {
        let req = self
            .http
            .post(format!("{}/v1/revocations", self.url))
            .json(&json!({
                "revocation": revocation,
                "chain": chain,
                "keys": keys,
            }));
        read::<serde_json::Value>(req.timeout(TIMEOUT))
            .await
            .map(drop)
    }

    /// One page of the revocation feed after position `since`, with the
    /// broker's latest checkpoint.
    pub async fn revocations(&self, since: u64) -> Result<FeedPage, AgentError> {
        let req = self
            .http
            .get(format!("{}/v1/revocations?since={since}", self.url));
        read(req.timeout(TIMEOUT)).await
    }
}

/// The broker agents reach unless told otherwise: a broker on this
/// machine, listening where it does by default
/// (`mandate_broker::host::DEFAULT_LISTEN`).
pub const DEFAULT_BROKER_URL: &str = "http://127.0.0.1:7700";

/// An HTTP client as the SDK uses it: rustls with ring, a connect
/// timeout, no redirects.
pub fn http_client() -> Result<reqwest::Client, AgentError> {
    install_tls_provider();
    reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(5))
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(|e| BrokerError::Unreachable(e.without_url().to_string()).into())
}

/// Installs ring as the process's TLS crypto provider, unless one is
/// already: reqwest is built without a default, and panics building a
/// client before one is installed.
pub fn install_tls_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// Sends a request and reads a JSON answer, or the broker's error: how
/// every client of the broker, the agent SDK's and the desktop engine's,
/// reads its answers.
pub async fn read_json<T: DeserializeOwned>(
    req: reqwest::RequestBuilder,
) -> Result<T, BrokerError> {
    let res = req
        .send()
        .await
        .map_err(|e| BrokerError::Unreachable(without_url(e)))?;
    let status = res.status();
    let bytes = res
        .bytes()
        .await
        .map_err(|e| BrokerError::Unreachable(without_url(e)))?;
    if status.is_success() {
        return serde_json::from_slice(&bytes).map_err(|_| {
            BrokerError::Unreachable("the broker's answer is not the expected JSON".into())
        });
    }
    Err(refusal(status, &bytes))
}

/// The broker's refusal, from its status and JSON error body (`code` and
/// `message`); `http.error` when the body is not one.
pub fn refusal(status: reqwest::StatusCode, bytes: &[u8]) -> BrokerError {
    let body: Option<ErrorBody> = serde_json::from_slice(bytes).ok();
    BrokerError::Refused {
        status: status.as_u16(),
        code: body.as_ref().map_or_else(
            || LocalCode::HttpError.as_str().to_owned(),
            |b| b.code.clone(),
        ),
        retry_after: body.as_ref().and_then(|b| b.retry_after),
        message: body.map_or_else(|| status.to_string(), |b| b.message),
    }
}

/// [`read_json`], for the SDK's own calls.
async fn read<T: DeserializeOwned>(req: reqwest::RequestBuilder) -> Result<T, AgentError> {
    Ok(read_json(req).await?)
}

/// A transport error's text, without the URL (whose query may carry data).
pub(crate) fn without_url(e: reqwest::Error) -> String {
    e.without_url().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_broker_is_reached_over_https_or_on_this_machine_only() {
        for ok in [
            "https://broker.example",
            "https://broker.example/mandate/",
            "https://10.0.0.1:8443",
            "http://127.0.0.1:7700",
            "http://127.3.4.5/",
            "http://127.1:7700",
            "http://[::1]:7700/",
            "http://localhost:7700",
            "http://LOCALHOST",
        ] {
            assert_eq!(
                broker_url(ok).as_deref(),
                Ok(ok.trim_end_matches('/')),
                "{ok}"
            );
        }
        for insecure in [
            "http://broker.example",
            "http://10.0.0.1:7700",
            "http://[::2]/",
            "http://[::ffff:127.0.0.1]/",
            "http://0.0.0.0:7700",
            "http://localhost.example.com",
            "http://127.0.0.1.nip.io",
            "ftp://127.0.0.1",
            "ws://localhost",
        ] {
            assert_eq!(
                broker_url(insecure),
                Err(BrokerUrlError::Insecure),
                "{insecure}"
            );
        }
        for malformed in [
            "broker.example",
            "not a url",
            "",
            "https://user:secret@broker.example",
            "https://broker.example/?x=1",
            "https://broker.example/#x",
        ] {
            assert_eq!(
                broker_url(malformed),
                Err(BrokerUrlError::Malformed),
                "{malformed}"
            );
        }
        let refused = Broker::new("http://broker.example").unwrap_err();
        assert_eq!(refused.code(), "broker.url_insecure");
        assert!(refused.to_string().contains("https"), "{refused}");
    }
}
