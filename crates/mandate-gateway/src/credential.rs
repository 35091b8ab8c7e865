//! Who is calling, and with what authority: a DPoP-bound access token of
//! the broker's, or a Mandate chain with its proof of possession. Either
//! way the answer is an [`Authority`]: the user, the agent or client, the
//! grants the authority rests on, and its scopes at this gateway.
//!
//! Both are checked against the revocation set the gateway follows from
//! the broker, on every call: a grant revoked there is refused here as
//! soon as the set has it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use axum::http::{HeaderMap, Method};
use mandate_agent::{Mandated, ResourceVerifier};
use mandate_core::scope::AuthorizationDetail;
use mandate_core::{MemoryReplayCache, Policy, ReplayCache, SpentProof, TokenId, UnixTime};
use serde_json::json;

use crate::access_token::{TokenClaims, TokenKeys, ath};
use crate::error::{GatewayCode, Refusal};

/// Builds the `WWW-Authenticate` challenge of a refusal from its error
/// and description (`None`: no credential was presented).
pub type Challenge<'a> = &'a (dyn Fn(Option<(&str, &str)>) -> String + Sync);

/// How a caller proved its authority.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Via {
    /// An access token from the broker, with a DPoP proof.
    OAuth,
    /// A Mandate chain, with a proof of possession.
    Mandate,
}

/// A caller's verified authority.
#[derive(Debug, Clone)]
pub struct Authority {
    /// How it was proved.
    pub via: Via,
    /// The user, `ISSUER#SUBJECT`.
    pub principal: String,
    /// The agent (its id) or OAuth client (its `client_id`).
    pub agent: String,
    /// The key that proved possession on this call, as an RFC 7638
    /// thumbprint: who a session belongs to.
    pub holder: String,
    /// The grants the authority rests on, root first.
    pub chain: Vec<TokenId>,
    /// What it grants (at this gateway, for a token; everywhere, for a
    /// chain: [`Authority::permits`] looks only at this gateway).
    pub scopes: Vec<AuthorizationDetail>,
    /// What it was proved with, for holding a call to its grants' limits.
    basis: Basis,
}

/// What an authority was proved with.
#[derive(Debug, Clone)]
enum Basis {
    /// An access token, with the limits it carries.
    Token(Arc<TokenClaims>),
    /// A chain presented on the call.
    Chain(Box<Mandated>),
}

/// Checks credentials for one gateway.
pub struct Credentials {
    /// The gateway's resource URL: tokens' `aud`, and scopes' location.
    pub resource: String,
    /// The broker's issuer.
    pub issuer: String,
    /// The broker's token keys for the resource, when it issues tokens
    /// for it.
    pub keys: Option<TokenKeys>,
    /// Checks mandates, and holds the revocation set.
    pub mandates: ResourceVerifier,
    /// The path of the MCP endpoint, as proofs name it.
    pub path: String,
    policy: Policy,
    replay: MemoryReplayCache,
    tokens: Mutex<HashMap<String, Arc<TokenClaims>>>,
}

/// The most verified tokens remembered between calls.
const TOKEN_CACHE: usize = 10_000;

impl Credentials {
    /// Credentials checked for `resource`, whose MCP endpoint is at
    /// `path`, remembering at most `replay_capacity` DPoP proofs.
    pub fn new(
        resource: String,
        path: String,
        issuer: String,
        keys: Option<TokenKeys>,
        mandates: ResourceVerifier,
        replay_capacity: usize,
    ) -> Credentials {
        Credentials {
            resource,
            issuer,
            keys,
            mandates,
            path,
            policy: Policy::default(),
            replay: MemoryReplayCache::new(replay_capacity),
            tokens: Mutex::new(HashMap::new()),
        }
    }

