//! mandate-store is Mandate's persistence, through sqlx, on SQLite (the
//! default, one file) or Postgres (a broker that outgrows one machine).
//!
//! It holds the broker's key bindings, requests and their decisions,
//! grants, revocations, receipts and idempotency keys. Every change also
//! appends an [`Event`] in the same transaction; followers (SSE streams,
//! other broker instances) resume from an event's sequence number.
//!
//! It depends on mandate-core for its id types and on sqlx; nothing in it
//! verifies a token. Callers store only what they have verified. Each
//! backend has its own migrations under `migrations/`; the SQL of the
//! queries is shared, with `$n` placeholders, which both backends read.
//!
//! Terms: a *principal* is a user (`sub` of the grants); an *agent* is
//! named by its key thumbprint (`jkt`); times are Unix seconds.

#![forbid(unsafe_code)]

mod batch;
mod bindings;
mod blocks;
mod confirmations;
mod error;
mod events;
mod grants;
mod idempotency;
mod proofs;
mod receipts;
mod requests;
mod revocations;

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};

pub use bindings::{Binding, BindingPut};
pub use blocks::{BlockRecord, NewBlock};
pub use confirmations::ConfirmationRecord;
pub use error::StoreError;
pub use events::{Event, EventKind, EventListener};
pub use grants::GrantRecord;
pub use idempotency::Idempotency;
pub use receipts::ReceiptRecord;
pub use requests::{Lane, NewRequest, RequestRecord, RequestStatus};
pub use revocations::{RevocationRecord, RevokedGrant, Withdrawn};

/// How long a SQLite writer waits for the lock before giving up.
pub const SQLITE_BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// The broker's storage, on either backend.
#[derive(Debug, Clone)]
pub struct Store {
    pool: Pool,
    /// SQLite allows one writer at a time. Write transactions queue here,
    /// in the process, rather than spinning in SQLite's busy handler,
    /// which sleeps for milliseconds at a time under contention.
    writer: Arc<tokio::sync::Mutex<()>>,
    /// Where filed requests go to be stored together.
    batch: tokio::sync::mpsc::Sender<batch::Job>,
}

#[derive(Debug, Clone)]
enum Pool {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

/// Runs `$body` with `$pool` bound to the backend's pool. The body is
/// compiled once per backend, so the same SQL text serves both.
macro_rules! on_pool {
    ($store:expr, $pool:ident => $body:expr) => {
        match &$store.pool {
            $crate::Pool::Sqlite($pool) => $body,
            $crate::Pool::Postgres($pool) => $body,
        }
    };
}
pub(crate) use on_pool;

/// Which database a [`Store`] runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// A SQLite file, in WAL mode.
    Sqlite,
    /// A Postgres server.
    Postgres,
}

impl Store {
    /// Opens the database at `url` (`sqlite://path` or `postgres://...`),
    /// creating a SQLite file if needed, and applies the migrations.
    ///
    /// SQLite runs in WAL mode with `synchronous = NORMAL`, foreign keys on,
    /// temporary files in memory, and a busy timeout of
    /// [`SQLITE_BUSY_TIMEOUT`].
    pub async fn connect(url: &str) -> Result<Store, StoreError> {
        let pool = if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            let options = PgConnectOptions::from_str(url).map_err(StoreError::from_connect)?;
            let pool = PgPoolOptions::new()
                .max_connections(16)
                .acquire_timeout(Duration::from_secs(10))
                .connect_with(options)
                .await
                .map_err(StoreError::from_connect)?;
            sqlx::migrate!("./migrations/postgres")
                .run(&pool)
                .await
                .map_err(StoreError::Migrate)?;
            Pool::Postgres(pool)
        } else if url.starts_with("sqlite:") {
            let options = SqliteConnectOptions::from_str(url)
                .map_err(StoreError::from_connect)?
                .create_if_missing(true)
                .journal_mode(SqliteJournalMode::Wal)
                .synchronous(SqliteSynchronous::Normal)
                .foreign_keys(true)
                .busy_timeout(SQLITE_BUSY_TIMEOUT)
                // Read pages through a shared mapping rather than a copy
                // per connection and per read.
                .pragma("mmap_size", "268435456")
                // Temporary files in memory. A statement that writes many
                // rows within a transaction (a witness report's receipts,
                // 100 rows in one INSERT) keeps a statement journal, a copy
                // of each page it changes, to undo itself alone; past 64
                // KiB SQLite spilled it to a file in /var/tmp, created,
                // written a page at a time and deleted per statement: some
                // 40 % of the broker's `pwrite` calls under witness reports
                // (docs/benchmarks.md, "CPU a call, and three changes"). The
                // journal lives only as long as its statement, and the
                // write-ahead log, not it, is what makes a commit durable.
                .pragma("temp_store", "memory");
            let pool = SqlitePoolOptions::new()
                .max_connections(8)
                // A local file does not drop connections; a ping per
                // acquire would cost a thread round trip per query.
                .test_before_acquire(false)
                .acquire_timeout(Duration::from_secs(10))
                .connect_with(options)
                .await
                .map_err(StoreError::from_connect)?;
            sqlx::migrate!("./migrations/sqlite")
                .run(&pool)
                .await
                .map_err(StoreError::Migrate)?;
            Pool::Sqlite(pool)
        } else {
            return Err(StoreError::UnsupportedUrl);
        };
        let writer = Arc::default();
        let batch = batch::start(pool.clone(), Arc::clone(&writer));
        Ok(Store {
            pool,
            writer,
            batch,
        })
    }

    /// Waits for this process's turn to write, on SQLite; Postgres needs no
    /// turn (its transactions serialize on the log clock's row lock).
    pub(crate) async fn writing(&self) -> Option<tokio::sync::MutexGuard<'_, ()>> {
        match self.pool {
            Pool::Sqlite(_) => Some(self.writer.lock().await),
            Pool::Postgres(_) => None,
        }
    }

    /// Which database this store runs on.
    pub fn backend(&self) -> Backend {
        match self.pool {
            Pool::Sqlite(_) => Backend::Sqlite,
            Pool::Postgres(_) => Backend::Postgres,
        }
    }

    /// The Postgres pool, for LISTEN/NOTIFY; `None` on SQLite.
    pub fn postgres_pool(&self) -> Option<&PgPool> {
        match &self.pool {
            Pool::Postgres(pool) => Some(pool),
            Pool::Sqlite(_) => None,
        }
    }

    /// Closes every connection.
    pub async fn close(&self) {
        on_pool!(self, pool => pool.close().await)
    }
}
