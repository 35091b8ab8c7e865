//! DPoP proofs at the token endpoint: checked by
//! [`mandate_core::dpop::check`] (without `ath`: the token endpoint's
//! proofs present no token), then spent here, once.

pub use mandate_core::dpop::{Proof, check};

/// Spends a DPoP proof at the token endpoint, once every other check has
/// passed: a second use is refused.
pub(crate) async fn spend(state: &crate::AppState, proof: &Proof) -> Result<(), super::OAuthError> {
    let s = &state.inner;
    state
        .spend_entry(&mandate_core::SpentProof::new(
            &proof.jkt,
            "oauth-token",
            &proof.jti,
            proof.iat + s.policy.pop_max_age + s.policy.clock_skew,
        ))
        .await
        .map_err(|e| match e.code {
            "pop.replayed" => super::OAuthError::new(
                super::OAuthCode::InvalidDpopProof,
                "this DPoP proof was used before",
            ),
            _ => super::OAuthError::unavailable(),
        })
}
