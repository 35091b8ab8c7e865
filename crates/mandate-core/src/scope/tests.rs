use super::*;

fn d(kind: &str, actions: &[&str], locations: &[&str]) -> AuthorizationDetail {
    AuthorizationDetail::new(kind, actions.iter().copied(), locations.iter().copied()).unwrap()
}

fn money(amount: &str, currency: &str) -> Money {
    Money {
        amount: amount.to_string().try_into().unwrap(),
        currency: currency.to_string().try_into().unwrap(),
    }
}

fn with_limits(
    mut detail: AuthorizationDetail,
    calls: Option<u64>,
    amount: Option<Money>,
) -> AuthorizationDetail {
    detail.limits = Limits {
        max_calls: calls,
        max_amount: amount,
        confirm: None,
    };
    detail
}

#[test]
fn locations_cover_exactly_or_by_prefix() {
    let dir = Location::try_from("https://api/x/".to_string()).unwrap();
    assert!(dir.covers("https://api/x/"));
    assert!(dir.covers("https://api/x/y"));
    assert!(!dir.covers("https://api/x"));
    assert!(!dir.covers("https://api/xy"));
    let star = Location::try_from("https://api/x*".to_string()).unwrap();
    assert!(star.covers("https://api/xy"));
    assert!(star.covers("https://api/x/z"));
    assert!(!star.covers("https://api/"));
    let exact = Location::try_from("ns/default".to_string()).unwrap();
    assert!(exact.covers("ns/default"));
    assert!(!exact.covers("ns/default/pods"));
}

#[test]
fn locations_refuse_ambiguous_forms() {
    for bad in [
        "",
        "a/../b",
        "a/./b",
        "a/..",
        "a/%2e%2e/b",
        "a%2Fb",
        "a\\b",
        "a b",
        "a?q",
        "a#f",
        "a*b",
        "*a",
        "a\u{0}",
    ] {
        assert!(Location::try_from(bad.to_string()).is_err(), "{bad:?}");
    }
    assert!(Location::try_from("a..b/c".to_string()).is_ok());
    assert!(
        Location::try_from("caf%C3%A9/%20x".to_string()).is_ok(),
        "ordinary escapes pass"
    );
    assert!(Location::try_from("*".to_string()).is_ok());
}

#[test]
fn amounts_are_exact_decimals() {
    let a = |s: &str| Amount::try_from(s.to_string()).map(|a| a.micros());
    assert_eq!(a("0"), Ok(0));
    assert_eq!(a("12.5"), Ok(12_500_000));
    assert_eq!(a("0.000001"), Ok(1));
    for bad in [
        "",
        ".5",
        "5.",
        "-1",
        "1e3",
        "1.0000001",
        "1,5",
        " 1",
        "1234567890123456789",
    ] {
        assert!(a(bad).is_err(), "{bad:?}");
    }
}

#[test]
fn details_refuse_empty_parts() {
    assert!(AuthorizationDetail::new("t", Vec::<String>::new(), ["x"]).is_err());
    assert!(AuthorizationDetail::new("t", ["read"], Vec::<String>::new()).is_err());
    assert!(AuthorizationDetail::new("", ["read"], ["x"]).is_err());
    let json = r#"{"type":"t","actions":["read"],"locations":["x"],"extra":1}"#;
    assert!(serde_json::from_str::<AuthorizationDetail>(json).is_err());
}

#[test]
fn subset_rules_name_the_escalation() {
    let parent = vec![d("files", &["read", "write"], &["https://fs/home/"])];
    assert_eq!(
        within(&[d("files", &["read"], &["https://fs/home/a"])], &parent),
        Ok(())
    );
    assert_eq!(within(&parent, &parent), Ok(()));
    assert_eq!(
        within(&[d("mail", &["read"], &["https://fs/home/a"])], &parent),
        Err(Escalation::Type)
    );
    assert_eq!(
        within(&[d("files", &["delete"], &["https://fs/home/a"])], &parent),
        Err(Escalation::Action)
    );
    assert_eq!(
        within(&[d("files", &["read"], &["https://fs/etc/"])], &parent),
        Err(Escalation::Location)
    );
    assert_eq!(
        within(&[d("files", &["read"], &["https://fs/home*"])], &parent),
        Err(Escalation::Location)
    );
}

