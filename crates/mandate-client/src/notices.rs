//! What the app says outside its window: the desktop notifications and
//! the tray's tooltip. The shell only shows them.
//!
//! Names and purposes in these texts come from agents and from other
//! devices, so they are untrusted. Linux notification servers read the
//! body as markup (`<b>`, `<a href>`, `<img>`). [`body`] escapes the text
//! there, so an agent's name cannot add a link or an image to a
//! notification that speaks with Mandate's voice.

use std::collections::HashSet;

use crate::delegations::GrantView;
use crate::engine::Engine;

/// How often grants about to lapse are looked for.
pub const REMINDER_EVERY: std::time::Duration = std::time::Duration::from_secs(30);
/// How long before a grant lapses its reminder comes.
pub const REMINDER_BEFORE: i64 = 5 * 60;

/// The reminders of grants about to lapse, each grant's once.
#[derive(Debug, Default)]
pub struct Reminders {
    reminded: HashSet<String>,
}

impl Reminders {
    /// The reminders due now: one for each grant in force that lapses
    /// within [`REMINDER_BEFORE`] and was not reminded of before. None
    /// when nobody is signed in.
    pub async fn due(&mut self, engine: &Engine) -> Vec<String> {
        let Ok(soon) = engine.expiring(REMINDER_BEFORE).await else {
            return Vec::new();
        };
        self.due_of(&soon, mandate_broker::host::now())
    }

    fn due_of(&mut self, soon: &[GrantView], now: i64) -> Vec<String> {
        soon.iter()
            .filter(|grant| self.reminded.insert(grant.id.clone()))
            .map(|grant| {
                let who = grant
                    .agent_name
                    .as_deref()
                    .unwrap_or(&grant.agent_fingerprint);
                reminder(who, &grant.purpose, grant.expires_at - now)
            })
            .collect()
    }
}

/// A notification's body as the platform's notification server should
/// get it: markup-escaped on Linux, as is elsewhere.
pub fn body(text: &str) -> String {
    if cfg!(target_os = "linux") {
        escape_markup(text)
    } else {
        text.to_owned()
    }
}

/// `text` with the characters that start markup escaped.
fn escape_markup(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            c => out.push(c),
        }
    }
    out
}

/// New requests in the inbox.
pub fn requests_waiting(new: usize) -> String {
    if new == 1 {
        "An agent asks for your authority.".to_owned()
    } else {
        format!("{new} agents ask for your authority.")
    }
}

/// The reminder for a grant about to lapse, `left` seconds from now.
pub fn reminder(who: &str, purpose: &str, left: i64) -> String {
    let when = match left.max(0).div_euclid(60) {
        0 => "in under a minute".to_owned(),
        1 => "in 1 minute".to_owned(),
        n => format!("in {n} minutes"),
    };
    format!("{who}'s authority (“{purpose}”) lapses {when}.")
}

/// What the user is told when a key is enrolled for them elsewhere:
/// `device` as it named itself, at `at` (unix seconds), in the local time.
pub fn key_enrolled(device: Option<&str>, at: i64) -> String {
    let now = mandate_broker::host::now();
    key_enrolled_text(device, &local_time(&chrono::Local, at, now))
}

/// [`key_enrolled`], with `when` as [`local_time`] says it.
fn key_enrolled_text(device: Option<&str>, when: &str) -> String {
    let on = match device {
        Some(device) => format!("on “{device}”"),
        None => "on a device the broker did not name".to_owned(),
    };
    format!(
        "A new key was enrolled for you {on} {when}. Not you? Open Devices in Mandate and remove it."
    )
}

