//! Why a store operation failed. Each variant keeps its cause (`#[source]`), so a log line or a
//! caller can tell a refused connection from a failed migration or a corrupt row.

use std::path::PathBuf;

/// A storage failure.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// A unique key is taken: the named thing (`user alice`, `client billing`) already exists.
    #[error("{0} already exists")]
    Conflict(String),
    /// Nothing matched: the named thing (`user alice`, `client billing`) is not stored.
    #[error("{0} not found")]
    NotFound(String),
    /// `database_url` names a database this build has no backend for.
    #[error("invalid setting `database_url`: unsupported database {url:?}")]
    UnsupportedDatabase {
        /// The URL with its password hidden.
        url: String,
    },
    /// `database_url` does not parse, or the database cannot be reached, opened or created.
    #[error("invalid setting `database_url`: {url}: {source}")]
    Connect {
        /// The URL with its password hidden.
        url: String,
        #[source]
        source: sqlx::Error,
    },
    /// The schema could not be brought up to date.
    #[error("invalid setting `database_url`: {url}: migration failed: {source}")]
    Migrate {
        /// The URL with its password hidden (`existing pool` when migrating a given pool).
        url: String,
        #[source]
        source: sqlx::migrate::MigrateError,
    },
    /// The lock file that serialises opening one SQLite file across processes failed.
    #[error("invalid setting `database_url`: {}: {source}", path.display())]
    Lock {
        /// `<database>.lock`.
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The SQLite file (or its `-wal`, `-shm` or lock file) could not be created or made
    /// private (mode 0600).
    #[error("invalid setting `database_url`: cannot make {} private (0600): {source}", path.display())]
    Private {
        /// The file.
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A statement or a transaction failed.
    #[error("database error: {0}")]
    Query(#[from] sqlx::Error),
    /// A stored value does not decode into what the schema promises (a hand-edited row).
    #[error("database error: {column} holds an invalid value: {source}")]
    Corrupt {
        /// `table.column`.
        column: &'static str,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// A value could not be encoded for storage.
    #[error("database error: cannot encode {column}: {source}")]
    Encode {
        /// `table.column`.
        column: &'static str,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

/// Maps an insert's failure: a unique-key violation means `what` already exists.
pub(super) fn insert_error(e: sqlx::Error, what: impl FnOnce() -> String) -> StoreError {
    match &e {
        sqlx::Error::Database(db) if db.is_unique_violation() => StoreError::Conflict(what()),
        _ => StoreError::Query(e),
    }
}
