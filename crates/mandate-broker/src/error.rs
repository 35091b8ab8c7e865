//! Errors as the wire sees them: a status and `{"code", "message"}`. The
//! code is stable; the message is for people and never holds a token, a
//! secret, SQL or a stack trace. Server faults are logged in full here and
//! answered with a bare code.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use mandate_store::StoreError;
use serde::Serialize;

mandate_core::error_codes! {
    /// Every code the broker answers with besides the protocol's
    /// ([`mandate_core::Error`]), each with its status. docs/errors.md is
    /// generated from this list.
    pub enum Code {
        // The front door (crate::guard).
        /// No `Host`, or two.
        HostMissing = (
            "request.host_missing",
            Some(400),
            "The request names no `Host` (and no authority in its target), or two.",
            "Send one `Host` header; HTTP clients do this for you.",
        ),
        /// A `Host` not on the allow-list.
        Host = (
            "request.host",
            Some(421),
            "The `Host` is not one this broker answers for, or is not a plain `NAME[:PORT]`.",
            "Address the broker by its public URL or its listening address; an operator can add \
             names with `--allowed-host`.",
        ),
        /// An `Origin` not on the allow-list.
        Origin = (
            "request.origin",
            Some(403),
            "The request has an `Origin` the broker does not take (web pages are refused).",
            "Call from an agent or the app, which send no `Origin`; an operator can allow an \
             origin with `--allowed-origin`.",
        ),
        /// A `POST` body not sent as JSON.
        ContentType = (
            "body.content_type",
            Some(415),
            "A `POST` without `Content-Type: application/json`.",
            "Send the body as JSON, with that content type.",
        ),
        /// A body over the limit.
        BodyTooLarge = (
            "body.too_large",
            Some(413),
            "The body is over 320 KiB.",
            "Send a smaller body: fewer or shorter tokens.",
        ),
        /// A body that could not be read.
        BodyUnreadable = (
            "body.unreadable",
            Some(400),
            "The body could not be read to its end.",
            "Send the whole body again.",
        ),
        /// A body that is not the JSON the endpoint takes.
        BodyMalformed = (
            "body.malformed_json",
            Some(400),
            "The body is not the JSON object the endpoint takes: a member missing, unknown, or \
             of the wrong type.",
            "Send the body docs/broker-api.md shows for the endpoint.",
        ),
        /// A query parameter out of its range.
        QueryMalformed = (
            "query.malformed",
            Some(400),
            "A query parameter is not a number, or out of range (`since` from 0 to 2^53-1, \
             `wait` at most 30), or not what the endpoint takes (`ids`: 1 to 100 request ids, \
             separated by commas).",
            "Fix the parameter.",
        ),
        /// A `Last-Event-ID` that is not a position.
        BadLastEventId = (
            "sse.bad_last_event_id",
            Some(400),
            "`Last-Event-ID` is not an integer from 0 to 2^53-1.",
            "Resume with the `id` of the last event received, or none.",
        ),
        /// No such endpoint, or no such resource.
        NotFound = (
            "not_found",
            Some(404),
            "No such endpoint, or no such resource.",
            "Check the method and path against docs/broker-api.md.",
        ),

        // A user's bearer (crate::oidc).
        /// No bearer.
        AuthMissing = (
            "auth.missing",
            Some(401),
            "The call needs `Authorization: Bearer` with the user's OIDC ID token.",
            "Sign in and send the ID token.",
        ),
        /// A bearer that is not a JWT.
        AuthMalformed = (
            "auth.malformed",
            Some(401),
            "The bearer is not a JWT with the claims of an ID token. An opaque OAuth access \
             token is refused with this code; a JWT access token fails on its audience or \
             claims.",
            "Send the ID token (`id_token` from the token response), not the access token.",
        ),
        /// A bearer signed with an algorithm not taken.
        AuthAlgorithm = (
            "auth.algorithm",
            Some(401),
            "The ID token is not signed with an asymmetric algorithm the broker takes.",
            "Have the provider sign ID tokens with RS256 to RS512, PS256 to PS512, ES256, ES384 \
             or EdDSA.",
        ),
        /// A bearer from a provider not on `--issuer`.
        AuthUnknownIssuer = (
            "auth.unknown_issuer",
            Some(401),
            "The ID token's `iss` is not one of the broker's `--issuer`s.",
            "Sign in at the organization's provider; an operator adds providers with `--issuer`.",
        ),
        /// A bearer for another client.
        AuthAudience = (
            "auth.audience",
            Some(401),
            "The ID token's `aud` is not a client id the broker takes for that issuer.",
            "Sign in with the client id configured on the broker (`--issuer ISSUER=CLIENT_ID`).",
        ),
        /// An expired bearer.
        AuthExpired = (
            "auth.expired",
            Some(401),
            "The ID token has expired.",
            "Refresh or sign in again, and send the new ID token.",
        ),
        /// A bearer not valid yet.
        AuthNotYetValid = (
            "auth.not_yet_valid",
            Some(401),
            "The ID token is not valid yet.",
            "Check the clock.",
        ),
        /// A bearer signed by a key the issuer does not publish.
        AuthUnknownKey = (
            "auth.unknown_key",
            Some(401),
            "The ID token's `kid` is not in the issuer's JWKS.",
            "Sign in again; if it persists, the provider's keys are out of step.",
        ),
        /// A bearer whose signature fails.
        AuthSignature = (
            "auth.signature",
            Some(401),
            "The ID token's signature does not verify.",
            "Sign in again; never alter the token.",
        ),
        /// The issuer's keys could not be learned.
        AuthIssuerUnavailable = (
            "auth.issuer_unavailable",
            Some(503),
            "The broker could not learn the issuer's keys.",
            "Retry later: the broker backs off from a failing provider for up to 5 minutes.",
        ),

        // Agents polling their requests (crate::service).
        /// No `Mandate-PoP` on a poll.
        PopMissing = (
            "auth.pop_missing",
            Some(401),
            "Polling a request needs a `Mandate-PoP` proof by the requesting agent's key.",
            "Send the proof (docs/agents.md, From any language).",
        ),
        /// A `Mandate-PoP` that is not text.
        PopMalformed = (
            "auth.pop_malformed",
            Some(400),
            "The `Mandate-PoP` header is not text.",
            "Send the proof as its compact JWS.",
        ),
        /// A poll by another agent.
        NotYourRequest = (
            "auth.not_your_request",
            Some(403),
            "The proof is signed by another key than the one that filed the request.",
            "Poll only your own requests, with the key that signed them.",
        ),

        // Requests (crate::service, crate::user_service).
        /// A path id that is not a token id.
        BadId = (
            "request.bad_id",
            Some(400),
            "The id in the path is not a token id (43 base64url characters).",
            "Use the `id` the broker answered when the request was filed.",
        ),
        /// No `principal_hint`, or a malformed one.
        NoPrincipal = (
            "request.no_principal",
            Some(422),
            "The request has no `principal_hint`, or it is not `ISSUER#SUBJECT` (1 to 512 bytes, \
             no control characters, neither part empty).",
            "Set `principal_hint` to the user as `ISSUER#SUBJECT`: exactly their ID token's \
             `iss` and `sub`.",
        ),
        /// A `principal_hint` at an issuer the broker does not take.
        UnknownIssuer = (
            "request.unknown_issuer",
            Some(422),
            "The `principal_hint`'s issuer is not one of the broker's (`oidc_issuers` in \
             `/.well-known/mandate`).",
            "Use the issuer exactly as the broker's metadata lists it, with no trailing `/` \
             added or dropped.",
        ),
        /// An agent's request that claims to come from an OAuth client.
        OAuthClientClaim = (
            "request.oauth_client",
            Some(422),
            "The request carries `oauth_client`, which only the broker sets, for the requests \
             it files itself in the authorization code flow.",
            "Leave `oauth_client` out; an OAuth client goes through `/oauth/authorize`.",
        ),
        /// A parent chain that does not match the request.
        ParentChainMismatch = (
            "request.parent_chain_mismatch",
            Some(422),
            "The parent chain sent is not the one the request's `parent_chain` names, is another \
             user's, or is sent without `parent_chain`.",
            "Send exactly the grants the request names, root first, with their keys.",
        ),
        /// A sub-agent's request without its endorsement.
        EndorsementMissing = (
            "request.endorsement_missing",
            Some(401),
            "A sub-agent's request needs its delegating agent's endorsement.",
            "Have the agent whose grant is the parent chain's leaf sign the endorsement.",
        ),
        /// No such request.
        RequestNotFound = (
            "request.not_found",
            Some(404),
            "No such request (or not this user's).",
            "Check the id; a request is kept while it is pending and after its decision.",
        ),
        /// The user's inbox is full.
        TooManyPending = (
            "request.too_many_pending",
            Some(429),
            "Too many requests already wait for this user: in this lane, or from this agent.",
            "Wait for the user to decide, or for your requests to lapse, then ask again.",
        ),
        /// A request by an agent key the user blocks.
        RequestBlocked = (
            "request.blocked",
            Some(403),
            "The user chose to deny this agent always: its requests are refused at once, and \
             never reach the user.",
            "Do not ask again; only the user can lift the block, in the app.",
        ),
        /// The same request again, soon after the user denied it.
        RequestCooldown = (
            "request.cooldown",
            Some(429),
            "The user denied this agent the same scopes a short while ago; asking again at \
             once is refused. `retry_after` (and the `Retry-After` header) says when asking \
             again is allowed.",
            "Do not ask again before `retry_after` seconds; better, ask the user why, or ask \
             for less.",
        ),
        /// A request filed before.
        RequestReplayed = (
            "request.replayed",
            Some(409),
            "This request token was filed before.",
            "File a new request, with a new `jti`.",
        ),
        /// A call to confirm that is not filed as documented.
        ConfirmationMalformed = (
            "confirmation.malformed",
            Some(400),
            "The call to confirm is not well formed: its method, URI, body, summary or chain \
             (the message says which).",
            "File it as docs/agents.md, \"Confirming one call\", shows.",
        ),
        /// No such call to confirm.
        ConfirmationNotFound = (
            "confirmation.not_found",
            Some(404),
            "No call to confirm has this id (for this user).",
            "Use the id the broker answered when the call was filed.",
        ),
        /// A call already confirmed, refused or lapsed.
        ConfirmationDecided = (
            "confirmation.already_decided",
            Some(409),
            "The call was confirmed, refused or lapsed before.",
            "Nothing to do; the agent files a new call if it still needs one.",
        ),
        /// Too many calls of one agent wait for the user.
        TooManyConfirmations = (
            "confirmation.too_many_pending",
            Some(429),
            "Five of this agent's calls already wait for the user to confirm.",
            "Wait for the user's answers, or for the calls to lapse.",
        ),
        /// A poll of a call by another agent.
        NotYourConfirmation = (
            "confirmation.not_yours",
            Some(403),
            "The proof is not by the agent that will make the call (the chain's leaf).",
            "Sign the proof with the leaf agent's key.",
        ),
        /// A block asked with a rule that does not deny.
        BlockNotDeny = (
            "block.not_deny",
            Some(422),
            "The policy sent to `/v1/blocks` does not deny: its `effect` is `approve`.",
            "Send a `mandate-policy+jwt` with `\"effect\":\"deny\"`; approving rules stay in the app.",
        ),
        /// No block of that agent.
        BlockNotFound = (
            "block.not_found",
            Some(404),
            "The signed-in user blocks no such agent.",
            "List the blocks with `GET /v1/blocks`.",
        ),
        /// A decision on a request already decided.
        AlreadyDecided = (
            "request.already_decided",
            Some(409),
            "The request was decided, or has lapsed.",
            "Reload the inbox.",
        ),
        /// A re-issue for a request not approved.
        NotApproved = (
            "request.not_approved",
            Some(409),
            "Only an approved request's grant can be re-issued.",
            "Approve the request first.",
        ),

        // Decisions (crate::user_service).
        /// A decision body of the wrong shape.
        DecisionMalformed = (
            "decision.malformed",
            Some(400),
            "Send exactly one of `grant` and `denial`, and `replaces` (a grant id) only with a \
             grant.",
            "Fix the body.",
        ),
        /// A decision for another request.
        DecisionWrongRequest = (
            "decision.wrong_request",
            Some(422),
            "The grant or denial answers another request, or names another user.",
            "Sign the decision for this request's id and this user.",
        ),
        /// A grant to another agent.
        DecisionWrongAgent = (
            "decision.wrong_agent",
            Some(422),
            "The grant goes to another agent than the one that asked.",
            "Grant to the requesting agent's key.",
        ),
        /// A grant wider than the request.
        DecisionExceedsRequest = (
            "decision.exceeds_request",
            Some(422),
            "The grant gives more than the agent asked for: scopes, depth or lifetime.",
            "Grant what was asked, or less.",
        ),
        /// A re-issue replacing another grant than the current one.
        DecisionStale = (
            "decision.stale",
            Some(409),
            "The request's grant is not the one this re-issue replaces, or it changed meanwhile.",
            "Reload the grants and re-issue against the current one.",
        ),
        /// A re-issue before the grant it replaces was revoked.
        DecisionNotRevoked = (
            "decision.not_revoked",
            Some(409),
            "A re-issued grant replaces a grant that is not revoked yet.",
            "Revoke the current grant first.",
        ),
        /// A re-issue wider than the grant it replaces.
        DecisionExceedsGrant = (
            "decision.exceeds_grant",
            Some(422),
            "A re-issued grant must stay within the grant it replaces.",
            "Narrow it.",
        ),
        /// A decision signed by a key not enrolled.
        DecisionKeyNotEnrolled = (
            "decision.key_not_enrolled",
            Some(403),
            "The decision is signed by a key not enrolled for this user.",
            "Sign with an enrolled user key; sign in again to enroll this device's.",
        ),

        // User keys (crate::keys).
        /// A removed key.
        KeyRevoked = (
            "key.revoked",
            Some(409),
            "This key was removed and is never bound again.",
            "Make a new key and enroll it.",
        ),
        /// A key bound to someone else.
        KeyBoundElsewhere = (
            "key.bound_elsewhere",
            Some(409),
            "The key is bound to another user.",
            "Use a key of your own.",
        ),
        /// An enrollment after an old sign-in.
        SignInStale = (
            "key.sign_in_stale",
            Some(401),
            "Enrolling a new key needs a sign-in from the last 5 minutes.",
            "Sign in again, then enroll at once.",
        ),
        /// An enrollment without its session key.
        SessionMissing = (
            "key.session_missing",
            Some(400),
            "A new key needs the sign-in's `session_jwk` and `session_proof`.",
            "Send both (docs/broker.md, Keys and devices).",
        ),
        /// An enrollment with a sign-in made for something else.
        NonceMismatch = (
            "key.nonce_mismatch",
            Some(401),
            "The ID token's `nonce` is not the session key's thumbprint: the sign-in was not \
             made for this enrollment.",
            "Sign in with the session key's thumbprint as the nonce.",
        ),
        /// An ID token that enrolled a key already.
        TokenSpent = (
            "key.token_spent",
            Some(409),
            "This ID token has enrolled a key already.",
            "Sign in again.",
        ),
        /// A bad device name.
        DeviceMalformed = (
            "key.device_malformed",
            Some(400),
            "A new key needs a device name of 1 to 64 characters, not blank, without control \
             characters.",
            "Send a device name.",
        ),

        // Revocations and receipts (crate::revocation_service, crate::receipt_service, crate::chains).
        /// A revocation body of the wrong shape.
        RevocationMalformed = (
            "revocation.malformed",
            Some(400),
            "The chain sent with the revocation is empty or too long (1 to 16 grants, at most 32 \
             keys).",
            "Send the chain down to the revoked grant, root first, and its keys.",
        ),
        /// A revocation of grants the broker does not hold.
        UnknownGrant = (
            "revocation.unknown_grant",
            Some(422),
            "A revoked id is not one of this user's grants.",
            "Revoke only grants of this user.",
        ),
        /// A revocation posted before.
        RevocationReplayed = (
            "revocation.replayed",
            Some(409),
            "This revocation was posted before.",
            "Nothing to do: it stands.",
        ),
        /// A receipt body of the wrong shape.
        ReceiptMalformed = (
            "receipt.malformed",
            Some(400),
            "The chain sent with the receipt is empty or too long (1 to 16 grants, at most 32 \
             keys).",
            "Send the chain the receipt's grant ends, root first, and its keys.",
        ),
        /// A receipt reported before.
        ReceiptReplayed = (
            "receipt.replayed",
            Some(409),
            "This receipt was reported before.",
            "Nothing to do: it is stored.",
        ),
        /// A witness report of the wrong shape.
        WitnessMalformed = (
            "witness.malformed",
            Some(400),
            "A witness report carries 1 to 100 receipts and the witness's public key.",
            "Send `{\"key\": JWK, \"receipts\": [...]}` with at most 100 receipts.",
        ),
        /// A key the broker does not trust as a witness.
        WitnessUnknown = (
            "witness.unknown",
            Some(403),
            "The key that signed the report is not a witness this broker trusts.",
            "An operator enrolls a witness with `--witness URI=THUMBPRINT`.",
        ),
        /// A witness receipt about another resource than its witness's.
        WitnessTarget = (
            "witness.target",
            Some(422),
            "The receipt's `action.target`, or the tools statement's `resource`, is not the \
             resource its key witnesses.",
            "A witness reports calls to its own resource, and its own server's tools, only.",
        ),
        /// A witness receipt that arrived too late.
        WitnessLate = (
            "witness.late",
            Some(422),
            "The witness receipt or tools statement is more than ten minutes old.",
            "Report calls as they happen, and sign a statement as it is sent.",
        ),
        /// A witness receipt under a grant the broker does not hold.
        WitnessUnknownGrant = (
            "witness.unknown_grant",
            Some(422),
            "The witness receipt names a grant this broker does not hold.",
            "Report only calls made under this broker's grants, or have the agent report its \
             sub-delegations first.",
        ),
        /// A chain whose root the broker did not issue.
        UnknownRoot = (
            "chain.unknown_root",
            Some(422),
            "The chain's root is not a grant this broker holds for its user.",
            "Report under a chain that began at this broker.",
        ),

        // Rates (crate::ratelimit).
        /// An agent over its rate.
        RateAgent = (
            "rate.agent",
            Some(429),
            "This agent key files or polls too fast.",
            "Slow down: poll with `wait` instead of in a loop.",
        ),
        /// A user's inbox takes prompts too fast.
        RateUserPrompts = (
            "rate.user_prompts",
            Some(429),
            "This user's inbox takes requests too fast.",
            "Ask again later.",
        ),
        /// A user calls too fast.
        RateUser = (
            "rate.user",
            Some(429),
            "This user's calls come too fast.",
            "Slow down.",
        ),
        /// A leaf agent reports too fast.
        RateReceipts = (
            "rate.receipts",
            Some(429),
            "This agent reports receipts too fast.",
            "Batch the work, or slow down.",
        ),
        /// A signer revokes too fast.
        RateRevocations = (
            "rate.revocations",
            Some(429),
            "This key revokes too fast.",
            "Slow down.",
        ),

        // The revocation feed (crate::streams, crate::checkpoint).
        /// Too many followers.
        FeedBusy = (
            "feed.busy",
            Some(503),
            "The revocation stream has as many followers as this instance takes.",
            "Retry after a while; read `GET /v1/revocations` meanwhile.",
        ),
        /// No checkpoint signed yet.
        CheckpointUnavailable = (
            "checkpoint.unavailable",
            Some(503),
            "The broker has not signed a checkpoint of its feed yet.",
            "Retry: the broker cannot read its store.",
        ),

        // Storage (mandate_store::StoreError).
        /// A row with the same key exists.
        StoreConflict = (
            "store.conflict",
            Some(409),
            "Something with the same id exists.",
            "Do not send it again.",
        ),
        /// A stored value no longer parses.
        StoreCorrupt = (
            "store.corrupt",
            Some(503),
            "The broker's stored data no longer reads: its database was edited.",
            "Tell the broker's operator.",
        ),
        /// The store is full.
        StoreFull = (
            "store.full",
            Some(503),
            "The store refused a write as over its limits.",
            "Retry later.",
        ),
        /// The database could not be reached.
        StoreUnavailable = (
            "store.unavailable",
            Some(503),
            "The broker cannot reach its database.",
            "Retry later.",
        ),
        /// Any other database failure.
        StoreDatabase = (
            "store.database",
            Some(503),
            "The broker's database failed.",
            "Retry later; tell the operator if it persists.",
        ),
        /// The store was closed.
        StoreClosed = (
            "store.closed",
            Some(503),
            "The broker is shutting down.",
            "Retry, at another instance if there is one.",
        ),
    }
}

