//! The user's devices: one key per device, as the broker lists them, with
//! this computer's marked; and the `key.enrolled` events of the user's
//! inbox stream, which say that a key was just enrolled somewhere.
//!
//! Pure: the engine reads the broker and hands the lists and events in.

use mandate_core::{AgentId, Thumbprint};
use serde::{Deserialize, Serialize};

use crate::broker::KeyItem;

/// One of the user's keys, as the devices screen shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ts_rs::TS)]
pub struct Device {
    /// The key's thumbprint.
    pub jkt: String,
    /// Its short fingerprint, as the other screens show keys.
    pub fingerprint: String,
    /// The device's name, as it gave it at enrollment.
    pub device: String,
    /// When the key was first enrolled (unix seconds).
    pub enrolled_at: i64,
    /// When the broker last accepted something the key signed; `None`
    /// when never.
    pub last_used_at: Option<i64>,
    /// When its current binding lapses (unix seconds).
    pub expires_at: i64,
    /// Whether it is the key of the user signed in on this computer.
    pub this_device: bool,
}

/// The broker's list of keys as devices, oldest first, with `own` (this
/// computer's key thumbprint) marked.
pub fn devices(keys: Vec<KeyItem>, own: &Thumbprint) -> Vec<Device> {
    let own = own.to_string();
    keys.into_iter()
        .map(|k| Device {
            fingerprint: fingerprint(&k.jkt),
            this_device: k.jkt == own,
            jkt: k.jkt,
            device: k.device,
            enrolled_at: k.enrolled_at,
            last_used_at: k.last_used_at,
            expires_at: k.expires_at,
        })
        .collect()
}

/// The short fingerprint of a thumbprint the broker sent. One that does
/// not parse is shown as it came (as text), rather than hidden.
fn fingerprint(jkt: &str) -> String {
    match jkt.parse::<Thumbprint>() {
        Ok(t) => AgentId::from_thumbprint(t).fingerprint(),
        Err(_) => jkt.to_owned(),
    }
}

/// A `key.enrolled` event of the user's stream: which key, and when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Enrolled {
    /// The new key's thumbprint.
    pub jkt: Thumbprint,
    /// When it was enrolled (unix seconds).
    pub at: i64,
}

impl Enrolled {
    /// Parses the event's data, `{"type":"key.enrolled","key":JKT,"at":N}`.
    /// `None` for anything else.
    pub fn parse(data: &str) -> Option<Enrolled> {
        #[derive(Deserialize)]
        struct Wire {
            #[serde(rename = "type")]
            kind: String,
            key: String,
            at: i64,
        }
        let wire: Wire = serde_json::from_str(data).ok()?;
        if wire.kind != "key.enrolled" {
            return None;
        }
        Some(Enrolled {
            jkt: wire.key.parse().ok()?,
            at: wire.at,
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use mandate_core::SigningKey;

    use super::*;

    fn item(key: &SigningKey, device: &str, last: Option<i64>) -> KeyItem {
        KeyItem {
            jkt: key.thumbprint().to_string(),
            device: device.into(),
            enrolled_at: 100,
            last_used_at: last,
            expires_at: 700,
        }
    }

    #[test]
    fn this_computers_key_is_marked_and_the_others_are_not() {
        let mine = SigningKey::generate(&mut rand_core::OsRng);
        let other = SigningKey::generate(&mut rand_core::OsRng);
        let shown = devices(
            vec![
                item(&other, "Phone (android)", Some(150)),
                item(&mine, "Laptop (linux)", None),
            ],
            &mine.thumbprint(),
        );
        assert_eq!(shown.len(), 2);
        assert_eq!(shown[0].device, "Phone (android)");
        assert!(!shown[0].this_device);
        assert_eq!(shown[0].last_used_at, Some(150));
        assert_eq!(
            shown[0].fingerprint,
            other.public().agent_id().fingerprint()
        );
        assert!(shown[1].this_device);
        assert_eq!(shown[1].last_used_at, None);
        assert_eq!(shown[1].jkt, mine.thumbprint().to_string());
    }

    #[test]
    fn a_thumbprint_that_does_not_parse_is_shown_as_it_came() {
        let mine = SigningKey::generate(&mut rand_core::OsRng);
        let odd = KeyItem {
            jkt: "not a thumbprint".into(),
            device: "x".into(),
            enrolled_at: 1,
            last_used_at: None,
            expires_at: 2,
        };
        let shown = devices(vec![odd], &mine.thumbprint());
        assert_eq!(shown[0].fingerprint, "not a thumbprint");
        assert!(!shown[0].this_device);
    }

    #[test]
    fn only_a_well_formed_key_enrolled_event_parses() {
        let key = SigningKey::generate(&mut rand_core::OsRng);
        let jkt = key.thumbprint();
        let data = format!(r#"{{"type":"key.enrolled","key":"{jkt}","at":1700000000}}"#);
        assert_eq!(
            Enrolled::parse(&data),
            Some(Enrolled {
                jkt,
                at: 1_700_000_000
            })
        );
        for bad in [
            format!(r#"{{"type":"request.created","key":"{jkt}","at":1}}"#),
            r#"{"type":"key.enrolled","key":"short","at":1}"#.to_owned(),
            format!(r#"{{"type":"key.enrolled","key":"{jkt}"}}"#),
            "not json".to_owned(),
        ] {
            assert_eq!(Enrolled::parse(&bad), None, "{bad}");
        }
    }
}
