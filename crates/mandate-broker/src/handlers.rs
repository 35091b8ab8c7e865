//! Thin HTTP adapters: extract, call one service function, map the error.
//! Each carries its OpenAPI description ([`crate::openapi`]).

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use mandate_core::{Jwk, TokenId};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::confirm_service::{self, ConfirmationAsked, ConfirmationItem, ConfirmationView};
use crate::error::{Code, ErrorBody};
use crate::keys::{self, Enrolled, KeyItem, Removed};
use crate::receipt_service::{self, ReceiptItem};
use crate::revocation_service::{self, FeedEntry, GrantItem};
use crate::rules::{self, BlockView};
use crate::service::{self, RequestView, Submitted};
use crate::user_service::{self, Decision, InboxItem};
use crate::witness_service;
use crate::{ApiError, AppState, User, streams};

/// The header that carries an agent's proof of possession.
pub const POP_HEADER: &str = "mandate-pop";

/// Reads a JSON body, answering in the broker's error format when it is
/// too large or not the expected JSON.
fn json_body<T: for<'de> Deserialize<'de>>(
    body: Result<Bytes, BytesRejection>,
) -> Result<T, ApiError> {
    let bytes = body.map_err(|r| {
        if r.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::new(Code::BodyTooLarge, "the body is too large")
        } else {
            ApiError::new(Code::BodyUnreadable, "the body could not be read")
        }
    })?;
    serde_json::from_slice(&bytes)
        .map_err(|_| ApiError::new(Code::BodyMalformed, "the body is not the expected JSON"))
}

/// The `Mandate-PoP` header, if sent, as text.
fn pop_header(headers: &HeaderMap) -> Result<Option<&str>, ApiError> {
    headers
        .get(POP_HEADER)
        .map(|v| {
            v.to_str()
                .map_err(|_| ApiError::new(Code::PopMalformed, "the proof is not text"))
        })
        .transpose()
}

fn request_id(id: &str) -> Result<TokenId, ApiError> {
    id.parse()
        .map_err(|_| ApiError::new(Code::BadId, "not a request id"))
}

/// The broker's public key set.
#[derive(Debug, Serialize, ToSchema)]
pub struct Jwks {
    /// The broker's signing keys, as OKP JWKs.
    #[schema(value_type = Vec<Object>)]
    pub keys: Vec<Jwk>,
}

/// The broker's metadata.
#[derive(Debug, Serialize, ToSchema)]
pub struct Metadata {
    /// The broker's URL, the `iss` of the bindings it signs.
    pub issuer: String,
    /// The keys that verify its bindings.
    pub jwks: Jwks,
    /// The OIDC issuers whose users may sign in.
    pub oidc_issuers: Vec<String>,
}

/// The broker's metadata.
///
/// Anyone may read it. `jwks` holds the key that signs bindings and
/// checkpoints; resource servers trust it. `oidc_issuers` are the providers
/// whose users may sign in.
#[utoipa::path(get, path = "/.well-known/mandate", tag = "broker", responses((status = 200, body = Metadata)))]
pub async fn metadata(State(state): State<AppState>) -> Json<Metadata> {
    let s = &state.inner;
    Json(Metadata {
        issuer: s.public_url.clone(),
        jwks: Jwks {
            keys: vec![s.key.public().to_jwk()],
        },
        oidc_issuers: s.oidc.issuers().iter().map(|i| i.issuer.clone()).collect(),
    })
}

/// An agent's request, as filed.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SubmitBody {
    /// A compact `mandate-request+jwt`.
    request: String,
    /// For a sub-agent's request: the grants of the chain it extends, root
    /// first (the request's `parent_chain` names their ids).
    #[serde(default)]
    parent_chain: Vec<String>,
    /// The public OKP JWKs of the agents along that chain.
    #[serde(default)]
    #[schema(value_type = Vec<Object>)]
    keys: Vec<Jwk>,
    /// For a sub-agent's request: a `mandate-pop+jwt` by the parent
    /// chain's leaf agent for `POST /v1/requests`, its `ath` the chain hash
    /// of the parent chain followed by the request.
    #[serde(default)]
    endorsement: Option<String>,
}

