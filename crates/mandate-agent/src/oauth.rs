//! An agent's access tokens: its mandate exchanged at the broker's token
//! endpoint (RFC 8693) for a token for one resource, bound to the agent's
//! key (RFC 9449), and the DPoP proofs that present it (docs/oauth.md).

use std::time::Duration;

use mandate_core::base64url;
use mandate_core::token::Jti;
use rand_core::OsRng;
use serde::Deserialize;
use sha2::{Digest as _, Sha256};

use crate::{Agent, AgentError, BrokerError, Mandate, unix_now};

/// The grant type of a token exchange.
pub const TOKEN_EXCHANGE: &str = "urn:ietf:params:oauth:grant-type:token-exchange";

/// The token type of a Mandate chain.
pub const CHAIN_TOKEN_TYPE: &str = "urn:mandate:params:oauth:token-type:chain";

/// An access token for one resource.
#[derive(Clone, Deserialize)]
pub struct AccessToken {
    /// The token, to send as `Authorization: DPoP TOKEN`.
    #[serde(rename = "access_token")]
    pub token: String,
    /// Seconds until it expires.
    pub expires_in: i64,
}

impl std::fmt::Debug for AccessToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccessToken")
            .field("expires_in", &self.expires_in)
            .finish_non_exhaustive()
    }
}

#[derive(Deserialize)]
struct OAuthErrorBody {
    error: String,
    #[serde(default)]
    error_description: String,
}

impl Agent {
    /// Exchanges `mandate` for an access token for `resource` (one of the
    /// broker's `mandate_resources`), bound to this agent's key. A refusal
    /// is [`BrokerError::Refused`] with the OAuth `error` as its code.
    pub async fn exchange(
        &self,
        mandate: &Mandate,
        resource: &str,
    ) -> Result<AccessToken, AgentError> {
        self.own_leaf(mandate)?;
        let url = format!("{}/oauth/token", self.broker.url());
        let keys: Vec<String> = mandate.keys.iter().map(|k| k.x.clone()).collect();
        let form = [
            ("grant_type", TOKEN_EXCHANGE),
            ("subject_token", &mandate.chain.join(",")),
            ("subject_token_type", CHAIN_TOKEN_TYPE),
            ("resource", resource),
            ("mandate_keys", &keys.join(",")),
        ];
        let res = self
            .broker
            .http()
            .post(&url)
            .header("DPoP", self.dpop("POST", &url, None))
            .header("Content-Type", "application/x-www-form-urlencoded")
            .body(
                serde_urlencoded::to_string(form)
                    .map_err(|_| AgentError::Invalid("the exchange's form".into()))?,
            )
            .timeout(Duration::from_secs(15))
            .send()
            .await
            .map_err(|e| BrokerError::Unreachable(crate::client::without_url(e)))?;
        let status = res.status();
        let bytes = res
            .bytes()
            .await
            .map_err(|e| BrokerError::Unreachable(crate::client::without_url(e)))?;
        if status.is_success() {
            return serde_json::from_slice(&bytes).map_err(|_| {
                BrokerError::Unreachable("the token endpoint's answer is not a token".into()).into()
            });
        }
        let refusal: OAuthErrorBody = serde_json::from_slice(&bytes).map_err(|_| {
            BrokerError::Unreachable(format!("the token endpoint answered {status}"))
        })?;
        Err(BrokerError::Refused {
            status: status.as_u16(),
            code: refusal.error,
            message: refusal.error_description,
            retry_after: None,
        }
        .into())
    }

    /// A DPoP proof by this agent's key for a `method` call to `url`,
    /// presenting `token` (none at a token endpoint).
    pub fn dpop(&self, method: &str, url: &str, token: Option<&str>) -> String {
        let ath = token.map(|t| base64url::encode(Sha256::digest(t.as_bytes())));
        let jti: String = Jti::random(&mut OsRng).into();
        mandate_core::dpop::sign(&self.key, method, url, ath.as_deref(), unix_now(), &jti)
    }
}
