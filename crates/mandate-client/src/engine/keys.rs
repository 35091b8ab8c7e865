//! The user's keys on their other devices: the list, a lost device's key
//! removed, and a new key's enrollment announced.

use mandate_core::Claims as _;
use tokio::sync::broadcast;

use super::session::Active;
use super::{Update, now};
use crate::broker::KeyItem;
use crate::devices::{Device, Enrolled};
use crate::history::History;
use crate::{BrokerClient, ClientError};

/// The user's keys at the broker.
pub(super) struct Keys {
    history: History,
    broker: BrokerClient,
    updates: broadcast::Sender<Update>,
}

impl Keys {
    pub(super) fn new(
        history: History,
        broker: BrokerClient,
        updates: broadcast::Sender<Update>,
    ) -> Keys {
        Keys {
            history,
            broker,
            updates,
        }
    }

    /// The signed-in user's keys at the broker, one per device.
    pub(super) async fn list(&self, active: &Active) -> Result<Vec<KeyItem>, ClientError> {
        self.broker.keys(active.bearer.expose()).await
    }

    /// The devices screen: the user's keys at the broker, oldest first,
    /// with this computer's marked.
    pub(super) async fn devices(&self, active: &Active) -> Result<Vec<Device>, ClientError> {
        let keys = self.list(active).await?;
        Ok(crate::devices::devices(keys, &active.key.thumbprint()))
    }

    /// Removes one of the user's other keys (a lost device's): signs a key
    /// revocation with this device's key, has the broker publish it on the
    /// revocation feed, and records it in the history. This computer's own
    /// key is refused.
    pub(super) async fn remove(&self, active: &Active, jkt: &str) -> Result<(), ClientError> {
        let removed: mandate_core::Thumbprint = jkt
            .parse()
            .map_err(|_| ClientError::Invalid("not a key thumbprint".into()))?;
        if removed == active.key.thumbprint() {
            return Err(ClientError::Invalid(
                "this is this computer's own key: sign out here, or remove it from another device"
                    .into(),
            ));
        }
        let principal = &active.profile.principal;
        let token = mandate_core::token::KeyRevocationClaims {
            sub: principal
                .clone()
                .try_into()
                .map_err(|_| ClientError::Invalid("the principal is malformed".into()))?,
            keys: vec![removed],
            reason: Some("Removed in Devices".into()),
            iat: now(),
            jti: mandate_core::token::Jti::random(&mut rand_core::OsRng),
        }
        .sign(&active.key);
        self.broker
            .remove_keys(active.bearer.expose(), &token)
            .await?;
        self.history
            .record_key_removal(&active.key, principal, jkt, &token, now())
            .await?;
        tracing::info!("a key of the user's was removed");
        Ok(())
    }

    /// Announces a key enrolled for the user on another device; its
    /// device's name comes from the broker's list. The caller has made
    /// sure the key is not this computer's.
    pub(super) async fn announce(&self, active: &Active, enrolled: Enrolled) {
        let jkt = enrolled.jkt.to_string();
        let device = match self.list(active).await {
            Ok(keys) => keys.into_iter().find(|k| k.jkt == jkt).map(|k| k.device),
            // Said without a name rather than not at all.
            Err(e) => {
                tracing::info!(code = e.code(), "the new key's device could not be read");
                None
            }
        };
        tracing::info!(key = %jkt, "a key was enrolled on another device");
        let _ = self.updates.send(Update::KeyEnrolled {
            fingerprint: mandate_core::AgentId::from_thumbprint(enrolled.jkt).fingerprint(),
            jkt,
            device,
            at: enrolled.at,
        });
    }
}
