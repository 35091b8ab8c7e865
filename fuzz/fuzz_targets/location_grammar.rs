//! The location and `htu` checks of mandate-core against a small reference
//! implementation of the grammar in docs/protocol.md section 5.3, written
//! apart from it: sets of characters spelled out as text, escapes decoded
//! into runs checked with the standard library's UTF-8 decoder, and
//! lookalikes found by NFKC-normalizing each decoded character. The two
//! must accept exactly the same texts.

#![no_main]

use libfuzzer_sys::fuzz_target;
use mandate_core::uri;
use unicode_normalization::UnicodeNormalization;

const ALPHA_DIGIT: &str = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
const PCHAR_EXTRA: &str = "-._~!$&'()*+,;=:@";

/// A character of the text: written as it is, or escaped as `%XX`.
enum Unit {
    Raw(char),
    Escaped(u8),
}

fn units(s: &str) -> Option<Vec<Unit>> {
    let mut out = Vec::new();
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '%' {
            let hi = chars.next()?.to_digit(16)?;
            let lo = chars.next()?.to_digit(16)?;
            out.push(Unit::Escaped((hi * 16 + lo) as u8));
        } else {
            out.push(Unit::Raw(c));
        }
    }
    Some(out)
}

fn structural(c: char) -> bool {
    "%./\\;".contains(c) || c.is_control()
}

/// Every run of consecutive escapes decodes to UTF-8 with no structural
/// character in it, before or after NFKC.
fn escapes_ok(units: &[Unit]) -> bool {
    let mut run = Vec::new();
    for u in units.iter().chain(std::iter::once(&Unit::Raw('/'))) {
        match u {
            Unit::Escaped(b) => run.push(*b),
            Unit::Raw(_) => {
                let Ok(text) = std::str::from_utf8(&run) else {
                    return false;
                };
                if text.chars().any(|c| structural(c) || c.to_string().nfkc().any(structural)) {
                    return false;
                }
                run.clear();
            }
        }
    }
    true
}

fn raw_ok(units: &[Unit], allowed: &str) -> bool {
    units.iter().all(|u| match u {
        Unit::Raw(c) => c.is_ascii() && (ALPHA_DIGIT.contains(*c) || allowed.contains(*c)),
        Unit::Escaped(_) => true,
    })
}

fn no_dot_segment(s: &str) -> bool {
    s.split('/')
        .all(|seg| !matches!(seg.split(';').next(), Some(".") | Some("..")))
}

fn reference_location(s: &str, wildcard: bool) -> bool {
    if s.is_empty() || s.len() > 2048 {
        return false;
    }
    let (authority, path) = match s.split_once("://") {
        Some((scheme, rest)) => {
            let mut cs = scheme.chars();
            let scheme_ok = cs.next().is_some_and(|c| c.is_ascii_alphabetic())
                && cs.all(|c| c.is_ascii() && (ALPHA_DIGIT.contains(c) || "+-.".contains(c)));
            if !scheme_ok {
                return false;
            }
            match rest.find('/') {
                Some(i) => (Some(&rest[..i]), &rest[i..]),
                None => (Some(rest), ""),
            }
        }
        None => (None, s),
    };
    let star = s.find('*');
    if star.is_some_and(|i| !wildcard || i != s.len() - 1) {
        return false;
    }
    let Some(path_units) = units(path) else { return false };
    let authority_units = match authority {
        Some(a) => match units(a) {
            Some(u) => u,
            None => return false,
        },
        None => Vec::new(),
    };
    let path_chars = format!("{PCHAR_EXTRA}/");
    let authority_chars = format!("{PCHAR_EXTRA}[]");
    // An escape sequence may not straddle the authority and the path: the
    // path starts with a raw `/`.
    raw_ok(&path_units, &path_chars)
        && raw_ok(&authority_units, &authority_chars)
        && escapes_ok(&authority_units)
        && escapes_ok(&path_units)
        && no_dot_segment(authority.unwrap_or(""))
        && no_dot_segment(path)
}

fn reference_http(u: &str) -> Option<(String, String)> {
    let end = u.find(|c| c == '?' || c == '#').unwrap_or(u.len());
    let (target, rest) = u.split_at(end);
    let (scheme, after) = target.split_once("://")?;
    if !scheme.eq_ignore_ascii_case("http") && !scheme.eq_ignore_ascii_case("https") {
        return None;
    }
    if !reference_location(target, false) {
        return None;
    }
    let (authority, path) = after.split_at(after.find('/').unwrap_or(after.len()));
    if authority.is_empty() {
        return None;
    }
    let (query, fragment) = match rest.split_once('#') {
        Some((q, f)) => (q, Some(f)),
        None => (rest, None),
    };
    let tail_ok = |t: &str| {
        units(t).is_some_and(|us| raw_ok(&us, &format!("{PCHAR_EXTRA}/?")))
    };
    if !tail_ok(query.strip_prefix('?').unwrap_or(query)) || !fragment.is_none_or(tail_ok) {
        return None;
    }
    Some((format!("{scheme}://{authority}").to_ascii_lowercase(), path.to_owned()))
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    assert_eq!(
        uri::check_location(text).is_ok(),
        reference_location(text, true),
        "location {text:?}"
    );
    assert_eq!(
        uri::split_http_uri(text).map(|(o, p)| (o, p.to_owned())),
        reference_http(text),
        "http uri {text:?}"
    );
});
