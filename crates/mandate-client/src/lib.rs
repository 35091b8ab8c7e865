//! The Mandate desktop app's engine, with no Tauri dependency, so that it
//! runs and is tested headless.
//!
//! It depends on mandate-core and talks to an OpenID Provider and a
//! broker over HTTP. So far it holds:
//! - the sign-in ([`signin`]): OIDC Authorization Code with PKCE through
//!   the system browser and a loopback redirect (RFC 8252), with `state`,
//!   `nonce` and the ID token checked, and refresh. A [`Session`]'s ID
//!   token is the user's bearer token at the broker; its refresh token
//!   belongs in the OS keyring;
//! - what the user signs ([`decision`]): grants, narrowed or as asked,
//!   denials and revocations;
//! - the broker's user API ([`broker`]): key enrollment, the inbox,
//!   decisions, revocations.

#![forbid(unsafe_code)]

pub mod activity;
pub mod broker;
pub mod calls;
pub mod commands;
pub mod decision;
pub mod delegations;
pub mod devices;
pub mod engine;
mod error;
pub mod export;
pub mod history;
mod http;
pub mod names;
pub mod narrow;
pub mod notices;
pub mod parent;
pub mod settings;
pub mod signin;
pub mod tiers;
pub mod tool_claims;
pub mod vault;
pub mod view;

pub use broker::{BrokerClient, Enrollment, InboxItem};
pub use decision::Narrowing;
pub use engine::{Account, BrokerMode, Config, Engine, Update};
pub use error::{ClientError, EngineCode};
pub use signin::{Browser, CommandBrowser, Provider, Session, SignInError};
