//! The embedded store: one SQLite file, WAL journal, `synchronous = FULL` so a committed row
//! survives a power cut. The logic is [`SqlStore`]'s; this file opens the file and says how
//! SQLite differs.

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteQueryResult,
    SqliteSynchronous,
};
use sqlx::{Pool, Sqlite, Transaction};

use super::StoreError;
use super::sql::{Dialect, RECORD_SELECT, SqlStore};

/// SQLite-backed [`super::Store`].
pub type SqliteStore = SqlStore<Sqlite>;

/// The SQLite schema (users, sessions, clients, audit).
static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");

impl SqlStore<Sqlite> {
    /// Opens (creating if missing) and migrates the database at `url` (`sqlite://PATH`).
    pub async fn open(url: &str) -> Result<SqliteStore, StoreError> {
        let connect_error = |source| StoreError::Connect {
            url: url.to_string(),
            source,
        };
        let options = SqliteConnectOptions::from_str(url)
            .map_err(connect_error)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(5));
        // sqlx's migration lock is a no-op on SQLite, so two processes opening a fresh file at
        // once (the server and `stamp users add`) would both run migration 1. A lock file next to
        // the database serialises opening across processes.
        let lock = migration_lock(options.get_filename()).await?;
        let pool = SqlitePoolOptions::new()
            .max_connections(8)
            .connect_with(options)
            .await
            .map_err(connect_error)?;
        MIGRATOR
            .run(&pool)
            .await
            .map_err(|source| StoreError::Migrate {
                url: url.to_string(),
                source,
            })?;
        drop(lock);
        Ok(SqlStore::on(pool))
    }
}

/// Takes an exclusive lock on `<database>.lock` (released when the file is dropped). In-memory
/// databases need none.
async fn migration_lock(db: &Path) -> Result<Option<std::fs::File>, StoreError> {
    let name = db.as_os_str();
    if name.is_empty() || name == ":memory:" {
        return Ok(None);
    }
    let mut path = db.as_os_str().to_owned();
    path.push(".lock");
    let path = PathBuf::from(path);
    let locked = path.clone();
    let lock = tokio::task::spawn_blocking(move || {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(false)
            .open(&path)?;
        file.lock()?;
        Ok(file)
    })
    .await
    .map_err(std::io::Error::other)
    .and_then(|opened| opened);
    match lock {
        Ok(file) => Ok(Some(file)),
        Err(source) => Err(StoreError::Lock {
            path: locked,
            source,
        }),
    }
}

impl Dialect for Sqlite {
    /// JSON text: `["admin","ops"]`.
    type List = String;

    /// `BEGIN IMMEDIATE` ([`Dialect::begin_write`]) already holds the database's write lock, so
    /// the plain read decides; the owner is joined leniently, as [`judge`] turns a missing owner
    /// into a refusal.
    ///
    /// [`judge`]: crate::tokens::refresh::judge
    const REFRESH_LOCK: &'static str = RECORD_SELECT;

    const DENY_UPSERT: &'static str = "INSERT INTO access_denylist (jti, expires_at)
         VALUES ($1, $2)
         ON CONFLICT (jti) DO UPDATE SET expires_at = MAX(expires_at, excluded.expires_at)";

    /// SQLite's default collation (`BINARY`) is the byte order already.
    const BYTE_ORDER: &'static str = "";

    fn to_list(items: &[String], column: &'static str) -> Result<String, StoreError> {
        serde_json::to_string(items).map_err(|e| StoreError::Encode {
            column,
            source: Box::new(e),
        })
    }

    fn from_list(stored: String, column: &'static str) -> Result<Vec<String>, StoreError> {
        serde_json::from_str(&stored).map_err(|e| StoreError::Corrupt {
            column,
            source: Box::new(e),
        })
    }

    fn rows_affected(result: &SqliteQueryResult) -> u64 {
        result.rows_affected()
    }

    /// `BEGIN IMMEDIATE` takes the write lock first, so a racing refresh waits (busy timeout)
    /// for this one to commit and then reads the token as spent, instead of failing to upgrade
    /// a stale read snapshot.
    async fn begin_write(pool: &Pool<Sqlite>) -> Result<Transaction<'static, Sqlite>, sqlx::Error> {
        pool.begin_with("BEGIN IMMEDIATE").await
    }
}