    /// The authority behind a call with these `headers`, made with
    /// `method` to the MCP endpoint, at `now`. `challenge` builds the
    /// `WWW-Authenticate` of a refusal from its error and description.
    pub async fn check(
        &self,
        method: &Method,
        headers: &HeaderMap,
        now: UnixTime,
        challenge: Challenge<'_>,
    ) -> Result<Authority, Refusal> {
        let invalid = |why: &str| {
            Refusal::new(GatewayCode::InvalidToken, why)
                .challenge(challenge(Some(("invalid_token", why))))
        };
        let mut auth = headers.get_all("authorization").iter();
        let authorization = match (auth.next(), auth.next()) {
            (None, _) => None,
            (Some(v), None) => Some(v.to_str().map_err(|_| invalid("malformed Authorization"))?),
            (Some(_), Some(_)) => return Err(invalid("more than one Authorization header")),
        };
        if let Some(value) = authorization {
            let (scheme, token) = value.split_once(' ').unwrap_or((value, ""));
            if !scheme.eq_ignore_ascii_case("dpop") {
                return Err(invalid(
                    "only DPoP-bound tokens are taken: send Authorization: DPoP with a DPoP proof",
                ));
            }
            return self
                .oauth(method, headers, token.trim(), now, &invalid)
                .await;
        }
        if headers.contains_key(mandate_agent::CHAIN_HEADER) {
            return self.mandate(method, headers, challenge);
        }
        Err(Refusal::new(
            GatewayCode::Unauthorized,
            "present a DPoP-bound access token (docs/mcp.md)",
        )
        .challenge(challenge(None)))
    }

    async fn oauth(
        &self,
        method: &Method,
        headers: &HeaderMap,
        token: &str,
        now: UnixTime,
        invalid: &(dyn Fn(&str) -> Refusal + Sync),
    ) -> Result<Authority, Refusal> {
        let keys = self
            .keys
            .as_ref()
            .ok_or_else(|| invalid("the broker issues no tokens for this gateway"))?;
        let mut proofs = headers.get_all("dpop").iter();
        let proof = match (proofs.next(), proofs.next()) {
            (Some(p), None) => p.to_str().map_err(|_| invalid("malformed DPoP proof"))?,
            _ => return Err(invalid("exactly one DPoP proof is required")),
        };
        let ath = ath(token);
        let claims = match self.remembered(&ath) {
            Some(c) if c.exp > now => c,
            _ => {
                let c = Arc::new(
                    keys.verify(token, &self.issuer, &self.resource, now)
                        .await
                        .map_err(invalid)?,
                );
                self.remember(&ath, &c, now);
                c
            }
        };
        let jkt = claims
            .cnf
            .as_ref()
            .ok_or_else(|| invalid("the access token is not DPoP-bound"))?
            .jkt;
        // The resource is the MCP endpoint's URL, which the proofs name.
        let checked = mandate_core::dpop::check(
            proof,
            method.as_str(),
            &self.resource,
            Some(&ath),
            &self.policy,
            now,
        )
        .map_err(invalid)?;
        if checked.jkt != jkt {
            return Err(invalid(
                "the DPoP proof is not by the key the token is bound to",
            ));
        }
        if !self.mandates.is_current() {
            return Err(stale());
        }
        let revoked = self.mandates.revocations().with(|set| {
            claims.mandate_chain.iter().any(|id| set.is_revoked(id))
                || set.is_key_revoked(&claims.mandate_user_key)
        });
        if revoked {
            return Err(invalid("the grant behind the access token is revoked"));
        }
        let spent = SpentProof::new(
            &jkt,
            &ath,
            &checked.jti,
            checked.iat + self.policy.pop_max_age + self.policy.clock_skew,
        );
        self.replay.first_use(&spent, now).map_err(|e| match e {
            mandate_core::Error::PopCacheFull => replay_full(),
            _ => invalid("this DPoP proof was used before"),
        })?;
        Ok(Authority {
            via: Via::OAuth,
            principal: claims.sub.clone(),
            agent: claims.client_id.clone(),
            holder: jkt.to_string(),
            chain: claims.mandate_chain.clone(),
            scopes: claims.authorization_details.clone(),
            basis: Basis::Token(claims),
        })
    }

    fn mandate(
        &self,
        method: &Method,
        headers: &HeaderMap,
        challenge: Challenge<'_>,
    ) -> Result<Authority, Refusal> {
        let m = self
            .mandates
            .check_presented(method, &self.path, headers)
            .map_err(|r| {
                match r.code {
                    "revocation.stale" => return stale(),
                    "pop.cache_full" => return replay_full(),
                    _ => {}
                }
                Refusal::new(GatewayCode::InvalidMandate, r.message.clone())
                    .data(json!({ "rule": r.code }))
                    .challenge(challenge(Some(("invalid_token", "the mandate is refused"))))
            })?;
        Ok(Authority {
            via: Via::Mandate,
            principal: m.principal.to_string(),
            agent: m.agent.to_string(),
            holder: m.agent.thumbprint().to_string(),
            chain: m.chain.clone(),
            scopes: m.scopes.clone(),
            basis: Basis::Chain(Box::new(m)),
        })
    }