/// Files an agent's request in a user's inbox.
///
/// No sign-in: the request token is signed by the agent's own key, carried in
/// its `jwk` header. The request's `principal_hint` must be the user as
/// `ISSUER#SUBJECT`, exactly the `iss` and `sub` of the user's ID token
/// (`request.no_principal` otherwise). The request's id, in the reply and in
/// `/v1/requests/{id}`, is the token id of the request token: the base64url
/// SHA-256 of its compact form. The binding code is the agent's own: it chose
/// `binding_code` when it signed the request, and the reply repeats it. A
/// sub-agent's request also carries the chain it extends (`parent_chain`,
/// `keys`) and `endorsement`, a `mandate-pop+jwt` by that chain's leaf agent
/// for `POST` on this URL whose `ath` is the chain hash of the parent
/// chain's grants followed by the request token.
#[utoipa::path(
    post, path = "/v1/requests", tag = "agents", request_body = SubmitBody,
    responses(
        (status = 201, body = Submitted),
        (status = 400, body = ErrorBody), (status = 409, body = ErrorBody), (status = 413, body = ErrorBody),
        (status = 422, body = ErrorBody), (status = 429, body = ErrorBody),
    )
)]
pub async fn submit_request(
    State(state): State<AppState>,
    body: Result<Bytes, BytesRejection>,
) -> Result<(StatusCode, Json<Submitted>), ApiError> {
    let body: SubmitBody = json_body(body)?;
    let parent = service::Parent {
        chain: &body.parent_chain,
        keys: &body.keys,
        endorsement: body.endorsement.as_deref(),
    };
    let submitted = service::submit_request(&state, &body.request, parent).await?;
    Ok((StatusCode::CREATED, Json(submitted)))
}

/// How long to hold a poll open.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct Wait {
    /// Seconds to hold the poll open while the request is pending (at most 30).
    #[serde(default)]
    #[param(required = false, minimum = 0, maximum = 30)]
    wait: u64,
}

/// A request's state, as its agent sees it.
///
/// No sign-in: the `Mandate-PoP` header carries a `mandate-pop+jwt` by the
/// key that signed the request, for `GET` on `{public URL}/v1/requests/{id}`
/// (the query is not part of `htu`), whose `ath` is the chain hash
/// (protocol.md 4.6) of the one-token list holding the request token:
/// `BASE64URL(SHA-256(SHA-256(request token)))`. Each proof is accepted once.
/// With `wait` (at most 30 s), a pending request is held open until it is
/// decided or the wait ends. Once approved, the reply carries the grant, the
/// broker's binding for the user key that signed it, and that key.
#[utoipa::path(
    get, path = "/v1/requests/{id}", tag = "agents",
    params(("id" = String, Path, description = "The request's id"), Wait,
           ("mandate-pop" = String, Header, description = "A proof of possession by the filing agent")),
    responses(
        (status = 200, body = RequestView),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 429, body = ErrorBody),
    )
)]
pub async fn poll_request(
    State(state): State<AppState>,
    Path(id): Path<String>,
    query: Result<Query<Wait>, QueryRejection>,
    headers: HeaderMap,
) -> Result<Json<RequestView>, ApiError> {
    let Query(wait) = query
        .map_err(|_| ApiError::new(Code::QueryMalformed, "wait must be a number of seconds"))?;
    let id = request_id(&id)?;
    let pop = pop_header(&headers)?;
    let wait = std::time::Duration::from_secs(wait.wait);
    if wait > service::MAX_WAIT {
        return Err(ApiError::new(
            Code::QueryMalformed,
            "wait is at most 30 seconds",
        ));
    }
    Ok(Json(service::poll_request(&state, &id, pop, wait).await?))
}

/// The user's pending requests.
#[derive(Debug, Serialize, ToSchema)]
pub struct Inbox {
    /// Oldest first.
    pub requests: Vec<InboxItem>,
}

/// Which requests of the inbox to list.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct InboxQuery {
    /// Only these: 1 to 100 request ids, separated by commas (`request`
    /// of the inbox stream's `request.created` events). Those not pending
    /// are left out. Without it, every pending request.
    #[param(
        required = false,
        example = "K26cQcWl4m-mA4TXgSWKzYgb8rdASzVgMt2n0gUt6hY"
    )]
    ids: Option<String>,
}

/// The most request ids one `GET /v1/inbox?ids=` names.
pub const MAX_INBOX_IDS: usize = 100;

impl InboxQuery {
    fn ids(&self) -> Result<Option<Vec<TokenId>>, ApiError> {
        let Some(text) = &self.ids else {
            return Ok(None);
        };
        let malformed = || {
            ApiError::new(
                Code::QueryMalformed,
                format!("ids must be 1 to {MAX_INBOX_IDS} request ids, separated by commas"),
            )
        };
        let ids = text
            .split(',')
            .map(|id| id.parse::<TokenId>().map_err(|_| malformed()))
            .collect::<Result<Vec<_>, _>>()?;
        if ids.len() > MAX_INBOX_IDS {
            return Err(malformed());
        }
        Ok(Some(ids))
    }
}

