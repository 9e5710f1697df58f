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
    /// The database server did not answer at start-up (down, wrong host or port, firewall).
    #[error("cannot reach the database at {address} (setting `database_url`): {source}")]
    Unreachable {
        /// `HOST:PORT` (or the socket path).
        address: String,
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

impl StoreError {
    /// Whether the database is out of reach (down, restarting, no connection free within the
    /// acquire timeout, a read-only or full SQLite file) rather than refusing this request: the
    /// answer is `503` with `Retry-After`, and a retry may succeed.
    pub fn is_unavailable(&self) -> bool {
        match self {
            StoreError::Query(e) => is_unavailable(e),
            StoreError::Unreachable { .. } => true,
            _ => false,
        }
    }
}

/// Whether `e` means the database cannot be used right now (see [`StoreError::is_unavailable`]).
pub fn is_unavailable(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::WorkerCrashed => true,
        sqlx::Error::Database(db) => db.code().is_some_and(|code| unavailable_code(&code)),
        _ => false,
    }
}

/// PostgreSQL SQLSTATEs of a lost or refused connection (class 08, shutdown and start-up in
/// 57P01-57P03, too many connections 53300, read-only transaction 25006) and SQLite result codes
/// of a file that cannot be written now (BUSY 5, LOCKED 6, READONLY 8, IOERR 10, FULL 13,
/// CANTOPEN 14, with their extended codes, whose low byte is the primary code).
fn unavailable_code(code: &str) -> bool {
    if code.starts_with("08") || matches!(code, "57P01" | "57P02" | "57P03" | "53300" | "25006") {
        return true;
    }
    code.parse::<u32>()
        .is_ok_and(|n| matches!(n & 0xff, 5 | 6 | 8 | 10 | 13 | 14))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outages_are_told_from_refusals() {
        assert!(StoreError::Query(sqlx::Error::PoolTimedOut).is_unavailable());
        assert!(
            StoreError::Query(sqlx::Error::Io(std::io::Error::other("reset"))).is_unavailable()
        );
        assert!(!StoreError::Query(sqlx::Error::RowNotFound).is_unavailable());
        assert!(!StoreError::Conflict("user a".into()).is_unavailable());
        assert!(unavailable_code("08006") && unavailable_code("57P01"));
        assert!(unavailable_code("8") && unavailable_code("1032") && unavailable_code("13"));
        assert!(!unavailable_code("23505") && !unavailable_code("2067"));
    }
}
