//! Scopes as RFC 9396 `authorization_details`, and the subset relation that
//! attenuation rests on.
//!
//! A child list of details is within its parent list when every child detail
//! can be drawn from one parent detail with:
//! - the same `type`;
//! - the same `identifier`, unless the parent has none;
//! - `actions` a subset of the parent's;
//! - every location covered by a parent location: equal, or the parent ends
//!   in `/` and the child starts with it, or the parent ends in `*` and the
//!   child starts with what precedes the `*`;
//! - limits within the parent's: every limit the parent sets, the child sets
//!   too, no larger and in the same currency. Limits are budgets: child
//!   details drawn from one parent detail share its budget, so splitting a
//!   detail in two cannot double a limit.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use crate::json::{Plain, once};

/// Why a child scope is not within its parent, by rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Escalation {
    /// No parent detail has the child's `type` and `identifier`.
    Type,
    /// The child has an action the parent lacks.
    Action,
    /// A child location is not covered by any parent location.
    Location,
    /// A child limit is missing or larger than the parent's remaining budget.
    Limit,
    /// A child money limit is in another currency.
    Currency,
}

/// A resource location: a URI or a path-like name, optionally ending in `/` or `*`.
///
/// Parsing holds it to the grammar of [`crate::uri`]: RFC 3986's
/// characters, well-formed escapes, no escaped separator, dot or lookalike,
/// no dot segment, and a `*` only at the end, so that prefix coverage
/// means what it says.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Location(String);

pub use crate::uri::MAX_LOCATION_BYTES;
use crate::uri::check_location;

impl TryFrom<String> for Location {
    type Error = &'static str;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        check_location(&s).map_err(|e| e.message())?;
        Ok(Location(s))
    }
}

impl From<Location> for String {
    fn from(l: Location) -> String {
        l.0
    }
}

impl Location {
    /// The text of the location.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether this location covers `other` (see the module docs).
    pub fn covers(&self, other: &str) -> bool {
        let p = self.0.as_str();
        if p == other {
            return true;
        }
        if let Some(prefix) = p.strip_suffix('*') {
            return other.starts_with(prefix);
        }
        p.ends_with('/') && other.starts_with(p)
    }
}

/// A decimal amount of money, non-negative, with at most 6 fraction digits.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Amount {
    text: String,
    micros: u128,
}

impl TryFrom<String> for Amount {
    type Error = &'static str;
    fn try_from(text: String) -> Result<Self, Self::Error> {
        let (int, frac) = text.split_once('.').unwrap_or((&text, ""));
        let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
        if int.is_empty() || int.len() > 18 || !digits(int) || frac.len() > 6 || !digits(frac) {
            return Err("scope: amount is not a decimal with at most 6 fraction digits");
        }
        if text.ends_with('.') {
            return Err("scope: amount ends with a dot");
        }
        let mut micros: u128 = 0;
        for b in int
            .bytes()
            .chain(frac.bytes())
            .chain(std::iter::repeat_n(b'0', 6 - frac.len()))
        {
            micros = micros * 10 + u128::from(b - b'0');
        }
        Ok(Amount { text, micros })
    }
}

impl From<Amount> for String {
    fn from(a: Amount) -> String {
        a.text
    }
}

impl Amount {
    /// The amount in millionths of the currency unit.
    pub fn micros(&self) -> u128 {
        self.micros
    }
}

/// An ISO 4217 currency code: three uppercase ASCII letters.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Currency(String);

impl TryFrom<String> for Currency {
    type Error = &'static str;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        if s.len() == 3 && s.bytes().all(|b| b.is_ascii_uppercase()) {
            Ok(Currency(s))
        } else {
            Err("scope: currency is not three uppercase letters")
        }
    }
}

impl From<Currency> for String {
    fn from(c: Currency) -> String {
        c.0
    }
}

/// A money limit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Money {
    /// The amount, as a decimal string.
    pub amount: Amount,
    /// The currency.
    pub currency: Currency,
}

/// Limits on a scope. An absent limit is unlimited.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    /// The most calls the grantee may make under this scope.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_calls: Option<u64>,
    /// The most money the grantee may commit under this scope.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_amount: Option<Money>,
    /// Whether the user confirms calls under this scope one by one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub confirm: Option<Confirm>,
}