/// The signed-in user's pending requests.
///
/// The bearer is the user's OIDC ID token. Each request comes with the chain
/// behind it and its agents' keys, so that the app verifies every link
/// itself. With `ids`, only those of these requests that are pending: what
/// the app reads when the inbox stream announces new ones, so that an
/// arrival costs one request, not the whole inbox.
#[utoipa::path(
    get, path = "/v1/inbox", tag = "users", security(("bearer" = [])), params(InboxQuery),
    responses((status = 200, body = Inbox), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 429, body = ErrorBody))
)]
pub async fn inbox(
    State(state): State<AppState>,
    user: User,
    query: Result<Query<InboxQuery>, QueryRejection>,
) -> Result<Json<Inbox>, ApiError> {
    let Query(query) = query.map_err(|_| {
        ApiError::new(
            Code::QueryMalformed,
            "the only query parameter is ids, once",
        )
    })?;
    let among = query.ids()?;
    Ok(Json(Inbox {
        requests: user_service::inbox(&state, &user, among.as_deref()).await?,
    }))
}

/// A user key to enroll or renew, with a proof that the caller holds it.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EnrollBody {
    /// The public OKP JWK.
    #[schema(value_type = Object)]
    jwk: Jwk,
    /// A `mandate-pop+jwt` by that key for `POST /v1/keys`, bound to the bearer token.
    proof: String,
    /// For a new key: the device's name (1 to 64 characters).
    #[serde(default)]
    device: Option<String>,
    /// For a new key: the sign-in's session key (a public OKP JWK), whose
    /// thumbprint is the ID token's `nonce`.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    session_jwk: Option<Jwk>,
    /// For a new key: a `mandate-pop+jwt` by the session key, like `proof`.
    #[serde(default)]
    session_proof: Option<String>,
}

/// Enrolls a user key, or renews its binding.
///
/// The bearer is the user's OIDC ID token. `proof` is a `mandate-pop+jwt` by
/// the key for `POST` on the broker's `/v1/keys`, whose `ath` is the chain
/// hash of the one-element list holding the bearer token. A new key also
/// needs a fresh sign-in made for it: `session_jwk`, `session_proof` and
/// `device` (docs/broker.md, Keys and devices).
#[utoipa::path(
    post, path = "/v1/keys", tag = "users", security(("bearer" = [])), request_body = EnrollBody,
    responses(
        (status = 201, body = Enrolled),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 409, body = ErrorBody),
    )
)]
pub async fn enroll(
    State(state): State<AppState>,
    user: User,
    body: Result<Bytes, BytesRejection>,
) -> Result<(StatusCode, Json<Enrolled>), ApiError> {
    let body: EnrollBody = json_body(body)?;
    let enrollment = keys::Enrollment {
        jwk: &body.jwk,
        proof: &body.proof,
        device: body.device.as_deref(),
        session_jwk: body.session_jwk.as_ref(),
        session_proof: body.session_proof.as_deref(),
    };
    let enrolled = keys::enroll(&state, &user, enrollment).await?;
    Ok((StatusCode::CREATED, Json(enrolled)))
}

/// The user's keys.
#[derive(Debug, Serialize, ToSchema)]
pub struct Keys {
    /// Each enrolled key, oldest first.
    pub keys: Vec<KeyItem>,
}

/// The signed-in user's keys, oldest first.
///
/// The bearer is the user's OIDC ID token.
#[utoipa::path(
    get, path = "/v1/keys", tag = "users", security(("bearer" = [])),
    responses((status = 200, body = Keys), (status = 401, body = ErrorBody))
)]
pub async fn keys(State(state): State<AppState>, user: User) -> Result<Json<Keys>, ApiError> {
    Ok(Json(Keys {
        keys: keys::keys(&state, &user).await?,
    }))
}

/// A signed removal of some of the user's keys.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RemoveBody {
    /// A `mandate-key-revocation+jwt` by one of the user's bound keys.
    revocation: String,
}

/// Removes some of the signed-in user's keys.
///
/// The bearer is the user's OIDC ID token, and the body a
/// `mandate-key-revocation+jwt` signed by one of that user's bound keys. The
/// keys are never bound again, and each becomes an entry of the revocation
/// feed.
#[utoipa::path(
    post, path = "/v1/keys/revocations", tag = "users", security(("bearer" = [])), request_body = RemoveBody,
    responses(
        (status = 201, body = Removed),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
    )
)]
pub async fn remove_keys(
    State(state): State<AppState>,
    user: User,
    body: Result<Bytes, BytesRejection>,
) -> Result<(StatusCode, Json<Removed>), ApiError> {
    let body: RemoveBody = json_body(body)?;
    let removed = keys::remove(&state, &user, &body.revocation).await?;
    Ok((StatusCode::CREATED, Json(removed)))
}

/// A signed decision: exactly one of the two.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DecisionBody {
    /// A root `mandate-grant+jwt` answering the request.
    #[serde(default)]
    grant: Option<String>,
    /// A `mandate-denial+jwt` naming the request.
    #[serde(default)]
    denial: Option<String>,
    /// With `grant`, on an approved request: the id of the request's grant
    /// this one replaces. That grant must be revoked first, and the new one
    /// must stay within it (the user narrowing a grant to what was used).
    #[serde(default)]
    replaces: Option<String>,
}

