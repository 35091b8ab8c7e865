//! The grammar of locations and of a proof's `htu`: an allow-list of the
//! characters RFC 3986 permits, well-formed percent-escapes, and a short
//! list of octets that must never appear escaped. Prefix coverage (a scope
//! for `…/reports/` covers `…/reports/q3`) is only sound when no server
//! can read a location differently from its bytes, so anything that a
//! lenient decoder, a double decoder or a Unicode normalizer could turn
//! into a path separator, a dot segment or another escape is refused here.
//!
//! The rules, as `docs/protocol.md` section 5.3 states them:
//!
//! ```text
//! location    = uri-form / name-form        ; 1 to 2048 bytes
//! uri-form    = scheme "://" authority path ; the first "://" decides
//! name-form   = path                        ; no "://" in it
//! scheme      = ALPHA *( ALPHA / DIGIT / "+" / "-" / "." )
//! authority   = *( unreserved / pct-encoded / sub-delims / ":" / "@" / "[" / "]" )
//! path        = *( pchar / "/" )
//! pchar       = unreserved / pct-encoded / sub-delims / ":" / "@"
//! unreserved  = ALPHA / DIGIT / "-" / "." / "_" / "~"
//! sub-delims  = "!" / "$" / "&" / "'" / "(" / ")" / "*" / "+" / "," / ";" / "="
//! pct-encoded = "%" HEXDIG HEXDIG
//! ```
//!
//! and besides the grammar:
//! - `*` only as the last byte (a wildcard);
//! - no dot segment: split on `/`, no segment whose text before its first
//!   `;` is `.` or `..` (so `..;x`, which servers with path parameters
//!   read as `..`, is one);
//! - the escaped octets, decoded in place, form UTF-8 (no overlong form,
//!   no surrogate, nothing above U+10FFFF, no stray continuation byte);
//! - no escape decodes to a control character (U+0000 to U+001F and
//!   U+007F to U+009F), `%`, `.`, `/`, `\` or `;`, nor to one of the
//!   [`LOOKALIKES`]: the code points whose NFKC normalization contains
//!   one of those.

/// The longest location accepted, in bytes.
pub const MAX_LOCATION_BYTES: usize = 2048;

/// The code points above U+007F whose NFKC form contains a control
/// character, `%`, `.`, `/`, `\` or `;`, such as U+FF0F FULLWIDTH SOLIDUS
/// and U+2025 TWO DOT LEADER. A server that normalizes a decoded path
/// would read them as separators or dots. Sorted; a unit test derives the
/// list again from the Unicode tables of `unicode-normalization`.
pub const LOOKALIKES: [u32; 44] = [
    0x037E, 0x2024, 0x2025, 0x2026, 0x2100, 0x2101, 0x2105, 0x2106, 0x2488, 0x2489, 0x248A, 0x248B,
    0x248C, 0x248D, 0x248E, 0x248F, 0x2490, 0x2491, 0x2492, 0x2493, 0x2494, 0x2495, 0x2496, 0x2497,
    0x2498, 0x2499, 0x249A, 0x249B, 0x33C2, 0x33C7, 0x33D8, 0xFE14, 0xFE19, 0xFE30, 0xFE52, 0xFE54,
    0xFE68, 0xFE6A, 0xFF05, 0xFF0E, 0xFF0F, 0xFF1B, 0xFF3C, 0x1F100,
];

/// Why a text is not a location, by rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LocationError {
    /// Empty, or longer than [`MAX_LOCATION_BYTES`].
    Length,
    /// A byte the grammar does not allow where it stands.
    Character,
    /// A `*` before the last byte.
    Wildcard,
    /// A `%` not followed by two hex digits.
    Escape,
    /// An escape of an octet that must not appear escaped, or of a lookalike.
    EncodedSeparator,
    /// Escaped octets that are not UTF-8.
    EncodedUtf8,
    /// A `.` or `..` segment.
    DotSegment,
}

