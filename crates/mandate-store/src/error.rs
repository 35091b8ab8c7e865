//! The store's errors. They carry no SQL and no row contents; the database
//! driver's error is kept for logs only.

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// A row with the same key exists (an id, or an idempotency key).
    #[error("already exists")]
    Conflict,
    /// The principal already has as many pending requests as allowed.
    #[error("too many pending requests")]
    Full,
    /// The row does not exist.
    #[error("not found")]
    NotFound,
    /// The database URL names no supported backend.
    #[error("database URL must start with sqlite: or postgres://")]
    UnsupportedUrl,
    /// A stored value no longer parses (an id, a status): the database was edited.
    #[error("stored data is corrupt: {0}")]
    Corrupt(&'static str),
    /// The database could not be reached or opened.
    #[error("cannot connect to the database")]
    Connect(#[source] sqlx::Error),
    /// A migration failed.
    #[error("database migration failed")]
    Migrate(#[source] sqlx::migrate::MigrateError),
    /// The batch this write was stored with failed (another caller got
    /// the cause); nothing of it was stored.
    #[error("database error in a batched write")]
    Batch,
    /// The store was closed.
    #[error("the store is closed")]
    Closed,
    /// Any other database failure.
    #[error("database error")]
    Database(#[source] sqlx::Error),
}

impl StoreError {
    pub(crate) fn from_connect(e: sqlx::Error) -> StoreError {
        StoreError::Connect(e)
    }

    /// A stable code for the wire and the UI.
    pub fn code(&self) -> &'static str {
        match self {
            StoreError::Conflict => "store.conflict",
            StoreError::Full => "store.full",
            StoreError::NotFound => "store.not_found",
            StoreError::UnsupportedUrl => "store.unsupported_url",
            StoreError::Corrupt(_) => "store.corrupt",
            StoreError::Connect(_) => "store.unavailable",
            StoreError::Migrate(_) => "store.migration_failed",
            StoreError::Database(_) | StoreError::Batch => "store.database",
            StoreError::Closed => "store.closed",
        }
    }
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> StoreError {
        match &e {
            sqlx::Error::Database(db) if db.is_unique_violation() => StoreError::Conflict,
            sqlx::Error::RowNotFound => StoreError::NotFound,
            _ => StoreError::Database(e),
        }
    }
}

/// Parses a stored id or thumbprint, reporting a corrupt row if it does not parse.
pub(crate) fn parse<T: std::str::FromStr>(text: &str, what: &'static str) -> Result<T, StoreError> {
    text.parse().map_err(|_| StoreError::Corrupt(what))
}