/// The recorded decision.
#[derive(Debug, Serialize, ToSchema)]
pub struct Decided {
    /// The request's id.
    #[schema(value_type = String)]
    pub id: TokenId,
    /// `approved` or `denied`.
    pub status: &'static str,
}

/// Records the user's decision on a request.
///
/// The bearer is the user's OIDC ID token. The body carries a root
/// `mandate-grant+jwt` or a `mandate-denial+jwt` signed by one of the user's
/// enrolled keys, naming the request. The broker checks a grant against the
/// request (its agent, and no more than was asked). With `replaces`, on an
/// approved request, a grant re-issues the current one narrower, once that
/// one is revoked.
#[utoipa::path(
    post, path = "/v1/requests/{id}/decision", tag = "users", security(("bearer" = [])),
    params(("id" = String, Path, description = "The request's id")), request_body = DecisionBody,
    responses(
        (status = 200, body = Decided),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody),
    )
)]
pub async fn decide(
    State(state): State<AppState>,
    Path(id): Path<String>,
    user: User,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Decided>, ApiError> {
    let id = request_id(&id)?;
    let body: DecisionBody = json_body(body)?;
    let decision = match (&body.grant, &body.denial, &body.replaces) {
        (Some(grant), None, None) => Decision::Approve(grant),
        (None, Some(denial), None) => Decision::Deny(denial),
        (Some(grant), None, Some(replaces)) => Decision::Reissue {
            grant,
            replaces: replaces.parse().map_err(|_| {
                ApiError::new(Code::DecisionMalformed, "replaces is not a grant id")
            })?,
        },
        _ => {
            return Err(ApiError::new(
                Code::DecisionMalformed,
                "send exactly one of grant and denial, and replaces only with a grant",
            ));
        }
    };
    let status = user_service::decide(&state, &user, &id, decision).await?;
    Ok(Json(Decided { id, status }))
}

/// A signed revocation.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RevokeBody {
    /// A compact `mandate-revocation+jwt`.
    revocation: String,
    /// For a revocation signed by an agent: a chain, root first, that
    /// passes through every grant revoked, with the agent among its issuers
    /// at or above each.
    #[serde(default)]
    chain: Vec<String>,
    /// The public OKP JWKs of the agents along that chain.
    #[serde(default)]
    #[schema(value_type = Vec<Object>)]
    keys: Vec<Jwk>,
}

/// Revokes grants.
///
/// No sign-in: the revocation's signature is its authority. A user revokes
/// with a key bound to the revocation's `sub`, and every revoked id must be
/// one of that user's grants. An agent revokes what it delegated: it sends
/// `chain` (through every grant it revokes, root first) and `keys`, and must
/// have signed at or above each revoked link. Grants beneath a revoked one
/// fall with it.
#[utoipa::path(
    post, path = "/v1/revocations", tag = "revocations", request_body = RevokeBody,
    responses(
        (status = 201, body = revocation_service::RevocationAccepted),
        (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 409, body = ErrorBody),
        (status = 422, body = ErrorBody),
    )
)]
pub async fn revoke(
    State(state): State<AppState>,
    body: Result<Bytes, BytesRejection>,
) -> Result<(StatusCode, Json<revocation_service::RevocationAccepted>), ApiError> {
    let body: RevokeBody = json_body(body)?;
    let accepted =
        revocation_service::revoke(&state, &body.revocation, &body.chain, &body.keys).await?;
    Ok((StatusCode::CREATED, Json(accepted)))
}

/// Where to resume a feed.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct Since {
    /// The last position seen; 0 for the start.
    #[serde(default)]
    #[param(required = false, minimum = 0, maximum = 9_007_199_254_740_991_i64)]
    since: i64,
}

/// The largest position accepted: 2^53 - 1, which every JSON client can
/// represent exactly. The store's positions will never come near it.
const MAX_POSITION: i64 = 9_007_199_254_740_991;

impl Since {
    /// The position, which may not be negative.
    fn position(&self) -> Result<i64, ApiError> {
        if !(0..=MAX_POSITION).contains(&self.since) {
            return Err(ApiError::new(
                Code::QueryMalformed,
                "since must be between 0 and 2^53 - 1",
            ));
        }
        Ok(self.since)
    }
}

/// A page of the revocation feed.
#[derive(Debug, Serialize, ToSchema)]
pub struct Feed {
    /// Oldest first.
    pub revoked: Vec<FeedEntry>,
    /// Pass as `since` for the next page.
    pub next: i64,
    /// The broker's latest signed checkpoint of the feed
    /// (`mandate-checkpoint+jwt`): the position and head it reached, and
    /// when. It may cover less or more than this page.
    pub checkpoint: String,
}

