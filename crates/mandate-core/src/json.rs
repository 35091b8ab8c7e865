//! A strictness pass over JSON, run before typed deserialization.
//!
//! serde accepts a struct written as a JSON array of its fields, and keeps
//! the last of two members with one name. Either would give a token a
//! second encoding of the same claims. This pass refuses both: objects must
//! be objects, arrays may appear only as the value of a member Mandate
//! defines as a list, never nested, and no object repeats a member name
//! (compared after unescaping).

use std::borrow::Cow;
use std::cell::Cell;
use std::fmt;

use serde::de::{DeserializeSeed, MapAccess, SeqAccess, Visitor};

use crate::Error;

/// The members whose values are lists, in every token kind.
const LIST_MEMBERS: &[&str] = &[
    "authorization_details",
    "actions",
    "locations",
    "revokes",
    "parent_chain",
    "keys",
    "tools",
];

/// Checks that `text` is one JSON object that obeys the rules above.
pub(crate) fn check_object(text: &str) -> Result<(), Error> {
    let failure = Cell::new(None);
    let mut de = serde_json::Deserializer::from_str(text);
    let walked = Walk {
        slot: Slot::Top,
        failure: &failure,
    }
    .deserialize(&mut de)
    .and_then(|()| de.end());
    match (walked, failure.take()) {
        (Ok(()), _) => Ok(()),
        (Err(_), Some(rule)) => Err(rule),
        (Err(_), None) => Err(Error::Malformed("not valid JSON")),
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Slot {
    /// The whole document: an object.
    Top,
    /// The value of a member; `true` if the member is a list.
    Member(bool),
    /// An element of a list: an object or a scalar.
    Element,
}

struct Walk<'a> {
    slot: Slot,
    failure: &'a Cell<Option<Error>>,
}

impl Walk<'_> {
    fn fail<E: serde::de::Error>(&self, rule: Error) -> E {
        self.failure.set(Some(rule));
        E::custom("strictness rule")
    }

    fn scalar<E: serde::de::Error>(&self) -> Result<(), E> {
        if self.slot == Slot::Top {
            return Err(self.fail(Error::Malformed("claims are not a JSON object")));
        }
        Ok(())
    }
}

impl<'de> DeserializeSeed<'de> for Walk<'_> {
    type Value = ();
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Walk<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let mut seen: Vec<Cow<'de, str>> = Vec::with_capacity(16);
        while let Some(name) = map.next_key::<Cow<'de, str>>()? {
            if seen.contains(&name) {
                return Err(self.fail(Error::DuplicateKey));
            }
            let list = LIST_MEMBERS.contains(&name.as_ref());
            map.next_value_seed(Walk {
                slot: Slot::Member(list),
                failure: self.failure,
            })?;
            seen.push(name);
        }
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        if self.slot != Slot::Member(true) {
            return Err(self.fail(Error::Malformed("a JSON array where Mandate defines none")));
        }
        while seq
            .next_element_seed(Walk {
                slot: Slot::Element,
                failure: self.failure,
            })?
            .is_some()
        {}
        Ok(())
    }

    fn visit_bool<E: serde::de::Error>(self, _: bool) -> Result<(), E> {
        self.scalar()
    }
    fn visit_i64<E: serde::de::Error>(self, _: i64) -> Result<(), E> {
        self.scalar()
    }
    fn visit_u64<E: serde::de::Error>(self, _: u64) -> Result<(), E> {
        self.scalar()
    }
    fn visit_f64<E: serde::de::Error>(self, _: f64) -> Result<(), E> {
        self.scalar()
    }
    fn visit_str<E: serde::de::Error>(self, _: &str) -> Result<(), E> {
        self.scalar()
    }
    fn visit_unit<E: serde::de::Error>(self) -> Result<(), E> {
        self.scalar()
    }
}

