//! mandate-core's integration tests: the vector table, properties, and
//! journeys through the public API.

// A failed expectation in a test is a test failure, which is what we want.
#![allow(clippy::expect_used, clippy::unwrap_used)]

mod api;
mod properties;
mod vectors;

/// The vector generator's modules, shared with `examples/gen_vectors`.
#[path = "../../examples/gen_vectors"]
#[allow(dead_code)]
mod gen_vectors {
    pub mod fixture;
    pub mod invalid;
    pub mod tiers;
    pub mod valid;
    pub mod witness;
}
