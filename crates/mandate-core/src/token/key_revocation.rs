//! `mandate-key-revocation+jwt`: a user removes one of their own keys (a
//! lost device's, say). Every chain rooted in a removed key falls, at every
//! verifier that follows the broker's feed.

use serde::{Deserialize, Serialize};

use super::{Claims, Jti, Policy, Principal, UnixTime};
use crate::Error;
use crate::jws::TokenKind;
use crate::key::Thumbprint;

/// The most keys one key revocation may name.
pub const MAX_REVOKED_KEYS: usize = 16;

/// The claims of a key revocation. It is signed by a key bound to `sub`:
/// another of the user's keys, or the removed key itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyRevocationClaims {
    /// The principal whose keys these are.
    pub sub: Principal,
    /// The thumbprints of the user keys removed; 1 to 16.
    pub keys: Vec<Thumbprint>,
    /// Why, if the user said.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Issued at.
    pub iat: UnixTime,
    /// Unique id.
    pub jti: Jti,
}

impl Claims for KeyRevocationClaims {
    const KIND: TokenKind = TokenKind::KeyRevocation;

    fn check(&self, policy: &Policy, now: UnixTime) -> Result<(), Error> {
        if self.keys.is_empty() || self.keys.len() > MAX_REVOKED_KEYS {
            return Err(Error::Malformed("keys must name 1 to 16 keys"));
        }
        if self.iat > now.saturating_add(policy.clock_skew) {
            return Err(Error::NotYetValid);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::SigningKey;
    use crate::token::verify;

    fn claims(keys: Vec<Thumbprint>, iat: UnixTime) -> KeyRevocationClaims {
        KeyRevocationClaims {
            sub: "https://idp.example#alice".to_owned().try_into().unwrap(),
            keys,
            reason: Some("lost laptop".into()),
            iat,
            jti: "k-1".to_owned().try_into().unwrap(),
        }
    }

    #[test]
    fn a_key_revocation_verifies_under_its_signer_and_names_its_keys() {
        let user = SigningKey::from_seed(&[1; 32]);
        let lost = SigningKey::from_seed(&[2; 32]);
        let now = 1_767_225_600;
        let token = claims(vec![lost.thumbprint()], now).sign(&user);
        let v =
            verify::<KeyRevocationClaims>(&token, user.public(), &Policy::default(), now).unwrap();
        assert_eq!(v.claims().keys, vec![lost.thumbprint()]);
        // Under another key, it does not verify.
        assert_eq!(
            verify::<KeyRevocationClaims>(&token, lost.public(), &Policy::default(), now)
                .unwrap_err()
                .code(),
            "header.kid_mismatch"
        );
        // A token of another kind is not a key revocation.
        assert_eq!(
            verify::<KeyRevocationClaims>(
                &crate::token::DenialClaims {
                    sub: "https://idp.example#alice".to_owned().try_into().unwrap(),
                    req: crate::TokenId::of("r"),
                    reason: None,
                    iat: now,
                    jti: "d".to_owned().try_into().unwrap(),
                }
                .sign(&user),
                user.public(),
                &Policy::default(),
                now
            )
            .unwrap_err()
            .code(),
            "header.wrong_typ"
        );
    }

    #[test]
    fn it_names_one_to_sixteen_keys_and_is_not_from_the_future() {
        let user = SigningKey::from_seed(&[1; 32]);
        let now = 1_767_225_600;
        let policy = Policy::default();
        let key = |n: u8| SigningKey::from_seed(&[n; 32]).thumbprint();
        assert_eq!(
            claims(vec![], now).check(&policy, now),
            Err(Error::Malformed("keys must name 1 to 16 keys"))
        );
        assert!(
            claims((0..16).map(key).collect(), now)
                .check(&policy, now)
                .is_ok()
        );
        assert!(
            claims((0..17).map(key).collect(), now)
                .check(&policy, now)
                .is_err()
        );
        let ahead = claims(vec![key(3)], now + policy.clock_skew + 1).sign(&user);
        assert_eq!(
            verify::<KeyRevocationClaims>(&ahead, user.public(), &policy, now)
                .unwrap_err()
                .code(),
            "time.not_yet_valid"
        );
    }
}
