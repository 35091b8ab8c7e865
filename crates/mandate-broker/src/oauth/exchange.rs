//! RFC 8693 token exchange: a Mandate chain and a DPoP proof by its leaf
//! agent's key in, an RFC 9068 access token for one resource out.

use std::collections::{BTreeMap, BTreeSet};

use mandate_core::scope::{self, AuthorizationDetail, Location};
use mandate_core::{Jwk, TokenId, UnixTime};
use serde_json::{Value, json};

use super::{Form, OAuthCode, OAuthError, TOKEN_PATH};
use crate::AppState;
use crate::chains;

/// The `subject_token_type` of a Mandate chain: the grants, root first,
/// separated by `,`, as the `Mandate-Chain` header carries them.
pub const CHAIN_TOKEN_TYPE: &str = "urn:mandate:params:oauth:token-type:chain";
/// RFC 8693's type of the token issued.
pub const ACCESS_TOKEN_TYPE: &str = "urn:ietf:params:oauth:token-type:access_token";
/// RFC 8693's grant type.
pub const GRANT_TYPE: &str = "urn:ietf:params:oauth:grant-type:token-exchange";
/// The longest an access token lives, in seconds.
pub const MAX_LIFETIME: i64 = 300;

/// The answer to an exchange (RFC 8693 section 2.2.1).
pub struct Issued {
    /// The access token.
    pub token: String,
    /// Its lifetime, in seconds.
    pub expires_in: i64,
}

/// Exchanges the chain in `form` for an access token, the call carrying
/// `dpop`.
pub async fn exchange(
    state: &AppState,
    form: &Form,
    dpop: Option<&str>,
) -> Result<Issued, OAuthError> {
    let now = state.now();
    let s = &state.inner;
    if form.one("subject_token_type")? != CHAIN_TOKEN_TYPE {
        return Err(OAuthError::new(
            OAuthCode::InvalidRequest,
            "subject_token_type must be urn:mandate:params:oauth:token-type:chain",
        ));
    }
    if let Some(requested) = form.optional("requested_token_type")?
        && requested != ACCESS_TOKEN_TYPE
    {
        return Err(OAuthError::new(
            OAuthCode::InvalidRequest,
            "only an access token can be issued",
        ));
    }
    for unsupported in ["actor_token", "actor_token_type", "audience"] {
        if form.optional(unsupported)?.is_some() {
            return Err(OAuthError::new(
                OAuthCode::InvalidRequest,
                "actor_token and audience are not taken; name the resource with resource",
            ));
        }
    }
    // The resource first: an unknown one is refused before any signature
    // is checked.
    let resource = form.one("resource")?;
    let Some(target) = state.oauth().resource(resource) else {
        return Err(OAuthError::new(
            OAuthCode::InvalidTarget,
            "the broker issues no tokens for this resource",
        ));
    };
    // The DPoP proof names the leaf agent's key.
    let dpop = dpop
        .ok_or_else(|| OAuthError::new(OAuthCode::InvalidDpopProof, "a DPoP proof is required"))?;
    let url = format!("{}{TOKEN_PATH}", s.public_url);
    let proof = super::dpop::check(dpop, "POST", &url, None, &s.policy, now)
        .map_err(|why| OAuthError::new(OAuthCode::InvalidDpopProof, why))?;
    // The chain, with its agents' keys: the proof's, and any the client
    // sends for the agents above it.
    let chain: Vec<String> = form
        .one("subject_token")?
        .split(',')
        .map(str::to_owned)
        .collect();
    if chain.len() > mandate_core::MAX_CHAIN_LINKS || chain.iter().any(String::is_empty) {
        return Err(OAuthError::new(
            OAuthCode::InvalidRequest,
            "subject_token must be 1 to 16 grants, root first, separated by ','",
        ));
    }
    // Each agent key has its own rate, counted once its proof verified.
    if !s.limiters.agent_calls.allow(&proof.jkt.to_string()) {
        return Err(OAuthError::new(
            OAuthCode::SlowDown,
            "this key exchanges too fast",
        ));
    }
    let leaf = proof.jwk.clone().ok_or_else(|| {
        OAuthError::new(
            OAuthCode::InvalidDpopProof,
            "a chain's agents hold Ed25519 keys: sign the proof with the leaf agent's (EdDSA)",
        )
    })?;
    let mut keys = vec![leaf];
    if let Some(more) = form.optional("mandate_keys")? {
        for x in more.split(',') {
            keys.push(Jwk {
                kty: "OKP".into(),
                crv: "Ed25519".into(),
                x: x.to_owned(),
                kid: None,
                alg: None,
                use_: None,
            });
        }
    }
    let checked = chains::check(state, &chain, &keys, crate::error::Code::BodyMalformed)
        .await
        .map_err(OAuthError::from_broker)?;
    let verified = &checked.chain;
    if verified.leaf_key() != proof.jkt {
        return Err(OAuthError::new(
            OAuthCode::InvalidGrant,
            "the chain's leaf grant is not to the DPoP proof's key",
        ));
    }
    // What the token carries: the leaf's scopes at this resource, then as
    // narrowed by the client.
    let mut details = at_resource(verified.scopes(), &target.location);
    if details.is_empty() {
        return Err(OAuthError::new(
            OAuthCode::InvalidTarget,
            "the chain grants nothing at this resource",
        ));
    }
    if let Some(asked) = form.optional("authorization_details")? {
        let asked: Vec<AuthorizationDetail> = serde_json::from_str(asked).map_err(|_| {
            OAuthError::new(
                OAuthCode::InvalidAuthorizationDetails,
                "authorization_details is not a list of Mandate scopes",
            )
        })?;
        scope::within(&asked, &details).map_err(|_| {
            OAuthError::new(
                OAuthCode::InvalidAuthorizationDetails,
                "authorization_details asks for more than the chain grants at this resource",
            )
        })?;
        details = asked;
    }
    if let Some(asked) = form.optional("scope")? {
        details = narrowed_to_scope(&details, asked)?;
    }
    // The proof is spent last, once everything else has passed.
    super::dpop::spend(state, &proof).await?;
    Ok(mint(
        state,
        target,
        verified,
        &details,
        &verified.leaf_agent().to_string(),
        Some(&proof.jkt),
        now,
    ))
}

