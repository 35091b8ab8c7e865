//! Strict base64url without padding (RFC 7515 section 2).
//!
//! Decoding rejects padding, characters outside the URL-safe alphabet and
//! non-canonical trailing bits, so every encoded string has exactly one
//! decoding and every decoding exactly one encoding.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// Encodes bytes as base64url without padding.
pub fn encode(bytes: impl AsRef<[u8]>) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Decodes canonical base64url without padding.
pub fn decode(text: &str) -> Option<Vec<u8>> {
    URL_SAFE_NO_PAD.decode(text).ok()
}

/// Decodes canonical base64url into a fixed-size array.
pub fn decode_array<const N: usize>(text: &str) -> Option<[u8; N]> {
    let mut out = [0u8; N];
    // A buffer one chunk larger lets the engine report a too-long input as an
    // error instead of a short write.
    let mut buf = [0u8; 96];
    if N + 3 > buf.len() {
        return None;
    }
    let n = URL_SAFE_NO_PAD.decode_slice(text, &mut buf).ok()?;
    if n != N {
        return None;
    }
    out.copy_from_slice(&buf[..N]);
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_rejects_non_canonical_forms() {
        assert_eq!(encode([0xfb, 0xff]), "-_8");
        assert_eq!(decode("-_8"), Some(vec![0xfb, 0xff]));
        assert_eq!(decode("-_8="), None, "padding");
        assert_eq!(decode("+/8"), None, "standard alphabet");
        assert_eq!(decode("-_9"), None, "non-zero trailing bits");
        assert_eq!(decode_array::<2>("-_8"), Some([0xfb, 0xff]));
        assert_eq!(decode_array::<3>("-_8"), None);
        assert_eq!(decode_array::<1>("-_8"), None);
    }
}
