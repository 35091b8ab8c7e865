//! The approval tiers as the page shows them: the user's standing rules,
//! what a request goes past a rule by (so that the user sees what is new),
//! and the binding code typed for a high-risk request.

use mandate_core::scope::Escalation;
use mandate_core::token::{Excess, PolicyClaims, RequestClaims};
use serde::Serialize;

use crate::history::StoredRule;
use crate::view::{ScopeView, scope_view};

/// How many wrong codes deny a high-risk request.
pub const MAX_CODE_MISSES: i64 = 3;

/// One of the user's standing rules, ready to show.
#[derive(Debug, Clone, Serialize, ts_rs::TS)]
pub struct RuleView {
    /// The rule's id (its policy token's).
    pub id: String,
    /// Its label: the name the agent gave itself when the rule was made.
    pub label: Option<String>,
    /// The agent key it is about, as a fingerprint to compare by eye.
    pub agent_fingerprint: String,
    /// The most a request may ask for.
    pub scopes: Vec<ScopeView>,
    /// The longest grant it approves, in seconds.
    pub max_lifetime: u32,
    /// The deepest delegation it approves.
    pub max_depth: u8,
    /// When it was made.
    pub created_at: i64,
    /// When it ends by itself.
    pub expires_at: i64,
    /// When the user ended it.
    pub ended_at: Option<i64>,
    /// How many requests it approved.
    pub matched: i64,
    /// When it last approved one.
    pub last_matched_at: Option<i64>,
    /// The latest requests it approved (at most [`RULE_MATCHES_SHOWN`]),
    /// newest first.
    pub recent: Vec<RuleMatch>,
}

/// How many of the requests a rule approved its view lists.
pub const RULE_MATCHES_SHOWN: i64 = 5;

/// A request a rule approved.
#[derive(Debug, Clone, Serialize, ts_rs::TS)]
pub struct RuleMatch {
    /// Its purpose, as the agent stated it.
    pub purpose: String,
    /// When the rule approved it.
    pub at: i64,
}

impl RuleView {
    /// The view of a recorded rule; `None` if its token cannot be read
    /// (it was written by this app, so that is a damaged history).
    pub fn of(rule: &StoredRule, matches: &[(String, i64)]) -> Option<RuleView> {
        let (_, claims) = mandate_core::token::peek::<PolicyClaims>(&rule.token).ok()?;
        let agent = mandate_core::AgentId::from_thumbprint(claims.agent.jkt);
        Some(RuleView {
            id: rule.id.clone(),
            label: rule.label.clone(),
            agent_fingerprint: agent.fingerprint(),
            scopes: claims
                .authorization_details
                .iter()
                .flatten()
                .map(scope_view)
                .collect(),
            max_lifetime: claims.max_lifetime.unwrap_or_default(),
            max_depth: claims.max_depth.unwrap_or_default(),
            created_at: rule.created_at,
            expires_at: rule.expires_at,
            ended_at: rule.ended_at,
            matched: rule.matched,
            last_matched_at: rule.last_matched_at,
            recent: matches
                .iter()
                .filter_map(|(request, at)| {
                    let (_, claims) = mandate_core::token::peek::<RequestClaims>(request).ok()?;
                    Some(RuleMatch {
                        purpose: claims.purpose,
                        at: *at,
                    })
                })
                .collect(),
        })
    }
}

/// A standing rule about the requesting agent that the request goes
/// past: it came as a prompt, and this is why.
#[derive(Debug, Clone, Serialize, ts_rs::TS)]
pub struct RuleFit {
    /// The rule's id.
    pub rule_id: String,
    /// Its label.
    pub label: Option<String>,
    /// Each way the request goes past it, in plain language.
    pub differences: Vec<String>,
}

/// Each way `request` goes past a rule (its `excesses`), in plain
/// language.
pub fn differences(request: &RequestClaims, excesses: &[Excess]) -> Vec<String> {
    excesses
        .iter()
        .map(|e| match e {
            Excess::Agent => "another agent key than the rule's".to_owned(),
            Excess::Principal => "for another user".to_owned(),
            Excess::Denies => "the rule denies this agent".to_owned(),
            Excess::OAuthClient => {
                "filed for an OAuth client; rules cover agents' own requests only".to_owned()
            }
            Excess::Scope { detail, why } => {
                let asked = request
                    .authorization_details
                    .get(*detail)
                    .map(|d| {
                        let actions: Vec<&str> = d.actions.iter().map(String::as_str).collect();
                        let locations: Vec<&str> = d.locations.iter().map(|l| l.as_str()).collect();
                        format!(
                            "{} {} on {}",
                            d.kind,
                            actions.join(", "),
                            locations.join(", ")
                        )
                    })
                    .unwrap_or_default();
                let reason = match why {
                    Escalation::Type => "a kind of access the rule does not cover",
                    Escalation::Action => "an action the rule does not allow",
                    Escalation::Location => "a place outside the rule's",
                    Escalation::Limit => "more than the rule's limit, or without its limit",
                    Escalation::Currency => "a limit in another currency than the rule's",
                };
                format!("asks for {asked}: {reason}")
            }
            Excess::Lifetime { asked, max } => format!(
                "asks for {}, the rule allows {}",
                duration(*asked),
                duration(*max)
            ),
            Excess::Depth { asked, max } => {
                format!("asks to delegate {asked} hop(s) deep, the rule allows {max}")
            }
            _ => format!("goes past the rule ({})", e.error().code()),
        })
        .collect()
}

/// `secs` as people say it: "10 minutes", "2 hours", "3 days".
pub fn duration(secs: u32) -> String {
    let (n, unit) = match secs {
        s if s % 86_400 == 0 && s >= 86_400 => (s / 86_400, "day"),
        s if s % 3_600 == 0 && s >= 3_600 => (s / 3_600, "hour"),
        s if s % 60 == 0 && s >= 60 => (s / 60, "minute"),
        s => (s, "second"),
    };
    format!("{n} {unit}{}", if n == 1 { "" } else { "s" })
}

/// Whether `typed` is the binding code `code` (`XXXX-XXXX`): case, spaces
/// and the dash do not matter, and Crockford's look-alikes (O for 0, I and
/// L for 1) read as the digits they stand for.
pub fn same_code(typed: &str, code: &str) -> bool {
    let norm = |s: &str| -> String {
        s.chars()
            .filter(|c| !c.is_whitespace() && *c != '-')
            .map(|c| match c.to_ascii_uppercase() {
                'O' => '0',
                'I' | 'L' => '1',
                c => c,
            })
            .collect()
    };
    let (typed, code) = (norm(typed), norm(code));
    !code.is_empty() && typed == code
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_match_as_people_type_them() {
        assert!(same_code("7K3Q-M9XD", "7K3Q-M9XD"));
        assert!(same_code("7k3q m9xd", "7K3Q-M9XD"));
        assert!(same_code("7k3qm9xd", "7K3Q-M9XD"));
        assert!(same_code("1O00-0000", "1000-0000"));
        assert!(!same_code("7K3Q-M9XE", "7K3Q-M9XD"));
        assert!(!same_code("7K3Q-M9X", "7K3Q-M9XD"));
        assert!(!same_code("", ""));
    }

    #[test]
    fn durations_read_as_people_say_them() {
        assert_eq!(duration(600), "10 minutes");
        assert_eq!(duration(3600), "1 hour");
        assert_eq!(duration(7200), "2 hours");
        assert_eq!(duration(86_400 * 3), "3 days");
        assert_eq!(duration(90), "90 seconds");
    }
}
