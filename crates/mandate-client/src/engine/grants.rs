//! The user's grants after the decision: the broker's list read into the
//! history, the delegations screen, what a revocation or a narrowing
//! would take down, and both signed and recorded in the outbox.

use mandate_agent::BrokerError;
use mandate_core::TokenId;

use super::now;
use super::session::Active;
use crate::broker::GrantItem;
use crate::delegations::{AgentChoice, Delegations, GrantState, GrantView, RevokePreview};
use crate::history::{History, StoredRevocation};
use crate::narrow::{NarrowPreview, Narrowed};
use crate::{BrokerClient, ClientError};

/// The grants.
pub(super) struct Grants {
    history: History,
    broker: BrokerClient,
}

impl Grants {
    pub(super) fn new(history: History, broker: BrokerClient) -> Grants {
        Grants { history, broker }
    }

    /// The grants the broker holds for the signed-in user, oldest first,
    /// with their revocation state.
    pub(super) async fn listed(&self, active: &Active) -> Result<Vec<GrantItem>, ClientError> {
        self.broker.grants(active.bearer.expose()).await
    }

    /// Reads the broker's grant list into the history; offline, the
    /// history's is used as it is.
    pub(super) async fn refresh(&self, active: &Active) -> Result<(), ClientError> {
        match self.listed(active).await {
            Ok(grants) => {
                self.history
                    .save_grants(&active.profile.principal, &grants)
                    .await
            }
            Err(ClientError::Broker(BrokerError::Unreachable(e))) => {
                tracing::info!(error = %e, "the broker is unreachable; showing the local grants");
                Ok(())
            }
            Err(e) => Err(e),
        }
    }

    /// The delegations screen, from the history.
    pub(super) async fn delegations(&self, active: &Active) -> Result<Delegations, ClientError> {
        self.history
            .delegations(&active.profile.principal, &active.user(), now())
            .await
    }

    /// The grants in force that lapse within `within` seconds, soonest
    /// first.
    pub(super) async fn expiring(
        &self,
        active: &Active,
        within: i64,
    ) -> Result<Vec<GrantView>, ClientError> {
        let at = now();
        let mut soon: Vec<_> = self
            .history
            .grant_views(&active.profile.principal, &active.user(), at)
            .await?
            .into_iter()
            .filter(|g| g.state == GrantState::Active && g.expires_at - at <= within)
            .collect();
        soon.sort_by_key(|g| g.expires_at);
        Ok(soon)
    }

    /// Every agent that holds or held one of the user's grants.
    pub(super) async fn agents(&self, active: &Active) -> Result<Vec<AgentChoice>, ClientError> {
        self.history.agents(&active.profile.principal).await
    }

    /// What revoking grant `id` takes down, from the history.
    pub(super) async fn revoke_preview(
        &self,
        active: &Active,
        id: &str,
    ) -> Result<RevokePreview, ClientError> {
        self.history
            .revoke_preview(&active.profile.principal, &active.user(), id, now())
            .await
    }

    /// What narrowing grant `id` to what was used would keep, drop, and
    /// take down with it, from the history.
    pub(super) async fn narrow_preview(
        &self,
        active: &Active,
        id: &str,
    ) -> Result<NarrowPreview, ClientError> {
        Ok(self
            .history
            .narrow_plan(&active.profile.principal, &active.user(), id, now())
            .await?
            .preview)
    }

    /// Signs a revocation of `grants` and records it in the outbox.
    pub(super) async fn revoke(
        &self,
        active: &Active,
        grants: &[String],
        reason: Option<&str>,
    ) -> Result<StoredRevocation, ClientError> {
        if grants.is_empty() {
            return Err(ClientError::Invalid(
                "name at least one grant to revoke".into(),
            ));
        }
        let ids = grants
            .iter()
            .map(|g| g.parse::<TokenId>())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|_| ClientError::Invalid("a grant id is malformed".into()))?;
        let revocation = crate::decision::revocation_for(
            &ids,
            &active.principal()?,
            &active.key,
            reason,
            now(),
            &mut rand_core::OsRng,
        );
        let stored = self
            .history
            .record_revocation(
                &active.key,
                &active.profile.principal,
                &revocation,
                grants,
                now(),
            )
            .await?;
        tracing::info!(revocation = %stored.token_id, grants = grants.len(), "revocation recorded");
        Ok(stored)
    }

    /// The revocation `token_id`, as recorded.
    pub(super) async fn revocation(&self, token_id: &str) -> Result<StoredRevocation, ClientError> {
        self.history
            .revocation(token_id)
            .await?
            .ok_or(ClientError::NotFound)
    }

    /// Signs the revocation of grant `id` and a new grant with only the
    /// actions used, to the same agent for the same request, and records
    /// both in the outbox (see [`crate::narrow`]).
    pub(super) async fn narrow(&self, active: &Active, id: &str) -> Result<Narrowed, ClientError> {
        let principal = &active.profile.principal;
        let at = now();
        let plan = self
            .history
            .narrow_plan(principal, &active.user(), id, at)
            .await?;
        let revocation = crate::decision::revocation_for(
            &[plan.id],
            &active.principal()?,
            &active.key,
            Some("narrowed to what was used"),
            at,
            &mut rand_core::OsRng,
        );
        let grant = crate::narrow::reissued_grant(&plan, &active.key, at, &mut rand_core::OsRng);
        let (revocation, reissue) = self
            .history
            .record_reissue(
                &active.key,
                principal,
                (&plan.id.to_string(), &plan.request.to_string()),
                (&revocation, &grant),
                at,
            )
            .await?;
        let narrowed = Narrowed {
            revocation,
            reissue,
        };
        tracing::info!(replaces = %plan.id, grant = %narrowed.reissue.token_id, "grant narrowed to what was used");
        Ok(narrowed)
    }

    /// A narrowing, as recorded now (after its delivery, say).
    pub(super) async fn reread(&self, narrowed: &Narrowed) -> Result<Narrowed, ClientError> {
        Ok(Narrowed {
            revocation: self.revocation(&narrowed.revocation.token_id).await?,
            reissue: self
                .history
                .reissue(&narrowed.reissue.token_id)
                .await?
                .ok_or(ClientError::NotFound)?,
        })
    }
}
