//! Sessions of the protocol before 2026-07-28 (`Mcp-Session-Id`), each
//! bound to the key that opened it.
//!
//! The upstream mints a session id at `initialize`, and takes it as the
//! caller's from then on. The gateway remembers whose key opened each one,
//! and refuses the id from any other key (`gateway.session`, 404, as an
//! unknown session): a session id that leaks does not let another caller
//! into the session, nor its stream. A session id keeps its first holder.
//! Each key holds at most [`MAX_PER_HOLDER`] sessions, so that no caller
//! can push out the others' by opening many: past it, that key's oldest
//! is forgotten.

use std::collections::{HashMap, VecDeque};
use std::sync::{Mutex, PoisonError};

/// The most sessions remembered; past it, the oldest is forgotten (and
/// its id refused from then on).
pub const MAX_SESSIONS: usize = 10_000;

/// The most sessions one key holds.
pub const MAX_PER_HOLDER: usize = 64;

/// Sessions and their holders.
#[derive(Debug, Default)]
pub struct Sessions {
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    holders: HashMap<String, String>,
    order: VecDeque<String>,
    by_holder: HashMap<String, VecDeque<String>>,
}

impl Inner {
    fn forget(&mut self, session: &str) {
        let Some(holder) = self.holders.remove(session) else {
            return;
        };
        self.order.retain(|o| o != session);
        if let Some(held) = self.by_holder.get_mut(&holder) {
            held.retain(|o| o != session);
            if held.is_empty() {
                self.by_holder.remove(&holder);
            }
        }
    }
}

impl Sessions {
    /// Records that `holder` opened `session`; `false` if another holder
    /// holds it already (it keeps its first).
    pub fn open(&self, session: &str, holder: &str) -> bool {
        let mut s = self.lock();
        if let Some(known) = s.holders.get(session) {
            return known == holder;
        }
        s.holders.insert(session.to_owned(), holder.to_owned());
        s.order.push_back(session.to_owned());
        let held = s.by_holder.entry(holder.to_owned()).or_default();
        held.push_back(session.to_owned());
        let oldest = (held.len() > MAX_PER_HOLDER)
            .then(|| held.front().cloned())
            .flatten();
        if let Some(old) = oldest {
            s.forget(&old);
        }
        while s.order.len() > MAX_SESSIONS {
            let Some(old) = s.order.front().cloned() else {
                break;
            };
            s.forget(&old);
        }
        true
    }

    /// Whether `holder` opened `session`.
    pub fn held_by(&self, session: &str, holder: &str) -> bool {
        self.lock()
            .holders
            .get(session)
            .is_some_and(|h| h == holder)
    }

    /// Forgets `session`.
    pub fn close(&self, session: &str) {
        self.lock().forget(session);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_session_is_its_opener_s() {
        let s = Sessions::default();
        s.open("abc", "key-a");
        assert!(s.held_by("abc", "key-a"));
        assert!(!s.held_by("abc", "key-b"));
        assert!(!s.held_by("unknown", "key-a"));
        // Another key cannot take it over.
        assert!(!s.open("abc", "key-b"));
        assert!(s.held_by("abc", "key-a"));
        s.close("abc");
        assert!(!s.held_by("abc", "key-a"));
    }

    #[test]
    fn one_key_cannot_push_out_the_others_sessions() {
        let s = Sessions::default();
        s.open("theirs", "key-a");
        for i in 0..MAX_PER_HOLDER + 10 {
            assert!(s.open(&format!("mine-{i}"), "key-b"));
        }
        assert!(s.held_by("theirs", "key-a"));
        assert!(!s.held_by("mine-0", "key-b"), "its own oldest went");
        assert!(s.held_by(&format!("mine-{}", MAX_PER_HOLDER + 9), "key-b"));
    }
}
