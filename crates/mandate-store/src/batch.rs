//! Group commit for filed requests.
//!
//! Filing a request is the broker's hottest write. On SQLite each commit
//! writes every page it touched to the WAL, and the writers take turns; on
//! Postgres every writing transaction takes the log clock's row lock, so
//! they take turns too, one commit (and one WAL flush) each. So requests
//! filed at the same moment are stored together: one task takes
//! whatever is queued (up to [`MAX_BATCH`]), stores each in one
//! transaction, and answers each caller with its own outcome. A request
//! arriving when nothing is queued is stored at once, alone. Each request
//! is decided exactly as [`crate::Store::insert_request`] documents: a
//! replay is a conflict, a full inbox is refused, and neither leaves a
//! trace. A database failure fails the whole batch, and nothing of it is
//! stored.

use std::sync::Arc;

use tokio::sync::{Mutex, mpsc, oneshot};

use crate::events::{APPEND_POSTGRES, APPEND_SQLITE};
use crate::requests::{COUNT_BOTH, UNCOUNT, counters};
use crate::{EventKind, NewRequest, Pool, StoreError};

/// The most requests stored in one transaction.
pub const MAX_BATCH: usize = 256;

/// A request to store, owned so that it can cross to the batch task.
pub(crate) struct Job {
    id: String,
    agent: String,
    principal: String,
    token: String,
    parent_chain: String,
    parent_keys: String,
    created_at: i64,
    expires_at: i64,
    lane: &'static str,
    sponsor: String,
    max_pending: i64,
    max_pending_per_agent: i64,
    reply: oneshot::Sender<Result<i64, StoreError>>,
}

impl Job {
    pub(crate) fn new(r: &NewRequest<'_>) -> (Job, oneshot::Receiver<Result<i64, StoreError>>) {
        let (reply, answer) = oneshot::channel();
        let job = Job {
            id: r.id.to_string(),
            agent: r.agent.to_string(),
            principal: r.principal.as_str().to_owned(),
            token: r.token.to_owned(),
            parent_chain: r.parent_chain.join("\n"),
            parent_keys: r.parent_keys.to_owned(),
            created_at: r.created_at,
            expires_at: r.expires_at,
            lane: r.lane.as_str(),
            sponsor: r.sponsor.to_string(),
            max_pending: r.max_pending,
            max_pending_per_agent: r.max_pending_per_agent,
            reply,
        };
        (job, answer)
    }
}

/// Starts the batch task; it ends when every sender is dropped. On
/// SQLite it takes the process's write turn (`writer`) for each batch.
pub(crate) fn start(pool: Pool, writer: Arc<Mutex<()>>) -> mpsc::Sender<Job> {
    let (tx, mut rx) = mpsc::channel::<Job>(4 * MAX_BATCH);
    tokio::spawn(async move {
        let mut batch = Vec::with_capacity(MAX_BATCH);
        while rx.recv_many(&mut batch, MAX_BATCH).await > 0 {
            let outcome = match &pool {
                Pool::Sqlite(p) => {
                    let _turn = writer.lock().await;
                    store!(p, &batch, None::<&str>, None::<&str>, APPEND_SQLITE)
                }
                // The row lock on the log clock orders the writers.
                Pool::Postgres(p) => store!(
                    p,
                    &batch,
                    Some("UPDATE log_clock SET seq = seq WHERE id = 1"),
                    Some(FILE_POSTGRES),
                    APPEND_POSTGRES
                ),
            };
            match outcome {
                Ok(results) => {
                    for (job, result) in batch.drain(..).zip(results) {
                        let _ = job.reply.send(result);
                    }
                }
                Err(e) => {
                    // The first caller gets the cause, for its logs; all
                    // learn that nothing of the batch was stored.
                    let mut cause = Some(e);
                    for job in batch.drain(..) {
                        let _ = job
                            .reply
                            .send(Err(cause.take().unwrap_or(StoreError::Batch)));
                    }
                }
            }
        }
    });
    tx
}

/// Takes one off a pending counter inside `$tx`.
macro_rules! uncount {
    ($tx:expr, $counter:expr) => {
        sqlx::query(UNCOUNT)
            .bind(1_i64)
            .bind($counter)
            .execute(&mut *$tx)
            .await
            .map(|_| ())
    };
}

