//! Errors as the wire sees them: a status and `{"code", "message"}`. The
//! code is stable; the message is for people and never holds a token, a
//! secret, SQL or a stack trace. Server faults are logged in full here and
//! answered with a bare code.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use mandate_store::StoreError;
use serde::Serialize;

/// An error answered to a client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// The HTTP status.
    pub status: StatusCode,
    /// The stable code.
    pub code: &'static str,
    /// A short explanation for people.
    pub message: String,
}

/// Every error's body.
#[derive(Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    /// The stable code, such as `request.replayed` or `chain.revoked`.
    code: String,
    /// A short explanation for people.
    message: String,
}

impl ApiError {
    /// An error with a status, a code and a message.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code,
            message: message.into(),
        }
    }

    /// 400: the input is malformed.
    pub fn bad_request(code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, code, message)
    }

    /// 409: the request conflicts with what the broker holds.
    pub fn conflict(code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::CONFLICT, code, message)
    }

    /// A token rule failed: 400, with the rule's code.
    pub fn token(e: mandate_core::Error) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, e.code(), e.to_string())
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> ApiError {
        match e {
            StoreError::Conflict => {
                ApiError::new(StatusCode::CONFLICT, "store.conflict", "already exists")
            }
            StoreError::NotFound => {
                ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such resource")
            }
            other => {
                tracing::error!(error = ?other, "store failure");
                ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    other.code(),
                    "storage is unavailable",
                )
            }
        }
    }
}

/// 429 for a caller over its rate.
pub(crate) fn too_fast(code: &'static str) -> ApiError {
    ApiError::new(
        StatusCode::TOO_MANY_REQUESTS,
        code,
        "too many calls; slow down",
    )
}

/// Maps a store conflict to a 409 with its own code, and any other store
/// error as usual.
pub(crate) fn on_conflict(
    code: &'static str,
    message: &'static str,
) -> impl Fn(StoreError) -> ApiError {
    move |e| match e {
        StoreError::Conflict => ApiError::new(StatusCode::CONFLICT, code, message),
        other => other.into(),
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            code: self.code.to_owned(),
            message: self.message,
        };
        (self.status, Json(body)).into_response()
    }
}