/// A reader for the plain form of a claims document: the form Mandate
/// itself signs, with no escapes in strings, no negative, fractional or
/// exponent numbers, and no `null`.
///
/// It is a shortcut, not a second parser: every method returns `None` on
/// anything outside the plain form, valid JSON or not, and the caller then
/// falls back to [`check_object`] and serde, which decide what the input
/// means and which error it earns. So that the shortcut can never accept
/// more than the full path, a caller refuses unknown and repeated members,
/// reads arrays only where Mandate defines lists, and builds every value
/// through the same constructors the full path uses.
pub(crate) struct Plain<'a> {
    text: &'a str,
    at: usize,
}

impl<'a> Plain<'a> {
    pub fn new(text: &'a str) -> Plain<'a> {
        Plain { text, at: 0 }
    }

    /// The next byte that is not JSON whitespace, consumed.
    fn next(&mut self) -> Option<u8> {
        let bytes = self.text.as_bytes();
        while let Some(&b) = bytes.get(self.at) {
            self.at += 1;
            if !matches!(b, b' ' | b'\t' | b'\n' | b'\r') {
                return Some(b);
            }
        }
        None
    }

    /// The next byte that is not JSON whitespace, left in place.
    fn peek(&mut self) -> Option<u8> {
        let b = self.next()?;
        self.at -= 1;
        Some(b)
    }

    fn expect(&mut self, want: u8) -> Option<()> {
        (self.next()? == want).then_some(())
    }

    /// Only whitespace is left.
    pub fn end(&mut self) -> Option<()> {
        self.next().is_none().then_some(())
    }

    /// A string without escapes or control characters, borrowed.
    pub fn string(&mut self) -> Option<&'a str> {
        self.expect(b'"')?;
        let start = self.at;
        let rest = &self.text.as_bytes()[start..];
        // Eight bytes at a time up to the word that holds a quote, a
        // backslash or a control character, then byte by byte.
        let mut len = 0;
        while let Some(word) = rest
            .get(len..len + 8)
            .and_then(|w| <[u8; 8]>::try_from(w).ok())
        {
            if ends_plain_run(u64::from_le_bytes(word)) {
                break;
            }
            len += 8;
        }
        len += rest[len..]
            .iter()
            .position(|&b| b == b'"' || b == b'\\' || b < 0x20)?;
        if self.text.as_bytes()[start + len] != b'"' {
            return None;
        }
        self.at = start + len + 1;
        // The slice ends at an ASCII quote, so it is whole UTF-8.
        self.text.get(start..start + len)
    }

    /// A string, owned.
    pub fn owned(&mut self) -> Option<String> {
        self.string().map(str::to_owned)
    }

    /// A non-negative integer in canonical form: no leading zeros, no
    /// fraction or exponent, within `u64`.
    pub fn uint(&mut self) -> Option<u64> {
        let first = self.next()?;
        if !first.is_ascii_digit() {
            return None;
        }
        let mut n = u64::from(first - b'0');
        let bytes = self.text.as_bytes();
        while let Some(&b) = bytes.get(self.at) {
            match b {
                b'0'..=b'9' if first != b'0' => {
                    n = n.checked_mul(10)?.checked_add(u64::from(b - b'0'))?;
                }
                b'0'..=b'9' | b'.' | b'e' | b'E' => return None,
                _ => break,
            }
            self.at += 1;
        }
        Some(n)
    }

    /// A non-negative integer that fits `T`.
    pub fn int<T: TryFrom<u64>>(&mut self) -> Option<T> {
        T::try_from(self.uint()?).ok()
    }

