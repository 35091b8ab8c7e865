//! How the gateway refuses: an HTTP status, a JSON-RPC error whose
//! `data.code` is one of [`GatewayCode`], and, for the refusals of
//! authority, RFC 6750 / RFC 9449 challenges in `WWW-Authenticate`.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::rpc::{RpcError, error_body};

mandate_core::error_codes! {
    /// The gateway's stable codes (`error.data.code` of its JSON-RPC
    /// errors). docs/errors.md is generated from this list.
    pub enum GatewayCode {
        /// No credential was presented.
        Unauthorized = (
            "gateway.unauthorized",
            Some(401),
            "The call presents neither a DPoP-bound access token nor a mandate.",
            "Follow `WWW-Authenticate`: read the resource metadata it names, get a token from \
             the broker it lists, and send it as `Authorization: DPoP` with a `DPoP` proof \
             (docs/mcp.md).",
        ),
        /// The access token or its proof does not check out.
        InvalidToken = (
            "gateway.invalid_token",
            Some(401),
            "The access token or its DPoP proof is refused: the message says which rule, such \
             as another audience, an expired or revoked token, a replayed proof.",
            "Get a new token for this resource (its URL is the metadata's `resource`), and sign \
             a fresh proof for each call.",
        ),
        /// The mandate does not check out.
        InvalidMandate = (
            "gateway.invalid_mandate",
            Some(401),
            "The mandate is refused: `data.rule` is the protocol's code (docs/errors.md), such \
             as `chain.revoked` or `pop.replayed`.",
            "Present a current mandate with a fresh proof of possession for this URL.",
        ),
        /// The call is outside the grant.
        InsufficientScope = (
            "gateway.insufficient_scope",
            Some(403),
            "The grant behind the credential does not cover this tool, prompt or resource. \
             `data.authorization_details` is the scope the call needs, and `WWW-Authenticate` \
             has it as `scope`.",
            "Ask the user for it: a Mandate agent files a request for \
             `data.authorization_details`; an OAuth client authorizes again with the \
             challenge's `scope` (docs/mcp.md, Step-up).",
        ),
        /// The call would take a grant past its `max_calls`.
        LimitExceeded = (
            "gateway.limit_exceeded",
            Some(403),
            "The call would take a grant behind the credential past its `max_calls` (a \"just \
             this once\" grant serves one call). Each grant's calls are counted, whichever \
             credential presents them.",
            "Ask the user for a new grant.",
        ),
        /// No room to count another grant's calls.
        CountsFull = (
            "gateway.counts_full",
            Some(503),
            "The gateway counts calls against `max_calls` for as many grants as it can hold, and \
             holds that many.",
            "Retry after a while.",
        ),
        /// The call needs the user's confirmation of it.
        Confirmation = (
            "gateway.confirmation",
            Some(403),
            "A scope asks the user to confirm each such call, and the call carries no \
             confirmation of exactly it: `data.rule` is `confirm.required`, \
             `confirm.mismatch`, `confirm.body_mismatch` or `confirm.replayed`. An access token \
             cannot carry a confirmation.",
            "Present the mandate, file this exact call, body and all, with the broker (`POST \
             /v1/confirmations`), and send the user's confirmation in `Mandate-Confirmation` \
             (docs/agents.md, Confirming one call).",
        ),
        /// The gateway does not pass calls to a tool by this name.
        NoSuchTool = (
            "gateway.no_such_tool",
            Some(400),
            "The tool's name is outside the grammar the gateway takes (1 to 128 of `A-Z a-z \
             0-9 _ - .`), or differs from another of the upstream's tools only by case.",
            "Call a tool by the name `tools/list` gives.",
        ),
        /// The revocation list is not current.
        Stale = (
            "gateway.stale",
            Some(503),
            "The gateway's revocation list is not current, so it refuses every call until it \
             is.",
            "Retry after a while; nothing is wrong with the credential.",
        ),
        /// Too many fresh proofs from one key.
        ReplayFull = (
            "gateway.replay_full",
            Some(503),
            "The gateway remembers every proof for two minutes so that none is used twice, and \
             this key's share of that memory is full: it made more calls than the gateway holds \
             (`--replay-capacity`).",
            "Retry after a while, more slowly; the operator can raise `--replay-capacity`.",
        ),
        /// A session of another caller's.
        Session = (
            "gateway.session",
            Some(404),
            "The `Mcp-Session-Id` names no session this caller opened.",
            "Start a session of your own with `initialize`.",
        ),
        /// The request is not one the gateway passes on.
        BadRequest = (
            "gateway.bad_request",
            Some(400),
            "The request is not a single JSON-RPC message the gateway passes on: the JSON-RPC \
             error's code and message say why (a parse error, a batch, a repeated member, \
             nesting too deep, a method not on the list, mismatched MCP headers).",
            "Send one JSON-RPC message per POST, as the MCP transport describes.",
        ),
        /// The body is over the limit.
        TooLarge = (
            "gateway.too_large",
            Some(413),
            "The body is over the gateway's limit.",
            "Send a smaller message.",
        ),
        /// A web page's origin.
        Origin = (
            "gateway.origin",
            Some(403),
            "The request carries an `Origin` the gateway does not allow: a web page cannot \
             drive it.",
            "Call the gateway from outside a browser, or have its operator allow the origin.",
        ),
        /// No such path.
        NotFound = (
            "gateway.not_found",
            Some(404),
            "The gateway serves only its MCP endpoint and its resource metadata.",
            "Call the MCP endpoint, the URL the gateway printed (the metadata's `resource`).",
        ),
        /// The upstream could not be reached or refused the gateway.
        Upstream = (
            "gateway.upstream",
            Some(502),
            "The upstream MCP server could not be reached, or refused the gateway's own \
             credential.",
            "Retry later; tell the gateway's operator if it persists.",
        ),
    }
}

