//! What can go wrong for an agent, each with a stable code.

use mandate_keyfile::KeyFileError;

mandate_core::error_codes! {
    /// The codes the SDK and the `mandate` CLI give on their own, besides
    /// the broker's and the protocol's, which they pass on as they are.
    /// None is an HTTP answer: the CLI prints `error CODE: message` on
    /// standard error and exits with 1.
    pub enum LocalCode {
        /// The broker could not be reached.
        Unreachable = (
            "broker.unreachable",
            None,
            "The broker could not be reached, or its answer could not be read.",
            "Check the broker URL and that the broker runs; retry.",
        ),
        /// The broker URL is not a plain base URL.
        UrlMalformed = (
            "broker.url_malformed",
            None,
            "The broker URL is not an absolute URL with a host, or has credentials, a query or a \
             fragment.",
            "Give the broker's base URL, such as `https://mandate.example.com`.",
        ),
        /// The broker URL is plain HTTP to another machine.
        UrlInsecure = (
            "broker.url_insecure",
            None,
            "The broker URL is not `https://`, nor `http://` to this machine.",
            "Use `https://`; plain HTTP only to 127.0.0.0/8, `::1` or `localhost`.",
        ),
        /// An answer without a JSON error body.
        HttpError = (
            "http.error",
            None,
            "A server refused without a JSON error body (its status is in the message).",
            "Check that the URL is the broker's or the resource server's.",
        ),
        /// The user denied the request.
        Denied = (
            "request.denied",
            None,
            "The user denied the request (the message carries their reason).",
            "Do not ask again for the same thing at once; tell your user.",
        ),
        /// The request lapsed.
        Expired = (
            "request.expired",
            None,
            "The request lapsed before the user decided.",
            "Ask again if it still matters.",
        ),
        /// No decision in the time allowed.
        TimedOut = (
            "request.timed_out",
            None,
            "No decision came within the time the caller allowed (`--timeout`).",
            "Wait again (the request may still be pending), or ask again.",
        ),
        /// No depth left to delegate.
        DepthExhausted = (
            "delegate.depth_exhausted",
            None,
            "The mandate allows no further delegation (its `max_depth` is 0).",
            "Put the sub-agent's request in front of the user instead (`--parent`, \
             `Agent::escalate`).",
        ),
        /// The key file is unusable.
        KeyFile = (
            "agent.key_file",
            None,
            "The agent's key file could not be read or written, is not a key, or others can read \
             it.",
            "Fix the path; keep the file at mode 0600.",
        ),
        /// An input was unusable.
        Invalid = (
            "input.invalid",
            None,
            "An argument or a file given is not usable (the message says which).",
            "Fix the input.",
        ),
        /// The revocation list is not current.
        Stale = (
            "revocation.stale",
            None,
            "The broker's revocation list could not be confirmed current: no signed checkpoint \
             matched it.",
            "Retry; if it persists, the path to the broker holds revocations back.",
        ),
        /// A line of an export that is not a record.
        ExportMalformed = (
            "export.malformed",
            None,
            "`mandate verify --receipts`: a line is not a record of the app's export.",
            "Export again from the app; the line's result says which.",
        ),
        /// A history checked against another key.
        HistoryKeyMismatch = (
            "history.key_mismatch",
            None,
            "`mandate history verify`: the history names another user key than the one given.",
            "Give the fingerprint the app shows for this history's user.",
        ),
    }
}

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
        /// For a refusal that lifts with time (`request.cooldown`): in how
        /// many seconds asking again is allowed.
        retry_after: Option<u64>,
    },
}

impl BrokerError {
    /// For a refusal that lifts with time, how long to wait before asking
    /// again; an agent MUST NOT ask again sooner.
    pub fn retry_after(&self) -> Option<std::time::Duration> {
        match self {
            BrokerError::Refused {
                retry_after: Some(s),
                ..
            } => Some(std::time::Duration::from_secs(*s)),
            _ => None,
        }
    }

    /// A stable code naming the failure.
    pub fn code(&self) -> &str {
        match self {
            BrokerError::Unreachable(_) => LocalCode::Unreachable.as_str(),
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
            AgentError::Denied(_) => LocalCode::Denied.as_str(),
            AgentError::Expired => LocalCode::Expired.as_str(),
            AgentError::TimedOut => LocalCode::TimedOut.as_str(),
            AgentError::DepthExhausted => LocalCode::DepthExhausted.as_str(),
            AgentError::Key(_) => LocalCode::KeyFile.as_str(),
            AgentError::Invalid(_) => LocalCode::Invalid.as_str(),
            AgentError::BrokerUrl(e) => e.code(),
            AgentError::Stale(_) => LocalCode::Stale.as_str(),
        }
    }
}
