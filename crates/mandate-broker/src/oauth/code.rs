//! The token endpoint's code and refresh grants, and revocation (RFC 7009).
//!
//! A code ([`super::authorize`]) stands for a grant the user signed in the
//! app, to the key the broker holds for the client. Redeeming it (once,
//! with the PKCE verifier, from the same client and redirect URI) gives an
//! access token for the resource, as the token exchange makes them: the
//! grant is verified as a chain of one, so a revoked or lapsed grant gives
//! nothing.
//!
//! With a DPoP proof (RFC 9449) the access token is bound to its key, and
//! a refresh token comes too, bound to the same key. A refresh token is
//! sealed by the broker and names the request whose grant it draws on; it
//! is good once (each refresh answers a new one), never past the grant's
//! end, and never after the grant is revoked. Without DPoP the access
//! token is a bearer token and no refresh token is issued.

use mandate_core::token::{Action, Claims as _, Jti, Outcome, ReceiptClaims};
use mandate_core::{Jwk, TokenId, UnixTime, base64url};
use mandate_store::RequestStatus;
use rand_core::OsRng;
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use super::authorize::{client_agent, s256};
use super::exchange::{Issued, at_resource, mint};
use super::{Form, OAuthCode, OAuthError, TOKEN_PATH};
use crate::AppState;

/// How a refresh token begins.
const REFRESH_PREFIX: &str = "mrt1.";
/// The context of a refresh token's seal.
const REFRESH_CONTEXT: &str = "mandate-oauth-refresh/v1";

/// What the token endpoint answers for a code or a refresh.
pub struct Answer {
    /// The access token and its lifetime.
    pub issued: Issued,
    /// Whether it is DPoP-bound (else a bearer token).
    pub dpop: bool,
    /// A refresh token, with DPoP.
    pub refresh_token: Option<String>,
    /// The scopes granted, as `TYPE:ACTION` words.
    pub scope: String,
}

/// What a refresh token seals.
#[derive(Serialize, Deserialize)]
struct Refresh {
    /// The request whose grant it draws on.
    rid: String,
    /// The client.
    cid: String,
    /// The resource.
    res: String,
    /// The DPoP key it is bound to.
    jkt: String,
    /// Its own id, spent when it is used or revoked.
    jti: String,
    /// When it lapses: the grant's end.
    exp: UnixTime,
    /// Its line: the id of the first refresh token the code gave, which
    /// every token refreshed from it carries on. A token used twice ends
    /// the whole line (RFC 9700 section 4.14.2).
    #[serde(default)]
    fam: String,
}

impl Refresh {
    /// The spent-list entry of the token itself.
    fn spent_key(&self) -> String {
        format!("refresh:{}", self.jti)
    }

    /// Its line's id: the first token's own id for a token sealed before
    /// lines were, which is then the first of its line.
    fn line(&self) -> &str {
        if self.fam.is_empty() {
            &self.jti
        } else {
            &self.fam
        }
    }

    /// The spent-list entry that ends its line.
    fn line_key(&self) -> String {
        format!("refresh-line:{}", self.line())
    }

    /// Ends the line: no token of it refreshes again.
    async fn end_line(&self, state: &AppState, now: UnixTime) -> Result<(), OAuthError> {
        spend_once(state, &self.line_key(), self.exp, now)
            .await
            .map(drop)
    }

    /// The token was used before: someone holds a copy, the client or a
    /// thief. Its line ends, and the answer is the refusal.
    async fn used_again(&self, state: &AppState, now: UnixTime) -> OAuthError {
        match self.end_line(state, now).await {
            Ok(()) => OAuthError::new(
                OAuthCode::InvalidGrant,
                "the refresh token was used before: its line is ended",
            ),
            Err(e) => e,
        }
    }
}

/// The DPoP proof of a token request, if one came: its key's thumbprint,
/// once every check but the replay check passed.
fn dpop_key(
    state: &AppState,
    dpop: Option<&str>,
    now: UnixTime,
) -> Result<Option<super::dpop::Proof>, OAuthError> {
    let Some(dpop) = dpop else {
        return Ok(None);
    };
    let url = format!("{}{TOKEN_PATH}", state.inner.public_url);
    super::dpop::check(dpop, "POST", &url, None, &state.inner.policy, now)
        .map(Some)
        .map_err(|why| OAuthError::new(OAuthCode::InvalidDpopProof, why))
}

