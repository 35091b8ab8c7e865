//! Support for tests across Mandate's parts: starting the real processes
//! (the OIDC provider, brokers, resource servers, the CLI) and signing in.
//! The end-to-end tests themselves live in `tests/`.

#![allow(clippy::expect_used, clippy::unwrap_used)]

pub mod procs;