#[test]
fn identifiers_narrow_but_never_change() {
    let mut parent = d("repo", &["read"], &["git/"]);
    parent.identifier = Some("mandate".into());
    let mut child = parent.clone();
    assert_eq!(
        within(std::slice::from_ref(&child), std::slice::from_ref(&parent)),
        Ok(())
    );
    child.identifier = Some("other".into());
    assert_eq!(
        within(&[child.clone()], &[parent.clone()]),
        Err(Escalation::Type)
    );
    child.identifier = None;
    assert_eq!(
        within(&[child.clone()], &[parent.clone()]),
        Err(Escalation::Type)
    );
    parent.identifier = None;
    child.identifier = Some("any".into());
    assert_eq!(within(&[child], &[parent]), Ok(()));
}

#[test]
fn limits_are_budgets_shared_by_the_children() {
    let po = |amount: &str, cur: &str| {
        with_limits(
            d("po", &["create"], &["vendors/"]),
            Some(10),
            Some(money(amount, cur)),
        )
    };
    let parent = vec![po("5000", "EUR")];
    assert_eq!(within(&[po("5000.00", "EUR")], &parent), Ok(()));
    assert_eq!(
        within(&[po("5000.01", "EUR")], &parent),
        Err(Escalation::Limit)
    );
    assert_eq!(
        within(&[po("10", "USD")], &parent),
        Err(Escalation::Currency)
    );
    let half = |amount: &str| {
        with_limits(
            d("po", &["create"], &["vendors/"]),
            Some(5),
            Some(money(amount, "EUR")),
        )
    };
    assert_eq!(within(&[half("2500"), half("2500")], &parent), Ok(()));
    assert_eq!(
        within(&[half("2500"), half("2500.01")], &parent),
        Err(Escalation::Limit)
    );
    assert_eq!(
        within(&[po("2500", "EUR"), po("2500", "EUR")], &parent),
        Err(Escalation::Limit),
        "20 calls of 10"
    );
    let unlimited = d("po", &["create"], &["vendors/"]);
    assert_eq!(
        within(std::slice::from_ref(&unlimited), &parent),
        Err(Escalation::Limit),
        "dropping a limit widens"
    );
    assert_eq!(
        within(&[po("1", "EUR")], &[unlimited]),
        Ok(()),
        "adding a limit narrows"
    );
    let calls = |n| {
        with_limits(
            d("po", &["create"], &["vendors/"]),
            Some(n),
            Some(money("1", "EUR")),
        )
    };
    assert_eq!(within(&[calls(6), calls(4)], &parent), Ok(()));
    assert_eq!(
        within(&[calls(6), calls(5)], &parent),
        Err(Escalation::Limit)
    );
}

#[test]
fn a_child_may_draw_on_a_later_parent_detail() {
    let a = with_limits(
        d("po", &["create"], &["v/"]),
        None,
        Some(money("10", "EUR")),
    );
    let b = with_limits(
        d("po", &["create"], &["v/"]),
        None,
        Some(money("100", "EUR")),
    );
    let child = with_limits(
        d("po", &["create"], &["v/1"]),
        None,
        Some(money("50", "EUR")),
    );
    assert_eq!(within(&[child], &[a, b]), Ok(()));
}

#[test]
fn calls_are_checked_against_the_effective_scope() {
    let scopes = vec![with_limits(
        d("po", &["create"], &["vendors/"]),
        None,
        Some(money("100", "EUR")),
    )];
    let eur = |a: &str| money(a, "EUR");
    let (small, big, usd) = (eur("99.99"), eur("100.01"), money("1", "USD"));
    let call = |action, location, amount| Call {
        kind: "po",
        action,
        location,
        identifier: None,
        amount,
    };
    assert!(permits(
        &scopes,
        &call("create", "vendors/acme", Some(&small))
    ));
    assert!(!permits(
        &scopes,
        &call("create", "vendors/acme", Some(&big))
    ));
    assert!(!permits(
        &scopes,
        &call("create", "vendors/acme", Some(&usd))
    ));
    assert!(!permits(&scopes, &call("delete", "vendors/acme", None)));
    assert!(!permits(&scopes, &call("create", "vendors/../admin", None)));
    assert!(!permits(&scopes, &call("create", "suppliers/acme", None)));
}
