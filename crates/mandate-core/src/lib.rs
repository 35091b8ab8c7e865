//! mandate-core is Mandate's protocol: agent and user keys, the signed
//! tokens that carry delegated authority, scopes and the subset relation
//! that attenuation rests on, and offline verification of delegation chains.
//!
//! It is pure: no IO, no async, no clock and no global randomness. The
//! current time ([`UnixTime`]) and random sources are parameters, so every
//! rule can be tested at any instant. It depends on ed25519-dalek, sha2,
//! base64, serde, serde_json, thiserror, rand_core (for its traits) and
//! zeroize, and on nothing in Mandate.
//!
//! Terms:
//! - A *token* is a JWS in compact form with alg EdDSA and a `typ` of its
//!   kind ([`TokenKind`]). Its id ([`TokenId`]) is the SHA-256 of its bytes.
//! - A *grant* hands authority to an agent; a *chain* is a root grant signed
//!   by a user key followed by grants each signed by the previous grantee.
//! - A *scope* is an RFC 9396 authorization detail ([`AuthorizationDetail`]).
//!   Each link's scopes lie [`within`](scope::within) its parent's.
//! - A [`VerifiedChain`] exists only when every rule held; an [`Error`]
//!   names, by a stable [code](Error::code), the first rule that did not.
//! - A verifier's revocation set is current as of the latest broker
//!   checkpoint it has caught up to ([`RevocationFeed`]).
//!
//! The wire format and the rules are specified in `docs/protocol.md`.

#![forbid(unsafe_code)]

pub mod attribution;
mod b64;
mod cache;
pub mod chain;
pub mod codes;
pub mod dpop;
mod error;
pub mod feed;
mod json;
pub mod jws;
pub mod key;
pub mod merkle;
mod replay;
pub mod scope;
pub mod secret;
pub mod token;
pub mod transport;
pub mod uri;
mod verifier;

pub use attribution::{Attribution, Ledger, Receipt, Step};
pub use cache::LinkCache;
pub use chain::{
    BindingSet, Bindings, Context, KeySet, Link, RevocationSet, Revoked, VerifiedChain,
    verify_chain,
};
pub use error::Error;
pub use feed::{Checkpointed, FeedHead, RevocationFeed};
pub use jws::{MAX_TOKEN_BYTES, TokenId, TokenKind};
pub use key::{AgentId, Jwk, PublicKey, SigningKey, Thumbprint};
pub use replay::{MemoryReplayCache, ReplayCache, SpentProof};
pub use scope::{AuthorizationDetail, Call};
pub use secret::Secret;
pub use token::{Claims, Policy, Principal, UnixTime, Verified};
pub use verifier::{
    CheckedProof, HttpCall, Verifier, check_pop, check_proof, verify_pop, verify_proof,
};

/// The most links a chain may have.
pub const MAX_CHAIN_LINKS: usize = 16;

/// Base64url without padding, strict, as every token part uses it.
pub mod base64url {
    pub use crate::b64::{decode, encode};
}
