//! Any bytes, parsed as every token kind, a JWK and a request: nothing may
//! panic, and whatever parses must re-parse to the same claims.

#![no_main]

use libfuzzer_sys::fuzz_target;
use mandate_core::token::{
    self, BindingClaims, DenialClaims, GrantClaims, PopClaims, ReceiptClaims, RequestClaims, RevocationClaims,
};
use mandate_core::{Policy, PublicKey};

fn peek_all(text: &str) {
    if let Ok((_, claims)) = token::peek::<GrantClaims>(text) {
        // Parse, don't validate: what parsed serializes and parses back the same.
        let json = serde_json_roundtrip(&claims);
        assert_eq!(json, Some(claims));
    }
    let _ = token::peek::<RequestClaims>(text);
    let _ = token::peek::<DenialClaims>(text);
    let _ = token::peek::<RevocationClaims>(text);
    let _ = token::peek::<ReceiptClaims>(text);
    let _ = token::peek::<PopClaims>(text);
    let _ = token::peek::<BindingClaims>(text);
    let _ = RequestClaims::verify(text, &Policy::default(), 1_767_225_600);
    let _ = PublicKey::from_jwk_json(text);
    let _ = mandate_core::base64url::decode(text);
}

fn serde_json_roundtrip(claims: &GrantClaims) -> Option<GrantClaims> {
    // mandate-core signs what it serializes; re-parsing goes through the
    // same strict path as a token's payload.
    let key = mandate_core::SigningKey::from_seed(&[7; 32]);
    let compact = mandate_core::Claims::sign(claims, &key);
    token::peek::<GrantClaims>(&compact).ok().map(|(_, c)| c)
}

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        peek_all(text);
        // Also as the payload of a token with a valid header and signature
        // shape, so that the claims parser sees the input directly.
        let payload = mandate_core::base64url::encode(data);
        let header = mandate_core::base64url::encode(br#"{"alg":"EdDSA","typ":"mandate-grant+jwt","kid":"kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k"}"#);
        let sig = mandate_core::base64url::encode([0u8; 64]);
        peek_all(&format!("{header}.{payload}.{sig}"));
    }
});