/// Spends `what` (a refresh or access token's id) in the store, until
/// `until`: `false` if it was spent before.
async fn spend_once(
    state: &AppState,
    what: &str,
    until: UnixTime,
    now: UnixTime,
) -> Result<bool, OAuthError> {
    match state.store().spend_proof(&spent_id(what), until, now).await {
        Ok(()) => Ok(true),
        Err(mandate_store::StoreError::Conflict) => Ok(false),
        Err(_) => Err(OAuthError::unavailable()),
    }
}

/// The spent-list id of `what`.
fn spent_id(what: &str) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(b"mandate-oauth-spent/v1\0");
    h.update(what.as_bytes());
    h.finalize().into()
}

/// The grant behind request `rid`, verified now as a chain of one to the
/// client's key; and the scopes it gives at `resource`.
async fn grant_of(
    state: &AppState,
    rid: &TokenId,
    client_id: &str,
    resource: &super::Resource,
) -> Result<
    (
        String,
        mandate_core::VerifiedChain,
        Vec<mandate_core::scope::AuthorizationDetail>,
    ),
    OAuthError,
> {
    let gone = || OAuthError::new(OAuthCode::InvalidGrant, "the grant behind it is gone");
    let record = state
        .store()
        .request(rid)
        .await
        .map_err(|_| OAuthError::unavailable())?
        .ok_or_else(gone)?;
    let grant = match (record.status, record.decision) {
        (RequestStatus::Approved, Some(grant)) => grant,
        _ => return Err(gone()),
    };
    let key: Jwk = client_agent(state, client_id).public().to_jwk();
    let checked = crate::chains::check(
        state,
        std::slice::from_ref(&grant),
        &[key],
        crate::error::Code::BodyMalformed,
    )
    .await
    .map_err(OAuthError::from_broker)?;
    let details = at_resource(checked.chain.scopes(), &resource.location);
    if details.is_empty() {
        return Err(OAuthError::new(
            OAuthCode::InvalidTarget,
            "the grant gives nothing at this resource",
        ));
    }
    Ok((grant, checked.chain, details))
}

/// The access token (and, with DPoP, a refresh token) for request `rid`'s
/// grant. `refreshed` is the refresh token used, if one was: it is spent
/// once the grant checks out, so that a refusal before (a revoked grant,
/// the store out of reach) does not cost the client its refresh token.
async fn answer(
    state: &AppState,
    rid: &TokenId,
    client_id: &str,
    resource: &super::Resource,
    proof: Option<&super::dpop::Proof>,
    refreshed: Option<&Refresh>,
    now: UnixTime,
) -> Result<Answer, OAuthError> {
    let (grant, chain, details) = grant_of(state, rid, client_id, resource).await?;
    if let Some(proof) = proof {
        super::dpop::spend(state, proof).await?;
    }
    // A second use (here, a race of two) ends the line, as in [`refresh`].
    if let Some(used) = refreshed
        && !spend_once(state, &used.spent_key(), used.exp, now).await?
    {
        return Err(used.used_again(state, now).await);
    }
    let jkt = proof.map(|p| p.jkt);
    let issued = mint(
        state,
        resource,
        &chain,
        &details,
        client_id,
        jkt.as_ref(),
        now,
    );
    let scope = super::exchange::scope_string(&details);
    record_use(state, grant, &chain, client_id, resource, &scope, *rid, now).await?;
    let refresh_token = jkt.map(|jkt| {
        seal(
            state,
            &Refresh {
                rid: rid.to_string(),
                cid: client_id.to_owned(),
                res: resource.uri.clone(),
                jkt: jkt.to_string(),
                jti: super::authorize::random_text(),
                exp: chain.expires_at(),
                fam: refreshed.map_or_else(super::authorize::random_text, |r| r.line().to_owned()),
            },
        )
    });
    Ok(Answer {
        issued,
        dpop: jkt.is_some(),
        refresh_token,
        scope,
    })
}

