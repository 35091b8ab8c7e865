//! A broker's revocation feed as a verifier follows it, and how fresh the
//! verifier's copy is.
//!
//! The broker numbers each grant it revokes with a position (`seq`,
//! increasing, not necessarily contiguous) and folds the entries, in
//! order, into a digest: the feed's *head* ([`FeedHead`]). From time to
//! time, and after each revocation, it signs a checkpoint
//! ([`CheckpointClaims`]): the position and head it had reached, and the
//! time. A follower that has applied the feed up to a checkpoint's
//! position, and reached the same head, holds every revocation the broker
//! had at that time: its copy is current as of the checkpoint's `iat`.
//!
//! So nobody between the broker and the verifier can hold a revocation
//! back and keep the verifier looking fresh. Dropping an entry, changing
//! one or adding one changes the head; withholding entries leaves the
//! follower behind every later checkpoint; withholding checkpoints, or
//! replaying old ones, lets the copy age. [`RevocationFeed`] applies these
//! rules; it does no IO, and the caller fetches what it asks for.

use std::collections::{BTreeMap, HashSet};

use sha2::{Digest as _, Sha256};

use crate::Error;
use crate::chain::RevocationSet;
use crate::jws::TokenId;
use crate::key::{PublicKey, Thumbprint};
use crate::token::{CheckpointClaims, Policy, UnixTime};

/// The largest feed position: 2^53 - 1, which every JSON client can
/// represent exactly.
pub const MAX_FEED_SEQ: u64 = (1 << 53) - 1;

/// How many positions a follower remembers the head at, to compare with
/// checkpoints that arrive after it has read further.
const REMEMBERED: usize = 65_536;

/// The digest of a revocation feed up to an entry: 32 bytes, written as
/// base64url.
///
/// The empty feed's head is 32 zero bytes ([`FeedHead::EMPTY`]). Applying
/// the entry at position `seq` that revokes grant `g` gives
/// `SHA-256(head ‖ seq as 8 bytes big-endian ‖ the 32 bytes of g's id)`.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct FeedHead([u8; 32]);

crate::b64::digest_text!(FeedHead, "feed head");

impl FeedHead {
    /// The head of the empty feed.
    pub const EMPTY: FeedHead = FeedHead([0; 32]);

    /// The head after the entry at `seq` revoking `grant`.
    pub fn next(&self, seq: u64, grant: &TokenId) -> FeedHead {
        let mut h = Sha256::new();
        h.update(self.0);
        h.update(seq.to_be_bytes());
        h.update(grant.as_bytes());
        FeedHead(h.finalize().into())
    }

    /// The head after the entry at `seq` removing the user key `key`:
    /// `SHA-256(head ‖ seq as 8 bytes big-endian ‖ "K" ‖ the 32 bytes of
    /// the key's thumbprint)`, one byte longer than a grant's entry, so
    /// that no key entry reads as a grant entry.
    pub fn next_key(&self, seq: u64, key: &Thumbprint) -> FeedHead {
        let mut h = Sha256::new();
        h.update(self.0);
        h.update(seq.to_be_bytes());
        h.update(b"K");
        h.update(key.as_bytes());
        FeedHead(h.finalize().into())
    }
}

/// A checkpoint a follower accepted: the feed position it covers and when
/// the broker signed it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mark {
    /// The position.
    pub seq: u64,
    /// The broker's time.
    pub iat: UnixTime,
}

/// What a follower made of a checkpoint that verified.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Checkpointed {
    /// It matches the feed as applied: the copy is current as of its `iat`.
    Accepted,
    /// It names entries not applied yet: read the feed after
    /// [`RevocationFeed::position`]. It counts once they are applied and
    /// the heads match.
    Ahead,
    /// It is older than a checkpoint already accepted (a rollback), or
    /// than anything the follower still remembers: it changes nothing.
    Ignored,
}

impl RevocationSet for RevocationFeed {
    fn is_revoked(&self, id: &TokenId) -> bool {
        self.revoked.contains(id)
    }

    fn is_key_revoked(&self, key: &Thumbprint) -> bool {
        self.revoked_keys.contains(key)
    }
}