/// A page of the revocation feed.
///
/// Anyone may read it. Up to 1,000 entries after `since`, oldest first, with
/// `next` and the broker's latest signed checkpoint.
#[utoipa::path(
    get, path = "/v1/revocations", tag = "revocations", params(Since),
    responses((status = 200, body = Feed), (status = 400, body = ErrorBody),
              (status = 503, body = ErrorBody, description = "No checkpoint could be signed yet (`checkpoint.unavailable`), or storage is unavailable"))
)]
pub async fn revocation_feed(
    State(state): State<AppState>,
    query: Result<Query<Since>, QueryRejection>,
) -> Result<Json<Feed>, ApiError> {
    let Query(since) =
        query.map_err(|_| ApiError::new(Code::QueryMalformed, "since must be an integer"))?;
    let position = since.position()?;
    let revoked = revocation_service::feed(&state, position).await?;
    let next = revoked.last().map_or(position, |r| r.seq);
    let checkpoint = revocation_service::checkpoint(&state).await?;
    Ok(Json(Feed {
        revoked,
        next,
        checkpoint,
    }))
}

/// The user's grants.
#[derive(Debug, Serialize, ToSchema)]
pub struct Grants {
    /// Oldest first.
    pub grants: Vec<GrantItem>,
}

/// The signed-in user's grants.
///
/// The bearer is the user's OIDC ID token. Each grant comes with the
/// sub-delegations agents reported beneath it, and its revocation state.
#[utoipa::path(
    get, path = "/v1/grants", tag = "users", security(("bearer" = [])),
    responses((status = 200, body = Grants), (status = 401, body = ErrorBody))
)]
pub async fn grants(State(state): State<AppState>, user: User) -> Result<Json<Grants>, ApiError> {
    Ok(Json(Grants {
        grants: revocation_service::grants(&state, &user).await?,
    }))
}

/// A receipt and the chain it was made under.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReportBody {
    /// A compact `mandate-receipt+jwt` by the leaf agent.
    receipt: String,
    /// The grants, root first.
    chain: Vec<String>,
    /// The agents' public OKP JWKs.
    #[serde(default)]
    #[schema(value_type = Vec<Object>)]
    keys: Vec<Jwk>,
}

/// Stores an agent's receipt.
///
/// No sign-in: the receipt is signed by the leaf agent's key, and checked
/// against `chain`, which must verify here and begin with a grant this broker
/// holds.
#[utoipa::path(
    post, path = "/v1/receipts", tag = "agents", request_body = ReportBody,
    responses(
        (status = 201, body = receipt_service::ReceiptAccepted),
        (status = 400, body = ErrorBody), (status = 409, body = ErrorBody),
    )
)]
pub async fn report(
    State(state): State<AppState>,
    body: Result<Bytes, BytesRejection>,
) -> Result<(StatusCode, Json<receipt_service::ReceiptAccepted>), ApiError> {
    let body: ReportBody = json_body(body)?;
    let accepted = receipt_service::report(&state, &body.receipt, &body.chain, &body.keys).await?;
    Ok((StatusCode::CREATED, Json(accepted)))
}

/// Witness receipts, and the key of the witness that signed them.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WitnessBody {
    /// The witness's public OKP JWK; the broker must trust its thumbprint
    /// as the witness for a resource.
    #[schema(value_type = Object)]
    key: Jwk,
    /// With `report`: the receipts' payloads, 1 to 100, in the report's
    /// order. Without: 1 to 100 compact `mandate-witness+jwt`, each signed
    /// on its own.
    receipts: Vec<String>,
    /// A compact `mandate-witness-report+jwt`: one signature over the head
    /// of the Merkle tree of `receipts` (docs/protocol.md, 4.10).
    #[serde(default)]
    report: Option<String>,
}

/// What became of each receipt of a witness report, in order.
#[derive(Debug, Serialize, ToSchema)]
pub struct WitnessResults {
    /// One per receipt sent, in the same order.
    pub results: Vec<witness_service::WitnessResult>,
}

