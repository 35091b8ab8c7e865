//! The broker's OpenAPI document, generated from the handlers' annotations
//! and served at `/openapi.json`.

use utoipa::Modify;
use utoipa::OpenApi;
use utoipa::openapi::path::Operation;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{ContentBuilder, Ref, RefOr, ResponseBuilder};

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
        handlers::keys,
        handlers::remove_keys,
        handlers::decide,
        handlers::revoke,
        handlers::revocation_feed,
        handlers::revocation_events,
        handlers::grants,
        handlers::report,
        handlers::receipts,
    ),
    modifiers(&Bearer, &FrontDoor),
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

/// The front door's answers ([`crate::guard`]), which every operation may
/// give: 400 `request.host_missing`, 421 `request.host` and 403
/// `request.origin`, and on a `POST`, 415 `body.content_type`.
struct FrontDoor;

/// What any operation may answer at the front door.
const ANY: [(&str, &str); 3] = [
    (
        "400",
        "Malformed input; or no Host (`request.host_missing`)",
    ),
    (
        "403",
        "Not allowed; or an Origin that is not allowed (`request.origin`)",
    ),
    (
        "421",
        "A Host this broker does not answer for (`request.host`)",
    ),
];

/// What an operation with a body may answer besides.
const WITH_BODY: [(&str, &str); 1] = [(
    "415",
    "A body not sent as application/json (`body.content_type`)",
)];

impl Modify for FrontDoor {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        for item in openapi.paths.paths.values_mut() {
            if let Some(get) = &mut item.get {
                add_refusals(get, &ANY);
            }
            if let Some(post) = &mut item.post {
                add_refusals(post, &ANY);
                add_refusals(post, &WITH_BODY);
            }
        }
    }
}

/// Documents `answers` on `operation`, keeping any it documents itself.
fn add_refusals(operation: &mut Operation, answers: &[(&str, &str)]) {
    for (status, description) in answers {
        operation
            .responses
            .responses
            .entry((*status).to_owned())
            .or_insert_with(|| {
                RefOr::T(
                    ResponseBuilder::new()
                        .description(*description)
                        .content(
                            "application/json",
                            ContentBuilder::new()
                                .schema(Some(Ref::from_schema_name("ErrorBody")))
                                .build(),
                        )
                        .build(),
                )
            });
    }
}

/// The document as JSON.
pub async fn document() -> axum::Json<utoipa::openapi::OpenApi> {
    axum::Json(ApiDoc::openapi())
}
