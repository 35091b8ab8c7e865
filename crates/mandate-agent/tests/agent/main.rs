//! mandate-agent's integration tests: the verifier middleware in a real
//! axum router, trusting a broker served on loopback, and how current its
//! revocation set is.

#![allow(clippy::expect_used, clippy::unwrap_used)]

mod freshness;
mod verifier;