/// Stores a resource server's witness receipts.
///
/// No sign-in: the receipts are signed by the witness's key, which the
/// broker must trust for the resource the receipts name
/// (`--witness URI=THUMBPRINT`): with `report`, once for all of them, the
/// head of the Merkle tree of their payloads; without, each on its own.
/// A report that does not verify, or whose tree is not exactly the
/// receipts sent, in order, is refused whole (400, with the rule's code:
/// `signature.invalid` for another tree, `token.malformed` for another
/// count). Each stored receipt of a report is kept, and served in the
/// feed, as `REPORT~INDEX~PATH~PAYLOAD`, which verifies on its own; its id
/// is the SHA-256 of its payload. Then each is judged on its own and the rest
/// are stored: the reply has one result per receipt, in order, with its
/// `seq` when stored, or with an `error` whose `code` is
/// `witness.target` (its `action.target` is not the witness's resource),
/// `witness.late` (`iat` more than 600 seconds ago),
/// `witness.unknown_grant` (its `grant` is not one this broker holds),
/// `receipt.replayed` (reported before), or a protocol rule's code for a
/// token that fails verification (docs/protocol.md, section 4.10). The
/// reply's own status speaks for the whole report only.
#[utoipa::path(
    post, path = "/v1/witness", tag = "agents", request_body = WitnessBody,
    responses(
        (status = 200, body = WitnessResults),
        (status = 400, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 429, body = ErrorBody),
    )
)]
pub async fn witness(
    State(state): State<AppState>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<WitnessResults>, ApiError> {
    let body: WitnessBody = json_body(body)?;
    let results =
        witness_service::report(&state, &body.key, body.report.as_deref(), &body.receipts).await?;
    Ok(Json(WitnessResults { results }))
}

/// A witness's tools statement.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ToolsBody {
    /// The witness's public OKP JWK; the broker must trust its thumbprint
    /// as the witness for the statement's resource.
    #[schema(value_type = Object)]
    key: Jwk,
    /// A compact `mandate-tools+jwt`.
    statement: String,
}

/// Holds what a witness's MCP server says of its tools.
///
/// No sign-in: the statement is signed by the witness's key, which the
/// broker must trust for the resource the statement names. The broker
/// holds the latest per resource (one older than it holds is ignored),
/// and the user's inbox carries it beside a request for an `mcp` scope
/// at that resource (docs/protocol.md, section 4.11).
#[utoipa::path(
    post, path = "/v1/witness/tools", tag = "agents", request_body = ToolsBody,
    responses(
        (status = 204, description = "Held"),
        (status = 400, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 422, body = ErrorBody), (status = 429, body = ErrorBody),
    )
)]
pub async fn witness_tools(
    State(state): State<AppState>,
    body: Result<Bytes, BytesRejection>,
) -> Result<StatusCode, ApiError> {
    let body: ToolsBody = json_body(body)?;
    witness_service::describe(&state, &body.key, &body.statement)?;
    Ok(StatusCode::NO_CONTENT)
}

/// A page of the user's receipts.
#[derive(Debug, Serialize, ToSchema)]
pub struct Receipts {
    /// Oldest first.
    pub receipts: Vec<ReceiptItem>,
    /// Pass as `since` for the next page.
    pub next: i64,
}

/// A page of the signed-in user's receipts.
///
/// The bearer is the user's OIDC ID token. Each receipt comes with its chain
/// and its agents' keys, so that the app checks it itself.
#[utoipa::path(
    get, path = "/v1/receipts", tag = "users", security(("bearer" = [])), params(Since),
    responses((status = 200, body = Receipts), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody))
)]
pub async fn receipts(
    State(state): State<AppState>,
    user: User,
    query: Result<Query<Since>, QueryRejection>,
) -> Result<Json<Receipts>, ApiError> {
    let Query(since) =
        query.map_err(|_| ApiError::new(Code::QueryMalformed, "since must be an integer"))?;
    let position = since.position()?;
    let receipts = receipt_service::receipts(&state, &user, position).await?;
    let next = receipts.last().map_or(position, |r| r.seq);
    Ok(Json(Receipts { receipts, next }))
}

/// The `Last-Event-ID` a reconnecting SSE client sends.
fn last_event_id(headers: &HeaderMap) -> Result<Option<i64>, ApiError> {
    let Some(value) = headers.get("last-event-id") else {
        return Ok(None);
    };
    value
        .to_str()
        .ok()
        .and_then(|s| s.parse::<i64>().ok())
        .filter(|n| (0..=MAX_POSITION).contains(n))
        .map(Some)
        .ok_or_else(|| {
            ApiError::new(
                Code::BadLastEventId,
                "Last-Event-ID must be an integer from 0 to 2^53 - 1",
            )
        })
}

/// The signed-in user's inbox, live (server-sent events).
///
/// The bearer is the user's OIDC ID token. Events say when a request arrives
/// or is decided, when a receipt is stored, and when a key is enrolled.
#[utoipa::path(
    get, path = "/v1/inbox/events", tag = "users", security(("bearer" = [])),
    params(("last-event-id" = Option<i64>, Header, description = "Resume after this event", minimum = 0, maximum = 9_007_199_254_740_991_i64)),
    responses((status = 200, description = "A text/event-stream of request events", content_type = "text/event-stream"),
              (status = 400, body = ErrorBody), (status = 401, body = ErrorBody))
)]
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