/// `at` (unix seconds) in `zone`: "at 14:05" on the day of `now`, else
/// "on 3 Dec 2026 at 14:05".
fn local_time<Z: chrono::TimeZone>(zone: &Z, at: i64, now: i64) -> String
where
    Z::Offset: std::fmt::Display,
{
    let (Some(at), Some(now)) = (
        zone.timestamp_opt(at, 0).single(),
        zone.timestamp_opt(now, 0).single(),
    ) else {
        return "just now".to_owned();
    };
    if at.date_naive() == now.date_naive() {
        at.format("at %H:%M").to_string()
    } else {
        at.format("on %-d %b %Y at %H:%M").to_string()
    }
}

/// The desktop notification an update calls for, if any: new requests,
/// and a key enrolled on another device.
pub fn of(update: &crate::Update) -> Option<String> {
    match update {
        crate::Update::Inbox { new, .. } if !new.is_empty() => Some(requests_waiting(new.len())),
        crate::Update::KeyEnrolled { device, at, .. } => Some(key_enrolled(device.as_deref(), *at)),
        crate::Update::AutoApproved { label, .. } => Some(approved_by_rule(label.as_deref())),
        _ => None,
    }
}

/// The quiet notice for a request one of the user's rules approved.
pub fn approved_by_rule(label: Option<&str>) -> String {
    match label {
        Some(label) => format!("Approved by your rule for {label}"),
        None => "Approved by one of your rules".to_owned(),
    }
}

/// How often the tray's leases are listed again, with the time each has
/// left (and at once when a grant changes).
pub const TRAY_LEASES_EVERY: std::time::Duration = std::time::Duration::from_secs(20);
/// How far ahead the tray looks for leases: further than any lease runs.
const TRAY_LEASES_WITHIN: i64 = 400 * 86_400;
/// The longest agent name a tray line shows, in characters.
const TRAY_NAME_MAX: usize = 40;

/// The live leases and one-call grants, soonest end first, as the tray
/// lists them: each grant's id and its menu line. None when nobody is
/// signed in.
pub async fn tray_leases(engine: &Engine) -> Vec<(String, String)> {
    match engine.expiring(TRAY_LEASES_WITHIN).await {
        Ok(live) => lease_lines(&live, mandate_broker::host::now()),
        Err(_) => Vec::new(),
    }
}

/// The tray's lines for the leases and one-call grants among `live`
/// (grants in force), soonest end first: "Stop “Lease Bot”: 12 min left".
/// The name is the agent's own: cut to [`TRAY_NAME_MAX`] characters, with
/// control characters dropped and `&` doubled, so that it cannot break
/// the line or set the menu's keyboard shortcut.
fn lease_lines(live: &[GrantView], now: i64) -> Vec<(String, String)> {
    let mut leases: Vec<&GrantView> = live
        .iter()
        .filter(|g| g.depth == 0 && matches!(g.tier.as_deref(), Some("lease" | "once")))
        .filter(|g| g.revoked_at.is_none() && g.expires_at > now)
        .collect();
    leases.sort_by_key(|g| g.expires_at);
    leases
        .into_iter()
        .map(|g| {
            let raw = g.agent_name.as_deref().unwrap_or(&g.agent_fingerprint);
            let mut shown = raw.chars().filter(|c| !c.is_control());
            let mut who = shown
                .by_ref()
                .take(TRAY_NAME_MAX)
                .collect::<String>()
                .replace('&', "&&");
            if shown.next().is_some() {
                who.push('…');
            }
            let left = g.expires_at - now;
            let left = match left {
                ..60 => "under a minute left".to_owned(),
                60..3600 => format!("{} min left", left / 60),
                _ => format!("{} h {:02} min left", left / 3600, left % 3600 / 60),
            };
            (g.id.clone(), format!("Stop “{who}”: {left}"))
        })
        .collect()
}

/// Expiry reminders are on unless `MANDATE_EXPIRY_REMINDERS` is `off`.
pub fn reminders_on() -> bool {
    std::env::var("MANDATE_EXPIRY_REMINDERS").map_or(true, |v| v != "off")
}

