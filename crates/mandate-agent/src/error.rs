//! What can go wrong for an agent, each with a stable code.

use mandate_keyfile::KeyFileError;

/// Why a call to the broker (or, for the CLI, a resource server) failed:
/// the reason shared by the agent SDK's errors and the desktop engine's.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BrokerError {
    /// The broker could not be reached, or its answer could not be read.
    #[error("cannot reach the broker: {0}")]
    Unreachable(String),
    /// The broker refused, with its stable code.
    #[error("the broker refused ({status} {code}): {message}")]
    Refused {
        /// The HTTP status.
        status: u16,
        /// The broker's stable error code.
        code: String,
        /// The broker's explanation.
        message: String,
    },
}

impl BrokerError {
    /// A stable code naming the failure.
    pub fn code(&self) -> &str {
        match self {
            BrokerError::Unreachable(_) => "broker.unreachable",
            BrokerError::Refused { code, .. } => code,
        }
    }
}

/// Why an agent operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AgentError {
    /// The broker could not be reached, or refused.
    #[error(transparent)]
    Broker(#[from] BrokerError),
    /// A token failed verification.
    #[error("{0}")]
    Token(#[from] mandate_core::Error),
    /// The user denied the request.
    #[error("the user denied the request{}", .0.as_deref().map(|r| format!(": {r}")).unwrap_or_default())]
    Denied(Option<String>),
    /// The request lapsed undecided.
    #[error("the request expired undecided")]
    Expired,
    /// Waiting took longer than allowed.
    #[error("no decision within the time allowed")]
    TimedOut,
    /// The mandate allows no further hops; escalate to the user instead.
    #[error("the mandate allows no further delegation (max_depth is 0); ask the user instead")]
    DepthExhausted,
    /// The agent's key file could not be used.
    #[error("{0}")]
    Key(#[from] KeyFileError),
    /// An input was not usable.
    #[error("{0}")]
    Invalid(String),
    /// The broker's URL was refused: not `https://` (nor `http://` to this
    /// machine), or not a plain base URL.
    #[error("{0}")]
    BrokerUrl(#[from] crate::client::BrokerUrlError),
    /// The broker's revocation list could not be confirmed current: no
    /// checkpoint of the broker matched the feed as read.
    #[error("the revocation list is not current: {0}")]
    Stale(String),
}

impl AgentError {
    /// A stable code naming the failure, for scripts.
    pub fn code(&self) -> &str {
        match self {
            AgentError::Broker(e) => e.code(),
            AgentError::Token(e) => e.code(),
            AgentError::Denied(_) => "request.denied",
            AgentError::Expired => "request.expired",
            AgentError::TimedOut => "request.timed_out",
            AgentError::DepthExhausted => "delegate.depth_exhausted",
            AgentError::Key(_) => "agent.key_file",
            AgentError::Invalid(_) => "input.invalid",
            AgentError::BrokerUrl(e) => e.code(),
            AgentError::Stale(_) => "revocation.stale",
        }
    }
}