/// An access token for `target`, carrying `chain` and `details`, issued
/// to `client_id` and bound to the DPoP key `jkt` (a bearer token without
/// one), at `now`.
pub(crate) fn mint(
    state: &AppState,
    target: &super::Resource,
    chain: &mandate_core::VerifiedChain,
    details: &[AuthorizationDetail],
    client_id: &str,
    jkt: Option<&mandate_core::Thumbprint>,
    now: UnixTime,
) -> Issued {
    let exp = chain.expires_at().min(now + MAX_LIFETIME);
    let mut claims = json!({
        "iss": state.inner.public_url,
        "sub": chain.principal().as_str(),
        "aud": target.uri,
        "client_id": client_id,
        "iat": now,
        "exp": exp,
        "jti": mandate_core::base64url::encode(rand_bytes()),
        "act": actors(chain),
        "authorization_details": details,
        "scope": scope_string(details),
        "mandate_chain": chain.links().map(|l| l.id().to_string()).collect::<Vec<_>>(),
        "mandate_user_key": chain.root().issuer().to_string(),
    });
    if let Some(jkt) = jkt {
        claims["cnf"] = json!({ "jkt": jkt.to_string() });
    }
    let limits = counted_at(chain, &target.location);
    if !limits.is_empty() {
        claims["mandate_limits"] = Value::Array(limits);
    }
    Issued {
        token: state.oauth().keys.sign(target.alg, "at+jwt", &claims, now),
        expires_in: exp - now,
    }
}

/// The grants of `chain` with a `max_calls` at `resource`: each one's id,
/// `exp`, and details there with their indexes in the grant, for the
/// `mandate_limits` claim (docs/oauth.md), so that the resource counts the
/// token's calls against them as it counts a chain's.
fn counted_at(chain: &mandate_core::VerifiedChain, resource: &Location) -> Vec<Value> {
    chain
        .links()
        .filter_map(|link| {
            let claims = link.claims();
            let there: Vec<(usize, &AuthorizationDetail)> = claims
                .authorization_details
                .iter()
                .enumerate()
                .filter(|(_, d)| {
                    d.locations
                        .iter()
                        .any(|l| l.covers(resource.as_str()) || resource.covers(l.as_str()))
                })
                .collect();
            there
                .iter()
                .any(|(_, d)| d.limits.max_calls.is_some())
                .then(|| {
                    json!({
                        "grant": link.id().to_string(),
                        "exp": claims.exp,
                        "details": there
                            .iter()
                            .map(|(index, detail)| json!({ "index": index, "detail": detail }))
                            .collect::<Vec<_>>(),
                    })
                })
        })
        .collect()
}

