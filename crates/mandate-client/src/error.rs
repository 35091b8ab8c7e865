//! The engine's errors, each with a stable code for the UI.

/// Why an engine operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// The broker could not be reached, or refused (the reason the agent
    /// SDK's errors share).
    #[error(transparent)]
    Broker(#[from] mandate_agent::BrokerError),
    /// A token failed verification.
    #[error("{0}")]
    Token(#[from] mandate_core::Error),
    /// The user's choice is not possible (approving more than was asked).
    #[error("{0}")]
    Invalid(String),
    /// The OS keyring refused or is unavailable.
    #[error("the OS keyring: {0}")]
    Keyring(String),
    /// The local history could not be read or written.
    #[error("the local history: {0}")]
    History(String),
    /// The local history does not verify: a row was changed, removed or
    /// added outside the app.
    #[error("the local history was tampered with: {0}")]
    Tampered(String),
    /// Signing in failed.
    #[error(transparent)]
    SignIn(#[from] crate::SignInError),
    /// The operation needs a signed-in user.
    #[error("sign in first")]
    SignedOut,
    /// No such request.
    #[error("no such request")]
    NotFound,
    /// The broker's URL was refused: not `https://` (nor `http://` to this
    /// machine), or not a plain base URL.
    #[error(transparent)]
    BrokerUrl(#[from] mandate_agent::client::BrokerUrlError),
}

impl ClientError {
    /// The broker could not be reached, or its answer not read.
    pub fn unreachable(why: impl Into<String>) -> ClientError {
        ClientError::Broker(mandate_agent::BrokerError::Unreachable(why.into()))
    }

    /// A stable code for the UI.
    pub fn code(&self) -> &str {
        match self {
            ClientError::Broker(e) => e.code(),
            ClientError::Token(e) => e.code(),
            ClientError::Invalid(_) => "input.invalid",
            ClientError::Keyring(_) => "keyring.unavailable",
            ClientError::History(_) => "history.unavailable",
            ClientError::Tampered(_) => "history.tampered",
            ClientError::SignIn(e) => e.code(),
            ClientError::SignedOut => "session.signed_out",
            ClientError::NotFound => "request.not_found",
            ClientError::BrokerUrl(e) => e.code(),
        }
    }
}
