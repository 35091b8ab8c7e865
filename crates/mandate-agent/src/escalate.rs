//! When an agent cannot delegate locally: its sub-agent asks the user
//! directly, under the agent's chain and with its endorsement
//! (`docs/protocol.md` 4.1, "A sub-agent's request").

use mandate_core::TokenId;
use mandate_core::token::chain_hash;

use crate::{Agent, AgentError, Ask, Mandate, Pending};

impl Agent {
    /// Signs a sub-agent's request: this agent asks the user directly, in
    /// the context of `parent`, the delegating agent's mandate. The
    /// delegating agent must [`Agent::endorse`] it before it is filed with
    /// [`Agent::file_sub_request`].
    pub fn sub_request(&self, ask: &Ask, parent: &Mandate) -> Result<String, AgentError> {
        parent.leaf()?;
        let ids = parent.chain.iter().map(|g| TokenId::of(g)).collect();
        Ok(self.sign_request(ask, ids))
    }

    /// Endorses a sub-agent's `request` made under this agent's `mandate`:
    /// a proof of possession by this agent over the mandate's chain and
    /// the request, so that only the holder of the chain can put a
    /// sub-agent in front of the user under it.
    pub fn endorse(&self, mandate: &Mandate, request: &str) -> Result<String, AgentError> {
        self.own_leaf(mandate)?;
        let mut covered: Vec<&str> = mandate.chain.iter().map(String::as_str).collect();
        covered.push(request);
        let url = format!("{}/v1/requests", self.broker.url());
        Ok(self.proof("POST", &url, &chain_hash(&covered)))
    }

    /// Files a sub-agent's request signed by [`Agent::sub_request`] with
    /// its endorsement. The user sees the parent chain behind it; an
    /// approval is a grant from the user to this agent directly.
    pub async fn file_sub_request(
        &self,
        request: &str,
        parent: &Mandate,
        endorsement: &str,
    ) -> Result<Pending, AgentError> {
        let submitted = self
            .broker
            .submit_sub(request, &parent.chain, &parent.keys, endorsement)
            .await?;
        Ok(Pending {
            id: submitted.id,
            binding_code: submitted.binding_code,
            expires_at: submitted.expires_at,
            request: request.to_owned(),
        })
    }

    /// When this agent cannot delegate locally (its depth is used up, or
    /// the sub-agent needs more than it holds): asks the user, on behalf
    /// of `sub`, for `ask`. `sub` then waits for its own grant with
    /// [`Agent::wait`].
    pub async fn escalate(
        &self,
        mandate: &Mandate,
        sub: &Agent,
        ask: &Ask,
    ) -> Result<Pending, AgentError> {
        let mandate = mandate.clone().with_key(self.key.public());
        let request = sub.sub_request(ask, &mandate)?;
        let endorsement = self.endorse(&mandate, &request)?;
        sub.file_sub_request(&request, &mandate, &endorsement).await
    }
}
