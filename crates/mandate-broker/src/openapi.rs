//! The broker's OpenAPI document, generated from the handlers' annotations
//! and served at `/openapi.json`.

use utoipa::Modify;
use utoipa::OpenApi;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};

use crate::handlers;

/// The document.
#[derive(OpenApi)]
#[openapi(
    info(title = "Mandate broker", description = "Agents file signed requests; users decide, revoke and review."),
    paths(
        handlers::metadata,
        handlers::submit_request,
        handlers::poll_request,
        handlers::inbox,
        handlers::inbox_events,
        handlers::enroll,
        handlers::decide,
        handlers::revoke,
        handlers::revocation_feed,
        handlers::revocation_events,
        handlers::grants,
        handlers::report,
        handlers::receipts,
    ),
    modifiers(&Bearer),
    tags(
        (name = "broker", description = "About the broker"),
        (name = "agents", description = "Called by agents; authenticated by their signatures"),
        (name = "users", description = "Called by the app; authenticated by an OIDC ID token"),
        (name = "revocations", description = "Publishing and following revocations"),
    )
)]
pub struct ApiDoc;

struct Bearer;

impl Modify for Bearer {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .build(),
            ),
        );
    }
}

/// The document as JSON.
pub async fn document() -> axum::Json<utoipa::openapi::OpenApi> {
    axum::Json(ApiDoc::openapi())
}
