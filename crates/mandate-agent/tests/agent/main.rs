//! mandate-agent's integration tests: the verifier middleware in a real
//! axum router, trusting a broker served on loopback.

#![allow(clippy::expect_used, clippy::unwrap_used)]

mod verifier;