    /// Holds a call the authority permits, to `need` at `resource`, with
    /// this `body` and these `headers`, to what its grants ask of each
    /// call: the user's confirmation where a scope asks for one (which
    /// only a chain can carry), and `max_calls`, which it counts.
    pub fn admit(
        &self,
        who: &Authority,
        need: &mandate_agent::Need,
        headers: &HeaderMap,
        body: &[u8],
    ) -> Result<(), Refusal> {
        let held = match &who.basis {
            Basis::Chain(m) => {
                self.mandates
                    .admit(m, &Method::POST, &self.path, headers, body, need)
            }
            Basis::Token(claims) => {
                let call = need.call();
                if mandate_core::scope::needs_confirmation(&claims.authorization_details, &call) {
                    return Err(Refusal::new(
                        GatewayCode::Confirmation,
                        "a scope asks the user to confirm each such call, and only a mandate \
                         carries a confirmation: present the chain (docs/mcp.md)",
                    )
                    .data(json!({ "rule": "confirm.required" })));
                }
                self.mandates.count_grants(
                    claims.mandate_limits.iter().map(|g| {
                        (
                            g.grant,
                            g.exp,
                            g.details.iter().map(|d| (d.index, &d.detail)),
                        )
                    }),
                    need,
                )
            }
        };
        held.map_err(|r| {
            let code = match r.code {
                "revocation.stale" => return stale(),
                "pop.cache_full" => return replay_full(),
                "limit.exceeded" => GatewayCode::LimitExceeded,
                "limit.cache_full" => GatewayCode::CountsFull,
                "call.out_of_scope" | "call.amount_missing" => GatewayCode::InsufficientScope,
                c if c.starts_with("confirm.") => GatewayCode::Confirmation,
                _ => GatewayCode::InvalidMandate,
            };
            Refusal::new(code, r.message).data(json!({ "rule": r.code }))
        })
    }

    fn remembered(&self, ath: &str) -> Option<Arc<TokenClaims>> {
        self.lock().get(ath).cloned()
    }

    fn remember(&self, ath: &str, claims: &Arc<TokenClaims>, now: UnixTime) {
        let mut tokens = self.lock();
        if tokens.len() >= TOKEN_CACHE {
            tokens.retain(|_, c| c.exp > now);
            if tokens.len() >= TOKEN_CACHE {
                tokens.clear();
            }
        }
        tokens.insert(ath.to_owned(), claims.clone());
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<TokenClaims>>> {
        self.tokens.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

fn replay_full() -> Refusal {
    Refusal::new(
        GatewayCode::ReplayFull,
        "too many fresh proofs from this key: retry later",
    )
}

fn stale() -> Refusal {
    Refusal::new(
        GatewayCode::Stale,
        "the revocation list is not current; refusing until it is",
    )
}

/// The origin of a URL: its scheme and authority.
pub fn origin_of(url: &str) -> &str {
    let rest = url.find("://").map_or(0, |i| i + 3);
    url[rest..].find('/').map_or(url, |i| &url[..rest + i])
}

impl Authority {
    /// Whether the authority covers a call of `kind` `action` (with
    /// `identifier`) at `resource`.
    pub fn permits(&self, resource: &str, action: &str, identifier: Option<&str>) -> bool {
        let call = mandate_core::Call {
            kind: crate::scopes::MCP,
            action,
            location: resource,
            identifier,
            amount: None,
        };
        mandate_core::scope::permits(&self.scopes, &call)
    }

    /// Whether the authority holds any `mcp` scope at `resource`: what
    /// every method but a call of a tool, prompt or resource needs.
    pub fn member(&self, resource: &str) -> bool {
        self.scopes
            .iter()
            .any(|d| d.kind == crate::scopes::MCP && d.locations.iter().any(|l| l.covers(resource)))
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn an_origin_is_the_scheme_and_authority() {
        assert_eq!(
            super::origin_of("http://127.0.0.1:7/mcp"),
            "http://127.0.0.1:7"
        );
        assert_eq!(super::origin_of("https://gw.example"), "https://gw.example");
    }
}