/// Files a receipt of the token's issue, signed with the key the broker
/// holds for the client, under the grant: the user sees each token the
/// client was given under Activity, traced to the request they approved.
/// No receipt, no token: a use the user cannot see is not handed out.
#[allow(clippy::too_many_arguments)]
async fn record_use(
    state: &AppState,
    grant: String,
    chain: &mandate_core::VerifiedChain,
    client_id: &str,
    resource: &super::Resource,
    scope: &str,
    request: TokenId,
    now: UnixTime,
) -> Result<(), OAuthError> {
    let key = client_agent(state, client_id);
    let receipt = ReceiptClaims {
        grant: chain.leaf().id(),
        action: Action {
            kind: "oauth.token".to_owned(),
            target: resource.uri.clone(),
            summary: format!("Was given an access token for {}: {scope}", resource.uri),
        },
        outcome: Outcome::Succeeded,
        rationale: None,
        cause: Some(request),
        iat: now,
        jti: Jti::random(&mut OsRng),
    }
    .sign(&key);
    crate::receipt_service::report(state, &receipt, &[grant], &[key.public().to_jwk()])
        .await
        .map(drop)
        .map_err(OAuthError::from_broker)
}

/// Redeems an authorization code (RFC 6749 section 4.1.3, RFC 7636
/// section 4.6).
pub async fn redeem(
    state: &AppState,
    form: &Form,
    dpop: Option<&str>,
) -> Result<Answer, OAuthError> {
    let now = state.now();
    let Some(flow) = &state.oauth().code_flow else {
        return Err(OAuthError::new(
            OAuthCode::UnsupportedGrantType,
            "this broker does not serve the code flow",
        ));
    };
    let code = form.one("code")?;
    let verifier = form.one("code_verifier")?;
    let client_id = form.one("client_id")?;
    let proof = dpop_key(state, dpop, now)?;
    // The code is gone from here on, whatever the outcome.
    let issued = flow.take_code(code, now).ok_or_else(|| {
        OAuthError::new(
            OAuthCode::InvalidGrant,
            "the code is unknown, used or expired",
        )
    })?;
    let refuse = |why: &str| OAuthError::new(OAuthCode::InvalidGrant, why);
    if issued.client_id != client_id {
        return Err(refuse("the code was issued to another client"));
    }
    match form.optional("redirect_uri")? {
        Some(uri) if uri != issued.redirect_uri => {
            return Err(refuse("redirect_uri is not the one the code went to"));
        }
        None if issued.redirect_given => {
            return Err(refuse(
                "redirect_uri is required: the authorization request named it",
            ));
        }
        _ => {}
    }
    let verifier_ok = (43..=128).contains(&verifier.len())
        && verifier
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b));
    if !verifier_ok || s256(verifier) != issued.challenge {
        return Err(refuse(
            "the code_verifier does not match the code_challenge",
        ));
    }
    if form
        .optional("resource")?
        .is_some_and(|r| r != issued.resource)
    {
        return Err(OAuthError::new(
            OAuthCode::InvalidTarget,
            "the code is for another resource",
        ));
    }
    if let Some(bound) = &issued.dpop_jkt {
        match &proof {
            Some(p) if p.jkt.to_string() == *bound => {}
            Some(_) => {
                return Err(OAuthError::new(
                    OAuthCode::InvalidDpopProof,
                    "the DPoP proof is not by the key the code is bound to (dpop_jkt)",
                ));
            }
            None => {
                return Err(OAuthError::new(
                    OAuthCode::InvalidDpopProof,
                    "the code is bound to a DPoP key (dpop_jkt): send a proof by it",
                ));
            }
        }
    }
    let resource = state.oauth().resource(&issued.resource).ok_or_else(|| {
        OAuthError::new(OAuthCode::InvalidTarget, "the resource is no longer served")
    })?;
    answer(
        state,
        &issued.request,
        client_id,
        resource,
        proof.as_ref(),
        None,
        now,
    )
    .await
}

