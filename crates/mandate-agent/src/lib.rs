//! Mandate for agents and for the resource servers they call.
//!
//! An agent holds its own Ed25519 key ([`mandate_keyfile`]). It asks its
//! user for authority through a broker ([`Agent::request`]), waits for the
//! signed decision ([`Agent::wait`]), passes narrower authority to
//! sub-agents ([`Agent::delegate`]), proves possession on each call
//! ([`Agent::present`]) and reports what it did ([`Agent::report`]).
//!
//! A resource server embeds a [`ResourceVerifier`] as axum middleware
//! ([`require_mandate`]). It verifies chains offline and keeps its
//! revocation set current from the broker's stream ([`Revocations`]),
//! refusing every call while that set is stale: while the latest signed
//! broker checkpoint it caught up to is older than its bound
//! ([`DEFAULT_MAX_STALENESS`]).
//!
//! Every client here talks to the broker over `https://`, or `http://` to
//! this machine only ([`client::broker_url`]).
//!
//! `docs/agents.md` walks through both sides, with the `mandate` CLI.

#![forbid(unsafe_code)]

mod agent;
pub mod client;
mod counts;
mod error;
mod escalate;
mod mandate;
pub mod oauth;
mod online;
pub mod revocations;
pub mod sse;
pub mod verifier;

/// `docs/agents.md`: the guide for agents and resource servers. Its Rust
/// examples compile as doctests.
#[doc = include_str!("../../../docs/agents.md")]
pub mod guide {}

pub use agent::{Agent, Ask, Delegation, Pending, PendingConfirmation, Report, unix_now};
pub use client::Broker;
pub use error::{AgentError, BrokerError, LocalCode};
pub use mandate::{
    BINDING_HEADER, CHAIN_HEADER, CONFIRMATION_HEADER, KEYS_HEADER, Mandate, POP_HEADER,
};
pub use mandate_core::token::{Action, AgentInfo, Outcome};
pub use oauth::AccessToken;
pub use online::{
    ReceiptSummary, Summary, verify_online, verify_receipt_online, verify_witness_online,
};
pub use revocations::Revocations;
pub use verifier::{
    DEFAULT_CLOCK_SKEW, DEFAULT_MAX_BODY, DEFAULT_MAX_STALENESS, DEFAULT_REPLAY_CAPACITY, Mandated,
    Need, NoNeed, Refusal, ResourceCode, ResourceVerifier, VerifierConfig, require_mandate,
    rule_status,
};