/// One verifier's copy of one broker's revocation feed: the revoked
/// grants, the position and head applied, and the latest checkpoint that
/// matched them.
#[derive(Debug, Clone)]
pub struct RevocationFeed {
    issuer: String,
    keys: Vec<PublicKey>,
    revoked: HashSet<TokenId>,
    /// The removed user keys.
    revoked_keys: HashSet<Thumbprint>,
    /// The position and head of the last entry applied.
    seq: u64,
    head: FeedHead,
    /// The head at each position applied since the latest accepted
    /// checkpoint (its own included), at most [`REMEMBERED`].
    heads: BTreeMap<u64, FeedHead>,
    /// The latest accepted checkpoint.
    current: Option<Mark>,
    /// The newest verified checkpoint beyond the position applied.
    ahead: Option<(Mark, FeedHead)>,
}

impl RevocationFeed {
    /// An empty copy of the feed of the broker `issuer` (its public URL),
    /// whose checkpoints verify under one of `keys`. It has no checkpoint,
    /// so it is not current.
    pub fn new(issuer: impl Into<String>, keys: Vec<PublicKey>) -> RevocationFeed {
        RevocationFeed {
            issuer: issuer.into(),
            keys,
            revoked: HashSet::new(),
            revoked_keys: HashSet::new(),
            seq: 0,
            head: FeedHead::EMPTY,
            heads: BTreeMap::from([(0, FeedHead::EMPTY)]),
            current: None,
            ahead: None,
        }
    }

    /// The revoked grants known, from the feed or pushed.
    pub fn revoked(&self) -> &HashSet<TokenId> {
        &self.revoked
    }

    /// The removed user keys known, from the feed or pushed.
    pub fn revoked_keys(&self) -> &HashSet<Thumbprint> {
        &self.revoked_keys
    }

    /// Adds a removed user key pushed outside the feed's order, as
    /// [`RevocationFeed::push`] does for a grant. Whether it was new.
    pub fn push_key(&mut self, key: Thumbprint) -> bool {
        self.revoked_keys.insert(key)
    }

    /// The position of the last entry applied: read the feed after it.
    pub fn position(&self) -> u64 {
        self.seq
    }

    /// The latest accepted checkpoint.
    pub fn current(&self) -> Option<Mark> {
        self.current
    }

    /// How old the copy is at `now`, in seconds: `now` minus the latest
    /// accepted checkpoint's `iat` (0 if that is ahead of `now`, within
    /// the skew); `None` before any checkpoint was accepted.
    pub fn age(&self, now: UnixTime) -> Option<u64> {
        self.current
            .map(|m| u64::try_from(now.saturating_sub(m.iat)).unwrap_or(0))
    }

    /// Adds a revoked grant pushed outside the feed's order (a live
    /// event). It takes effect at once but proves nothing about freshness:
    /// only entries applied in order count toward a checkpoint. Whether
    /// it was new.
    pub fn push(&mut self, grant: TokenId) -> bool {
        self.revoked.insert(grant)
    }

    /// Applies the feed's entry at `seq` revoking `grant`, in order.
    /// Whether the grant was new to this copy.
    ///
    /// An entry at or before the position applied, or one that passes a
    /// pending checkpoint's position without matching its head, is
    /// `checkpoint.diverged`: the feed read is not the broker's. The copy
    /// then forgets its position (not its revoked grants), so that the
    /// feed is read again from the start.
    pub fn apply(&mut self, seq: u64, grant: TokenId) -> Result<bool, Error> {
        if seq <= self.seq || seq > MAX_FEED_SEQ {
            return Err(self.diverge());
        }
        let head = self.head.next(seq, &grant);
        let new = self.revoked.insert(grant);
        self.advance(seq, head)?;
        Ok(new)
    }

    /// Applies the feed's entry at `seq` removing the user key `key`, in
    /// order, as [`RevocationFeed::apply`] applies a grant's. Whether the
    /// key was new to this copy.
    pub fn apply_key(&mut self, seq: u64, key: Thumbprint) -> Result<bool, Error> {
        if seq <= self.seq || seq > MAX_FEED_SEQ {
            return Err(self.diverge());
        }
        let head = self.head.next_key(seq, &key);
        let new = self.revoked_keys.insert(key);
        self.advance(seq, head)?;
        Ok(new)
    }

