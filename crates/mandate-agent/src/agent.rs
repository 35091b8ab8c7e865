//! An agent: its key, its broker, and what it does with them.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use mandate_core::scope::{self, AuthorizationDetail};
use mandate_core::token::{
    Action, Actor, AgentInfo, BindingCode, Confirmation, DenialClaims, GrantClaims, Jti, Outcome,
    PopClaims, ReceiptClaims, RequestClaims, RevocationClaims, chain_hash, peek,
};
use mandate_core::{AgentId, Claims as _, PublicKey, SigningKey, TokenId, UnixTime};
use rand_core::OsRng;

use crate::client::{Broker, RequestView};
use crate::mandate::POP_HEADER;
use crate::online::verify_online;
use crate::{AgentError, Mandate};

/// The longest one long-poll is held open; the broker caps it at 30 s.
const POLL_WAIT: Duration = Duration::from_secs(25);

/// The current time in seconds since the epoch.
pub fn unix_now() -> UnixTime {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// What an agent asks its user for.
#[derive(Debug, Clone)]
pub struct Ask {
    /// The user's principal (`issuer#subject`) as the agent was told it.
    pub principal: String,
    /// What the agent asks to do.
    pub scopes: Vec<AuthorizationDetail>,
    /// The agent's interpretation of its task, which the user reads.
    pub purpose: String,
    /// The user's instruction, as the agent received it.
    pub intent: Option<String>,
    /// The grant's lifetime asked for, in seconds.
    pub lifetime: u32,
    /// How many further hops the agent may delegate.
    pub max_depth: u8,
    /// How long the request may wait for a decision, in seconds.
    pub expires_in: u32,
}

/// A filed request, waiting for its user.
#[derive(Debug, Clone)]
pub struct Pending {
    /// The request's id.
    pub id: TokenId,
    /// The code to show the user, which the app shows too.
    pub binding_code: String,
    /// When it lapses undecided.
    pub expires_at: UnixTime,
    /// The signed request.
    pub request: String,
}

/// A call waiting for the user to confirm.
#[derive(Debug, Clone)]
pub struct PendingConfirmation {
    /// Its id at the broker.
    pub id: String,
    /// When it lapses undecided.
    pub expires_at: UnixTime,
    /// The hash of the chain it was filed under, which polls are bound to.
    pub ath: String,
}

/// A narrower part of a mandate, for a sub-agent.
#[derive(Debug, Clone)]
pub struct Delegation {
    /// The scopes passed on; `None` passes the leaf's scopes unchanged.
    pub scopes: Option<Vec<AuthorizationDetail>>,
    /// What the sub-agent is to do, as this agent interprets it.
    pub purpose: String,
    /// The instruction this agent gave the sub-agent.
    pub intent: Option<String>,
    /// The lifetime, in seconds; capped at the mandate's own expiry.
    pub lifetime: u32,
    /// How many further hops the sub-agent may delegate; less than ours.
    pub max_depth: u8,
}

/// A receipt's content.
#[derive(Debug, Clone)]
pub struct Report {
    /// What was done.
    pub action: Action,
    /// How it ended.
    pub outcome: Outcome,
    /// Why the agent decided to do it.
    pub rationale: Option<String>,
    /// The receipt or request that caused it.
    pub cause: Option<TokenId>,
}

/// An agent with its own key, talking to one broker.
pub struct Agent {
    pub(crate) key: SigningKey,
    pub(crate) broker: Broker,
    info: AgentInfo,
}

impl std::fmt::Debug for Agent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Agent")
            .field("id", &self.id())
            .field("broker", &self.broker.url())
            .finish_non_exhaustive()
    }
}

impl Agent {
    /// An agent with `key`, describing itself as `info` (self-asserted:
    /// the app shows it as such, beside the key's fingerprint).
    pub fn new(key: SigningKey, broker: Broker, info: AgentInfo) -> Agent {
        Agent { key, broker, info }
    }