/// The tray's tooltip for `pending` waiting requests.
pub fn tray_tooltip(pending: usize) -> String {
    match pending {
        0 => "Mandate: nothing waiting".to_owned(),
        1 => "Mandate: 1 request waiting".to_owned(),
        n => format!("Mandate: {n} requests waiting"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_requests_and_keys_enrolled_elsewhere_are_notified_and_nothing_else() {
        let inbox = |new: &[&str]| crate::Update::Inbox {
            pending: 4,
            new: new.iter().map(|s| (*s).to_owned()).collect(),
        };
        assert_eq!(of(&inbox(&["a", "b"])), Some(requests_waiting(2)));
        assert_eq!(of(&inbox(&[])), None, "an inbox that only shrank");
        let auto = crate::Update::AutoApproved {
            request_id: "r".into(),
            rule_id: "x".into(),
            label: Some("Report bot".into()),
        };
        assert_eq!(of(&auto), Some(approved_by_rule(Some("Report bot"))));
        let enrolled = crate::Update::KeyEnrolled {
            jkt: "k".into(),
            fingerprint: "f".into(),
            device: Some("laptop (linux)".into()),
            at: 1_700_000_000,
        };
        assert_eq!(
            of(&enrolled),
            Some(key_enrolled(Some("laptop (linux)"), 1_700_000_000))
        );
        for quiet in [
            crate::Update::Connection { online: true },
            crate::Update::Activity { new: 3, failed: 0 },
            crate::Update::Delivery {
                request_id: "r".into(),
                delivered: true,
            },
        ] {
            assert_eq!(of(&quiet), None, "{quiet:?}");
        }
    }

    #[test]
    fn the_tray_says_how_many_requests_wait() {
        assert_eq!(tray_tooltip(0), "Mandate: nothing waiting");
        assert_eq!(tray_tooltip(1), "Mandate: 1 request waiting");
        assert_eq!(tray_tooltip(500), "Mandate: 500 requests waiting");
        assert_eq!(requests_waiting(1), "An agent asks for your authority.");
        assert_eq!(requests_waiting(3), "3 agents ask for your authority.");
    }

    #[test]
    fn a_key_enrolled_elsewhere_says_where_and_when_and_what_to_do() {
        assert_eq!(
            key_enrolled_text(Some("Alice's phone (android)"), "at 14:05"),
            "A new key was enrolled for you on “Alice's phone (android)” at 14:05. \
             Not you? Open Devices in Mandate and remove it."
        );
        assert!(key_enrolled_text(None, "at 14:05").starts_with(
            "A new key was enrolled for you on a device the broker did not name at 14:05."
        ));
        // 2026-12-03 14:05:00 UTC.
        let at = 1_796_306_700;
        assert_eq!(local_time(&chrono::Utc, at, at + 60), "at 14:05");
        assert_eq!(
            local_time(&chrono::Utc, at, at + 86_400),
            "on 3 Dec 2026 at 14:05"
        );
        assert_eq!(local_time(&chrono::Utc, i64::MAX, at), "just now");
    }

    #[test]
    fn a_reminder_says_who_what_and_when() {
        assert_eq!(
            reminder("Report Bot", "Tidy the reports", 299),
            "Report Bot's authority (“Tidy the reports”) lapses in 4 minutes."
        );
        assert_eq!(
            reminder("Report Bot", "x", 61),
            "Report Bot's authority (“x”) lapses in 1 minute."
        );
        assert_eq!(
            reminder("Report Bot", "x", -3),
            "Report Bot's authority (“x”) lapses in under a minute."
        );
    }

    fn grant(id: &str, name: Option<&str>, expires_at: i64) -> GrantView {
        GrantView {
            id: id.into(),
            parent: None,
            depth: 0,
            agent: "urn:agent".into(),
            agent_fingerprint: "AB12-CD34".into(),
            agent_name: name.map(Into::into),
            issued_by: "you".into(),
            purpose: "Tidy the reports".into(),
            scopes: Vec::new(),
            max_depth: 0,
            issued_at: 0,
            expires_at,
            revoked_at: None,
            state: crate::delegations::GrantState::Active,
            tier: None,
            actions: 0,
            last_used: None,
        }
    }

    #[test]
    fn each_grant_about_to_lapse_is_reminded_of_once() {
        let mut reminders = Reminders::default();
        let soon = [
            grant("g1", Some("Report Bot"), 1_000 + 299),
            grant("g2", None, 1_000 + 30),
        ];
        assert_eq!(
            reminders.due_of(&soon, 1_000),
            [
                "Report Bot's authority (“Tidy the reports”) lapses in 4 minutes.",
                "AB12-CD34's authority (“Tidy the reports”) lapses in under a minute.",
            ]
        );
        assert!(reminders.due_of(&soon, 1_010).is_empty(), "once each");
        let later = [grant("g3", Some("Planner"), 1_100)];
        assert_eq!(reminders.due_of(&later, 1_040).len(), 1);
    }

    #[test]
    fn the_tray_lists_live_leases_soonest_first_and_nothing_else() {
        let tiered = |id: &str, name: Option<&str>, exp: i64, tier: &str| GrantView {
            tier: Some(tier.into()),
            ..grant(id, name, exp)
        };
        let now = 10_000;
        let live = [
            tiered(
                "long",
                Some("Lease Bot"),
                now + 2 * 3600 + 5 * 60 + 30,
                "lease",
            ),
            tiered("soon", None, now + 59, "once"),
            tiered("mid", Some("Report Bot"), now + 12 * 60 + 59, "lease"),
            tiered("standing", Some("Planner"), now + 60, "standard"),
            tiered("ruled", Some("Planner"), now + 60, "auto"),
            GrantView {
                depth: 1,
                ..tiered("sub", Some("Sub"), now + 60, "lease")
            },
            GrantView {
                revoked_at: Some(now - 1),
                ..tiered("stopped", Some("Gone"), now + 60, "lease")
            },
            tiered("over", Some("Late"), now, "lease"),
        ];
        let lines = lease_lines(&live, now);
        assert_eq!(
            lines,
            [
                (
                    "soon".to_owned(),
                    "Stop “AB12-CD34”: under a minute left".to_owned()
                ),
                (
                    "mid".to_owned(),
                    "Stop “Report Bot”: 12 min left".to_owned()
                ),
                (
                    "long".to_owned(),
                    "Stop “Lease Bot”: 2 h 05 min left".to_owned()
                ),
            ]
        );
    }

    #[test]
    fn an_agents_name_cannot_break_a_tray_line_or_set_its_shortcut() {
        let name = format!("R&D\nbot{}", "x".repeat(50));
        let lease = GrantView {
            tier: Some("lease".into()),
            ..grant("g", Some(&name), 1_000 + 600)
        };
        let [(_, line)] = &lease_lines(&[lease], 1_000)[..] else {
            panic!("one line");
        };
        let cut = format!("R&&Dbot{}", "x".repeat(34));
        assert_eq!(line, &format!("Stop “{cut}…”: 10 min left"));
    }

    #[test]
    fn an_agents_words_cannot_add_markup_to_a_notification() {
        let name = "<a href=\"https://evil.example\">Mandate</a> & <img src=x>";
        assert_eq!(
            escape_markup(&reminder(name, "x", 61)),
            "&lt;a href=\"https://evil.example\"&gt;Mandate&lt;/a&gt; &amp; &lt;img src=x&gt;'s \
             authority (“x”) lapses in 1 minute."
        );
        assert_eq!(escape_markup("plain text"), "plain text");
        if cfg!(target_os = "linux") {
            assert_eq!(body("a <b>"), "a &lt;b&gt;");
        } else {
            assert_eq!(body("a <b>"), "a <b>");
        }
    }
}
