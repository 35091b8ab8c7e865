//! End-to-end tests across Mandate's parts, all real processes: the OIDC
//! provider (`oidc-provider` on Node), `mandate-broker` on SQLite and on
//! Postgres, the example resource server, and agents using the SDK and the
//! `mandate` CLI.

#![allow(clippy::expect_used, clippy::unwrap_used)]

#[cfg(unix)]
mod browser;
#[cfg(unix)]
mod chaos;
mod cli;
mod demo;
#[cfg(unix)]
mod flood;
mod gateway;
mod headless;
mod hostile;
mod instances;
mod journey;
mod tiers;
mod user;
mod withheld;