    /// The agent's id, the RFC 9278 thumbprint URI of its key.
    pub fn id(&self) -> AgentId {
        self.key.public().agent_id()
    }

    /// The agent's public key.
    pub fn public_key(&self) -> &PublicKey {
        self.key.public()
    }

    /// The broker.
    pub fn broker(&self) -> &Broker {
        &self.broker
    }

    /// Signs and files a request. Show the returned binding code to the
    /// user: the app shows the same code beside the request.
    pub async fn request(&self, ask: &Ask) -> Result<Pending, AgentError> {
        let request = self.sign_request(ask, vec![]);
        let submitted = self.broker.submit(&request).await?;
        Ok(Pending {
            id: submitted.id,
            binding_code: submitted.binding_code,
            expires_at: submitted.expires_at,
            request,
        })
    }

    pub(crate) fn sign_request(&self, ask: &Ask, parent_chain: Vec<TokenId>) -> String {
        let now = unix_now();
        RequestClaims {
            principal_hint: Some(ask.principal.clone()),
            agent: self.info.clone(),
            authorization_details: ask.scopes.clone(),
            purpose: ask.purpose.clone(),
            intent: ask.intent.clone(),
            lifetime: ask.lifetime,
            max_depth: ask.max_depth,
            parent_chain,
            binding_code: BindingCode::random(&mut OsRng),
            jti: Jti::random(&mut OsRng),
            iat: now,
            exp: now.saturating_add(i64::from(ask.expires_in)),
            oauth_client: None,
        }
        .sign(&self.key)
    }

    /// One poll of a request, held open up to `wait` for a decision.
    pub async fn poll(&self, pending: &Pending, wait: Duration) -> Result<RequestView, AgentError> {
        let url = self.broker.request_url(&pending.id);
        let pop = self.proof("GET", &url, &chain_hash(&[pending.request.as_str()]));
        self.broker.poll(&pending.id, &pop, wait).await
    }

