//! Support for tests across Mandate's parts: starting the real processes
//! (the OIDC provider, brokers, resource servers, the CLI) and signing in,
//! and an attacker's signed requests and flood (`mandate-flood`, a binary
//! of this crate, runs one for the app's tests). The end-to-end tests
//! themselves live in `tests/`.

#![allow(clippy::expect_used, clippy::unwrap_used)]

pub mod flood;
pub mod procs;