    /// Moves to the entry at `seq`, whose head is `head`, and settles a
    /// pending checkpoint that it reaches.
    fn advance(&mut self, seq: u64, head: FeedHead) -> Result<(), Error> {
        self.head = head;
        self.seq = seq;
        self.heads.insert(seq, self.head);
        if self.heads.len() > REMEMBERED {
            self.heads.pop_first();
        }
        if let Some((mark, head)) = self.ahead {
            if mark.seq < seq {
                return Err(self.diverge());
            }
            if mark.seq == seq {
                if head != self.head {
                    return Err(self.diverge());
                }
                self.accept(mark);
            }
        }
        Ok(())
    }

    /// Takes a checkpoint from the broker.
    ///
    /// It must verify ([`CheckpointClaims::verify`]: the broker's key and
    /// name, `iat` not beyond `now` plus the skew), else its error. Then,
    /// in order:
    /// 1. older than the current checkpoint (a smaller `iat` or `seq`):
    ///    [`Checkpointed::Ignored`];
    /// 2. beyond the position applied: [`Checkpointed::Ahead`], kept until
    ///    the feed reaches it;
    /// 3. at a position applied and remembered: its head must be the one
    ///    reached there, and it is [`Checkpointed::Accepted`]; otherwise
    ///    `checkpoint.diverged` (the copy forgets its position, as in
    ///    [`RevocationFeed::apply`]);
    /// 4. before anything remembered: [`Checkpointed::Ignored`].
    pub fn checkpoint(
        &mut self,
        compact: &str,
        policy: &Policy,
        now: UnixTime,
    ) -> Result<Checkpointed, Error> {
        let verified = CheckpointClaims::verify(compact, &self.keys, &self.issuer, policy, now)?;
        let c = verified.claims();
        let mark = Mark {
            seq: c.seq,
            iat: c.iat,
        };
        if self
            .current
            .is_some_and(|m| mark.iat < m.iat || mark.seq < m.seq)
        {
            return Ok(Checkpointed::Ignored);
        }
        if mark.seq > self.seq {
            let newer = self
                .ahead
                .is_none_or(|(a, _)| mark.seq >= a.seq && mark.iat >= a.iat);
            if newer {
                self.ahead = Some((mark, c.head));
            }
            return Ok(Checkpointed::Ahead);
        }
        match self.heads.get(&mark.seq) {
            Some(head) if *head == c.head => {
                self.accept(mark);
                Ok(Checkpointed::Accepted)
            }
            Some(_) => Err(self.diverge()),
            None if self
                .heads
                .first_key_value()
                .is_some_and(|(&s, _)| mark.seq < s) =>
            {
                Ok(Checkpointed::Ignored)
            }
            // No entry was read at the position the broker names.
            None => Err(self.diverge()),
        }
    }

    fn accept(&mut self, mark: Mark) {
        self.current = Some(mark);
        self.heads = self.heads.split_off(&mark.seq);
        if self.ahead.is_some_and(|(a, _)| a.seq <= mark.seq) {
            self.ahead = None;
        }
    }

