//! Delivery of what the user signed: every decision, revocation and
//! re-issued grant in the history's outbox goes to the broker, and how
//! each went is recorded. A refusal that retrying cannot change settles
//! it for good; anything else leaves it for the next attempt.

use mandate_agent::BrokerError;
use mandate_core::TokenId;
use tokio::sync::{Mutex, broadcast};

use super::session::Active;
use super::{Update, now};
use crate::history::{DecisionKind, History, Outgoing};
use crate::{BrokerClient, ClientError};

/// The outbox.
pub(super) struct Outbox {
    history: History,
    broker: BrokerClient,
    updates: broadcast::Sender<Update>,
    delivering: Mutex<()>,
}

impl Outbox {
    pub(super) fn new(
        history: History,
        broker: BrokerClient,
        updates: broadcast::Sender<Update>,
    ) -> Outbox {
        Outbox {
            history,
            broker,
            updates,
            delivering: Mutex::new(()),
        }
    }

    /// Delivers every decision in the outbox, one delivery at a time.
    /// Returns how many are still waiting (the broker unreachable, or
    /// busy).
    pub(super) async fn deliver(&self, active: &Active) -> Result<usize, ClientError> {
        let _one_at_a_time = self.delivering.lock().await;
        let principal = &active.profile.principal;
        let bearer = active.bearer.expose();
        let mut waiting = 0;
        for d in self.history.outbox(principal).await? {
            let sent = Outgoing::Decision(&d.request_id);
            let answer = match d.request_id.parse::<TokenId>() {
                Ok(id) if d.kind == DecisionKind::Grant => {
                    self.broker.approve(bearer, &id, &d.token).await
                }
                Ok(id) => self.broker.deny(bearer, &id, &d.token).await,
                // Cannot happen for rows this engine wrote.
                Err(_) => Err(ClientError::Broker(BrokerError::Refused {
                    status: 400,
                    code: mandate_broker::Code::BadId.as_str().into(),
                    message: "the request id is malformed".into(),
                    retry_after: None,
                })),
            };
            if !self.settle(active, sent, answer).await? {
                waiting += 1;
            }
        }
        for r in self.history.revocation_outbox(principal).await? {
            let answer = self.broker.revoke(bearer, &r.token).await;
            if !self
                .settle(active, Outgoing::Revocation(&r.token_id), answer)
                .await?
            {
                waiting += 1;
            }
        }
        // A re-issued grant goes once the grant it replaces is revoked at
        // the broker; it cannot go if that revocation was refused.
        for (r, revocation_refused, revocation_delivered) in
            self.history.reissue_outbox(principal).await?
        {
            let sent = Outgoing::Reissue(&r.token_id);
            let answer = match (revocation_refused, revocation_delivered) {
                (Some(code), _) => Err(ClientError::Broker(BrokerError::Refused {
                    status: 409,
                    code,
                    message: "the revocation of the grant it replaces was refused".into(),
                    retry_after: None,
                })),
                (None, false) => {
                    waiting += 1;
                    continue;
                }
                (None, true) => {
                    self.broker
                        .reissue(bearer, &r.request_id, &r.token, &r.replaces)
                        .await
                }
            };
            if !self.settle(active, sent, answer).await? {
                waiting += 1;
            }
        }
        Ok(waiting)
    }

    /// Records how one delivery went; `false` when it is to be tried again.
    async fn settle(
        &self,
        active: &Active,
        sent: Outgoing<'_>,
        answer: Result<(), ClientError>,
    ) -> Result<bool, ClientError> {
        let history = &self.history;
        let refused = match answer {
            Ok(()) => None,
            Err(ClientError::Broker(BrokerError::Refused { status, code, .. }))
                if final_refusal(status) =>
            {
                tracing::warn!(?sent, %code, "the broker refused it for good");
                Some(code)
            }
            Err(e) => {
                history.note_attempt(sent, Some(e.code())).await?;
                return Ok(false);
            }
        };
        history.note_attempt(sent, refused.as_deref()).await?;
        history
            .settle(
                &active.key,
                &active.profile.principal,
                sent,
                refused.as_deref(),
                now(),
            )
            .await?;
        let delivered = refused.is_none();
        let update = match sent {
            Outgoing::Decision(request_id) => Update::Delivery {
                request_id: request_id.to_owned(),
                delivered,
            },
            Outgoing::Revocation(token_id) => Update::Revocation {
                token_id: token_id.to_owned(),
                delivered,
            },
            Outgoing::Reissue(token_id) => Update::Reissue {
                token_id: token_id.to_owned(),
                delivered,
            },
        };
        let _ = self.updates.send(update);
        Ok(true)
    }
}

/// Whether a refusal is final (retrying the same token cannot succeed):
/// any 4xx but an expired bearer (401) and a rate limit (429).
fn final_refusal(status: u16) -> bool {
    (400..500).contains(&status) && status != 401 && status != 429
}
