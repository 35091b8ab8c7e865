//! A mandate: the chain an agent holds, with what a verifier needs to check
//! it offline, and how it travels on an HTTP call.

use mandate_core::token::{GrantClaims, chain_hash, peek};
use mandate_core::{BindingSet, Jwk, KeySet, Policy, PublicKey, Thumbprint, TokenId, UnixTime};
use serde::{Deserialize, Serialize};

use crate::AgentError;

/// The header carrying the grants, root first, separated by `,`.
pub const CHAIN_HEADER: &str = "mandate-chain";
/// The header carrying the broker's binding of the root's user key.
pub const BINDING_HEADER: &str = "mandate-binding";
/// The header carrying the public keys of the chain (user key, then each
/// grantee), as base64url raw Ed25519 keys separated by `,`.
pub const KEYS_HEADER: &str = "mandate-keys";
/// The header carrying the proof of possession for the call.
pub const POP_HEADER: &str = "mandate-pop";
/// The header that carries the user's confirmation of one exact call
/// (`mandate-confirmation+jwt`), for a scope whose limits say `confirm`.
pub const CONFIRMATION_HEADER: &str = "mandate-confirmation";

/// The authority an agent holds: a chain of grants, root first, with the
/// binding that makes the root trustworthy and the public keys of every
/// signer. It is not secret: without the leaf agent's key it proves
/// nothing, since every call needs a fresh proof of possession.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Mandate {
    /// The compact grants, root first.
    pub chain: Vec<String>,
    /// The broker's `mandate-binding+jwt` for the key that signed the root.
    pub binding: String,
    /// The public keys of the user and the agents along the chain.
    pub keys: Vec<Jwk>,
}

impl Mandate {
    /// The leaf grant's claims, read without verifying (the holder's view).
    pub fn leaf(&self) -> Result<GrantClaims, AgentError> {
        let leaf = self
            .chain
            .last()
            .ok_or_else(|| AgentError::Invalid("the mandate has no grants".into()))?;
        Ok(peek::<GrantClaims>(leaf)?.1)
    }

    /// The leaf grant's id, which receipts name.
    pub fn leaf_id(&self) -> Result<TokenId, AgentError> {
        self.chain
            .last()
            .map(|g| TokenId::of(g))
            .ok_or_else(|| AgentError::Invalid("the mandate has no grants".into()))
    }

    /// The chain hash a proof of possession binds to (`ath`).
    pub fn ath(&self) -> String {
        chain_hash(&self.chain)
    }

    /// The key set of the mandate's keys, refusing unusable ones.
    pub fn key_set(&self) -> Result<KeySet, AgentError> {
        let mut keys = KeySet::new();
        for jwk in &self.keys {
            keys.insert_jwk(jwk)?;
        }
        Ok(keys)
    }

    /// Adds `key` unless a key with its thumbprint is already listed.
    pub(crate) fn with_key(mut self, key: &PublicKey) -> Mandate {
        let jkt: Thumbprint = key.thumbprint();
        let known = self
            .keys
            .iter()
            .any(|k| PublicKey::from_jwk(k).is_ok_and(|k| k.thumbprint() == jkt));
        if !known {
            self.keys.push(key.to_jwk());
        }
        self
    }

    /// The three headers that present this mandate (the proof is separate).
    pub fn headers(&self) -> Result<[(&'static str, String); 3], AgentError> {
        let keys = self
            .keys
            .iter()
            .map(|jwk| {
                PublicKey::from_jwk(jwk).map(|k| mandate_core::base64url::encode(k.as_bytes()))
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok([
            (CHAIN_HEADER, self.chain.join(",")),
            (BINDING_HEADER, self.binding.clone()),
            (KEYS_HEADER, keys.join(",")),
        ])
    }
}

/// The bindings a mandate's `binding` token establishes, checked under
/// the first of the broker's `keys` that verifies it and for `issuer`.
pub(crate) fn bindings_of(
    binding: &str,
    keys: &[PublicKey],
    issuer: &str,
    policy: &Policy,
    now: UnixTime,
) -> Result<BindingSet, mandate_core::Error> {
    let mut bindings = BindingSet::new();
    let mut bound = Err(mandate_core::Error::BindingRejected(
        "the broker has no key",
    ));
    for key in keys {
        bound = bindings.insert_token(binding, key, issuer, policy, now);
        if bound.is_ok() {
            break;
        }
    }
    bound.map(|()| bindings)
}
