//! The embedded store: one SQLite file, WAL journal, `synchronous = FULL` so a committed row
//! survives a power cut. The logic is [`SqlStore`]'s; this file opens the file and says how
//! SQLite differs.
//!
//! The database holds password hashes and the audit log, so its files are private (mode 0600)
//! whatever the umask: the file is created 0600 before SQLite opens it (SQLite gives its `-wal`
//! and `-shm` files the database file's mode), and existing files with looser modes, from an
//! older version or another tool, are tightened at every open.

use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteQueryResult,
    SqliteSynchronous,
};
use sqlx::{Connection, Executor, Pool, Sqlite, Transaction};

use super::sql::{Dialect, RECORD_SELECT, SqlStore};
use super::{PoolSettings, StoreError};

/// SQLite-backed [`super::Store`].
pub type SqliteStore = SqlStore<Sqlite>;

/// The SQLite schema (users, sessions, clients, audit).
static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");

impl SqlStore<Sqlite> {
    /// Opens (creating if missing) and migrates the database at `url` (`sqlite://PATH`) with
    /// the default pool settings.
    pub async fn open(url: &str) -> Result<SqliteStore, StoreError> {
        SqliteStore::open_with(url, &PoolSettings::default()).await
    }

    /// [`SqliteStore::open`] with the pool settings `settings` (the acquire timeout bounds a
    /// request's wait; SQLite's own busy timeout bounds a wait for another writer).
    pub async fn open_with(url: &str, settings: &PoolSettings) -> Result<SqliteStore, StoreError> {
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
        let file = options.get_filename().to_path_buf();
        let lock = migration_lock(&file).await?;
        create_private(&file);
        let pool = SqlitePoolOptions::new()
            .max_connections(settings.max_connections.min(8))
            .acquire_timeout(settings.acquire_timeout)
            // A transaction whose write failed on a read-only file or a full disk is rolled back
            // by SQLite itself; sqlx's own ROLLBACK then fails and leaves its transaction count
            // at one, so every later BEGIN on that connection would fail (a 500 after the disk
            // is writable again). Such a connection is closed instead of reused.
            .before_acquire(|conn, _| Box::pin(async move { Ok(!conn.is_in_transaction()) }))
            // SQLite opens a file it may not write (made read-only under a running server)
            // read-only without a word, and such a connection would refuse every write for the
            // rest of its life, also once the file is writable again. Taking the write lock and
            // releasing it at once (nothing is written) tells: such a connection is not kept,
            // and the request waits at most the acquire timeout for a usable one (then `503`).
            .after_connect(|conn, _| {
                Box::pin(async move {
                    conn.execute("BEGIN IMMEDIATE").await?;
                    conn.execute("ROLLBACK").await?;
                    Ok(())
                })
            })
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
        make_private(&file).await?;
        drop(lock);
        Ok(SqlStore::on(pool))
    }
}

/// Creates the database file with mode 0600 if it is missing, so that SQLite, which gives its
/// `-wal` and `-shm` files the database file's mode, never makes a readable one. Best effort:
/// if the file cannot be created here, SQLite's own attempt reports why.
fn create_private(db: &Path) {
    let name = db.as_os_str();
    if name.is_empty() || name == ":memory:" {
        return;
    }
    let _ = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(db);
}

/// Tightens the database file, its `-wal`, `-shm` and `-journal` files and its lock file to
/// 0600 where they are looser (files from an older version, another tool, a loose umask).
/// In-memory databases have no files.
async fn make_private(db: &Path) -> Result<(), StoreError> {
    let name = db.as_os_str();
    if name.is_empty() || name == ":memory:" {
        return Ok(());
    }
    let db = db.to_path_buf();
    let failed = tokio::task::spawn_blocking(move || -> Result<(), (PathBuf, std::io::Error)> {
        for suffix in ["", "-wal", "-shm", "-journal", ".lock"] {
            let mut path = db.as_os_str().to_owned();
            path.push(suffix);
            let path = PathBuf::from(path);
            let mode = match std::fs::metadata(&path) {
                Ok(meta) => meta.permissions().mode() & 0o777,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err((path, e)),
            };
            if mode & 0o077 != 0 {
                std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode & 0o600))
                    .map_err(|e| (path, e))?;
            }
        }
        Ok(())
    })
    .await;
    match failed {
        Ok(Ok(())) => Ok(()),
        Ok(Err((path, source))) => Err(StoreError::Private { path, source }),
        Err(join) => Err(StoreError::Private {
            path: PathBuf::from(name),
            source: std::io::Error::other(join),
        }),
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
            .mode(0o600)
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

    /// A read succeeds on a file that can no longer be written (made read-only, a full disk),
    /// while every login and refresh writes. So readiness writes too: the header's
    /// `user_version` (unused by sqlx's migrations, always 0 here), one write-ahead-log frame
    /// and one fsync, failing as the grants would.
    const PING: &'static str = "PRAGMA user_version = 0";

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
