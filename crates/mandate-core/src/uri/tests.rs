use super::*;

fn class(s: &str) -> Result<(), LocationError> {
    check_location(s)
}

#[test]
fn ordinary_locations_pass() {
    for ok in [
        "https://files.example/v1/reports/",
        "https://files.example/v1/reports/q3",
        "https://files.example",
        "cluster-1/ns/payments*",
        "*",
        "a..b/c",
        "caf%C3%A9/%20x",
        "https://[::1]:8080/files/",
        "https://user@files.example:8443/a;v=1/b",
        "ns/%41%7E/x",
        "https://files.example/%F0%9F%98%80/",
        "mailto:someone@example",
    ] {
        assert_eq!(class(ok), Ok(()), "{ok:?}");
    }
}

/// One table per rule: every entry must fail with that rule's error.
#[test]
fn each_class_is_refused_by_its_rule() {
    use LocationError::*;
    let cases: &[(LocationError, &[&str])] = &[
        (Length, &[""]),
        (
            Character,
            &[
                "a b",
                "a\"b",
                "a<b",
                "a>b",
                "a^b",
                "a`b",
                "a{b",
                "a|b",
                "a}b",
                "a\\b",
                "a?q",
                "a#f",
                "a\u{0}",
                "a\u{7f}",
                "caf\u{e9}",
                "a[b]",
                "1http://x/",
                "ht_tp://x/",
                "://x/",
            ],
        ),
        (Wildcard, &["a*b", "*a", "https://api/x*/y"]),
        (
            Escape,
            &[
                "a%",
                "a%2",
                "a%zz",
                "a%2g",
                "a/%%32%65%%32%65/b",
                "a%%2e",
                "a/%u002e/b",
            ],
        ),
        (
            EncodedSeparator,
            &[
                "a/%2e%2e/b",
                "a%2Eb",
                "a%2Fb",
                "a%2fb",
                "a%5Cb",
                "a%25b",
                "a/%252e%252e/b",
                "a%00",
                "a%0A",
                "a%09",
                "a%7F",
                "a/..%3B/b",
                "a/%EF%BC%8F/b",
                "a/%EF%BC%8E%EF%BC%8E/b",
                "a/%E2%80%A5/b",
                "a/%EF%BC%BC/b",
                "a/%EF%BC%85/b",
                "a/%CD%BE/b",
                "a/%C2%85/b",
                "a/%C2%9F/b",
                "https://files%2eexample/x",
            ],
        ),
        (
            EncodedUtf8,
            &[
                "a/%C0%AE%C0%AE/b",
                "a/%C1%9C/b",
                "a/%E0%80%AE/b",
                "a/%F0%80%80%AF/b",
                "a/%ED%A0%80/b",
                "a/%F4%90%80%80/b",
                "a/%F8%80/b",
                "a/%FF/b",
                "a/%80/b",
                "a/%C3",
                "a/%C3x",
                "a/%C3%41",
                "a/%E9/b",
            ],
        ),
        (
            DotSegment,
            &[
                "a/../b",
                "a/./b",
                "a/..",
                "..",
                "./a",
                "a/..;x/b",
                "a/.;/b",
                "https://files.example/v1/reports/..;/payroll",
                "https://../x",
                "/../x",
                "./x",
                "https:///../payroll",
                "https://files.example//../x",
                "a/b/..",
            ],
        ),
    ];
    for (rule, texts) in cases {
        for text in *texts {
            assert_eq!(class(text), Err(*rule), "{text:?}");
        }
    }
    let long = "a".repeat(MAX_LOCATION_BYTES + 1);
    assert_eq!(class(&long), Err(Length));
    assert_eq!(class(&long[1..]), Ok(()));
}

#[test]
fn lookalikes_are_what_nfkc_makes_of_them() {
    use unicode_normalization::UnicodeNormalization;
    let structural = |c: char| matches!(c, '%' | '.' | '/' | '\\' | ';') || c.is_control();
    let derived: Vec<u32> = (0x80..=0x10_FFFFu32)
        .filter_map(char::from_u32)
        .filter(|c| !c.is_control() && std::iter::once(*c).nfkc().any(structural))
        .map(u32::from)
        .collect();
    assert_eq!(derived, LOOKALIKES.to_vec());
    // Every lookalike, escaped as UTF-8, is refused; its neighbours pass.
    for &p in &LOOKALIKES {
        let escaped = |p: u32| -> String {
            let c = char::from_u32(p).unwrap();
            let mut buf = [0; 4];
            c.encode_utf8(&mut buf)
                .bytes()
                .map(|b| format!("%{b:02X}"))
                .collect()
        };
        assert_eq!(
            class(&format!("a/{}/b", escaped(p))),
            Err(LocationError::EncodedSeparator)
        );
        if LOOKALIKES.binary_search(&(p + 1)).is_err() && char::from_u32(p + 1).is_some() {
            assert_eq!(class(&format!("a/{}/b", escaped(p + 1))), Ok(()));
        }
    }
}

#[test]
fn every_escaped_ascii_octet_by_rule() {
    for octet in 0u8..0x80 {
        let text = format!("a/%{octet:02x}/b");
        let refused = octet < 0x20 || matches!(octet, 0x7F | b'%' | b'.' | b'/' | b'\\' | b';');
        assert_eq!(
            class(&text).is_err(),
            refused,
            "{text}: refused should be {refused}"
        );
    }
}

#[test]
fn http_uris_split_into_origin_and_path() {
    assert_eq!(
        split_http_uri("HTTPS://Files.Example:8443/v1/Q3?x=1#top"),
        Some(("https://files.example:8443".to_owned(), "/v1/Q3"))
    );
    assert_eq!(
        split_http_uri("http://127.0.0.1:7700"),
        Some(("http://127.0.0.1:7700".to_owned(), ""))
    );
    for bad in [
        "",
        "/v1/q3",
        "ftp://files.example/x",
        "https:///x",
        "https://files.example/a%zz",
        "https://files.example/a/../b",
        "https://files.example/a*",
        "https://files.example/a b",
        "https://files.example/x?q=%zz",
        "https://files.example/x?q=<",
        "https://files.example/x#a#b",
    ] {
        assert_eq!(split_http_uri(bad), None, "{bad:?}");
    }
}

#[test]
fn htu_comparison() {
    assert!(same_htu(
        "https://API.example/x?q=1",
        "https://api.example/x"
    ));
    assert!(same_htu("https://api.example/x#f", "HTTPS://api.example/x"));
    assert!(!same_htu("https://api.example/x", "https://api.example/X"));
    assert!(!same_htu(
        "https://api.example/x",
        "https://api.example.evil/x"
    ));
    assert!(!same_htu("https://api.example/x", "https://api.example/x/"));
    assert!(!same_htu("", ""));
    // The same malformed text on both sides is still refused.
    for bad in [
        "https://files.example/v1/reports/%%32%65%%32%65/payroll",
        "https://files.example/v1/reports/..;/payroll",
        "https://files.example/v1/reports/%C0%AE%C0%AE/payroll",
    ] {
        assert!(!same_htu(bad, bad), "{bad}");
    }
}