/// An error answered to a client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// The HTTP status.
    pub status: StatusCode,
    /// The stable code.
    pub code: &'static str,
    /// A short explanation for people.
    pub message: String,
    /// For a refusal that lifts with time: in how many seconds.
    pub retry_after: Option<u64>,
}

/// Every error's body.
#[derive(Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    /// The stable code, such as `request.replayed` or `chain.revoked`.
    code: String,
    /// A short explanation for people.
    message: String,
    /// For a refusal that lifts with time (`request.cooldown`): in how
    /// many seconds asking again is allowed, as in `Retry-After`.
    #[serde(skip_serializing_if = "Option::is_none")]
    retry_after: Option<u64>,
}

impl ApiError {
    /// This error, lifting in `seconds`.
    pub fn retry_after(mut self, seconds: u64) -> ApiError {
        self.retry_after = Some(seconds);
        self
    }

    /// An error with one of the broker's codes, and its status.
    pub fn new(code: Code, message: impl Into<String>) -> ApiError {
        ApiError {
            status: StatusCode::from_u16(code.http_status()).unwrap_or(StatusCode::BAD_REQUEST),
            code: code.as_str(),
            message: message.into(),
            retry_after: None,
        }
    }

    /// A protocol rule failed in a token of the body: 400, with the rule's
    /// code.
    pub fn token(e: mandate_core::Error) -> ApiError {
        ApiError::rule(StatusCode::BAD_REQUEST, &e, e.to_string())
    }

