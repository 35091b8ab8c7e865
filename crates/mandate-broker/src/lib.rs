//! mandate-broker is Mandate's rendezvous service. Agents file signed
//! requests; users see them, decide, and revoke; agents collect grants and
//! report receipts. [`router`] is the library entry point, testable without
//! a socket; the `mandate-broker` binary serves it.
//!
//! It depends on mandate-core for every token rule and on mandate-store
//! for persistence. Handlers are thin: they extract their input, call one
//! function of the service layer ([`service`]), and map its error to a
//! JSON body with a stable code ([`ApiError`]). Nothing here returns a 500
//! for bad input, and no response echoes a token or a secret.
//!
//! Terms: a *principal* is a user, `issuer#subject` of an OIDC identity;
//! an agent is named by its key's thumbprint.

#![forbid(unsafe_code)]

mod chain_state;
pub mod chains;
mod checkpoint;
pub mod confirm_service;
mod error;
pub mod guard;
pub mod handlers;
pub mod host;
mod hub;
pub mod keys;
mod known;
pub mod oauth;
pub mod oidc;
pub mod openapi;
pub mod ratelimit;
pub mod receipt_service;
mod replay;
pub mod revocation_service;
pub mod rules;
pub mod service;
mod state;
mod streams;
mod user;
pub mod user_service;
pub mod witness_service;

use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::handler::Handler;
use axum::middleware;
use axum::routing::{MethodRouter, delete, get, post};

pub use error::{ApiError, Code};
pub use guard::{AllowedHost, AllowedOrigin, Guard};
pub use state::{AppState, Clock, Limits};
pub use streams::{INBOX_EVENTS, REVOCATION_EVENTS, StreamEvent};
pub use user::User;

/// The largest request body accepted, in bytes: a request plus a chain of
/// 16 grants, each at most 16 KiB, with room for JSON.
pub const MAX_BODY_BYTES: usize = 320 * 1024;

/// The broker's HTTP API, behind its front door ([`guard`]): every request
/// must name an allowed host and come from no web origin or an allowed
/// one, and every body must be JSON.
pub fn router(state: AppState) -> Router {
    let door = Arc::clone(&state.guard);
    Router::new()
        .route("/.well-known/mandate", get(handlers::metadata))
        .route("/openapi.json", get(openapi::document))
        .route("/v1/requests", post_json(handlers::submit_request))
        .route("/v1/requests/{id}", get(handlers::poll_request))
        .route("/v1/requests/{id}/decision", post_json(handlers::decide))
        .route("/v1/inbox", get(handlers::inbox))
        .route("/v1/inbox/events", get(handlers::inbox_events))
        .route("/v1/revocations/events", get(handlers::revocation_events))
        .route("/v1/keys", post_json(handlers::enroll).get(handlers::keys))
        .route("/v1/keys/revocations", post_json(handlers::remove_keys))
        .route(
            "/v1/revocations",
            post_json(handlers::revoke).get(handlers::revocation_feed),
        )
        .route("/v1/grants", get(handlers::grants))
        .route(
            "/v1/blocks",
            post_json(handlers::block).get(handlers::blocks),
        )
        .route("/v1/blocks/{agent}", delete(handlers::lift_block))
        .route(
            "/v1/confirmations",
            post_json(handlers::ask_confirmation).get(handlers::confirmations),
        )
        .route("/v1/confirmations/{id}", get(handlers::poll_confirmation))
        .route(
            "/v1/confirmations/{id}/decision",
            post_json(handlers::decide_confirmation),
        )
        .route(
            "/.well-known/oauth-authorization-server",
            get(oauth::metadata),
        )
        .route(oauth::JWKS_PATH, get(oauth::jwks))
        .route(oauth::TOKEN_PATH, post_form(oauth::token))
        .route(oauth::INTROSPECT_PATH, post_form(oauth::introspect))
        .route(oauth::REVOKE_PATH, post_form(oauth::revoke))
        .route(
            oauth::authorize::AUTHORIZE_PATH,
            get(oauth::authorize::authorize),
        )
        .route(
            oauth::authorize::CALLBACK_PATH,
            get(oauth::authorize::callback),
        )
        .route("/oauth/wait/{flow}", get(oauth::authorize::wait))
        .route(
            oauth::client::REGISTER_PATH,
            post_json(oauth::client::register),
        )
        .route(
            "/v1/receipts",
            post_json(handlers::report).get(handlers::receipts),
        )
        .route("/v1/witness", post_json(handlers::witness))
        .route("/v1/witness/tools", post_json(handlers::witness_tools))
        .fallback(handlers::not_found)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(middleware::from_fn_with_state(door, Guard::admit))
        .with_state(state)
}

/// A `POST` route whose body must be a form, as OAuth's endpoints take
/// ([`guard::form_only`]). Browsers cannot drive it: they send `Origin`
/// with every `POST`, which the front door refuses.
fn post_form<H, T>(handler: H) -> MethodRouter<AppState>
where
    H: Handler<T, AppState>,
    T: 'static,
{
    post(handler).route_layer(middleware::from_fn(guard::form_only))
}

/// A `POST` route whose body must be sent as JSON ([`guard::json_only`]).
/// The rule wraps the handler only, so a method the route does not serve
/// still gets 405.
fn post_json<H, T>(handler: H) -> MethodRouter<AppState>
where
    H: Handler<T, AppState>,
    T: 'static,
{
    post(handler).route_layer(middleware::from_fn(guard::json_only))
}
