//! The one error type of mandate-core.
//!
//! Every variant maps to a stable code (see [`Error::code`]) that names the
//! rule that failed. Codes are part of the wire contract: test vectors,
//! the broker's JSON errors and the UI branch on them. Messages never carry
//! token bytes, key material or claim values supplied by the token.

use crate::codes::CodeDoc;
use crate::jws::TokenKind;

/// Where in a chain a failure happened: the index of the link, root = 0.
pub type LinkIndex = usize;

/// Why a token, chain or proof was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The compact token is longer than [`crate::MAX_TOKEN_BYTES`].
    #[error("token exceeds the size limit")]
    TokenTooLarge,
    /// The token is not three base64url parts of JSON, or a claim has the wrong shape.
    #[error("token is malformed: {0}")]
    Malformed(&'static str),
    /// A JSON object in the header or the claims repeats a member name.
    #[error("JSON object repeats a member name")]
    DuplicateKey,
    /// The `alg` header is not `EdDSA` or `Ed25519` (this covers `none` and every HMAC).
    #[error("algorithm is not allowed")]
    AlgNotAllowed,
    /// The `typ` header is not the one this kind of token must carry.
    #[error("token type is wrong: expected {expected:?}")]
    WrongType {
        /// The kind the caller asked for.
        expected: TokenKind,
    },
    /// The header has a `crit` member; Mandate defines no critical extensions.
    #[error("critical header extensions are not supported")]
    CritUnsupported,
    /// The header carries a key or key reference (`jwk`, `jku`, `x5c`, `x5u`, `x5t`, `x5t#S256`) where keys come only from trusted sources.
    #[error("header carries a key that is not trusted here")]
    UntrustedHeaderKey,
    /// The header has a member Mandate does not define.
    #[error("header has an unknown member")]
    UnknownHeader,
    /// The `kid` header is missing or is not the thumbprint of the key that must sign.
    #[error("kid does not name the expected signer")]
    KidMismatch,
    /// No public key with the needed thumbprint was supplied.
    #[error("signing key is unknown")]
    UnknownKey,
    /// The signature does not verify (strict Ed25519) under the named key.
    #[error("signature is invalid")]
    BadSignature,
    /// A public key is malformed, or a weak (small-order) point.
    #[error("public key is invalid")]
    BadKey,
    /// `exp` has passed, beyond the allowed clock skew.
    #[error("token has expired")]
    Expired,
    /// `nbf` is still in the future, beyond the allowed clock skew.
    #[error("token is not valid yet")]
    NotYetValid,
    /// The token's own times are inconsistent (`nbf` or `iat` at or after `exp`).
    #[error("token validity window is empty")]
    EmptyValidity,
    /// The chain has no links.
    #[error("chain is empty")]
    EmptyChain,
    /// The chain has more than [`crate::MAX_CHAIN_LINKS`] links.
    #[error("chain has too many links")]
    ChainTooLong,
    /// The root's signing key is not bound to the root's `sub`.
    #[error("root is not signed by a key bound to its principal (link {0})")]
    RootNotBound(LinkIndex),
    /// A link is not signed by the key the previous link's `cnf.jkt` names.
    #[error("link {0} is not signed by its parent's grantee")]
    WrongSigner(LinkIndex),
    /// `prf` is missing, present at the root, or not the parent's id.
    #[error("link {0} does not reference its parent")]
    ParentMismatch(LinkIndex),
    /// A link's `sub` differs from the root's.
    #[error("link {0} changes the principal")]
    PrincipalChanged(LinkIndex),
    /// A link's `act.sub` is not the agent id of its `cnf.jkt`.
    #[error("link {0} names an actor that is not its confirmation key")]
    ActorMismatch(LinkIndex),
    /// A token or agent key appears twice in the chain.
    #[error("link {0} repeats an earlier link or agent")]
    Loop(LinkIndex),
    /// A link's `max_depth` is not strictly smaller than its parent's.
    #[error("link {0} exceeds the delegation depth")]
    DepthExceeded(LinkIndex),
    /// A link expires after its parent.
    #[error("link {0} outlives its parent")]
    OutlivesParent(LinkIndex),
    /// A link becomes valid before its parent.
    #[error("link {0} starts before its parent")]
    PrecedesParent(LinkIndex),
    /// A link's scope has a `type` (or `identifier`) that no parent scope has.
    #[error("link {0} adds a scope type")]
    EscalatedType(LinkIndex),
    /// A link's scope has an action its parent scope lacks.
    #[error("link {0} adds an action")]
    EscalatedAction(LinkIndex),
    /// A link's scope has a location no parent location covers.
    #[error("link {0} adds a location")]
    EscalatedLocation(LinkIndex),
    /// A link's limits are larger than (or absent where) its parent's are set.
    #[error("link {0} raises a limit")]
    EscalatedLimit(LinkIndex),
    /// A link's money limit is in another currency than its parent's.
    #[error("link {0} changes the currency of a limit")]
    EscalatedCurrency(LinkIndex),
    /// An `authorization_details` entry is malformed (empty, bad location, bad amount).
    #[error("scope is malformed: {0}")]
    BadScope(&'static str),
    /// A link's id is in the revocation set.
    #[error("link {0} is revoked")]
    Revoked(LinkIndex),
    /// The root's signing key was removed by its user (a key revocation).
    #[error("link {0} is signed by a user key that was removed")]
    KeyRevoked(LinkIndex),
    /// No proof of possession was presented where one is required.
    #[error("proof of possession is missing")]
    PopMissing,
    /// The proof is not signed by the leaf's confirmation key.
    #[error("proof of possession is signed by the wrong key")]
    PopWrongKey,
    /// The proof's `iat` lies outside the freshness window.
    #[error("proof of possession is stale")]
    PopStale,
    /// The proof's `jti` was seen before.
    #[error("proof of possession was replayed")]
    PopReplayed,
    /// The replay cache is full of live entries and cannot accept another; fail closed.
    #[error("replay cache is full")]
    PopCacheFull,
    /// The proof's `htm` is not the request method.
    #[error("proof of possession is for another method")]
    PopMethod,
    /// The proof's `htu` is not the request URI.
    #[error("proof of possession is for another URI")]
    PopUri,
    /// The proof's `ath` is not the hash of the presented chain.
    #[error("proof of possession is bound to another chain")]
    PopChain,
    /// The call asks for an action outside the leaf's effective scope.
    #[error("the call is outside the granted scope")]
    OutOfScope,
    /// A key binding is from another broker, or would move a key to another principal.
    #[error("key binding refused: {0}")]
    BindingRejected(&'static str),
    /// The signer of a revocation is not at or above the revoked link.
    #[error("revocation is not signed by an issuer at or above the revoked link")]
    RevocationNotAuthorized,
    /// A revocation feed checkpoint names another broker than the one
    /// expected.
    #[error("checkpoint refused: {0}")]
    CheckpointRejected(&'static str),
    /// The revocation feed as read does not match the broker's signed
    /// checkpoint: an entry is missing, changed, added or out of order.
    #[error("the revocation feed does not match the broker's checkpoint")]
    FeedDiverged,
    /// A policy or confirmation is signed by a key that is not bound to
    /// its `sub`, or that its user removed.
    #[error("the signing key is not bound to the token's principal")]
    SignerNotBound,
    /// The call needs the user's confirmation of the exact request, and
    /// none was presented.
    #[error("the call needs the user's confirmation")]
    ConfirmationRequired,
    /// The confirmation is for another principal, agent, chain, method or URI.
    #[error("the confirmation is for another call")]
    ConfirmationMismatch,
    /// The confirmation is for another body.
    #[error("the confirmation is for another body")]
    ConfirmationBody,
    /// The confirmation was used before.
    #[error("the confirmation was used before")]
    ConfirmationReplayed,
    /// A policy is about another agent or principal, denies, or does not
    /// cover requests the broker files for OAuth clients.
    #[error("the rule does not apply to this request")]
    PolicyMismatch,
    /// A request asks for a longer lifetime or a deeper delegation than the
    /// rule allows.
    #[error("the request goes past the rule's lifetime or depth")]
    PolicyExceeded,
}

impl Error {
    /// The stable code that names the rule that failed.
    ///
    /// Codes never change once published; new rules get new codes.
    pub fn code(&self) -> &'static str {
        match self {
            Error::TokenTooLarge => "token.too_large",
            Error::Malformed(_) => "token.malformed",
            Error::DuplicateKey => "token.duplicate_key",
            Error::AlgNotAllowed => "header.alg_not_allowed",
            Error::WrongType { .. } => "header.wrong_typ",
            Error::CritUnsupported => "header.crit_unsupported",
            Error::UntrustedHeaderKey => "header.untrusted_key",
            Error::UnknownHeader => "header.unknown_member",
            Error::KidMismatch => "header.kid_mismatch",
            Error::UnknownKey => "key.unknown",
            Error::BadSignature => "signature.invalid",
            Error::BadKey => "key.invalid",
            Error::Expired => "time.expired",
            Error::NotYetValid => "time.not_yet_valid",
            Error::EmptyValidity => "time.empty_window",
            Error::EmptyChain => "chain.empty",
            Error::ChainTooLong => "chain.too_long",
            Error::RootNotBound(_) => "chain.root_not_bound",
            Error::WrongSigner(_) => "chain.wrong_signer",
            Error::ParentMismatch(_) => "chain.prf_mismatch",
            Error::PrincipalChanged(_) => "chain.sub_changed",
            Error::ActorMismatch(_) => "chain.act_mismatch",
            Error::Loop(_) => "chain.loop",
            Error::DepthExceeded(_) => "chain.depth_exceeded",
            Error::OutlivesParent(_) => "chain.outlives_parent",
            Error::PrecedesParent(_) => "chain.precedes_parent",
            Error::EscalatedType(_) => "scope.escalated_type",
            Error::EscalatedAction(_) => "scope.escalated_action",
            Error::EscalatedLocation(_) => "scope.escalated_location",
            Error::EscalatedLimit(_) => "scope.escalated_limit",
            Error::EscalatedCurrency(_) => "scope.escalated_currency",
            Error::BadScope(_) => "scope.malformed",
            Error::Revoked(_) => "chain.revoked",
            Error::KeyRevoked(_) => "chain.key_revoked",
            Error::PopMissing => "pop.missing",
            Error::PopWrongKey => "pop.wrong_key",
            Error::PopStale => "pop.stale",
            Error::PopReplayed => "pop.replayed",
            Error::PopCacheFull => "pop.cache_full",
            Error::PopMethod => "pop.htm_mismatch",
            Error::PopUri => "pop.htu_mismatch",
            Error::PopChain => "pop.ath_mismatch",
            Error::OutOfScope => "call.out_of_scope",
            Error::BindingRejected(_) => "binding.rejected",
            Error::RevocationNotAuthorized => "revocation.not_authorized",
            Error::CheckpointRejected(_) => "checkpoint.rejected",
            Error::FeedDiverged => "checkpoint.diverged",
            Error::SignerNotBound => "signer.not_bound",
            Error::ConfirmationRequired => "confirm.required",
            Error::ConfirmationMismatch => "confirm.mismatch",
            Error::ConfirmationBody => "confirm.body_mismatch",
            Error::ConfirmationReplayed => "confirm.replayed",
            Error::PolicyMismatch => "policy.mismatch",
            Error::PolicyExceeded => "policy.exceeded",
        }
    }

    /// Every code, for documentation and for tests that check the table is complete.
    pub const CODES: &'static [&'static str] = &[
        "token.too_large",
        "token.malformed",
        "token.duplicate_key",
        "header.alg_not_allowed",
        "header.wrong_typ",
        "header.crit_unsupported",
        "header.untrusted_key",
        "header.unknown_member",
        "header.kid_mismatch",
        "key.unknown",
        "signature.invalid",
        "key.invalid",
        "time.expired",
        "time.not_yet_valid",
        "time.empty_window",
        "chain.empty",
        "chain.too_long",
        "chain.root_not_bound",
        "chain.wrong_signer",
        "chain.prf_mismatch",
        "chain.sub_changed",
        "chain.act_mismatch",
        "chain.loop",
        "chain.depth_exceeded",
        "chain.outlives_parent",
        "chain.precedes_parent",
        "scope.escalated_type",
        "scope.escalated_action",
        "scope.escalated_location",
        "scope.escalated_limit",
        "scope.escalated_currency",
        "scope.malformed",
        "chain.revoked",
        "chain.key_revoked",
        "pop.missing",
        "pop.wrong_key",
        "pop.stale",
        "pop.replayed",
        "pop.cache_full",
        "pop.htm_mismatch",
        "pop.htu_mismatch",
        "pop.ath_mismatch",
        "call.out_of_scope",
        "binding.rejected",
        "revocation.not_authorized",
        "checkpoint.rejected",
        "checkpoint.diverged",
        "signer.not_bound",
        "confirm.required",
        "confirm.mismatch",
        "confirm.body_mismatch",
        "confirm.replayed",
        "policy.mismatch",
        "policy.exceeded",
    ];

    /// Every code with its meaning and what to do, in the order of
    /// [`Error::CODES`]. The status depends on who answers: see
    /// docs/errors.md.
    pub const DOCS: &'static [CodeDoc] = &[
        doc(
            "token.too_large",
            "A token is longer than 16,384 bytes.",
            "Send shorter tokens: fewer or smaller scopes, a shorter purpose.",
        ),
        doc(
            "token.malformed",
            "A token is not three base64url parts of JSON, or a claim is missing, unknown, or of the wrong shape.",
            "Fix the token against docs/protocol.md section 4 for its kind; the message names the part.",
        ),
        doc(
            "token.duplicate_key",
            "A JSON object in the header or the claims repeats a member name.",
            "Emit each member once.",
        ),
        doc(
            "header.alg_not_allowed",
            "`alg` is absent or not `EdDSA`.",
            "Sign with Ed25519 and say `\"alg\":\"EdDSA\"`.",
        ),
        doc(
            "header.wrong_typ",
            "`typ` is absent or not the exact value for this kind of token.",
            "Use the kind's `typ`, such as `mandate-request+jwt`, exactly.",
        ),
        doc(
            "header.crit_unsupported",
            "The header has `crit`.",
            "Leave `crit` out: Mandate defines no critical extensions.",
        ),
        doc(
            "header.untrusted_key",
            "The header carries a key or key reference (`jku`, `x5c`, `x5u`, `x5t`, or `jwk` on a kind other than a request).",
            "Leave keys out of the header; only a request carries its `jwk`.",
        ),
        doc(
            "header.unknown_member",
            "The header has a member Mandate does not define.",
            "Send only `alg`, `typ`, `kid`, and `jwk` on a request.",
        ),
        doc(
            "header.kid_mismatch",
            "`kid` is absent, malformed, or not the thumbprint of the key that must sign.",
            "Set `kid` to the RFC 7638 thumbprint of the signing key.",
        ),
        doc(
            "key.unknown",
            "No public key with the needed thumbprint was supplied.",
            "Send every key the chain names (the user's and each agent's) in `Mandate-Keys` or `keys`.",
        ),
        doc(
            "signature.invalid",
            "The Ed25519 signature does not verify.",
            "Sign the exact `header.payload` bytes with the key `kid` names.",
        ),
        doc(
            "key.invalid",
            "A public key is malformed, not canonical, not on the curve, or weak.",
            "Send the 32-byte Ed25519 public key as an OKP JWK with `crv` `Ed25519`.",
        ),
        doc(
            "time.expired",
            "A token's `exp` has passed (beyond the allowed skew).",
            "Get a fresh token: a new request, grant or proof.",
        ),
        doc(
            "time.not_yet_valid",
            "A token's `nbf` (or `iat`) is in the future beyond the allowed skew.",
            "Check the clock; keep it within 60 s of the broker's.",
        ),
        doc(
            "time.empty_window",
            "A token's `nbf` or `iat` is at or after its `exp`.",
            "Make `exp` later than `nbf` and `iat`.",
        ),
        doc(
            "chain.empty",
            "The chain has no grants.",
            "Send the grants, root first.",
        ),
        doc(
            "chain.too_long",
            "The chain has more than 16 grants, or a request asks for a depth of 16 or more.",
            "Keep chains to 16 grants.",
        ),
        doc(
            "chain.root_not_bound",
            "The root grant is not signed by a key the broker bound to its `sub`.",
            "Send the broker's current binding for the user key; ask the user to sign in if it lapsed.",
        ),
        doc(
            "chain.wrong_signer",
            "A grant is not signed by the key its parent grants to.",
            "Sign a sub-delegation with your own agent key, the one your grant's `cnf.jkt` names.",
        ),
        doc(
            "chain.prf_mismatch",
            "`prf` is at the root, or below it is absent or not the parent's id.",
            "Set `prf` to the parent grant's token id; the root has none.",
        ),
        doc(
            "chain.sub_changed",
            "A grant's `sub` differs from its parent's.",
            "Copy `sub` from the parent grant.",
        ),
        doc(
            "chain.act_mismatch",
            "A grant's `act.sub` is not the agent id of its `cnf.jkt`.",
            "Set `act.sub` to the grantee's agent id, derived from the same key as `cnf.jkt`.",
        ),
        doc(
            "chain.loop",
            "A grant repeats an earlier link, or grants to the user or to an earlier agent.",
            "Delegate only to a new key.",
        ),
        doc(
            "chain.depth_exceeded",
            "A grant's `max_depth` is not below its parent's.",
            "Give a sub-delegation a smaller `max_depth`; at 0, ask the user instead.",
        ),
        doc(
            "chain.outlives_parent",
            "A grant expires after its parent.",
            "Cap `exp` at the parent's.",
        ),
        doc(
            "chain.precedes_parent",
            "A grant's `nbf` is before its parent's.",
            "Start no earlier than the parent.",
        ),
        doc(
            "scope.escalated_type",
            "A sub-delegation names a type (or identifier) its parent does not grant.",
            "Delegate only within the parent's scopes.",
        ),
        doc(
            "scope.escalated_action",
            "A sub-delegation has an action its parent lacks.",
            "Delegate only the parent's actions.",
        ),
        doc(
            "scope.escalated_location",
            "A sub-delegation's location is outside every parent location.",
            "Delegate locations at or below the parent's.",
        ),
        doc(
            "scope.escalated_limit",
            "A sub-delegation drops or exceeds a parent limit.",
            "Keep every parent limit, at most what is left of it.",
        ),
        doc(
            "scope.escalated_currency",
            "A money limit is in another currency than the parent's.",
            "Use the parent's currency.",
        ),
        doc(
            "scope.malformed",
            "A scope breaks docs/protocol.md section 5, or a grant or request has none.",
            "Fix the scope: names, locations, amounts, non-empty actions and locations.",
        ),
        doc(
            "chain.revoked",
            "A grant of the chain is revoked.",
            "Stop using the chain. Ask again if the work must go on; a narrowed grant may answer your request (`mandate agent renew`).",
        ),
        doc(
            "chain.key_revoked",
            "The user removed the key that signed the chain's root.",
            "Stop using the chain and ask the user again.",
        ),
        doc(
            "pop.missing",
            "No proof of possession came where one is required.",
            "Send a `Mandate-PoP` proof with the call.",
        ),
        doc(
            "pop.wrong_key",
            "The proof is not signed by the key the leaf grant names.",
            "Sign the proof with the leaf agent's own key.",
        ),
        doc(
            "pop.stale",
            "The proof's `iat` is older than allowed (60 s) or too far ahead.",
            "Make a fresh proof for every call, with `iat` now.",
        ),
        doc(
            "pop.replayed",
            "This proof was accepted before.",
            "Make a fresh proof, with a new `jti`, for every call.",
        ),
        doc(
            "pop.cache_full",
            "The replay cache is full; the server fails closed.",
            "Slow down, then retry with a fresh proof.",
        ),
        doc(
            "pop.htm_mismatch",
            "The proof's `htm` is not the call's method.",
            "Set `htm` to the method, in upper case.",
        ),
        doc(
            "pop.htu_mismatch",
            "The proof's `htu` is malformed or not the call's URL.",
            "Set `htu` to the URL called, without query or fragment.",
        ),
        doc(
            "pop.ath_mismatch",
            "The proof's `ath` is not the hash of the presented chain.",
            "Compute `ath` over the chain you send (docs/protocol.md 6.5).",
        ),
        doc(
            "call.out_of_scope",
            "No scope of the leaf grant permits this call.",
            "Ask for a grant that covers it; do not retry.",
        ),
        doc(
            "binding.rejected",
            "A binding is not from the expected broker, or binds a key to two users.",
            "Use the binding from this broker for this user's key.",
        ),
        doc(
            "revocation.not_authorized",
            "The signer may not revoke that grant (or those keys).",
            "Revoke with the user's key or an agent key above the grant.",
        ),
        doc(
            "checkpoint.rejected",
            "A checkpoint does not name the expected broker.",
            "Follow the broker you trust, at its public URL.",
        ),
        doc(
            "checkpoint.diverged",
            "The revocation feed does not match the broker's checkpoint.",
            "Read the feed again from the broker; distrust the path that altered it.",
        ),
        doc(
            "signer.not_bound",
            "A policy or confirmation is signed by a key that is not bound to its `sub`, or that its user removed.",
            "Sign with one of the user's current keys, and present its binding.",
        ),
        doc(
            "confirm.required",
            "A scope that permits the call requires the user's confirmation of the exact request, and none came with it.",
            "Ask the user to confirm this call (docs/agents.md), then send it with `Mandate-Confirmation`.",
        ),
        doc(
            "confirm.mismatch",
            "The confirmation is for another principal, agent, chain, method or URI (query included).",
            "Send the call exactly as confirmed, under the same chain.",
        ),
        doc(
            "confirm.body_mismatch",
            "The body's SHA-256 is not the one the user confirmed.",
            "Send the exact bytes that were confirmed, or ask again for the new body.",
        ),
        doc(
            "confirm.replayed",
            "The confirmation was used before: each confirms one call.",
            "Ask the user to confirm the next call.",
        ),
        doc(
            "policy.mismatch",
            "The rule is about another agent key or principal, denies, or the request was filed for an OAuth client.",
            "The request needs the user's own decision.",
        ),
        doc(
            "policy.exceeded",
            "The request asks for a longer lifetime or a deeper delegation than the rule allows.",
            "Ask within the rule, or for the user's own decision.",
        ),
    ];

    /// The index of the chain link the failure is about, when there is one.
    pub fn link(&self) -> Option<LinkIndex> {
        match self {
            Error::RootNotBound(i)
            | Error::WrongSigner(i)
            | Error::ParentMismatch(i)
            | Error::PrincipalChanged(i)
            | Error::ActorMismatch(i)
            | Error::Loop(i)
            | Error::DepthExceeded(i)
            | Error::OutlivesParent(i)
            | Error::PrecedesParent(i)
            | Error::EscalatedType(i)
            | Error::EscalatedAction(i)
            | Error::EscalatedLocation(i)
            | Error::EscalatedLimit(i)
            | Error::EscalatedCurrency(i)
            | Error::Revoked(i)
            | Error::KeyRevoked(i) => Some(*i),
            _ => None,
        }
    }
}

/// A protocol code's documentation; its status depends on who answers.
const fn doc(code: &'static str, meaning: &'static str, remedy: &'static str) -> CodeDoc {
    CodeDoc {
        code,
        status: None,
        meaning,
        remedy,
    }
}
