//! What the engine announces on [`Engine::subscribe`](super::Engine::subscribe):
//! each change the page should show, as it happens.

use serde::Serialize;

/// A change the UI should show.
#[derive(Debug, Clone, Serialize, PartialEq, Eq, ts_rs::TS)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Update {
    /// The inbox changed; `pending` requests wait.
    Inbox {
        /// How many.
        pending: usize,
        /// The requests that arrived with this change.
        new: Vec<String>,
    },
    /// A request fit one of the user's standing rules, and the app approved
    /// it: a quiet notification, and a line in the history.
    AutoApproved {
        /// The request approved.
        request_id: String,
        /// The rule that approved it.
        rule_id: String,
        /// The rule's label.
        label: Option<String>,
    },
    /// Calls to confirm arrived, or were answered: re-read them.
    Calls,
    /// A decision reached the broker, or was refused by it for good.
    Delivery {
        /// The request decided.
        request_id: String,
        /// Whether the broker accepted it.
        delivered: bool,
    },
    /// A revocation reached the broker, or was refused by it for good.
    Revocation {
        /// The revocation's token id.
        token_id: String,
        /// Whether the broker accepted it.
        delivered: bool,
    },
    /// A re-issued grant reached the broker, or was refused for good.
    Reissue {
        /// The new grant's id.
        token_id: String,
        /// Whether the broker accepted it.
        delivered: bool,
    },
    /// Agents' receipts arrived.
    Activity {
        /// How many are new.
        new: usize,
        /// How many of those failed verification.
        failed: usize,
    },
    /// The live connection to the broker went up or down.
    Connection {
        /// Whether it is up.
        online: bool,
    },
    /// A key was enrolled for the user on another device (never this
    /// computer's own key). If it was not the user, they remove it.
    KeyEnrolled {
        /// The new key's thumbprint.
        jkt: String,
        /// Its short fingerprint.
        fingerprint: String,
        /// The name the device gave; `None` when the broker's list did not
        /// have the key.
        device: Option<String>,
        /// When it was enrolled (unix seconds).
        at: i64,
    },
}
