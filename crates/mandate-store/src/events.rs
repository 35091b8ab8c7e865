//! The event log: one row per change, appended in the change's own
//! transaction, read back in sequence order by followers.

use sqlx::postgres::PgListener;

use crate::{Pool, Store, StoreError, on_pool};

/// The Postgres channel on which writers announce new events.
pub const CHANNEL: &str = "mandate_events";

/// Wakes when another connection announces events. On SQLite, where one
/// process owns the file, it never wakes; followers poll.
pub struct EventListener {
    inner: Option<PgListener>,
}

impl std::fmt::Debug for EventListener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventListener")
            .field("postgres", &self.inner.is_some())
            .finish()
    }
}

impl EventListener {
    /// Waits for the next announcement.
    pub async fn changed(&mut self) -> Result<(), StoreError> {
        match &mut self.inner {
            Some(listener) => {
                listener.recv().await?;
                Ok(())
            }
            None => std::future::pending().await,
        }
    }
}

/// What changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    /// A request was filed.
    RequestCreated,
    /// A request was approved or denied.
    RequestDecided,
    /// A request lapsed without a decision.
    RequestExpired,
    /// A grant was stored.
    GrantStored,
    /// Grants were revoked.
    Revoked,
    /// A receipt was stored.
    ReceiptStored,
    /// A user key binding was renewed.
    BindingStored,
    /// A user key was bound for the first time: a new device.
    KeyEnrolled,
    /// An agent asked its user to confirm a call.
    ConfirmationCreated,
    /// The user confirmed or refused a call.
    ConfirmationDecided,
}

impl EventKind {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::RequestCreated => "request.created",
            EventKind::RequestDecided => "request.decided",
            EventKind::RequestExpired => "request.expired",
            EventKind::GrantStored => "grant.stored",
            EventKind::Revoked => "revoked",
            EventKind::ReceiptStored => "receipt.stored",
            EventKind::BindingStored => "binding.stored",
            EventKind::KeyEnrolled => "key.enrolled",
            EventKind::ConfirmationCreated => "confirmation.created",
            EventKind::ConfirmationDecided => "confirmation.decided",
        }
    }

    fn parse(s: &str) -> Result<EventKind, StoreError> {
        Ok(match s {
            "request.created" => EventKind::RequestCreated,
            "request.decided" => EventKind::RequestDecided,
            "request.expired" => EventKind::RequestExpired,
            "grant.stored" => EventKind::GrantStored,
            "revoked" => EventKind::Revoked,
            "receipt.stored" => EventKind::ReceiptStored,
            "binding.stored" => EventKind::BindingStored,
            "key.enrolled" => EventKind::KeyEnrolled,
            "confirmation.created" => EventKind::ConfirmationCreated,
            "confirmation.decided" => EventKind::ConfirmationDecided,
            _ => return Err(StoreError::Corrupt("event kind")),
        })
    }
}

/// One change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// Its place in the log; strictly increasing.
    pub seq: i64,
    /// What changed.
    pub kind: EventKind,
    /// The user it concerns, if any.
    pub principal: Option<String>,
    /// The agent it concerns, if any (a thumbprint).
    pub agent: Option<String>,
    /// The id of the changed row.
    pub subject: String,
    /// When.
    pub created_at: i64,
}

#[derive(sqlx::FromRow)]
struct EventRow {
    seq: i64,
    kind: String,
    principal: Option<String>,
    agent_jkt: Option<String>,
    subject: String,
    created_at: i64,
}

/// Locks the log clock for the transaction `$tx`. Every writing
/// transaction does this first, so that transactions commit in the order
/// of the sequence numbers they draw.
macro_rules! lock_log {
    ($store:expr, $tx:expr) => {
        // SQLite writers already take turns (`Store::writing`), one at a
        // time for the whole database; only Postgres needs the row lock.
        if $store.backend() == $crate::Backend::Postgres {
            sqlx::query("UPDATE log_clock SET seq = seq WHERE id = 1")
                .execute(&mut *$tx)
                .await
                .map(|_| ())
        } else {
            Ok(())
        }
    };
}
pub(crate) use lock_log;

/// Appends an event (kind, principal, agent, subject, time) on Postgres.
pub(crate) const APPEND_POSTGRES: &str = "WITH c AS (UPDATE log_clock SET seq = seq + 1 WHERE id = 1 RETURNING seq) \
     INSERT INTO events (seq, kind, principal, agent_jkt, subject, created_at) \
     SELECT seq, $1, $2, $3, $4, $5 FROM c RETURNING seq";

/// Appends an event on SQLite; a trigger advances the clock.
pub(crate) const APPEND_SQLITE: &str = "INSERT INTO events (seq, kind, principal, agent_jkt, subject, created_at) \
     SELECT seq + 1, $1, $2, $3, $4, $5 FROM log_clock WHERE id = 1 RETURNING seq";