    /// An object: `member` reads the value of each member it is given by name.
    pub fn object(
        &mut self,
        mut member: impl FnMut(&mut Self, &'a str) -> Option<()>,
    ) -> Option<()> {
        self.expect(b'{')?;
        if self.peek()? == b'}' {
            self.at += 1;
            return Some(());
        }
        loop {
            let name = self.string()?;
            self.expect(b':')?;
            member(self, name)?;
            match self.next()? {
                b',' => {}
                b'}' => return Some(()),
                _ => return None,
            }
        }
    }

    /// An array whose elements `element` reads, collected.
    pub fn array<T>(&mut self, mut element: impl FnMut(&mut Self) -> Option<T>) -> Option<Vec<T>> {
        self.expect(b'[')?;
        let mut out = Vec::new();
        if self.peek()? == b']' {
            self.at += 1;
            return Some(out);
        }
        loop {
            out.push(element(self)?);
            match self.next()? {
                b',' => {}
                b']' => return Some(out),
                _ => return None,
            }
        }
    }
}

/// Whether any of the eight bytes in `word` is a quote, a backslash or
/// below 0x20. These are the exact "has a zero byte" and "has a byte less
/// than n" tests (Hacker's Delight, 6-1), which have no false negatives.
fn ends_plain_run(word: u64) -> bool {
    const ONES: u64 = u64::from_le_bytes([0x01; 8]);
    const HIGHS: u64 = u64::from_le_bytes([0x80; 8]);
    let has_zero = |v: u64| v.wrapping_sub(ONES) & !v & HIGHS != 0;
    has_zero(word ^ (ONES * u64::from(b'"')))
        || has_zero(word ^ (ONES * u64::from(b'\\')))
        || word.wrapping_sub(ONES * 0x20) & !word & HIGHS != 0
}

/// Fills a member's slot once; a second time is a repeated member.
pub(crate) fn once<T>(slot: &mut Option<T>, value: Option<T>) -> Option<()> {
    if slot.is_some() {
        return None;
    }
    *slot = Some(value?);
    Some(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code(text: &str) -> Option<&'static str> {
        check_object(text).err().map(|e| e.code())
    }

    #[test]
    fn plain_runs_end_where_bytewise_scanning_would() {
        let special = |b: u8| b == b'"' || b == b'\\' || b < 0x20;
        for at in 0..8 {
            for b in 0..=255u8 {
                for fill in [b'a', 0x7f, 0xc3, 0xff] {
                    let mut word = [fill; 8];
                    word[at] = b;
                    let want = word.iter().any(|&w| special(w));
                    assert_eq!(
                        ends_plain_run(u64::from_le_bytes(word)),
                        want,
                        "{word:02x?}"
                    );
                }
            }
        }
        // Strings of every length up to three words, ended by each kind of byte.
        for n in 0..30 {
            let body = "é".repeat(n / 2) + &"x".repeat(n % 2);
            let text = format!(r#""{body}" "#);
            assert_eq!(Plain::new(&text).string(), Some(body.as_str()));
            for end in ["\\n", "\n", "\u{1f}"] {
                let text = format!(r#""{body}{end}x""#);
                assert_eq!(Plain::new(&text).string(), None, "{text:?}");
            }
        }
    }

    #[test]
    fn objects_lists_and_duplicates() {
        assert_eq!(
            code(r#"{"a":1,"b":{"c":"d"},"actions":["x","y"],"authorization_details":[{"t":1}]}"#),
            None
        );
        assert_eq!(
            code(r#"["sub","act"]"#),
            Some("token.malformed"),
            "a struct as an array"
        );
        assert_eq!(
            code(r#"{"act":["urn:x"]}"#),
            Some("token.malformed"),
            "a member that is not a list"
        );
        assert_eq!(
            code(r#"{"actions":[["read"]]}"#),
            Some("token.malformed"),
            "nested arrays"
        );
        assert_eq!(code(r#"{"a":1,"a":2}"#), Some("token.duplicate_key"));
        assert_eq!(code(r#"{"a":{"b":1,"b":1}}"#), Some("token.duplicate_key"));
        assert_eq!(
            code(r#"{"act":1,"\u0061ct":2}"#),
            Some("token.duplicate_key"),
            "escaped names compare unescaped"
        );
        assert_eq!(
            code(r#"{"authorization_details":[{"x":1,"x":2}]}"#),
            Some("token.duplicate_key")
        );
        assert_eq!(code("17"), Some("token.malformed"));
        assert_eq!(
            code(r#"{"a":1} {}"#),
            Some("token.malformed"),
            "trailing data"
        );
        assert_eq!(code(r#"{"a":"#), Some("token.malformed"));
    }
}