impl LocationError {
    /// The message, for `scope.malformed` and logs.
    pub fn message(self) -> &'static str {
        match self {
            LocationError::Length => "scope: location length",
            LocationError::Character => "scope: location character",
            LocationError::Wildcard => "scope: wildcard not at the end",
            LocationError::Escape => "scope: malformed percent-escape",
            LocationError::EncodedSeparator => "scope: encoded separator",
            LocationError::EncodedUtf8 => "scope: escapes are not UTF-8",
            LocationError::DotSegment => "scope: dot segment",
        }
    }
}

/// Checks `s` against the location rules (see the module docs).
pub fn check_location(s: &str) -> Result<(), LocationError> {
    check(s, true)
}

/// The origin (scheme and authority, ASCII-lowercased) and the path of an
/// `http` or `https` URI whose part before `?` or `#` is a location without
/// a wildcard, and whose query and fragment hold only RFC 3986 characters
/// and well-formed escapes. `None` for anything else.
pub fn split_http_uri(u: &str) -> Option<(String, &str)> {
    let end = u.find(['?', '#']).unwrap_or(u.len());
    let (target, rest) = u.split_at(end);
    let scheme_end = target.find("://")?;
    if !target[..scheme_end].eq_ignore_ascii_case("http")
        && !target[..scheme_end].eq_ignore_ascii_case("https")
    {
        return None;
    }
    check(target, false).ok()?;
    let path_at = target[scheme_end + 3..]
        .find('/')
        .map_or(target.len(), |i| scheme_end + 3 + i);
    if path_at == scheme_end + 3 {
        return None; // no authority
    }
    if !query_or_fragment(rest) {
        return None;
    }
    Some((target[..path_at].to_ascii_lowercase(), &target[path_at..]))
}

/// Whether two HTTP URIs are the same target for a proof: both well formed
/// ([`split_http_uri`]), with equal origins (ASCII case ignored) and paths
/// equal byte for byte. Query and fragment are ignored.
pub fn same_htu(a: &str, b: &str) -> bool {
    match (split_http_uri(a), split_http_uri(b)) {
        (Some((ao, ap)), Some((bo, bp))) => ao == bo && ap == bp,
        _ => false,
    }
}

fn unreserved_or_sub_delim(c: u8) -> bool {
    c.is_ascii_alphanumeric()
        || matches!(
            c,
            b'-' | b'.'
                | b'_'
                | b'~'
                | b'!'
                | b'$'
                | b'&'
                | b'\''
                | b'('
                | b')'
                | b'*'
                | b'+'
                | b','
                | b';'
                | b'='
        )
}

/// The query and fragment after a target: `?` or `#` and then pchar, `/`,
/// `?` (and in a query, a later `#` starts the fragment).
fn query_or_fragment(rest: &str) -> bool {
    let b = rest.as_bytes();
    let mut i = 0;
    let mut in_fragment = false;
    while i < b.len() {
        let c = b[i];
        if c == b'%' {
            if !(b.get(i + 1).is_some_and(u8::is_ascii_hexdigit)
                && b.get(i + 2).is_some_and(u8::is_ascii_hexdigit))
            {
                return false;
            }
            i += 3;
            continue;
        }
        let ok = unreserved_or_sub_delim(c)
            || matches!(c, b':' | b'@' | b'/' | b'?')
            || (c == b'#' && !in_fragment);
        if !ok {
            return false;
        }
        in_fragment |= c == b'#';
        i += 1;
    }
    true
}

/// Where the location's parts begin: a scheme's end (the index of `://`)
/// and the authority's end, for the uri-form.
fn authority_span(b: &[u8]) -> Option<(usize, usize)> {
    let at = b.windows(3).position(|w| w == b"://")?;
    let end = b[at + 3..]
        .iter()
        .position(|&c| c == b'/')
        .map_or(b.len(), |i| at + 3 + i);
    Some((at, end))
}