/// A requirement that the user confirm each call under a detail, by
/// signing a confirmation of the exact request (`mandate-confirmation+jwt`).
/// It is not a budget: it never runs out, and a child keeps it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Confirm {
    /// Only calls that commit more than this amount need a confirmation
    /// (and calls that state no amount, or another currency). Absent:
    /// every call needs one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub above: Option<Money>,
}

impl Confirm {
    /// Whether a call committing `amount` goes without a confirmation.
    fn waives(&self, amount: Option<&Money>) -> bool {
        match (&self.above, amount) {
            (Some(max), Some(amt)) => {
                max.currency == amt.currency && amt.amount.micros() <= max.amount.micros()
            }
            _ => false,
        }
    }

    /// Whether `child` is at least as strict as `parent`: every call the
    /// child lets through unconfirmed, the parent does too.
    fn within(child: Option<&Confirm>, parent: Option<&Confirm>) -> Result<(), Escalation> {
        let (Some(parent), Some(child)) = (parent, child) else {
            return match parent {
                None => Ok(()),
                Some(_) => Err(Escalation::Limit),
            };
        };
        match (&child.above, &parent.above) {
            (None, _) => Ok(()),
            (Some(_), None) => Err(Escalation::Limit),
            (Some(c), Some(p)) if c.currency != p.currency => Err(Escalation::Currency),
            (Some(c), Some(p)) if c.amount.micros() > p.amount.micros() => Err(Escalation::Limit),
            _ => Ok(()),
        }
    }

    fn read_plain(r: &mut Plain<'_>) -> Option<Confirm> {
        let mut above = None;
        r.object(|r, name| match name {
            "above" => once(&mut above, Money::read_plain(r)),
            _ => None,
        })?;
        Some(Confirm { above })
    }
}

