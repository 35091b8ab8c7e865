//! The broker's OpenAPI document, generated from the handlers' annotations
//! and served at `/openapi.json`.

use std::collections::BTreeMap;

use utoipa::Modify;
use utoipa::OpenApi;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{ContentBuilder, Ref, RefOr, ResponseBuilder};

use crate::error::Code;
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
        handlers::block,
        handlers::blocks,
        handlers::lift_block,
        handlers::ask_confirmation,
        handlers::poll_confirmation,
        handlers::confirmations,
        handlers::decide_confirmation,
        handlers::report,
        handlers::witness,
        handlers::witness_tools,
        handlers::receipts,
        crate::oauth::metadata,
        crate::oauth::jwks,
        crate::oauth::token,
        crate::oauth::introspect,
        crate::oauth::revoke,
        crate::oauth::authorize::authorize,
        crate::oauth::authorize::callback,
        crate::oauth::authorize::wait,
        crate::oauth::client::register,
    ),
    modifiers(&Bearer, &Codes),
    tags(
        (name = "broker", description = "About the broker"),
        (name = "agents", description = "Called by agents; authenticated by their signatures"),
        (name = "users", description = "Called by the app; authenticated by an OIDC ID token"),
        (name = "revocations", description = "Publishing and following revocations"),
        (name = "oauth", description = "The broker as an OAuth authorization server: chains exchanged for access tokens, and the code flow whose consent is the app (docs/oauth.md)"),
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
                    .description(Some(
                        "The signed-in user's OIDC ID token (the `id_token` of the \
                         provider's token response), for a client id the broker \
                         takes. An access token is refused (`auth.malformed`).",
                    ))
                    .build(),
            ),
        );
    }
}

/// The protocol rules an operation checks, and how it answers them.
#[derive(Debug, Clone, Copy)]
pub struct Rules {
    /// A token of the body fails a rule: 400 with the rule's code.
    pub body: bool,
    /// The caller's own proof (a `Mandate-PoP`, an enrollment's proof,
    /// an endorsement) fails a rule: 401 with the rule's code.
    pub proof: bool,
    /// Rules answered 403 instead.
    pub forbidden: &'static [&'static str],
}

const NO_RULES: Rules = Rules {
    body: false,
    proof: false,
    forbidden: &[],
};
const BODY_RULES: Rules = Rules {
    body: true,
    ..NO_RULES
};
const BODY_AND_PROOF_RULES: Rules = Rules {
    body: true,
    proof: true,
    forbidden: &[],
};

/// What one operation answers besides its success, beyond [`FRONT_DOOR`],
/// [`WITH_BODY`] (for a `POST`), [`STORE`] and [`SIGNED_IN`] (for the
/// user's calls), which [`Codes`] adds.
#[derive(Debug, Clone, Copy)]
pub struct Answers {
    /// `get` or `post`.
    pub method: &'static str,
    /// The path, as the document names it.
    pub path: &'static str,
    /// The broker's own codes.
    pub codes: &'static [Code],
    /// The protocol's rules.
    pub rules: Rules,
    /// Whether it is one of OAuth's endpoints, which answer errors as
    /// RFC 6749 does (`{"error", "error_description"}`, [`crate::oauth`])
    /// once past the front door.
    pub oauth: bool,
}

/// Every operation answers these: the front door ([`crate::guard`]).
pub const FRONT_DOOR: &[Code] = &[Code::HostMissing, Code::Host, Code::Origin];
/// Every `POST` answers these besides.
pub const WITH_BODY: &[Code] = &[
    Code::ContentType,
    Code::BodyTooLarge,
    Code::BodyUnreadable,
    Code::BodyMalformed,
];
/// Every operation that reads the store may answer these.
pub const STORE: &[Code] = &[
    Code::StoreCorrupt,
    Code::StoreFull,
    Code::StoreUnavailable,
    Code::StoreDatabase,
    Code::StoreClosed,
];
/// Every call by a signed-in user (a bearer ID token) may answer these.
pub const SIGNED_IN: &[Code] = &[
    Code::AuthMissing,
    Code::AuthMalformed,
    Code::AuthAlgorithm,
    Code::AuthUnknownIssuer,
    Code::AuthAudience,
    Code::AuthExpired,
    Code::AuthNotYetValid,
    Code::AuthUnknownKey,
    Code::AuthSignature,
    Code::AuthIssuerUnavailable,
    Code::RateUser,
];
/// Answered to any path, not to one operation: an unknown path
/// (`not_found`), and a store conflict no operation expects.
pub const ANY_PATH: &[Code] = &[Code::NotFound, Code::StoreConflict];