    fn diverge(&mut self) -> Error {
        self.seq = 0;
        self.head = FeedHead::EMPTY;
        self.heads = BTreeMap::from([(0, FeedHead::EMPTY)]);
        self.ahead = None;
        Error::FeedDiverged
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Claims as _;
    use crate::key::SigningKey;

    const BROKER: &str = "https://broker.example";

    fn grant(n: u8) -> TokenId {
        TokenId::of(&format!("grant-{n}"))
    }

    /// The broker's side: its feed, and checkpoints of it.
    struct Broker {
        key: SigningKey,
        entries: Vec<(u64, TokenId)>,
    }

    impl Broker {
        fn new() -> Broker {
            Broker {
                key: SigningKey::from_seed(&[9; 32]),
                entries: Vec::new(),
            }
        }

        fn revoke(&mut self, seq: u64, g: TokenId) {
            self.entries.push((seq, g));
        }

        fn head(&self) -> (u64, FeedHead) {
            self.entries
                .iter()
                .fold((0, FeedHead::EMPTY), |(_, h), (s, g)| (*s, h.next(*s, g)))
        }

        fn checkpoint(&self, iat: UnixTime) -> String {
            let (seq, head) = self.head();
            CheckpointClaims {
                iss: BROKER.into(),
                seq,
                head,
                iat,
            }
            .sign(&self.key)
        }

        fn follower(&self) -> RevocationFeed {
            RevocationFeed::new(BROKER, vec![*self.key.public()])
        }
    }

    const P: Policy = Policy {
        clock_skew: 60,
        pop_max_age: 60,
    };

    #[test]
    fn the_head_chains_position_and_grant() {
        let a = FeedHead::EMPTY.next(1, &grant(1));
        assert_ne!(a, FeedHead::EMPTY.next(2, &grant(1)), "the position counts");
        assert_ne!(a, FeedHead::EMPTY.next(1, &grant(2)), "the grant counts");
        assert_ne!(a.next(2, &grant(2)), FeedHead::EMPTY.next(2, &grant(2)));
        let text = a.to_string();
        assert_eq!(text.len(), 43);
        assert_eq!(text.parse::<FeedHead>().unwrap(), a);
        assert_eq!(
            FeedHead::EMPTY.to_string(),
            "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
        );
    }

    #[test]
    fn a_copy_is_current_as_of_the_latest_checkpoint_it_caught_up_to() {
        let mut broker = Broker::new();
        let mut feed = broker.follower();
        assert_eq!(feed.age(1000), None, "no checkpoint, not current");
        assert_eq!(
            feed.checkpoint(&broker.checkpoint(1000), &P, 1000),
            Ok(Checkpointed::Accepted)
        );
        assert_eq!(feed.age(1010), Some(10));
        assert_eq!(
            feed.age(990),
            Some(0),
            "a broker clock ahead within the skew"
        );

        // A revocation: the next checkpoint is ahead until the entry is read.
        broker.revoke(4, grant(1));
        assert_eq!(
            feed.checkpoint(&broker.checkpoint(1005), &P, 1005),
            Ok(Checkpointed::Ahead)
        );
        assert_eq!(feed.current().unwrap().iat, 1000, "still as of 1000");
        assert_eq!(feed.apply(4, grant(1)), Ok(true));
        assert_eq!(feed.current(), Some(Mark { seq: 4, iat: 1005 }));
        // Keep-alive checkpoints at the same position refresh it.
        assert_eq!(
            feed.checkpoint(&broker.checkpoint(1010), &P, 1010),
            Ok(Checkpointed::Accepted)
        );
        assert_eq!(feed.age(1012), Some(2));
        // A grant pushed live is revoked at once, but moves nothing.
        assert!(feed.push(grant(2)));
        assert_eq!(feed.position(), 4);
        assert!(feed.revoked().contains(&grant(2)));
    }

    #[test]
    fn a_checkpoint_read_after_later_entries_still_counts() {
        let mut broker = Broker::new();
        let mut feed = broker.follower();
        broker.revoke(1, grant(1));
        let at_one = broker.checkpoint(1000);
        broker.revoke(3, grant(2));
        for (s, g) in broker.entries.clone() {
            feed.apply(s, g).unwrap();
        }
        assert_eq!(
            feed.checkpoint(&at_one, &P, 1001),
            Ok(Checkpointed::Accepted)
        );
        assert_eq!(feed.current().unwrap().seq, 1);
        assert_eq!(
            feed.checkpoint(&broker.checkpoint(1002), &P, 1002),
            Ok(Checkpointed::Accepted)
        );
    }

    #[test]
    fn withheld_entries_leave_the_copy_behind_and_ageing() {
        let mut broker = Broker::new();
        let mut feed = broker.follower();
        feed.checkpoint(&broker.checkpoint(1000), &P, 1000).unwrap();
        broker.revoke(1, grant(1));
        // Checkpoints keep coming, but the entry never does.
        for t in 1001..1100 {
            assert_eq!(
                feed.checkpoint(&broker.checkpoint(t), &P, t),
                Ok(Checkpointed::Ahead)
            );
        }
        assert_eq!(feed.age(1100), Some(100));
    }

    #[test]
    fn a_tampered_feed_diverges_and_is_read_again() {
        let mut broker = Broker::new();
        broker.revoke(1, grant(1));
        broker.revoke(2, grant(2));
        let checkpoint = broker.checkpoint(1000);

        // An entry dropped: position 2 is reached without position 1.
        let mut feed = broker.follower();
        feed.apply(2, grant(2)).unwrap();
        assert_eq!(
            feed.checkpoint(&checkpoint, &P, 1000),
            Err(Error::FeedDiverged)
        );
        assert_eq!(feed.position(), 0, "read again from the start");
        assert_eq!(feed.age(1000), None);
        assert_eq!(
            feed.checkpoint(&checkpoint, &P, 1000),
            Ok(Checkpointed::Ahead)
        );
        feed.apply(1, grant(1)).unwrap();
        feed.apply(2, grant(2)).unwrap();
        assert_eq!(feed.current().unwrap().seq, 2, "the true feed matches");

        // An entry changed.
        let mut feed = broker.follower();
        feed.apply(1, grant(1)).unwrap();
        feed.apply(2, grant(3)).unwrap();
        assert_eq!(
            feed.checkpoint(&checkpoint, &P, 1000),
            Err(Error::FeedDiverged)
        );

        // An entry added in a gap between positions.
        let mut gappy = Broker::new();
        gappy.revoke(1, grant(1));
        gappy.revoke(3, grant(3));
        let mut feed = gappy.follower();
        feed.checkpoint(&gappy.checkpoint(1000), &P, 1000).unwrap();
        feed.apply(1, grant(1)).unwrap();
        feed.apply(2, grant(7)).unwrap();
        assert_eq!(feed.apply(3, grant(3)), Err(Error::FeedDiverged));

        // The entry at the checkpoint's position skipped, with the one
        // after it read.
        let mut feed = broker.follower();
        feed.checkpoint(&checkpoint, &P, 1000).unwrap();
        feed.apply(1, grant(1)).unwrap();
        assert_eq!(feed.apply(3, grant(2)), Err(Error::FeedDiverged));

        // Out of order.
        let mut feed = broker.follower();
        feed.apply(2, grant(2)).unwrap();
        assert_eq!(feed.apply(1, grant(1)), Err(Error::FeedDiverged));
    }

    #[test]
    fn a_checkpoint_by_another_key_or_broker_or_older_is_ignored() {
        let mut broker = Broker::new();
        let mut feed = broker.follower();
        feed.checkpoint(&broker.checkpoint(1000), &P, 1000).unwrap();

        // Another key, with this broker's name: refused, nothing changes.
        let (seq, head) = broker.head();
        let forged = CheckpointClaims {
            iss: BROKER.into(),
            seq,
            head,
            iat: 1050,
        }
        .sign(&SigningKey::from_seed(&[10; 32]));
        assert_eq!(
            feed.checkpoint(&forged, &P, 1050).unwrap_err().code(),
            "key.unknown"
        );
        // This broker's key, another broker's name.
        let elsewhere = CheckpointClaims {
            iss: "https://other.example".into(),
            seq,
            head,
            iat: 1050,
        }
        .sign(&broker.key);
        assert_eq!(
            feed.checkpoint(&elsewhere, &P, 1050).unwrap_err().code(),
            "checkpoint.rejected"
        );
        assert_eq!(feed.age(1050), Some(50), "neither refreshed the copy");

        // A newer one, then an older one replayed: the older is ignored.
        broker.revoke(1, grant(1));
        let older = broker.checkpoint(1060);
        feed.apply(1, grant(1)).unwrap();
        feed.checkpoint(&broker.checkpoint(1070), &P, 1070).unwrap();
        assert_eq!(feed.checkpoint(&older, &P, 1071), Ok(Checkpointed::Ignored));
        assert_eq!(feed.current().unwrap().iat, 1070);
        // So is one from before the revocation, even signed later.
        let before = CheckpointClaims {
            iss: BROKER.into(),
            seq: 0,
            head: FeedHead::EMPTY,
            iat: 1080,
        }
        .sign(&broker.key);
        assert_eq!(
            feed.checkpoint(&before, &P, 1080),
            Ok(Checkpointed::Ignored)
        );
        assert_eq!(feed.current().unwrap().iat, 1070);
    }
}