/// 16 random bytes, for a `jti`.
fn rand_bytes() -> [u8; 16] {
    use rand_core::RngCore as _;
    let mut b = [0u8; 16];
    rand_core::OsRng.fill_bytes(&mut b);
    b
}

/// The chain's agents as nested `act` claims (RFC 8693 section 4.1): the
/// leaf outermost, the agent the user delegated to innermost.
fn actors(chain: &mandate_core::VerifiedChain) -> Value {
    let mut act = Value::Null;
    for link in chain.links() {
        let agent = link.claims().act.sub.to_string();
        act = if act.is_null() {
            json!({ "sub": agent })
        } else {
            json!({ "sub": agent, "act": act })
        };
    }
    act
}

/// The details of `scopes` at `resource`: each detail's locations that
/// the resource covers, and, for a location that covers the resource, the
/// resource itself. Details with no location there are dropped.
pub(crate) fn at_resource(
    scopes: &[AuthorizationDetail],
    resource: &Location,
) -> Vec<AuthorizationDetail> {
    scopes
        .iter()
        .filter_map(|d| {
            let mut locations: Vec<Location> = Vec::new();
            for l in &d.locations {
                let kept = if resource.covers(l.as_str()) {
                    l.clone()
                } else if l.covers(resource.as_str()) {
                    resource.clone()
                } else {
                    continue;
                };
                if !locations.contains(&kept) {
                    locations.push(kept);
                }
            }
            (!locations.is_empty()).then(|| AuthorizationDetail {
                locations,
                ..d.clone()
            })
        })
        .collect()
}

/// `TYPE:ACTION` for each action of each detail, space-separated: the
/// `scope` claim, for resource servers that read only that.
pub(crate) fn scope_string(details: &[AuthorizationDetail]) -> String {
    let mut words = BTreeSet::new();
    for d in details {
        for a in &d.actions {
            words.insert(format!("{}:{a}", d.kind));
        }
    }
    words.into_iter().collect::<Vec<_>>().join(" ")
}

/// `details` keeping only the actions `scope` names (`TYPE:ACTION`,
/// space-separated); a word naming anything the details lack is refused.
fn narrowed_to_scope(
    details: &[AuthorizationDetail],
    scope: &str,
) -> Result<Vec<AuthorizationDetail>, OAuthError> {
    let refuse = || {
        OAuthError::new(
            OAuthCode::InvalidScope,
            "scope names an action the chain does not grant at this resource",
        )
    };
    let mut wanted: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for word in scope.split(' ').filter(|w| !w.is_empty()) {
        let (kind, action) = word.split_once(':').ok_or_else(refuse)?;
        if !details
            .iter()
            .any(|d| d.kind == kind && d.actions.contains(action))
        {
            return Err(refuse());
        }
        wanted.entry(kind).or_default().insert(action);
    }
    let kept: Vec<AuthorizationDetail> = details
        .iter()
        .filter_map(|d| {
            let actions: BTreeSet<String> = d
                .actions
                .iter()
                .filter(|a| {
                    wanted
                        .get(d.kind.as_str())
                        .is_some_and(|w| w.contains(a.as_str()))
                })
                .cloned()
                .collect();
            (!actions.is_empty()).then(|| AuthorizationDetail {
                actions,
                ..d.clone()
            })
        })
        .collect();
    if kept.is_empty() {
        return Err(refuse());
    }
    Ok(kept)
}

/// Whether the access token whose claims are `claims` is in force at
/// `now`: from this broker, unexpired, and no grant of its chain (nor the
/// user key at its root) revoked.
pub async fn active(state: &AppState, claims: &Value, now: UnixTime) -> Result<bool, OAuthError> {
    let s = &state.inner;
    if claims["iss"] != s.public_url.as_str() || claims["exp"].as_i64().is_none_or(|e| e <= now) {
        return Ok(false);
    }
    let Some(ids) = claims["mandate_chain"].as_array() else {
        return Ok(false);
    };
    for id in ids {
        let Some(id) = id.as_str().and_then(|i| i.parse::<TokenId>().ok()) else {
            return Ok(false);
        };
        if s.store
            .is_revoked(&id)
            .await
            .map_err(|_| OAuthError::unavailable())?
        {
            return Ok(false);
        }
    }
    let Some(key) = claims["mandate_user_key"]
        .as_str()
        .and_then(|k| k.parse::<mandate_core::Thumbprint>().ok())
    else {
        return Ok(false);
    };
    Ok(!s
        .store
        .is_key_revoked(&key)
        .await
        .map_err(|_| OAuthError::unavailable())?)
}