/// One RFC 9396 authorization detail.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "RawDetail", into = "RawDetail")]
pub struct AuthorizationDetail {
    /// The scope type, such as `k8s.pods` or `purchase_order`.
    pub kind: String,
    /// The actions allowed; never empty.
    pub actions: BTreeSet<String>,
    /// The locations the actions apply to; never empty.
    pub locations: Vec<Location>,
    /// An optional identifier of one resource.
    pub identifier: Option<String>,
    /// Optional limits.
    pub limits: Limits,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDetail {
    #[serde(rename = "type")]
    kind: String,
    actions: Vec<String>,
    locations: Vec<Location>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    identifier: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    limits: Option<Limits>,
}

/// The longest `type`, action or identifier accepted, in bytes.
pub const MAX_NAME_BYTES: usize = 256;

impl TryFrom<RawDetail> for AuthorizationDetail {
    type Error = &'static str;
    fn try_from(raw: RawDetail) -> Result<Self, Self::Error> {
        let name_ok = |s: &str| {
            !s.is_empty() && s.len() <= MAX_NAME_BYTES && !s.chars().any(char::is_control)
        };
        if !name_ok(&raw.kind) {
            return Err("scope: type is empty, too long or has control characters");
        }
        if raw.actions.is_empty() || !raw.actions.iter().all(|a| name_ok(a)) {
            return Err("scope: actions are empty or malformed");
        }
        if raw.locations.is_empty() {
            return Err("scope: locations are empty");
        }
        if raw.identifier.as_deref().is_some_and(|i| !name_ok(i)) {
            return Err("scope: identifier is malformed");
        }
        let actions: BTreeSet<String> = raw.actions.into_iter().collect();
        Ok(AuthorizationDetail {
            kind: raw.kind,
            actions,
            locations: raw.locations,
            identifier: raw.identifier,
            limits: raw.limits.unwrap_or_default(),
        })
    }
}

impl AuthorizationDetail {
    /// Reads a detail in the plain form (see [`Plain`]), through the same
    /// checks as deserialization; `None` leaves the input to serde.
    pub(crate) fn read_plain(r: &mut Plain<'_>) -> Option<AuthorizationDetail> {
        let (mut kind, mut actions, mut locations, mut identifier, mut limits) =
            (None, None, None, None, None);
        r.object(|r, name| match name {
            "type" => once(&mut kind, r.owned()),
            "actions" => once(&mut actions, r.array(Plain::owned)),
            "locations" => once(
                &mut locations,
                r.array(|r| Location::try_from(r.owned()?).ok()),
            ),
            "identifier" => once(&mut identifier, r.owned()),
            "limits" => once(&mut limits, Limits::read_plain(r)),
            _ => None,
        })?;
        AuthorizationDetail::try_from(RawDetail {
            kind: kind?,
            actions: actions?,
            locations: locations?,
            identifier,
            limits,
        })
        .ok()
    }
}

impl Limits {
    fn read_plain(r: &mut Plain<'_>) -> Option<Limits> {
        let (mut max_calls, mut max_amount, mut confirm) = (None, None, None);
        r.object(|r, name| match name {
            "max_calls" => once(&mut max_calls, r.int()),
            "max_amount" => once(&mut max_amount, Money::read_plain(r)),
            "confirm" => once(&mut confirm, Confirm::read_plain(r)),
            _ => None,
        })?;
        Some(Limits {
            max_calls,
            max_amount,
            confirm,
        })
    }
}

impl Money {
    fn read_plain(r: &mut Plain<'_>) -> Option<Money> {
        let (mut amount, mut currency) = (None, None);
        r.object(|r, name| match name {
            "amount" => once(&mut amount, Amount::try_from(r.owned()?).ok()),
            "currency" => once(&mut currency, Currency::try_from(r.owned()?).ok()),
            _ => None,
        })?;
        Some(Money {
            amount: amount?,
            currency: currency?,
        })
    }
}

impl From<AuthorizationDetail> for RawDetail {
    fn from(d: AuthorizationDetail) -> RawDetail {
        let limits = (d.limits != Limits::default()).then_some(d.limits);
        RawDetail {
            kind: d.kind,
            actions: d.actions.into_iter().collect(),
            locations: d.locations,
            identifier: d.identifier,
            limits,
        }
    }
}

impl AuthorizationDetail {
    /// A detail with no identifier and no limits.
    pub fn new<A, L>(
        kind: &str,
        actions: A,
        locations: L,
    ) -> Result<AuthorizationDetail, &'static str>
    where
        A: IntoIterator,
        A::Item: Into<String>,
        L: IntoIterator,
        L::Item: Into<String>,
    {
        let locations = locations
            .into_iter()
            .map(|l| Location::try_from(l.into()))
            .collect::<Result<_, _>>()?;
        AuthorizationDetail::try_from(RawDetail {
            kind: kind.into(),
            actions: actions.into_iter().map(Into::into).collect(),
            locations,
            identifier: None,
            limits: None,
        })
    }

    /// Whether this detail, taken alone, is within `parent` (limits aside).
    fn shape_within(&self, parent: &AuthorizationDetail) -> Result<(), Escalation> {
        if self.kind != parent.kind
            || parent.identifier.is_some() && self.identifier != parent.identifier
        {
            return Err(Escalation::Type);
        }
        if !self.actions.is_subset(&parent.actions) {
            return Err(Escalation::Action);
        }
        if !self
            .locations
            .iter()
            .all(|c| parent.locations.iter().any(|p| p.covers(c.as_str())))
        {
            return Err(Escalation::Location);
        }
        Ok(())
    }
}

/// What remains of one parent detail's limits while child details draw on it.
#[derive(Clone)]
struct Budget {
    calls: Option<u64>,
    amount: Option<(u128, Currency)>,
    confirm: Option<Confirm>,
}

impl Budget {
    fn of(limits: &Limits) -> Budget {
        Budget {
            calls: limits.max_calls,
            amount: limits
                .max_amount
                .as_ref()
                .map(|m| (m.amount.micros(), m.currency.clone())),
            confirm: limits.confirm.clone(),
        }
    }