/// Binds a job's request columns, in [`INSERT`]'s order, to `$query`.
macro_rules! bind_request {
    ($query:expr, $j:expr) => {
        $query
            .bind(&$j.id)
            .bind(&$j.agent)
            .bind(&$j.principal)
            .bind(&$j.token)
            .bind(&$j.parent_chain)
            .bind(&$j.parent_keys)
            .bind($j.created_at)
            .bind($j.expires_at)
            .bind($j.lane)
            .bind(&$j.sponsor)
    };
}

/// Stores a request, unless its id is taken.
const INSERT: &str = "INSERT INTO requests (id, agent_jkt, principal, token, parent_chain, parent_keys, status, created_at, expires_at, lane, sponsor_jkt) \
     VALUES ($1, $2, $3, $4, $5, $6, 'pending', $7, $8, $9, $10) ON CONFLICT (id) DO NOTHING";

/// On Postgres, [`INSERT`] and its event (kind `$11`) in one statement:
/// returns the event's number, or no row when the id is taken.
const FILE_POSTGRES: &str = "WITH r AS (INSERT INTO requests (id, agent_jkt, principal, token, parent_chain, parent_keys, status, created_at, expires_at, lane, sponsor_jkt) \
     VALUES ($1, $2, $3, $4, $5, $6, 'pending', $7, $8, $9, $10) ON CONFLICT (id) DO NOTHING RETURNING id), \
     c AS (UPDATE log_clock SET seq = seq + 1 WHERE id = 1 AND EXISTS (SELECT 1 FROM r) RETURNING seq) \
     INSERT INTO events (seq, kind, principal, agent_jkt, subject, created_at) \
     SELECT seq, $11, $3, $2, $1, $7 FROM c RETURNING seq";

/// Stores `$jobs` in one transaction on `$pool`, first running `$lock`
/// (if any), filing each request with `$file` if given, else inserting it
/// and appending its event with `$append`; evaluates to each job's own
/// result, or to the error that failed them all.
macro_rules! store {
    ($pool:expr, $jobs:expr, $lock:expr, $file:expr, $append:expr) => {
        async {
            let mut tx = $pool.begin().await?;
            if let Some(lock) = $lock {
                sqlx::query(lock).execute(&mut *tx).await?;
            }
            let mut results = Vec::with_capacity($jobs.len());
            for j in $jobs.iter() {
                let [lane, agent] = counters(j.lane, &j.sponsor, &j.principal);
                if j.max_pending <= 0 || j.max_pending_per_agent <= 0 {
                    results.push(Err(StoreError::Full));
                    continue;
                }
                let counted: Vec<String> = sqlx::query_scalar(COUNT_BOTH)
                    .bind(&lane)
                    .bind(&agent)
                    .bind(j.max_pending)
                    .bind(j.max_pending_per_agent)
                    .fetch_all(&mut *tx)
                    .await?;
                if counted.len() < 2 {
                    // Give back the one counter that had room, if any.
                    for counter in &counted {
                        uncount!(tx, counter)?;
                    }
                    results.push(Err(StoreError::Full));
                    continue;
                }
                let seq: Option<i64> = match $file {
                    // One statement: the request and its event.
                    Some(file) => {
                        bind_request!(sqlx::query_scalar::<_, i64>(file), j)
                            .bind(EventKind::RequestCreated.as_str())
                            .fetch_optional(&mut *tx)
                            .await?
                    }
                    None => {
                        let stored = bind_request!(sqlx::query(INSERT), j)
                            .execute(&mut *tx)
                            .await?
                            .rows_affected();
                        if stored == 0 {
                            None
                        } else {
                            Some(
                                sqlx::query_scalar::<_, i64>($append)
                                    .bind(EventKind::RequestCreated.as_str())
                                    .bind(&j.principal)
                                    .bind(&j.agent)
                                    .bind(&j.id)
                                    .bind(j.created_at)
                                    .fetch_one(&mut *tx)
                                    .await?,
                            )
                        }
                    }
                };
                let Some(seq) = seq else {
                    // Filed before: a replay, refused, and counted once.
                    uncount!(tx, &lane)?;
                    uncount!(tx, &agent)?;
                    results.push(Err(StoreError::Conflict));
                    continue;
                };
                results.push(Ok(seq));
            }
            tx.commit().await?;
            Ok::<_, StoreError>(results)
        }
        .await
    };
}
use {bind_request, store, uncount};