/// Each operation's own answers.
pub const ANSWERS: &[Answers] = &[
    Answers {
        method: "get",
        path: "/.well-known/mandate",
        codes: &[],
        rules: NO_RULES,
        oauth: false,
    },
    Answers {
        method: "post",
        path: "/v1/requests",
        codes: &[
            Code::NoPrincipal,
            Code::UnknownIssuer,
            Code::RateAgent,
            Code::ParentChainMismatch,
            Code::EndorsementMissing,
            Code::TooManyPending,
            Code::RateUserPrompts,
            Code::RequestReplayed,
            Code::OAuthClientClaim,
            Code::RequestBlocked,
            Code::RequestCooldown,
        ],
        rules: BODY_AND_PROOF_RULES,
        oauth: false,
    },
    Answers {
        method: "get",
        path: "/v1/requests/{id}",
        codes: &[
            Code::QueryMalformed,
            Code::BadId,
            Code::PopMalformed,
            Code::RequestNotFound,
            Code::PopMissing,
            Code::NotYourRequest,
            Code::RateAgent,
        ],
        rules: Rules {
            proof: true,
            ..NO_RULES
        },
        oauth: false,
    },
    Answers {
        method: "get",
        path: "/v1/inbox",
        codes: &[],
        rules: NO_RULES,
        oauth: false,
    },
    Answers {
        method: "get",
        path: "/v1/inbox/events",
        codes: &[Code::BadLastEventId],
        rules: NO_RULES,
        oauth: false,
    },
    Answers {
        method: "post",
        path: "/v1/keys",
        codes: &[
            Code::KeyRevoked,
            Code::KeyBoundElsewhere,
            Code::SignInStale,
            Code::SessionMissing,
            Code::NonceMismatch,
            Code::TokenSpent,
            Code::DeviceMalformed,
        ],
        rules: BODY_AND_PROOF_RULES,
        oauth: false,
    },
    Answers {
        method: "get",
        path: "/v1/keys",
        codes: &[],
        rules: NO_RULES,
        oauth: false,
    },
    Answers {
        method: "post",
        path: "/v1/keys/revocations",
        codes: &[],
        rules: Rules {
            forbidden: &["revocation.not_authorized"],
            ..BODY_RULES
        },
        oauth: false,
    },
    Answers {
        method: "post",
        path: "/v1/requests/{id}/decision",
        codes: &[
            Code::BadId,
            Code::DecisionMalformed,
            Code::RequestNotFound,
            Code::AlreadyDecided,
            Code::NotApproved,
            Code::DecisionWrongRequest,
            Code::DecisionWrongAgent,
            Code::DecisionExceedsRequest,
            Code::DecisionStale,
            Code::DecisionNotRevoked,
            Code::DecisionExceedsGrant,
            Code::DecisionKeyNotEnrolled,
        ],
        rules: BODY_RULES,
        oauth: false,
    },
    Answers {
        method: "post",
        path: "/v1/revocations",
        codes: &[
            Code::RevocationMalformed,
            Code::UnknownGrant,
            Code::RevocationReplayed,
            Code::RateRevocations,
            Code::UnknownRoot,
        ],
        rules: Rules {
            forbidden: &["revocation.not_authorized"],
            ..BODY_RULES
        },
        oauth: false,
    },
    Answers {
        method: "get",
        path: "/v1/revocations",
        codes: &[Code::QueryMalformed, Code::CheckpointUnavailable],
        rules: NO_RULES,
        oauth: false,
    },
    Answers {
        method: "get",
        path: "/v1/revocations/events",
        codes: &[Code::BadLastEventId, Code::FeedBusy],
        rules: NO_RULES,
        oauth: false,
    },
    Answers {
        method: "get",
        path: "/v1/grants",
        codes: &[],
        rules: NO_RULES,
        oauth: false,
    },
    Answers {
        method: "post",
        path: "/v1/blocks",
        codes: &[Code::BlockNotDeny],
        rules: BODY_RULES,
        oauth: false,
    },
    Answers {
        method: "post",
        path: "/v1/confirmations",
        codes: &[
            Code::ConfirmationMalformed,
            Code::RateAgent,
            Code::TooManyConfirmations,
        ],
        rules: BODY_AND_PROOF_RULES,
        oauth: false,
    },
    Answers {
        method: "get",
        path: "/v1/confirmations/{id}",
        codes: &[
            Code::QueryMalformed,
            Code::PopMalformed,
            Code::ConfirmationNotFound,
            Code::PopMissing,
            Code::NotYourConfirmation,
            Code::RateAgent,
        ],
        rules: Rules {
            proof: true,
            ..NO_RULES
        },
        oauth: false,
    },
    Answers {
        method: "get",
        path: "/v1/confirmations",
        codes: &[],
        rules: NO_RULES,
        oauth: false,
    },
    Answers {
        method: "post",
        path: "/v1/confirmations/{id}/decision",
        codes: &[
            Code::DecisionMalformed,
            Code::ConfirmationNotFound,
            Code::ConfirmationDecided,
            Code::ConfirmationMalformed,
        ],
        rules: BODY_RULES,
        oauth: false,
    },
    Answers {
        method: "get",
        path: "/v1/blocks",
        codes: &[],
        rules: NO_RULES,
        oauth: false,
    },
    Answers {
        method: "delete",
        path: "/v1/blocks/{agent}",
        codes: &[Code::BadId, Code::BlockNotFound],
        rules: NO_RULES,
        oauth: false,
    },
    Answers {
        method: "post",
        path: "/v1/receipts",
        codes: &[
            Code::ReceiptMalformed,
            Code::ReceiptReplayed,
            Code::RateReceipts,
            Code::UnknownRoot,
        ],
        rules: BODY_RULES,
        oauth: false,
    },
    Answers {
        method: "post",
        path: "/v1/witness",
        codes: &[
            Code::WitnessMalformed,
            Code::WitnessUnknown,
            Code::RateReceipts,
        ],
        rules: BODY_RULES,
        oauth: false,
    },
    Answers {
        method: "post",
        path: "/v1/witness/tools",
        codes: &[
            Code::WitnessUnknown,
            Code::RateReceipts,
            Code::WitnessTarget,
            Code::WitnessLate,
        ],
        rules: BODY_RULES,
        oauth: false,
    },
    Answers {
        method: "get",
        path: "/v1/receipts",
        codes: &[Code::QueryMalformed],
        rules: NO_RULES,
        oauth: false,
    },
    Answers {
        method: "get",
        path: "/.well-known/oauth-authorization-server",
        codes: &[],
        rules: NO_RULES,
        oauth: true,
    },
    Answers {
        method: "get",
        path: "/oauth/jwks",
        codes: &[],
        rules: NO_RULES,
        oauth: true,
    },
    Answers {
        method: "post",
        path: "/oauth/token",
        codes: &[],
        rules: NO_RULES,
        oauth: true,
    },
    Answers {
        method: "post",
        path: "/oauth/introspect",
        codes: &[],
        rules: NO_RULES,
        oauth: true,
    },
    Answers {
        method: "post",
        path: "/oauth/revoke",
        codes: &[],
        rules: NO_RULES,
        oauth: true,
    },
    Answers {
        method: "get",
        path: "/oauth/authorize",
        codes: &[],
        rules: NO_RULES,
        oauth: true,
    },
    Answers {
        method: "get",
        path: "/oauth/callback",
        codes: &[],
        rules: NO_RULES,
        oauth: true,
    },
    Answers {
        method: "get",
        path: "/oauth/wait/{flow}",
        codes: &[],
        rules: NO_RULES,
        oauth: true,
    },
    Answers {
        method: "post",
        path: "/oauth/register",
        codes: &[],
        rules: NO_RULES,
        oauth: true,
    },
];