/// The revocation feed, live (server-sent events).
///
/// Anyone may follow it. `revoked` events carry each revocation, `checkpoint`
/// events each new signed checkpoint; resume with `Last-Event-ID`.
#[utoipa::path(
    get, path = "/v1/revocations/events", tag = "revocations",
    params(("last-event-id" = Option<i64>, Header, description = "Resume after this event", minimum = 0, maximum = 9_007_199_254_740_991_i64)),
    responses((status = 200, description = "A text/event-stream of revocations", content_type = "text/event-stream"),
              (status = 400, body = ErrorBody))
)]
pub async fn revocation_events(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<impl IntoResponse, ApiError> {
    let last = last_event_id(&headers)?;
    streams::stream(state, streams::Filter::Revocations, last).await
}

pub async fn not_found() -> ApiError {
    ApiError::new(Code::NotFound, "no such endpoint")
}

/// A "deny always" rule to store.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BlockBody {
    /// A compact `mandate-policy+jwt` with `"effect":"deny"`, signed by one
    /// of the user's enrolled keys, for the signed-in user.
    policy: String,
}

/// The user's blocks.
#[derive(Debug, Serialize, ToSchema)]
pub struct Blocks {
    /// Newest first.
    pub blocks: Vec<BlockView>,
}

/// Blocks an agent key for the signed-in user: "deny always".
///
/// The bearer is the user's OIDC ID token. From then on, until the rule's
/// `exp` or until the user lifts it, the broker refuses the agent's
/// requests to this user at once (`request.blocked`, 403), and those of
/// sub-agents it endorses, and counts each refusal. A newer block of the
/// same agent replaces the older, and its count.
#[utoipa::path(
    post, path = "/v1/blocks", tag = "users", security(("bearer" = [])),
    request_body = BlockBody,
    responses((status = 201, body = BlockView), (status = 400, body = ErrorBody),
              (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 422, body = ErrorBody))
)]
pub async fn block(
    State(state): State<AppState>,
    user: User,
    body: Result<Bytes, BytesRejection>,
) -> Result<(StatusCode, Json<BlockView>), ApiError> {
    let body: BlockBody = json_body(body)?;
    let view = rules::put_block(&state, &user, &body.policy).await?;
    Ok((StatusCode::CREATED, Json(view)))
}

/// The signed-in user's blocks in force, with how many requests each refused.
#[utoipa::path(
    get, path = "/v1/blocks", tag = "users", security(("bearer" = [])),
    responses((status = 200, body = Blocks), (status = 401, body = ErrorBody))
)]
pub async fn blocks(State(state): State<AppState>, user: User) -> Result<Json<Blocks>, ApiError> {
    Ok(Json(Blocks {
        blocks: rules::blocks(&state, &user).await?,
    }))
}

/// Lifts the signed-in user's block of an agent key.
#[utoipa::path(
    delete, path = "/v1/blocks/{agent}", tag = "users", security(("bearer" = [])),
    params(("agent" = String, Path, description = "The agent key's thumbprint")),
    responses((status = 204), (status = 400, body = ErrorBody),
              (status = 401, body = ErrorBody), (status = 404, body = ErrorBody))
)]
pub async fn lift_block(
    State(state): State<AppState>,
    user: User,
    Path(agent): Path<String>,
) -> Result<StatusCode, ApiError> {
    let agent = agent
        .parse()
        .map_err(|_| ApiError::new(Code::BadId, "not a key thumbprint"))?;
    rules::lift_block(&state, &user, &agent).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A call an agent asks its user to confirm.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ConfirmBody {
    /// The chain the call runs under, root first.
    chain: Vec<String>,
    /// The agents' public OKP JWKs.
    #[serde(default)]
    #[schema(value_type = Vec<Object>)]
    keys: Vec<Jwk>,
    /// A `mandate-pop+jwt` by the chain's leaf agent for `POST` on
    /// `{public URL}/v1/confirmations`, whose `ath` is the chain's hash.
    proof: String,
    /// The call's method, as it will be sent (uppercase).
    method: String,
    /// The call's URI with its query, as the resource server sees it.
    uri: String,
    /// The call's body, base64url (no padding); empty for none.
    body: String,
    /// The agent's account of the call, for the user (1 to 1,000 bytes).
    summary: String,
}

/// Asks the chain's user to confirm one exact call.
///
/// For a scope whose limits say `confirm` (docs/protocol.md 4.13, 5.8).
/// No sign-in: the chain must verify here, and `proof` must be by its
/// leaf agent. The user sees the method, the URI and the body in the app,
/// and signs a `mandate-confirmation+jwt` for exactly that call, or
/// refuses. It waits up to 5 minutes; an agent has at most 5 waiting.
#[utoipa::path(
    post, path = "/v1/confirmations", tag = "agents",
    request_body = ConfirmBody,
    responses((status = 201, body = ConfirmationAsked), (status = 400, body = ErrorBody),
              (status = 401, body = ErrorBody), (status = 429, body = ErrorBody))
)]
pub async fn ask_confirmation(
    State(state): State<AppState>,
    body: Result<Bytes, BytesRejection>,
) -> Result<(StatusCode, Json<ConfirmationAsked>), ApiError> {
    let body: ConfirmBody = json_body(body)?;
    let asked = confirm_service::ask(
        &state,
        confirm_service::Ask {
            chain: &body.chain,
            keys: &body.keys,
            proof: &body.proof,
            method: &body.method,
            uri: &body.uri,
            body: &body.body,
            summary: &body.summary,
        },
    )
    .await?;
    Ok((StatusCode::CREATED, Json(asked)))
}

