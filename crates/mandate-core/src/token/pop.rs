//! `mandate-pop+jwt`: the leaf agent's proof, for one HTTP call, that it
//! holds the key its grant names (the DPoP shape of RFC 9449).

use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use super::{Claims, Jti, Policy, UnixTime};
use crate::jws::{TokenId, TokenKind};
use crate::{Error, b64};

/// The claims of a proof of possession.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PopClaims {
    /// The HTTP method, uppercase.
    pub htm: String,
    /// The HTTP target URI, without query or fragment.
    pub htu: String,
    /// When the proof was made.
    pub iat: UnixTime,
    /// Unique id; a verifier accepts each once.
    pub jti: Jti,
    /// The [`chain_hash`] of the chain presented with the proof.
    pub ath: String,
}

impl Claims for PopClaims {
    const KIND: TokenKind = TokenKind::Pop;

    fn check(&self, policy: &Policy, now: UnixTime) -> Result<(), Error> {
        if now.saturating_sub(self.iat) > policy.pop_max_age
            || self.iat.saturating_sub(now) > policy.clock_skew
        {
            return Err(Error::PopStale);
        }
        Ok(())
    }
}

/// The hash that binds a proof to a chain: base64url SHA-256 of the
/// concatenated 32-byte ids of the chain's tokens, root first. Each id is
/// itself the SHA-256 of a token, so this commits to every byte of the chain.
pub fn chain_hash<S: AsRef<str>>(chain: &[S]) -> String {
    let ids: Vec<TokenId> = chain.iter().map(|t| TokenId::of(t.as_ref())).collect();
    chain_hash_of_ids(&ids)
}

/// [`chain_hash`], from ids already computed.
pub(crate) fn chain_hash_of_ids<'a>(ids: impl IntoIterator<Item = &'a TokenId>) -> String {
    let mut hasher = Sha256::new();
    for id in ids {
        hasher.update(id.as_bytes());
    }
    b64::encode(hasher.finalize())
}

pub use crate::uri::same_htu;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chain_hash_covers_the_ids_in_order() {
        let mut ids = Vec::new();
        ids.extend_from_slice(TokenId::of("a").as_bytes());
        ids.extend_from_slice(TokenId::of("b").as_bytes());
        assert_eq!(chain_hash(&["a", "b"]), b64::encode(Sha256::digest(&ids)));
        assert_ne!(
            chain_hash(&["a", "b"]),
            chain_hash(&["b", "a"]),
            "order matters"
        );
    }
}