/// Codes an operation answers for one item of a batch, in that item's
/// `error` inside a 200 reply, never as the reply's status. The
/// operation's description names each (mandate-docs checks it).
pub const PER_ITEM: &[(&str, &str, &[Code])] = &[(
    "post",
    "/v1/witness",
    &[
        Code::WitnessTarget,
        Code::WitnessLate,
        Code::WitnessUnknownGrant,
        Code::ReceiptReplayed,
    ],
)];

/// Every code `method` on `path` may answer, in order, and its rules;
/// `None` for an operation [`ANSWERS`] does not list.
pub fn answers(method: &str, path: &str, signed_in: bool) -> Option<(Vec<Code>, Rules)> {
    let own = ANSWERS
        .iter()
        .find(|a| a.method == method && a.path == path)?;
    let mut codes: Vec<Code> = FRONT_DOOR.to_vec();
    if own.oauth {
        // Past the front door, OAuth's endpoints answer OAuth's errors.
        if method == "post" {
            codes.push(Code::ContentType);
        }
        return Some((codes, own.rules));
    }
    if method == "post" {
        codes.extend_from_slice(WITH_BODY);
    }
    if signed_in {
        codes.extend_from_slice(SIGNED_IN);
    }
    for code in own.codes {
        if !codes.contains(code) {
            codes.push(*code);
        }
    }
    if path != "/.well-known/mandate" {
        codes.extend_from_slice(STORE);
    }
    Some((codes, own.rules))
}