/// A refusal, ready to answer.
#[derive(Debug, Clone)]
pub struct Refusal {
    /// The HTTP status.
    pub status: StatusCode,
    /// The code.
    pub code: GatewayCode,
    /// The JSON-RPC error code.
    pub rpc_code: i64,
    /// What was wrong; never repeats a credential.
    pub message: String,
    /// The rest, boxed to keep a `Result` small.
    pub more: Box<More>,
}

/// What a refusal says besides its code and message.
#[derive(Debug, Clone)]
pub struct More {
    /// More for the caller, under `error.data`.
    pub data: Value,
    /// The `WWW-Authenticate` challenge, if any.
    pub challenge: Option<String>,
    /// The request's id, when it was read.
    pub id: Option<Value>,
}

impl More {
    fn none() -> Box<More> {
        Box::new(More {
            data: json!({}),
            challenge: None,
            id: None,
        })
    }
}

/// MCP leaves -32000 to -32019 to implementations: the gateway's refusals
/// of authority use this one.
pub const RPC_UNAUTHORIZED: i64 = -32001;

impl Refusal {
    /// A refusal with `code` and `message`.
    pub fn new(code: GatewayCode, message: impl Into<String>) -> Refusal {
        Refusal {
            status: code
                .doc()
                .status
                .and_then(|s| StatusCode::from_u16(s).ok())
                .unwrap_or(StatusCode::BAD_REQUEST),
            code,
            rpc_code: RPC_UNAUTHORIZED,
            message: message.into(),
            more: More::none(),
        }
    }

    /// A JSON-RPC message that cannot be passed on.
    pub fn rpc(e: RpcError) -> Refusal {
        Refusal {
            status: StatusCode::from_u16(e.code.status()).unwrap_or(StatusCode::BAD_REQUEST),
            code: GatewayCode::BadRequest,
            rpc_code: e.code.code(),
            message: e.message.into(),
            more: More::none(),
        }
    }

    /// With the challenge `challenge`.
    pub fn challenge(mut self, challenge: String) -> Refusal {
        self.more.challenge = Some(challenge);
        self
    }

    /// With `data` merged into `error.data`.
    pub fn data(mut self, data: Value) -> Refusal {
        if let (Some(into), Value::Object(from)) = (self.more.data.as_object_mut(), data) {
            into.extend(from);
        }
        self
    }

    /// Answering the request `id`.
    pub fn to(mut self, id: Option<&Value>) -> Refusal {
        self.more.id = id.cloned();
        self
    }
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        let status = self.status;
        let More {
            mut data,
            challenge,
            id,
        } = *self.more;
        if let Some(d) = data.as_object_mut() {
            d.insert("code".into(), json!(self.code.as_str()));
        }
        let body = error_body(id.as_ref(), self.rpc_code, &self.message, Some(data));
        let mut res = (status, axum::Json(body)).into_response();
        if let Some(challenge) = challenge.and_then(|c| HeaderValue::from_str(&c).ok()) {
            res.headers_mut()
                .insert(header::WWW_AUTHENTICATE, challenge);
        }
        res
    }
}
