//! Thin HTTP adapters: extract, call one service function, map the error.

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use mandate_core::{Jwk, TokenId};
use serde::Deserialize;
use serde_json::json;

use crate::user_service::{self, Decision};
use crate::{ApiError, AppState, User, receipt_service, revocation_service, service, streams};

/// The header that carries an agent's proof of possession.
pub const POP_HEADER: &str = "mandate-pop";

pub async fn metadata(State(state): State<AppState>) -> impl IntoResponse {
    let s = &state.inner;
    Json(json!({
        "issuer": s.public_url,
        "jwks": { "keys": [s.key.public().to_jwk()] },
        "oidc_issuers": s.oidc.issuers().iter().map(|i| &i.issuer).collect::<Vec<_>>(),
    }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SubmitBody {
    request: String,
}

/// Reads a JSON body, answering in the broker's error format when it is
/// too large or not the expected JSON.
fn json_body<T: for<'de> Deserialize<'de>>(
    body: Result<Bytes, BytesRejection>,
) -> Result<T, ApiError> {
    let bytes = body.map_err(|r| {
        if r.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "body.too_large",
                "the body is too large",
            )
        } else {
            ApiError::bad_request("body.unreadable", "the body could not be read")
        }
    })?;
    serde_json::from_slice(&bytes).map_err(|_| {
        ApiError::bad_request("body.malformed_json", "the body is not the expected JSON")
    })
}

pub async fn submit_request(
    State(state): State<AppState>,
    body: Result<Bytes, BytesRejection>,
) -> Result<impl IntoResponse, ApiError> {
    let body: SubmitBody = json_body(body)?;
    let submitted = service::submit_request(&state, &body.request).await?;
    Ok((StatusCode::CREATED, Json(submitted)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Wait {
    /// Seconds to hold the poll open while the request is pending.
    #[serde(default)]
    wait: u64,
}

pub async fn poll_request(
    State(state): State<AppState>,
    Path(id): Path<String>,
    query: Result<Query<Wait>, QueryRejection>,
    headers: HeaderMap,
) -> Result<impl IntoResponse, ApiError> {
    let Query(wait) = query.map_err(|_| {
        ApiError::bad_request("query.malformed", "wait must be a number of seconds")
    })?;
    let id: TokenId = id
        .parse()
        .map_err(|_| ApiError::bad_request("request.bad_id", "not a request id"))?;
    let pop =
        match headers.get(POP_HEADER) {
            None => None,
            Some(v) => Some(v.to_str().map_err(|_| {
                ApiError::bad_request("auth.pop_malformed", "the proof is not text")
            })?),
        };
    let wait = std::time::Duration::from_secs(wait.wait).min(service::MAX_WAIT);
    Ok(Json(service::poll_request(&state, &id, pop, wait).await?))
}

pub async fn inbox(
    State(state): State<AppState>,
    user: User,
) -> Result<impl IntoResponse, ApiError> {
    Ok(Json(
        json!({ "requests": user_service::inbox(&state, &user).await? }),
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EnrollBody {
    jwk: Jwk,
    proof: String,
}

pub async fn enroll(
    State(state): State<AppState>,
    user: User,
    body: Result<Bytes, BytesRejection>,
) -> Result<impl IntoResponse, ApiError> {
    let body: EnrollBody = json_body(body)?;
    let enrolled = user_service::enroll(&state, &user, &body.jwk, &body.proof).await?;
    Ok((StatusCode::CREATED, Json(enrolled)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DecisionBody {
    #[serde(default)]
    grant: Option<String>,
    #[serde(default)]
    denial: Option<String>,
}

pub async fn decide(
    State(state): State<AppState>,
    Path(id): Path<String>,
    user: User,
    body: Result<Bytes, BytesRejection>,
) -> Result<impl IntoResponse, ApiError> {
    let id: TokenId = id
        .parse()
        .map_err(|_| ApiError::bad_request("request.bad_id", "not a request id"))?;
    let body: DecisionBody = json_body(body)?;
    let decision = match (&body.grant, &body.denial) {
        (Some(grant), None) => Decision::Approve(grant),
        (None, Some(denial)) => Decision::Deny(denial),
        _ => {
            return Err(ApiError::bad_request(
                "decision.malformed",
                "send exactly one of grant and denial",
            ));
        }
    };
    let status = user_service::decide(&state, &user, &id, decision).await?;
    Ok(Json(json!({ "id": id, "status": status })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RevokeBody {
    revocation: String,
}

pub async fn revoke(
    State(state): State<AppState>,
    body: Result<Bytes, BytesRejection>,
) -> Result<impl IntoResponse, ApiError> {
    let body: RevokeBody = json_body(body)?;
    let accepted = revocation_service::revoke(&state, &body.revocation).await?;
    Ok((StatusCode::CREATED, Json(accepted)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Since {
    #[serde(default)]
    since: i64,
}

pub async fn revocation_feed(
    State(state): State<AppState>,
    query: Result<Query<Since>, QueryRejection>,
) -> Result<impl IntoResponse, ApiError> {
    let Query(since) =
        query.map_err(|_| ApiError::bad_request("query.malformed", "since must be an integer"))?;
    let revoked = revocation_service::feed(&state, since.since).await?;
    let next = revoked.last().map_or(since.since, |r| r.seq);
    Ok(Json(json!({ "revoked": revoked, "next": next })))
}

pub async fn grants(
    State(state): State<AppState>,
    user: User,
) -> Result<impl IntoResponse, ApiError> {
    Ok(Json(
        json!({ "grants": revocation_service::grants(&state, &user).await? }),
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ReportBody {
    receipt: String,
    chain: Vec<String>,
    #[serde(default)]
    keys: Vec<Jwk>,
}

pub async fn report(
    State(state): State<AppState>,
    body: Result<Bytes, BytesRejection>,
) -> Result<impl IntoResponse, ApiError> {
    let body: ReportBody = json_body(body)?;
    let accepted = receipt_service::report(&state, &body.receipt, &body.chain, &body.keys).await?;
    Ok((StatusCode::CREATED, Json(accepted)))
}

pub async fn receipts(
    State(state): State<AppState>,
    user: User,
    query: Result<Query<Since>, QueryRejection>,
) -> Result<impl IntoResponse, ApiError> {
    let Query(since) =
        query.map_err(|_| ApiError::bad_request("query.malformed", "since must be an integer"))?;
    let receipts = receipt_service::receipts(&state, &user, since.since).await?;
    let next = receipts.last().map_or(since.since, |r| r.seq);
    Ok(Json(json!({ "receipts": receipts, "next": next })))
}

/// The `Last-Event-ID` a reconnecting SSE client sends.
fn last_event_id(headers: &HeaderMap) -> Result<Option<i64>, ApiError> {
    headers
        .get("last-event-id")
        .map(|v| v.to_str().ok().and_then(|s| s.parse().ok()))
        .map(|n| {
            n.ok_or_else(|| {
                ApiError::bad_request("sse.bad_last_event_id", "Last-Event-ID must be an integer")
            })
        })
        .transpose()
}

pub async fn inbox_events(
    State(state): State<AppState>,
    user: User,
    headers: HeaderMap,
) -> Result<impl IntoResponse, ApiError> {
    let last = last_event_id(&headers)?;
    streams::stream(
        state,
        streams::Filter::Inbox(user.principal.as_str().to_owned()),
        last,
    )
    .await
}

pub async fn revocation_events(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<impl IntoResponse, ApiError> {
    let last = last_event_id(&headers)?;
    streams::stream(state, streams::Filter::Revocations, last).await
}

pub async fn not_found() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such endpoint")
}
