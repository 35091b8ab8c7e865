//! The engine's errors, each with a stable code for the UI.

mandate_core::error_codes! {
    /// The codes the desktop app and `mandate-engine` give on their own,
    /// besides the broker's, the SDK's and the protocol's, which they pass
    /// on. None is an HTTP answer: `mandate-engine` prints
    /// `error CODE: message` on standard error and exits with 1.
    pub enum EngineCode {
        /// No provider configured.
        ConfigMissing = (
            "config.missing",
            None,
            "No OIDC provider is configured.",
            "Set `MANDATE_ISSUER` (or `--issuer`).",
        ),
        /// An input was unusable.
        Invalid = (
            "input.invalid",
            None,
            "A choice is not possible (approving more than was asked, an unknown scope) or an \
             argument is malformed.",
            "Fix the input; the message says which.",
        ),
        /// The keyring refused.
        Keyring = (
            "keyring.unavailable",
            None,
            "The OS keyring refused or is not running.",
            "Start a Secret Service (GNOME Keyring, KWallet), or unlock it.",
        ),
        /// The history could not be used.
        History = (
            "history.unavailable",
            None,
            "The local history could not be read or written.",
            "Check the data directory and its free space.",
        ),
        /// The history was changed outside the app.
        Tampered = (
            "history.tampered",
            None,
            "The local history does not verify: a row was changed, removed or added outside the \
             app.",
            "Keep the file for inspection; `history verify` says where it breaks.",
        ),
        /// Nobody is signed in.
        SignedOut = (
            "session.signed_out",
            None,
            "The operation needs a signed-in user.",
            "Run `signin` first.",
        ),
        /// No such request in the inbox.
        NotFound = (
            "request.not_found",
            None,
            "No such request in this user's inbox (or it was decided).",
            "Check the id with `inbox`.",
        ),
        /// The provider's discovery failed.
        SignInDiscovery = (
            "signin.discovery",
            None,
            "The provider's discovery document or keys could not be read.",
            "Check the issuer URL and that the provider answers.",
        ),
        /// No loopback listener for the redirect.
        SignInListener = (
            "signin.listener",
            None,
            "The loopback listener for the provider's redirect could not start.",
            "Free a loopback port; retry.",
        ),
        /// The browser could not be opened.
        SignInBrowser = (
            "signin.browser",
            None,
            "The browser could not be opened.",
            "Set `MANDATE_BROWSER` to a command the URL is appended to.",
        ),
        /// The sign-in took too long.
        SignInTimedOut = (
            "signin.timed_out",
            None,
            "The sign-in did not complete in time.",
            "Sign in again.",
        ),
        /// The provider refused.
        SignInRefused = (
            "signin.refused",
            None,
            "The provider refused the sign-in (the message carries its error).",
            "Sign in again, or ask the provider's administrator.",
        ),
        /// A malformed redirect.
        SignInMalformed = (
            "signin.malformed",
            None,
            "The provider's redirect was malformed or its `state` did not match.",
            "Sign in again from the start.",
        ),
        /// The code exchange failed.
        SignInExchange = (
            "signin.exchange",
            None,
            "Exchanging the code for tokens failed.",
            "Sign in again.",
        ),
        /// No ID token.
        SignInNoIdToken = (
            "signin.no_id_token",
            None,
            "The provider answered without an ID token.",
            "Ask for the `openid` scope; check the provider's client.",
        ),
        /// A replayed sign-in.
        SignInNonceMismatch = (
            "signin.nonce_mismatch",
            None,
            "The ID token's `nonce` is not this sign-in's.",
            "Sign in again.",
        ),
        /// An expired ID token.
        SignInExpired = (
            "signin.expired",
            None,
            "The ID token has expired.",
            "Sign in again; check the clock.",
        ),
        /// An ID token that does not validate.
        SignInInvalid = (
            "signin.id_token_invalid",
            None,
            "The ID token does not validate: signature, issuer, audience or subject.",
            "Check the issuer and the client id.",
        ),
        /// A principal that is not one.
        PrincipalMalformed = (
            "principal.malformed",
            None,
            "A chain shown for a request names a principal that is not `ISSUER#SUBJECT`.",
            "Deny the request: its chain is not checkable.",
        ),
    }
}

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
            ClientError::Invalid(_) => EngineCode::Invalid.as_str(),
            ClientError::Keyring(_) => EngineCode::Keyring.as_str(),
            ClientError::History(_) => EngineCode::History.as_str(),
            ClientError::Tampered(_) => EngineCode::Tampered.as_str(),
            ClientError::SignIn(e) => e.code(),
            ClientError::SignedOut => EngineCode::SignedOut.as_str(),
            ClientError::NotFound => EngineCode::NotFound.as_str(),
            ClientError::BrokerUrl(e) => e.code(),
        }
    }
}