fn check(s: &str, wildcard_allowed: bool) -> Result<(), LocationError> {
    let b = s.as_bytes();
    if b.is_empty() || b.len() > MAX_LOCATION_BYTES {
        return Err(LocationError::Length);
    }
    let span = authority_span(b);
    if let Some((scheme_end, _)) = span {
        let scheme = &b[..scheme_end];
        let well_formed = scheme.first().is_some_and(u8::is_ascii_alphabetic)
            && scheme
                .iter()
                .all(|&c| c.is_ascii_alphanumeric() || matches!(c, b'+' | b'-' | b'.'));
        if !well_formed {
            return Err(LocationError::Character);
        }
    }
    let mut utf8 = Utf8::default();
    // The scheme, already checked, holds no segment that could be a dot
    // segment; the authority is the first segment after it.
    let start = span.map_or(0, |(scheme_end, _)| scheme_end + 3);
    let mut i = start;
    while i < b.len() {
        let c = b[i];
        let in_authority = span.is_some_and(|(_, end)| i < end);
        if c == b'%' {
            let octet = hex(b.get(i + 1))
                .zip(hex(b.get(i + 2)))
                .map(|(hi, lo)| hi << 4 | lo)
                .ok_or(LocationError::Escape)?;
            utf8.push(octet)?;
            i += 3;
        } else {
            utf8.end()?;
            let allowed = unreserved_or_sub_delim(c)
                || matches!(c, b':' | b'@' | b'/')
                || (matches!(c, b'[' | b']') && in_authority);
            if !allowed {
                return Err(LocationError::Character);
            }
            if c == b'*' && (i != b.len() - 1 || !wildcard_allowed) {
                return Err(LocationError::Wildcard);
            }
            i += 1;
        }
    }
    utf8.end()?;
    b[start..].split(|&c| c == b'/').try_for_each(dot_segment)
}

fn dot_segment(segment: &[u8]) -> Result<(), LocationError> {
    let name = segment.split(|&c| c == b';').next().unwrap_or_default();
    if name == b"." || name == b".." {
        return Err(LocationError::DotSegment);
    }
    Ok(())
}

fn hex(c: Option<&u8>) -> Option<u8> {
    let c = *c?;
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

/// The UTF-8 decoder for escaped octets: a code point must be spelled by
/// consecutive escapes.
#[derive(Default)]
struct Utf8 {
    /// The code point so far.
    point: u32,
    /// Continuation bytes still expected.
    left: u8,
    /// The smallest code point the sequence's length may spell.
    min: u32,
}

impl Utf8 {
    fn push(&mut self, octet: u8) -> Result<(), LocationError> {
        if self.left > 0 {
            if octet & 0xC0 != 0x80 {
                return Err(LocationError::EncodedUtf8);
            }
            self.point = self.point << 6 | u32::from(octet & 0x3F);
            self.left -= 1;
            if self.left == 0 {
                let p = self.point;
                if p < self.min || (0xD800..0xE000).contains(&p) || p > 0x10_FFFF {
                    return Err(LocationError::EncodedUtf8);
                }
                if (0x80..0xA0).contains(&p) || LOOKALIKES.binary_search(&p).is_ok() {
                    return Err(LocationError::EncodedSeparator);
                }
            }
            return Ok(());
        }
        (self.point, self.left, self.min) = match octet {
            0x00..=0x1F | 0x7F | b'%' | b'.' | b'/' | b'\\' | b';' => {
                return Err(LocationError::EncodedSeparator);
            }
            0x20..=0x7E => return Ok(()),
            0xC0..=0xDF => (u32::from(octet & 0x1F), 1, 0x80),
            0xE0..=0xEF => (u32::from(octet & 0x0F), 2, 0x800),
            0xF0..=0xF7 => (u32::from(octet & 0x07), 3, 0x1_0000),
            _ => return Err(LocationError::EncodedUtf8),
        };
        Ok(())
    }

    /// A raw byte, or the end: no sequence may be left open.
    fn end(&self) -> Result<(), LocationError> {
        if self.left > 0 {
            Err(LocationError::EncodedUtf8)
        } else {
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests;
