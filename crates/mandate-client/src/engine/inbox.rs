//! The requests waiting for the user, and their decisions: the broker's
//! inbox read into the history (each request verified first), the rows
//! and the detail the page shows, and each decision signed and recorded
//! in the outbox.

use std::collections::HashMap;
use std::sync::Mutex as StdMutex;

use mandate_core::TokenId;
use tokio::sync::broadcast;

use super::session::Active;
use super::{Update, now};
use crate::decision::{Narrowing, denial_for, grant_for};
use crate::history::{
    DecisionKind, History, NewDecision, RequestState, StoredDecision, StoredRequest,
};
use crate::view::{InboxRow, RequestDetail};
use crate::{BrokerClient, ClientError};

/// The inbox.
pub(super) struct Inbox {
    history: History,
    broker: BrokerClient,
    updates: broadcast::Sender<Update>,
    /// Inbox rows by request id. A row is computed from a request that
    /// never changes, but computing it verifies the request's signature;
    /// with hundreds pending, each refresh would verify every one again.
    rows: StdMutex<HashMap<String, InboxRow>>,
}

impl Inbox {
    pub(super) fn new(
        history: History,
        broker: BrokerClient,
        updates: broadcast::Sender<Update>,
    ) -> Inbox {
        Inbox {
            history,
            broker,
            updates,
            rows: StdMutex::new(HashMap::new()),
        }
    }

    /// The pending requests the history holds, newest first.
    pub(super) async fn pending(&self, active: &Active) -> Result<Vec<StoredRequest>, ClientError> {
        self.history
            .requests(&active.profile.principal, Some(RequestState::Pending))
            .await
    }

    /// Fetches the inbox, records what is new (verified first), and marks
    /// what the broker no longer lists. Returns the new requests' ids.
    pub(super) async fn fetch(&self, active: &Active) -> Result<Vec<String>, ClientError> {
        let items = self.broker.inbox(active.bearer.expose()).await?;
        let principal = &active.profile.principal;
        let mut new = Vec::new();
        let mut listed = Vec::with_capacity(items.len());
        // Each new request is one durable transaction; known ones cost none.
        let known = self.history.request_ids(principal).await?;
        for item in &items {
            let id = item.id.to_string();
            listed.push(id.clone());
            if known.contains(&id) {
                continue;
            }
            match self
                .history
                .record_request(&active.key, principal, item, now())
                .await
            {
                Ok(true) => new.push(item.id.to_string()),
                Ok(false) => {}
                // A request that does not verify is never shown.
                Err(ClientError::Token(e)) => {
                    tracing::warn!(request = %item.id, code = e.code(), "skipping a request that does not verify");
                }
                Err(e) => return Err(e),
            }
        }
        let expired = self.history.expire_missing(principal, &listed).await?;
        // Only a change is announced: a page that re-reads the inbox on
        // each announcement must not set off another.
        if !new.is_empty() || expired > 0 {
            let pending = self.pending(active).await?.len();
            let _ = self.updates.send(Update::Inbox {
                pending,
                new: new.clone(),
            });
        }
        Ok(new)
    }

    /// The inbox as the list shows it: the pending requests the history
    /// holds, newest first.
    pub(super) async fn rows(&self, active: &Active) -> Result<Vec<InboxRow>, ClientError> {
        let pending = self.pending(active).await?;
        let mut cache = self
            .rows
            .lock()
            .map_err(|_| ClientError::History("the inbox cache was poisoned".into()))?;
        // Only the rows still pending stay cached (request ids are unique
        // across principals: each is a hash of a signed token).
        let mut fresh = HashMap::with_capacity(pending.len());
        let mut rows = Vec::with_capacity(pending.len());
        for request in &pending {
            let row = match cache.remove(&request.id) {
                Some(row) => row,
                None => crate::view::row(request, &active.profile.principal, active.key.public())?,
            };
            fresh.insert(request.id.clone(), row.clone());
            rows.push(row);
        }
        *cache = fresh;
        Ok(rows)
    }

    /// One request, ready to show: the agent, the scopes in plain
    /// language, the chain behind it, the decision.
    pub(super) async fn detail(
        &self,
        active: &Active,
        id: &str,
    ) -> Result<RequestDetail, ClientError> {
        let principal = &active.profile.principal;
        let history = &self.history;
        let request = self.request(active, id).await?;
        let (known, name_reused) = history.agent_record(principal, id).await?;
        let names = history.agent_names(principal).await?;
        let user = active
            .profile
            .email
            .clone()
            .or_else(|| active.profile.name.clone())
            .unwrap_or_else(|| principal.clone());
        crate::view::detail(
            &request,
            history.decision(id).await?,
            principal,
            &user,
            active.key.public(),
            &names,
            known,
            name_reused,
        )
    }

    /// One request of the signed-in user, as recorded.
    pub(super) async fn request(
        &self,
        active: &Active,
        id: &str,
    ) -> Result<StoredRequest, ClientError> {
        self.history
            .request(&active.profile.principal, id)
            .await?
            .ok_or(ClientError::NotFound)
    }

    /// The decision on request `id`.
    pub(super) async fn decision(&self, id: &str) -> Result<StoredDecision, ClientError> {
        self.history
            .decision(id)
            .await?
            .ok_or(ClientError::NotFound)
    }

    /// Signs a grant of the request `id`, narrowed as the user chose, and
    /// records it in the outbox.
    pub(super) async fn approve(
        &self,
        active: &Active,
        id: &str,
        narrowing: &Narrowing,
    ) -> Result<(), ClientError> {
        let request = self.undecided(active, id).await?;
        let grant = grant_for(
            &request.request,
            &active.principal()?,
            &active.key,
            narrowing,
            now(),
            &mut rand_core::OsRng,
        )?;
        self.record(active, id, DecisionKind::Grant, &grant).await
    }

    /// Signs a denial of the request `id`, with an optional reason, and
    /// records it in the outbox.
    pub(super) async fn deny(
        &self,
        active: &Active,
        id: &str,
        reason: Option<&str>,
    ) -> Result<(), ClientError> {
        let request = self.undecided(active, id).await?;
        let denial = denial_for(
            TokenId::of(&request.request),
            &active.principal()?,
            &active.key,
            reason,
            now(),
            &mut rand_core::OsRng,
        );
        self.record(active, id, DecisionKind::Denial, &denial).await
    }

    async fn undecided(&self, active: &Active, id: &str) -> Result<StoredRequest, ClientError> {
        let request = self.request(active, id).await?;
        if request.state != RequestState::Pending {
            return Err(ClientError::Invalid(format!(
                "this request is already {}",
                request.state.as_str()
            )));
        }
        Ok(request)
    }

    async fn record(
        &self,
        active: &Active,
        id: &str,
        kind: DecisionKind,
        token: &str,
    ) -> Result<(), ClientError> {
        let token_id = TokenId::of(token).to_string();
        self.history
            .record_decision(
                &active.key,
                &active.profile.principal,
                id,
                NewDecision {
                    kind,
                    token,
                    token_id: &token_id,
                },
                now(),
            )
            .await?;
        tracing::info!(request = %id, kind = ?kind, "decision recorded");
        Ok(())
    }
}
