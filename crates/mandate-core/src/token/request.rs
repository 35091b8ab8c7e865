//! `mandate-request+jwt`: an agent asks a user for authority. It is signed
//! by the agent's own key, which travels in the `jwk` header and is the
//! agent's identity.

use std::fmt;

use rand_core::CryptoRngCore;
use serde::{Deserialize, Serialize};

use super::{Claims, Jti, Policy, UnixTime, Verified};
use crate::jws::{self, TokenId, TokenKind};
use crate::key::PublicKey;
use crate::scope::AuthorizationDetail;
use crate::{Error, MAX_CHAIN_LINKS};

/// How an agent describes itself. Self-asserted: shown, never trusted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentInfo {
    /// Display name.
    pub name: String,
    /// Who publishes the agent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub publisher: Option<String>,
    /// The agent's version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
}

/// A short code the agent shows and the app shows, so that the user can
/// match a request to the agent that made it: `XXXX-XXXX` in Crockford base32.
#[derive(Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct BindingCode(String);

const CROCKFORD: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";

impl BindingCode {
    /// A fresh random code (40 bits).
    pub fn random(rng: &mut impl CryptoRngCore) -> BindingCode {
        let mut bytes = [0u8; 8];
        rng.fill_bytes(&mut bytes);
        let mut code = String::with_capacity(9);
        for (i, b) in bytes.iter().enumerate() {
            if i == 4 {
                code.push('-');
            }
            code.push(char::from(CROCKFORD[usize::from(b & 31)]));
        }
        BindingCode(code)
    }

    /// The text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for BindingCode {
    type Error = &'static str;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        let b = s.as_bytes();
        let ok = b.len() == 9
            && b[4] == b'-'
            && b.iter()
                .enumerate()
                .all(|(i, c)| i == 4 || CROCKFORD.contains(c));
        if ok {
            Ok(BindingCode(s))
        } else {
            Err("binding code is not XXXX-XXXX in Crockford base32")
        }
    }
}

impl From<BindingCode> for String {
    fn from(c: BindingCode) -> String {
        c.0
    }
}

impl fmt::Display for BindingCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for BindingCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "BindingCode({})", self.0)
    }
}

/// The longest lifetime an agent may ask for: 30 days.
pub const MAX_LIFETIME_SECS: u32 = 30 * 24 * 3600;

/// The claims of a request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RequestClaims {
    /// Whom the agent believes it acts for; a hint for routing, not a claim of identity.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub principal_hint: Option<String>,
    /// The agent's self-description.
    pub agent: AgentInfo,
    /// What the agent asks to do.
    pub authorization_details: Vec<AuthorizationDetail>,
    /// The agent's interpretation of its task.
    pub purpose: String,
    /// The user's instruction, as the agent received it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub intent: Option<String>,
    /// The lifetime asked for, in seconds.
    pub lifetime: u32,
    /// The delegation depth asked for.
    pub max_depth: u8,
    /// For a sub-agent's request: the ids of the grants of the chain it
    /// extends, root first. The tokens travel beside the request.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub parent_chain: Vec<TokenId>,
    /// The code the agent shows its user.
    pub binding_code: BindingCode,
    /// Unique id.
    pub jti: Jti,
    /// Issued at.
    pub iat: UnixTime,
    /// The request lapses at this instant.
    pub exp: UnixTime,
    /// For a request the broker files on behalf of an OAuth client in the
    /// authorization code flow: the client, as the broker identified it.
    /// Brokers refuse this claim in a request an agent files itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oauth_client: Option<OAuthClient>,
}

/// An OAuth client that asked for authority through the broker's
/// authorization endpoint (docs/oauth.md, "The code flow").
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OAuthClient {
    /// The `client_id`: the URL of its metadata document, or the id the
    /// broker gave it at registration.
    pub client_id: String,
    /// How the broker knows the client: `metadata_document` (it fetched
    /// the document at `client_id`, which names the redirect URI) or
    /// `registration` (RFC 7591: anyone may register any name).
    pub verified_by: ClientVerification,
    /// Where the browser goes back to, exactly as registered.
    pub redirect_uri: String,
    /// The resource (RFC 8707) the client asks for.
    pub resource: String,
}

/// How the broker identified an OAuth client.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClientVerification {
    /// A Client ID Metadata Document, fetched from the `client_id` URL.
    MetadataDocument,
    /// Dynamic client registration (RFC 7591): self-asserted.
    Registration,
}

impl Claims for RequestClaims {
    const KIND: TokenKind = TokenKind::Request;

    fn check(&self, policy: &Policy, now: UnixTime) -> Result<(), Error> {
        if self.authorization_details.is_empty() {
            return Err(Error::BadScope("a request asks for at least one scope"));
        }
        if self.lifetime == 0 || self.lifetime > MAX_LIFETIME_SECS {
            return Err(Error::Malformed("lifetime must be 1 second to 30 days"));
        }
        if usize::from(self.max_depth) >= MAX_CHAIN_LINKS
            || self.parent_chain.len() >= MAX_CHAIN_LINKS
        {
            return Err(Error::ChainTooLong);
        }
        policy.check_window(self.iat, self.iat, self.exp, now)
    }
}

impl RequestClaims {
    /// The requesting agent's key, from a request whose signature holds
    /// under it, whatever its times. A broker uses it to check the agent's
    /// proofs of possession for a request it stored.
    pub fn agent_key(compact: &str) -> Result<PublicKey, Error> {
        let token = jws::parse(compact, TokenKind::Request)?;
        let key = token
            .jwk
            .ok_or(Error::Malformed("request header lacks its jwk"))?;
        token.verify(&key)?;
        Ok(key)
    }

    /// Verifies a request under the key in its own header. The signer is the
    /// requesting agent: its id is that key's thumbprint URI.
    pub fn verify(
        compact: &str,
        policy: &Policy,
        now: UnixTime,
    ) -> Result<Verified<RequestClaims>, Error> {
        let token = jws::parse(compact, TokenKind::Request)?;
        let key = token
            .jwk
            .ok_or(Error::Malformed("request header lacks its jwk"))?;
        token.verify(&key)?;
        let claims: RequestClaims = token.claims()?;
        claims.check(policy, now)?;
        Ok(Verified {
            id: token.id,
            signer: key,
            claims,
        })
    }
}