    /// A protocol rule failed in the caller's own proof (a `Mandate-PoP`,
    /// an enrollment's proof, an endorsement): 401, with the rule's code;
    /// but a full replay cache, which is no fault of the proof, is 503.
    pub fn proof(e: mandate_core::Error) -> ApiError {
        let status = match e {
            mandate_core::Error::PopCacheFull => StatusCode::SERVICE_UNAVAILABLE,
            _ => StatusCode::UNAUTHORIZED,
        };
        ApiError::rule(status, &e, e.to_string())
    }

    /// A protocol rule, answered with `status`.
    pub fn rule(
        status: StatusCode,
        e: &mandate_core::Error,
        message: impl Into<String>,
    ) -> ApiError {
        ApiError {
            status,
            code: e.code(),
            message: message.into(),
            retry_after: None,
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> ApiError {
        let code = match &e {
            StoreError::Conflict => return ApiError::new(Code::StoreConflict, "already exists"),
            StoreError::NotFound => return ApiError::new(Code::NotFound, "no such resource"),
            StoreError::Full => Code::StoreFull,
            StoreError::Corrupt(_) => Code::StoreCorrupt,
            StoreError::Connect(_) => Code::StoreUnavailable,
            StoreError::Closed => Code::StoreClosed,
            // A failed batch, any other database failure, and the
            // failures of start-up (a URL, a migration) that cannot reach
            // a caller.
            _ => Code::StoreDatabase,
        };
        tracing::error!(error = ?e, "store failure");
        ApiError::new(code, "storage is unavailable")
    }
}

/// 429 for a caller over its rate.
pub(crate) fn too_fast(code: Code) -> ApiError {
    ApiError::new(code, "too many calls; slow down")
}

/// Maps a store conflict to its own code, and any other store error as
/// usual.
pub(crate) fn on_conflict(code: Code, message: &'static str) -> impl Fn(StoreError) -> ApiError {
    move |e| match e {
        StoreError::Conflict => ApiError::new(code, message),
        other => other.into(),
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            code: self.code.to_owned(),
            message: self.message,
            retry_after: self.retry_after,
        };
        let mut response = (self.status, Json(body)).into_response();
        if let Some(seconds) = self.retry_after {
            response
                .headers_mut()
                .insert(axum::http::header::RETRY_AFTER, seconds.into());
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_proof_refused_is_401_but_a_full_replay_cache_is_503() {
        let replayed = ApiError::proof(mandate_core::Error::PopReplayed);
        assert_eq!(
            (replayed.status, replayed.code),
            (StatusCode::UNAUTHORIZED, "pop.replayed")
        );
        let full = ApiError::proof(mandate_core::Error::PopCacheFull);
        assert_eq!(
            (full.status, full.code),
            (StatusCode::SERVICE_UNAVAILABLE, "pop.cache_full")
        );
    }

    #[test]
    fn every_broker_code_has_its_own_status() {
        for code in Code::ALL {
            let status = code.doc().status.expect("a status");
            assert_eq!(ApiError::new(*code, "m").status.as_u16(), status, "{code}");
        }
    }
}