    /// Waits up to `timeout` for the user's decision. An approval gives the
    /// mandate, checked here as a resource server would check it.
    pub async fn wait(&self, pending: &Pending, timeout: Duration) -> Result<Mandate, AgentError> {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let view = self.poll(pending, left.min(POLL_WAIT)).await?;
            match view.status.as_str() {
                "approved" => return self.accept(pending, view).await,
                "denied" => {
                    let reason = view
                        .denial
                        .as_deref()
                        .and_then(|d| peek::<DenialClaims>(d).ok())
                        .and_then(|(_, claims)| claims.reason);
                    return Err(AgentError::Denied(reason));
                }
                "expired" => return Err(AgentError::Expired),
                _ if Instant::now() >= deadline => return Err(AgentError::TimedOut),
                _ => {}
            }
        }
    }

    /// Builds the mandate from an approval and verifies it against the
    /// broker's published key before trusting it.
    async fn accept(&self, pending: &Pending, view: RequestView) -> Result<Mandate, AgentError> {
        let incomplete = || AgentError::Invalid("the broker's approval is incomplete".into());
        let grant = view.grant.ok_or_else(incomplete)?;
        let mandate = Mandate {
            chain: vec![grant],
            binding: view.binding.ok_or_else(incomplete)?,
            keys: vec![view.user_key.ok_or_else(incomplete)?],
        }
        .with_key(self.key.public());
        let leaf = mandate.leaf()?;
        if leaf.req.as_ref() != Some(&pending.id) {
            return Err(AgentError::Invalid(
                "the grant does not answer this request".into(),
            ));
        }
        self.check(&mandate).await?;
        Ok(mandate)
    }

    /// Verifies `mandate` as a resource server would (bar revocation), and
    /// that its leaf is this agent.
    pub async fn check(&self, mandate: &Mandate) -> Result<(), AgentError> {
        let verified = verify_online(&self.broker, mandate, false).await?;
        if verified.agent != self.id() {
            return Err(AgentError::Invalid(
                "the mandate is for another agent".into(),
            ));
        }
        Ok(())
    }

    /// Signs a narrower grant from `mandate` to the agent `to`. The
    /// sub-agent receives the returned mandate (it is not secret) and adds
    /// its own key when it presents it.
    pub fn delegate(
        &self,
        mandate: &Mandate,
        to: &AgentId,
        delegation: &Delegation,
    ) -> Result<Mandate, AgentError> {
        let leaf = self.own_leaf(mandate)?;
        if leaf.max_depth == 0 {
            return Err(AgentError::DepthExhausted);
        }
        if delegation.max_depth >= leaf.max_depth {
            return Err(AgentError::Invalid(format!(
                "max_depth must be below this mandate's {}",
                leaf.max_depth
            )));
        }
        if to.thumbprint() == self.key.thumbprint() {
            return Err(AgentError::Invalid(
                "an agent cannot delegate to itself".into(),
            ));
        }
        let scopes = delegation
            .scopes
            .clone()
            .unwrap_or_else(|| leaf.authorization_details.clone());
        scope::within(&scopes, &leaf.authorization_details).map_err(|e| {
            AgentError::Invalid(format!("the scopes are not within the mandate's ({e:?})"))
        })?;
        let now = unix_now();
        let grant = GrantClaims {
            sub: leaf.sub.clone(),
            act: Actor { sub: *to },
            cnf: Confirmation {
                jkt: to.thumbprint(),
            },
            authorization_details: scopes,
            purpose: delegation.purpose.clone(),
            intent: delegation.intent.clone(),
            iat: now,
            nbf: now.max(leaf.nbf),
            exp: now
                .saturating_add(i64::from(delegation.lifetime))
                .min(leaf.exp),
            jti: Jti::random(&mut OsRng),
            max_depth: delegation.max_depth,
            prf: Some(mandate.leaf_id()?),
            req: None,
        }
        .sign(&self.key);
        let mut chain = mandate.chain.clone();
        chain.push(grant);
        // The sub-agent's verifiers need this agent's key for the link it
        // just signed (a mandate from a delegation does not carry its
        // holder's own key until it is presented).
        Ok(Mandate {
            chain,
            binding: mandate.binding.clone(),
            keys: mandate.keys.clone(),
        }
        .with_key(self.key.public()))
    }

    /// Revokes the grant this agent signed at the end of `delegated` (a
    /// mandate it made with [`Agent::delegate`]), and with it everything the
    /// sub-agent delegated further.
    pub async fn revoke(
        &self,
        delegated: &Mandate,
        reason: Option<&str>,
    ) -> Result<TokenId, AgentError> {
        let leaf = delegated
            .chain
            .last()
            .ok_or_else(|| AgentError::Invalid("the mandate has no grants".into()))?;
        let (issuer, claims) = peek::<GrantClaims>(leaf)?;
        if issuer != self.key.thumbprint() {
            return Err(AgentError::Invalid(
                "this agent did not sign the mandate's last grant".into(),
            ));
        }
        let id = TokenId::of(leaf);
        let revocation = RevocationClaims {
            sub: claims.sub,
            revokes: vec![id],
            reason: reason.map(str::to_owned),
            iat: unix_now(),
            jti: Jti::random(&mut OsRng),
        }
        .sign(&self.key);
        let delegated = delegated.clone().with_key(self.key.public());
        self.broker
            .revoke(&revocation, &delegated.chain, &delegated.keys)
            .await?;
        Ok(id)
    }

    /// The headers for one HTTP call under `mandate`: the chain, the
    /// binding, the keys and a fresh proof of possession.
    pub fn present(
        &self,
        mandate: &Mandate,
        method: &str,
        url: &str,
    ) -> Result<Vec<(&'static str, String)>, AgentError> {
        self.own_leaf(mandate)?;
        let mandate = mandate.clone().with_key(self.key.public());
        let mut headers = mandate.headers()?.to_vec();
        headers.push((POP_HEADER, self.proof(method, url, &mandate.ath())));
        Ok(headers)
    }

    /// Asks the user to confirm one exact call under `mandate`: `method`
    /// on `url` (with its query) with `body`, described by `summary`. The
    /// user sees the call in the app; wait for the answer with
    /// [`Agent::wait_confirmation`], and send the call exactly so, with the
    /// confirmation in [`crate::CONFIRMATION_HEADER`].
    pub async fn ask_confirmation(
        &self,
        mandate: &Mandate,
        method: &str,
        url: &str,
        body: &[u8],
        summary: &str,
    ) -> Result<PendingConfirmation, AgentError> {
        self.own_leaf(mandate)?;
        let mandate = mandate.clone().with_key(self.key.public());
        let proof = self.proof(
            "POST",
            &format!("{}/v1/confirmations", self.broker.url()),
            &mandate.ath(),
        );
        let asked = self
            .broker
            .ask_confirmation(&serde_json::json!({
                "chain": mandate.chain,
                "keys": mandate.keys,
                "proof": proof,
                "method": method,
                "uri": url,
                "body": mandate_core::base64url::encode(body),
                "summary": summary,
            }))
            .await?;
        Ok(PendingConfirmation {
            id: asked.id,
            expires_at: asked.expires_at,
            ath: mandate.ath(),
        })
    }

    /// Waits up to `timeout` for the user's answer to a call to confirm:
    /// the user's confirmation, or why not ([`AgentError::Denied`] for a
    /// refusal, with its reason).
    pub async fn wait_confirmation(
        &self,
        pending: &PendingConfirmation,
        timeout: Duration,
    ) -> Result<String, AgentError> {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let url = self.broker.confirmation_url(&pending.id);
            let pop = self.proof("GET", &url, &pending.ath);
            let view = self
                .broker
                .poll_confirmation(&pending.id, &pop, left.min(POLL_WAIT))
                .await?;
            match view.status.as_str() {
                "confirmed" => {
                    return view.confirmation.ok_or_else(|| {
                        AgentError::Invalid("the broker's confirmation is incomplete".into())
                    });
                }
                "refused" => return Err(AgentError::Denied(view.reason)),
                "expired" => return Err(AgentError::Expired),
                _ if Instant::now() >= deadline => return Err(AgentError::TimedOut),
                _ => {}
            }
        }
    }

    /// Signs a receipt of an action done under `mandate` and sends it to the
    /// broker, which checks it against the chain. Returns the receipt's id,
    /// which later receipts may name as their `cause`.
    pub async fn report(&self, mandate: &Mandate, report: &Report) -> Result<TokenId, AgentError> {
        self.own_leaf(mandate)?;
        let receipt = ReceiptClaims {
            grant: mandate.leaf_id()?,
            action: report.action.clone(),
            outcome: report.outcome,
            rationale: report.rationale.clone(),
            cause: report.cause,
            iat: unix_now(),
            jti: Jti::random(&mut OsRng),
        }
        .sign(&self.key);
        let mandate = mandate.clone().with_key(self.key.public());
        self.broker
            .report(&receipt, &mandate.chain, &mandate.keys)
            .await
    }

    /// The leaf's claims, if the leaf is this agent.
    pub(crate) fn own_leaf(&self, mandate: &Mandate) -> Result<GrantClaims, AgentError> {
        let leaf = mandate.leaf()?;
        if leaf.cnf.jkt != self.key.thumbprint() {
            return Err(AgentError::Invalid(
                "the mandate is for another agent".into(),
            ));
        }
        Ok(leaf)
    }

    pub(crate) fn proof(&self, method: &str, url: &str, ath: &str) -> String {
        PopClaims {
            htm: method.to_owned(),
            htu: url.to_owned(),
            iat: unix_now(),
            jti: Jti::random(&mut OsRng),
            ath: ath.to_owned(),
        }
        .sign(&self.key)
    }
}
