//! `mandate-checkpoint+jwt`: a broker's signed statement of how far its
//! revocation feed reached, and when. A verifier that holds the feed up to
//! a checkpoint is current as of the checkpoint's `iat`, and no proxy
//! between them can make it look fresher than that.

use serde::{Deserialize, Serialize};

use super::{Claims, Policy, UnixTime, Verified};
use crate::Error;
use crate::feed::{FeedHead, MAX_FEED_SEQ};
use crate::jws::{self, TokenKind};
use crate::key::PublicKey;

/// The claims of a revocation feed checkpoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckpointClaims {
    /// The broker whose feed this is: its public URL, as in its bindings.
    pub iss: String,
    /// The position of the last entry of the feed when the broker signed,
    /// 0 for an empty feed; at most 2^53 - 1.
    pub seq: u64,
    /// The feed's digest up to and including that entry ([`FeedHead`]).
    pub head: FeedHead,
    /// When the broker signed it.
    pub iat: UnixTime,
}

impl Claims for CheckpointClaims {
    const KIND: TokenKind = TokenKind::Checkpoint;

    fn check(&self, policy: &Policy, now: UnixTime) -> Result<(), Error> {
        if self.seq > MAX_FEED_SEQ {
            return Err(Error::Malformed("seq is past 2^53 - 1"));
        }
        if self.iat > now.saturating_add(policy.clock_skew) {
            return Err(Error::NotYetValid);
        }
        Ok(())
    }
}

impl CheckpointClaims {
    /// Verifies a checkpoint from the broker named `issuer`, whose signing
    /// keys are `keys` (from its metadata, trusted out of band): the
    /// header, then the key named by `kid` among `keys` (else
    /// `key.unknown`), the signature, the claims, `iat` not past `now` by
    /// more than the skew, and `iss` equal to `issuer` (else
    /// `checkpoint.rejected`).
    pub fn verify(
        compact: &str,
        keys: &[PublicKey],
        issuer: &str,
        policy: &Policy,
        now: UnixTime,
    ) -> Result<Verified<CheckpointClaims>, Error> {
        let token = jws::parse(compact, TokenKind::Checkpoint)?;
        let key = keys
            .iter()
            .find(|k| k.thumbprint() == token.kid)
            .ok_or(Error::UnknownKey)?;
        token.verify(key)?;
        let claims: CheckpointClaims = token.claims()?;
        claims.check(policy, now)?;
        if claims.iss != issuer {
            return Err(Error::CheckpointRejected("it names another broker"));
        }
        Ok(Verified {
            id: token.id,
            signer: *key,
            claims,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::key::SigningKey;

    const BROKER: &str = "https://broker.example";

    fn claims(seq: u64, iat: UnixTime) -> CheckpointClaims {
        CheckpointClaims {
            iss: BROKER.into(),
            seq,
            head: FeedHead::EMPTY,
            iat,
        }
    }

    #[test]
    fn a_checkpoint_verifies_only_under_its_broker_key_and_name() {
        let broker = SigningKey::from_seed(&[7; 32]);
        let other = SigningKey::from_seed(&[8; 32]);
        let p = Policy::default();
        let token = claims(3, 1000).sign(&broker);
        let v = CheckpointClaims::verify(&token, &[*broker.public()], BROKER, &p, 1000).unwrap();
        assert_eq!(v.claims(), &claims(3, 1000));

        let code = |r: Result<Verified<CheckpointClaims>, Error>| r.unwrap_err().code();
        // Signed by a key the verifier does not trust for this broker.
        let forged = claims(3, 1000).sign(&other);
        assert_eq!(
            code(CheckpointClaims::verify(
                &forged,
                &[*broker.public()],
                BROKER,
                &p,
                1000
            )),
            "key.unknown"
        );
        // Another broker's checkpoint, under a key the verifier trusts.
        let elsewhere = CheckpointClaims {
            iss: "https://other.example".into(),
            ..claims(3, 1000)
        }
        .sign(&broker);
        assert_eq!(
            code(CheckpointClaims::verify(
                &elsewhere,
                &[*broker.public()],
                BROKER,
                &p,
                1000
            )),
            "checkpoint.rejected"
        );
        // From the future, beyond the skew.
        let early = claims(3, 1000 + p.clock_skew + 1).sign(&broker);
        assert_eq!(
            code(CheckpointClaims::verify(
                &early,
                &[*broker.public()],
                BROKER,
                &p,
                1000
            )),
            "time.not_yet_valid"
        );
        // Past 2^53 - 1.
        let far = claims(MAX_FEED_SEQ + 1, 1000).sign(&broker);
        assert_eq!(
            code(CheckpointClaims::verify(
                &far,
                &[*broker.public()],
                BROKER,
                &p,
                1000
            )),
            "token.malformed"
        );
        // Another kind of token is never a checkpoint.
        let binding = crate::token::BindingClaims {
            iss: BROKER.into(),
            sub: "https://idp.example#alice".to_owned().try_into().unwrap(),
            cnf: crate::token::Confirmation {
                jkt: other.thumbprint(),
            },
            iat: 1000,
            exp: 2000,
            jti: "b".to_owned().try_into().unwrap(),
        }
        .sign(&broker);
        assert_eq!(
            code(CheckpointClaims::verify(
                &binding,
                &[*broker.public()],
                BROKER,
                &p,
                1000
            )),
            "header.wrong_typ"
        );
    }

    /// Signs `payload` as it is, byte for byte, as a checkpoint.
    fn sign_payload(key: &SigningKey, payload: &str) -> String {
        let header = format!(
            r#"{{"alg":"EdDSA","typ":"mandate-checkpoint+jwt","kid":"{}"}}"#,
            key.thumbprint()
        );
        let mut compact = crate::b64::encode(header);
        compact.push('.');
        compact.push_str(&crate::b64::encode(payload));
        let signature = key.sign(compact.as_bytes());
        compact.push('.');
        compact.push_str(&crate::b64::encode(signature));
        compact
    }

    #[test]
    fn a_checkpoint_has_exactly_its_claims() {
        let broker = SigningKey::from_seed(&[7; 32]);
        let p = Policy::default();
        let verify = |payload: &str| {
            let token = sign_payload(&broker, payload);
            CheckpointClaims::verify(&token, &[*broker.public()], BROKER, &p, 1000)
                .map(|v| v.into_claims())
                .map_err(|e| e.code())
        };
        let head = FeedHead::EMPTY.to_string();
        assert!(
            verify(&format!(
                r#"{{"iss":"{BROKER}","seq":0,"head":"{head}","iat":1000}}"#
            ))
            .is_ok()
        );
        for bad in [
            format!(r#"{{"iss":"{BROKER}","seq":-1,"head":"{head}","iat":1000}}"#),
            format!(r#"{{"iss":"{BROKER}","seq":1.5,"head":"{head}","iat":1000}}"#),
            format!(r#"{{"iss":"{BROKER}","head":"{head}","iat":1000}}"#),
            format!(r#"{{"iss":"{BROKER}","seq":1,"head":"AA","iat":1000}}"#),
            format!(r#"{{"iss":"{BROKER}","seq":1,"head":"{head}","iat":1000,"exp":2000}}"#),
        ] {
            assert_eq!(verify(&bad), Err("token.malformed"), "{bad}");
        }
        assert_eq!(
            verify(&format!(
                r#"{{"iss":"{BROKER}","seq":1,"seq":2,"head":"{head}","iat":1000}}"#
            )),
            Err("token.duplicate_key")
        );
    }
}
