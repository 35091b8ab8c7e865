//! The engine's errors, each with a stable code for the UI.

/// Why an engine operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// The broker could not be reached, or its answer not read.
    #[error("cannot reach the broker: {0}")]
    Unreachable(String),
    /// The broker refused, with its stable code.
    #[error("the broker refused ({status} {code}): {message}")]
    Refused {
        /// The HTTP status.
        status: u16,
        /// The broker's code.
        code: String,
        /// The broker's explanation.
        message: String,
    },
    /// A token failed verification.
    #[error("{0}")]
    Token(#[from] mandate_core::Error),
    /// The user's choice is not possible (approving more than was asked).
    #[error("{0}")]
    Invalid(String),
}

impl ClientError {
    /// A stable code for the UI.
    pub fn code(&self) -> &str {
        match self {
            ClientError::Unreachable(_) => "broker.unreachable",
            ClientError::Refused { code, .. } => code,
            ClientError::Token(e) => e.code(),
            ClientError::Invalid(_) => "input.invalid",
        }
    }
}