/// Appends an event inside the transaction `$tx` (which holds the log
/// clock) and evaluates to its sequence number. One statement: on
/// Postgres the clock advances in a CTE; on SQLite a trigger advances it
/// (migration 20261123000003).
macro_rules! append_event {
    ($store:expr, $tx:expr, $kind:expr, $principal:expr, $agent:expr, $subject:expr, $now:expr) => {
        sqlx::query_scalar::<_, i64>(if $store.backend() == $crate::Backend::Postgres {
            $crate::events::APPEND_POSTGRES
        } else {
            $crate::events::APPEND_SQLITE
        })
        .bind($crate::EventKind::as_str($kind))
        .bind($principal)
        .bind($agent)
        .bind($subject)
        .bind($now)
        .fetch_one(&mut *$tx)
        .await
    };
}
pub(crate) use append_event;

/// Appends events, one for each item of `$rows` (kind, principal, agent,
/// subject, time), inside `$tx` (which holds the log clock): one as
/// [`append_event`] does, more in two statements whatever their number,
/// the clock advancing by the number of rows and the events taking the
/// numbers it passed, in order. Evaluates to `Result<(), sqlx::Error>`.
macro_rules! append_events {
    ($store:expr, $tx:expr, $rows:expr) => {
        async {
            let mut rows: Vec<_> = $rows.collect();
            if rows.len() <= 1 {
                if let Some((kind, principal, agent, subject, now)) = rows.pop() {
                    $crate::events::append_event!(
                        $store, $tx, kind, principal, agent, subject, now
                    )?;
                }
                return Ok::<(), sqlx::Error>(());
            }
            let count = rows.len() as i64;
            // On SQLite the trigger then sets the clock to each event's
            // number in turn, ending where this leaves it.
            let last: i64 = sqlx::query_scalar(
                "UPDATE log_clock SET seq = seq + $1 WHERE id = 1 RETURNING seq",
            )
            .bind(count)
            .fetch_one(&mut *$tx)
            .await?;
            let mut insert = sqlx::QueryBuilder::new(
                "INSERT INTO events (seq, kind, principal, agent_jkt, subject, created_at) ",
            );
            insert.push_values(
                rows.into_iter().zip(last - count + 1..),
                |mut row, ((kind, principal, agent, subject, now), seq)| {
                    row.push_bind(seq)
                        .push_bind($crate::EventKind::as_str(kind))
                        .push_bind(principal)
                        .push_bind(agent)
                        .push_bind(subject)
                        .push_bind(now);
                },
            );
            insert.build().execute(&mut *$tx).await?;
            Ok(())
        }
        .await
    };
}
pub(crate) use append_events;

impl Store {
    /// Events after `after`, oldest first, at most `limit`.
    pub async fn events_since(&self, after: i64, limit: i64) -> Result<Vec<Event>, StoreError> {
        let rows: Vec<EventRow> = on_pool!(self, pool => {
            sqlx::query_as(
                "SELECT seq, kind, principal, agent_jkt, subject, created_at FROM events \
                 WHERE seq > $1 ORDER BY seq LIMIT $2",
            )
            .bind(after)
            .bind(limit)
            .fetch_all(pool)
            .await?
        });
        rows.into_iter()
            .map(|r| {
                Ok(Event {
                    seq: r.seq,
                    kind: EventKind::parse(&r.kind)?,
                    principal: r.principal,
                    agent: r.agent_jkt,
                    subject: r.subject,
                    created_at: r.created_at,
                })
            })
            .collect()
    }

    /// Tells every listener, on every instance, that events were written.
    /// A no-op on SQLite.
    pub async fn announce(&self) -> Result<(), StoreError> {
        if let Pool::Postgres(pool) = &self.pool {
            sqlx::query("SELECT pg_notify($1, '')")
                .bind(CHANNEL)
                .execute(pool)
                .await?;
        }
        Ok(())
    }

    /// A listener for announcements (see [`Store::announce`]).
    pub async fn listen(&self) -> Result<EventListener, StoreError> {
        match &self.pool {
            Pool::Postgres(pool) => {
                let mut listener = PgListener::connect_with(pool).await?;
                listener.listen(CHANNEL).await?;
                Ok(EventListener {
                    inner: Some(listener),
                })
            }
            Pool::Sqlite(_) => Ok(EventListener { inner: None }),
        }
    }

    /// The sequence number of the newest event, or 0.
    pub async fn last_event(&self) -> Result<i64, StoreError> {
        let seq: Option<i64> = on_pool!(self, pool => {
            sqlx::query_scalar("SELECT MAX(seq) FROM events").fetch_one(pool).await?
        });
        Ok(seq.unwrap_or(0))
    }
}