/// A call to confirm, as its agent sees it.
///
/// No sign-in: the `Mandate-PoP` header carries a `mandate-pop+jwt` by the
/// chain's leaf agent for `GET` on `{public URL}/v1/confirmations/{id}`,
/// whose `ath` is the chain's hash. Each proof is accepted once. With
/// `wait` (at most 30 s), a pending call is held open until the user
/// answers or the wait ends. Once confirmed, the reply carries the user's
/// confirmation, to send with the call in `Mandate-Confirmation`.
#[utoipa::path(
    get, path = "/v1/confirmations/{id}", tag = "agents",
    params(("id" = String, Path, description = "The call's id"), Wait,
           ("mandate-pop" = String, Header, description = "A proof of possession by the leaf agent")),
    responses(
        (status = 200, body = ConfirmationView),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 429, body = ErrorBody),
    )
)]
pub async fn poll_confirmation(
    State(state): State<AppState>,
    Path(id): Path<String>,
    query: Result<Query<Wait>, QueryRejection>,
    headers: HeaderMap,
) -> Result<Json<ConfirmationView>, ApiError> {
    let Query(wait) = query
        .map_err(|_| ApiError::new(Code::QueryMalformed, "wait must be a number of seconds"))?;
    let pop = pop_header(&headers)?;
    let wait = std::time::Duration::from_secs(wait.wait);
    if wait > service::MAX_WAIT {
        return Err(ApiError::new(
            Code::QueryMalformed,
            "wait is at most 30 seconds",
        ));
    }
    let view = confirm_service::poll(&state, &id, pop, wait).await?;
    Ok(Json(view))
}

/// The user's calls to confirm.
#[derive(Debug, Serialize, ToSchema)]
pub struct Confirmations {
    /// Oldest first.
    pub confirmations: Vec<ConfirmationItem>,
}

/// The signed-in user's calls waiting to be confirmed.
///
/// Each comes with the chain it runs under and the agents' keys, so that
/// the app checks it, and the body's hash, itself.
#[utoipa::path(
    get, path = "/v1/confirmations", tag = "users", security(("bearer" = [])),
    responses((status = 200, body = Confirmations), (status = 401, body = ErrorBody))
)]
pub async fn confirmations(
    State(state): State<AppState>,
    user: User,
) -> Result<Json<Confirmations>, ApiError> {
    Ok(Json(Confirmations {
        confirmations: confirm_service::pending(&state, &user).await?,
    }))
}

/// The user's answer to a call to confirm.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ConfirmDecisionBody {
    /// A `mandate-confirmation+jwt` for exactly the call, signed by one of
    /// the user's enrolled keys. Absent: the call is refused.
    #[serde(default)]
    confirmation: Option<String>,
    /// Why it is refused, for the agent.
    #[serde(default)]
    reason: Option<String>,
}

/// What the user decided.
#[derive(Debug, Serialize, ToSchema)]
pub struct ConfirmDecided {
    /// `confirmed` or `refused`.
    pub status: &'static str,
}

/// Confirms or refuses one of the signed-in user's calls to confirm.
///
/// The confirmation is checked as a resource server checks it
/// (docs/protocol.md 6.8) against the call as filed.
#[utoipa::path(
    post, path = "/v1/confirmations/{id}/decision", tag = "users", security(("bearer" = [])),
    params(("id" = String, Path, description = "The call's id")),
    request_body = ConfirmDecisionBody,
    responses((status = 200, body = ConfirmDecided), (status = 400, body = ErrorBody),
              (status = 401, body = ErrorBody), (status = 404, body = ErrorBody),
              (status = 409, body = ErrorBody))
)]
pub async fn decide_confirmation(
    State(state): State<AppState>,
    Path(id): Path<String>,
    user: User,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<ConfirmDecided>, ApiError> {
    let body: ConfirmDecisionBody = json_body(body)?;
    if body.confirmation.is_some() && body.reason.is_some() {
        return Err(ApiError::new(
            Code::DecisionMalformed,
            "send a confirmation, or a refusal with its reason, not both",
        ));
    }
    let status = confirm_service::decide(
        &state,
        &user,
        &id,
        body.confirmation.as_deref(),
        body.reason.as_deref(),
    )
    .await?;
    Ok(Json(ConfirmDecided { status }))
}