/// Uses a refresh token (RFC 6749 section 6): once, with a DPoP proof by
/// the key it is bound to.
pub async fn refresh(
    state: &AppState,
    form: &Form,
    dpop: Option<&str>,
) -> Result<Answer, OAuthError> {
    let now = state.now();
    if state.oauth().code_flow.is_none() {
        return Err(OAuthError::new(
            OAuthCode::UnsupportedGrantType,
            "this broker does not serve the code flow",
        ));
    }
    let refuse = |why: &str| OAuthError::new(OAuthCode::InvalidGrant, why);
    let token = form.one("refresh_token")?;
    let sealed =
        open(state, token).ok_or_else(|| refuse("the refresh token is not this broker's"))?;
    if sealed.exp <= now {
        return Err(refuse("the refresh token has expired with its grant"));
    }
    if form.optional("client_id")?.is_some_and(|c| c != sealed.cid) {
        return Err(refuse("the refresh token was issued to another client"));
    }
    if form.optional("resource")?.is_some_and(|r| r != sealed.res) {
        return Err(OAuthError::new(
            OAuthCode::InvalidTarget,
            "the refresh token is for another resource",
        ));
    }
    let proof = dpop_key(state, dpop, now)?.ok_or_else(|| {
        OAuthError::new(
            OAuthCode::InvalidDpopProof,
            "a refresh token is bound to a DPoP key: send a proof by it",
        )
    })?;
    if proof.jkt.to_string() != sealed.jkt {
        return Err(OAuthError::new(
            OAuthCode::InvalidDpopProof,
            "the DPoP proof is not by the key the refresh token is bound to",
        ));
    }
    let rid: TokenId = sealed
        .rid
        .parse()
        .map_err(|_| refuse("the refresh token is not this broker's"))?;
    let resource = state.oauth().resource(&sealed.res).ok_or_else(|| {
        OAuthError::new(OAuthCode::InvalidTarget, "the resource is no longer served")
    })?;
    // Its line ended (revoked, or a token of it used twice)? Refused.
    // Used before? Someone holds a copy, the client or a thief: the whole
    // line ends, and both must go through the code flow again (RFC 9700
    // section 4.14.2). Otherwise it is spent once the grant checks out
    // ([`answer`]).
    if is_spent(state, &sealed.line_key(), now).await? {
        return Err(refuse(
            "the refresh token's line was ended: revoked, or a token of it was used twice",
        ));
    }
    if is_spent(state, &sealed.spent_key(), now).await? {
        return Err(sealed.used_again(state, now).await);
    }
    answer(
        state,
        &rid,
        &sealed.cid,
        resource,
        Some(&proof),
        Some(&sealed),
        now,
    )
    .await
}

fn seal(state: &AppState, refresh: &Refresh) -> String {
    let payload = serde_json::to_vec(refresh).unwrap_or_default();
    let seal = state
        .oauth()
        .keys
        .derived("refresh", b"")
        .sign_detached(REFRESH_CONTEXT, &payload);
    format!(
        "{REFRESH_PREFIX}{}.{}",
        base64url::encode(&payload),
        base64url::encode(seal)
    )
}

fn open(state: &AppState, token: &str) -> Option<Refresh> {
    let (payload, seal) = token.strip_prefix(REFRESH_PREFIX)?.split_once('.')?;
    let payload = base64url::decode(payload)?;
    let seal: [u8; 64] = base64url::decode(seal)?.try_into().ok()?;
    state
        .oauth()
        .keys
        .derived("refresh", b"")
        .public()
        .verify_detached(REFRESH_CONTEXT, &payload, &seal)
        .ok()?;
    serde_json::from_slice(&payload).ok()
}

/// Revokes a refresh or access token (RFC 7009). Unknown and malformed
/// tokens are answered alike: there is nothing to revoke.
pub async fn revoke(state: &AppState, form: &Form) -> Result<(), OAuthError> {
    let now = state.now();
    let token = form.one("token")?;
    if let Some(refresh) = open(state, token) {
        // RFC 7009 section 2.1: the grant behind it is withdrawn from the
        // client, so its whole line ends with it.
        spend_once(state, &refresh.spent_key(), refresh.exp, now).await?;
        refresh.end_line(state, now).await?;
    } else if let Some(claims) = state.oauth().keys.verify(token, now)
        && let (Some(jti), Some(exp)) = (claims["jti"].as_str(), claims["exp"].as_i64())
    {
        spend_once(state, &format!("access:{jti}"), exp, now).await?;
    }
    Ok(())
}

/// Whether the access token `jti` was revoked (RFC 7009).
pub async fn access_revoked(
    state: &AppState,
    jti: &str,
    now: UnixTime,
) -> Result<bool, OAuthError> {
    is_spent(state, &format!("access:{jti}"), now).await
}

/// Whether `what` is on the spent list.
async fn is_spent(state: &AppState, what: &str, now: UnixTime) -> Result<bool, OAuthError> {
    state
        .store()
        .is_spent(&spent_id(what), now)
        .await
        .map_err(|_| OAuthError::unavailable())
}