    /// Takes the child's limits out of this budget, or says why it cannot.
    fn draw(&mut self, child: &Limits) -> Result<(), Escalation> {
        let calls = match (self.calls, child.max_calls) {
            (None, _) => None,
            (Some(_), None) => return Err(Escalation::Limit),
            (Some(left), Some(want)) => Some(left.checked_sub(want).ok_or(Escalation::Limit)?),
        };
        let amount = match (&self.amount, &child.max_amount) {
            (None, _) => None,
            (Some(_), None) => return Err(Escalation::Limit),
            (Some((_, cur)), Some(want)) if *cur != want.currency => {
                return Err(Escalation::Currency);
            }
            (Some((left, cur)), Some(want)) => Some((
                left.checked_sub(want.amount.micros())
                    .ok_or(Escalation::Limit)?,
                cur.clone(),
            )),
        };
        Confirm::within(child.confirm.as_ref(), self.confirm.as_ref())?;
        self.calls = calls;
        self.amount = amount;
        Ok(())
    }
}

/// Checks that `child` is within `parent`, as the module docs define.
///
/// Each child detail draws on the first parent detail that it fits, in
/// order. The error names the rule broken by the closest parent detail.
pub fn within(
    child: &[AuthorizationDetail],
    parent: &[AuthorizationDetail],
) -> Result<(), Escalation> {
    placement(child, parent).map_err(|(_, e)| e)
}

/// [`within`], naming the first child detail that fits no parent detail
/// (its index) with the reason.
pub fn placement(
    child: &[AuthorizationDetail],
    parent: &[AuthorizationDetail],
) -> Result<(), (usize, Escalation)> {
    let mut budgets: Vec<Budget> = parent.iter().map(|p| Budget::of(&p.limits)).collect();
    for (i, c) in child.iter().enumerate() {
        let mut closest = Escalation::Type;
        let mut placed = false;
        for (p, budget) in parent.iter().zip(budgets.iter_mut()) {
            let fit = c.shape_within(p).and_then(|()| {
                let mut trial = budget.clone();
                trial.draw(&c.limits).map(|()| trial)
            });
            match fit {
                Ok(rest) => {
                    *budget = rest;
                    placed = true;
                    break;
                }
                Err(e) => closest = closer(closest, e),
            }
        }
        if !placed {
            return Err((i, closest));
        }
    }
    Ok(())
}

/// The failure that got further through the rules, so that the error is the most specific one.
fn closer(a: Escalation, b: Escalation) -> Escalation {
    let rank = |e: Escalation| match e {
        Escalation::Type => 0,
        Escalation::Action => 1,
        Escalation::Location => 2,
        Escalation::Currency => 3,
        Escalation::Limit => 4,
    };
    if rank(b) > rank(a) { b } else { a }
}

/// One call a resource server is asked to serve, to check against a verified scope.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Call<'a> {
    /// The scope type the call needs.
    pub kind: &'a str,
    /// The action the call performs.
    pub action: &'a str,
    /// The location the call touches.
    pub location: &'a str,
    /// The resource identifier, when the call names one.
    pub identifier: Option<&'a str>,
    /// The money the call commits, when it commits any.
    pub amount: Option<&'a Money>,
}

/// Whether some detail permits this one call. A money limit is checked
/// against the call's own amount; totals across calls are the resource
/// server's to count.
pub fn permits(details: &[AuthorizationDetail], call: &Call<'_>) -> bool {
    if check_location(call.location).is_err() {
        return false;
    }
    details.iter().any(|d| {
        d.kind == call.kind
            && d.actions.contains(call.action)
            && d.locations.iter().any(|l| l.covers(call.location))
            && (d.identifier.is_none() || d.identifier.as_deref() == call.identifier)
            && match (&d.limits.max_amount, call.amount) {
                (None, _) => true,
                (Some(_), None) => true,
                (Some(max), Some(amt)) => {
                    max.currency == amt.currency && amt.amount.micros() <= max.amount.micros()
                }
            }
    })
}

/// Whether `call`, permitted by `details` ([`permits`]), needs the user's
/// confirmation of the exact request: it does unless some detail that
/// permits it lets it through unconfirmed (no `confirm`, or a `confirm`
/// `above` an amount the call states in the same currency and does not
/// exceed). Attenuation keeps a `confirm` on every child, so a leaf detail
/// without one was granted so by the user.
pub fn needs_confirmation(details: &[AuthorizationDetail], call: &Call<'_>) -> bool {
    !details.iter().any(|d| {
        permits(std::slice::from_ref(d), call)
            && d.limits
                .confirm
                .as_ref()
                .is_none_or(|c| c.waives(call.amount))
    })
}

#[cfg(test)]
mod tests;
