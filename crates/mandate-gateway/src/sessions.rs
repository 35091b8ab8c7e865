//! Sessions of the protocol before 2026-07-28 (`Mcp-Session-Id`), each
//! bound to the key that opened it.
//!
//! The upstream mints a session id at `initialize`, and takes it as the
//! caller's from then on. The gateway remembers whose key opened each one,
//! and refuses the id from any other key (`gateway.session`, 404, as an
//! unknown session): a session id that leaks does not let another caller
//! into the session, nor its stream.

use std::collections::{HashMap, VecDeque};
use std::sync::{Mutex, PoisonError};

/// The most sessions remembered; past it, the oldest is forgotten (and
/// its id refused from then on).
pub const MAX_SESSIONS: usize = 10_000;

/// Sessions and their holders.
#[derive(Debug, Default)]
pub struct Sessions {
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    holders: HashMap<String, String>,
    order: VecDeque<String>,
}

impl Sessions {
    /// Records that `holder` opened `session`.
    pub fn open(&self, session: &str, holder: &str) {
        let mut s = self.lock();
        if s.holders
            .insert(session.to_owned(), holder.to_owned())
            .is_none()
        {
            s.order.push_back(session.to_owned());
        }
        while s.order.len() > MAX_SESSIONS {
            if let Some(old) = s.order.pop_front() {
                s.holders.remove(&old);
            }
        }
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
        let mut s = self.lock();
        if s.holders.remove(session).is_some() {
            s.order.retain(|o| o != session);
        }
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
        s.close("abc");
        assert!(!s.held_by("abc", "key-a"));
    }
}