/// Documents, on every operation, each status it may answer and the codes
/// that come with it, from [`answers`].
struct Codes;

impl Modify for Codes {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        for (path, item) in openapi.paths.paths.iter_mut() {
            let operations = [
                ("get", item.get.as_mut()),
                ("post", item.post.as_mut()),
                ("delete", item.delete.as_mut()),
            ];
            for (method, operation) in operations {
                let Some(operation) = operation else { continue };
                let signed_in = operation.security.is_some();
                // An operation missing from ANSWERS is documented without
                // its codes; mandate-docs's tests fail on it.
                let Some((codes, rules)) = answers(method, path, signed_in) else {
                    continue;
                };
                let mut by_status: BTreeMap<u16, Vec<String>> = BTreeMap::new();
                for code in codes {
                    let doc = code.doc();
                    by_status
                        .entry(doc.status.unwrap_or(400))
                        .or_default()
                        .push(format!("`{}`", doc.code));
                }
                let rule = "a protocol rule's code (docs/errors.md)".to_owned();
                if rules.body {
                    by_status.entry(400).or_default().push(rule.clone());
                }
                if rules.proof {
                    by_status.entry(401).or_default().push(rule.clone());
                    by_status
                        .entry(503)
                        .or_default()
                        .push("`pop.cache_full`".to_owned());
                }
                for code in rules.forbidden {
                    by_status.entry(403).or_default().push(format!("`{code}`"));
                }
                let oauth = ANSWERS
                    .iter()
                    .any(|a| a.oauth && a.method == method && a.path == path.as_str());
                for (status, codes) in by_status {
                    let key = status.to_string();
                    if oauth
                        && let Some(RefOr::T(declared)) =
                            operation.responses.responses.get_mut(&key)
                    {
                        // An OAuth error, or the front door's.
                        declared.description = format!(
                            "{}; at the front door, {}",
                            declared.description,
                            codes.join(", ")
                        );
                        continue;
                    }
                    let response = RefOr::T(
                        ResponseBuilder::new()
                            .description(codes.join(", "))
                            .content(
                                "application/json",
                                ContentBuilder::new()
                                    .schema(Some(Ref::from_schema_name("ErrorBody")))
                                    .build(),
                            )
                            .build(),
                    );
                    operation
                        .responses
                        .responses
                        .insert(status.to_string(), response);
                }
            }
        }
    }
}

/// The document as JSON.
pub async fn document() -> axum::Json<utoipa::openapi::OpenApi> {
    axum::Json(ApiDoc::openapi())
}
