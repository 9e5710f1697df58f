//! The scale-out store: PostgreSQL, shared by every replica. The logic is [`SqlStore`]'s; this
//! file connects, migrates the store's tables, and says how PostgreSQL differs: the refresh race
//! is decided by row locks (`SELECT … FOR UPDATE`) plus a conditional update, so two replicas
//! presenting one token at once cannot both win.
//!
//! Migrations: this module owns `migrations/postgres/store` (users, sessions, clients, audit);
//! the database key store owns `migrations/postgres/keys` ([`crate::keys::PgKeyStore`]). Both
//! record themselves in sqlx's one `_sqlx_migrations` table, so each migrator ignores the
//! other's versions, and a new migration takes the next number free in *both* directories.
//! The files and their numbers are those of the single directory before the split, so an
//! existing database sees the same versions and checksums.

use std::str::FromStr;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions, PgQueryResult};
use sqlx::{ConnectOptions, Connection, PgPool, Pool, Postgres, Transaction};

use super::sql::{Dialect, SqlStore, refresh_read};
use super::{PoolSettings, StoreError, is_unavailable};

/// PostgreSQL-backed [`super::Store`]. Its pool can be shared with the database key store.
pub type PgStore = SqlStore<Postgres>;

impl SqlStore<Postgres> {
    /// Connects to `url` (`postgres://…` or `postgresql://…`) with the default pool settings
    /// and runs the store's migrations (concurrent starts of replicas are serialised by sqlx's
    /// advisory lock).
    pub async fn open(url: &str) -> Result<PgStore, StoreError> {
        PgStore::open_with(url, &PoolSettings::default()).await
    }

    /// [`PgStore::open`] with the pool settings `settings`.
    pub async fn open_with(url: &str, settings: &PoolSettings) -> Result<PgStore, StoreError> {
        let shown = redact(url);
        let connect_error = |source| StoreError::Connect {
            url: shown.clone(),
            source,
        };
        let options = PgConnectOptions::from_str(url).map_err(connect_error)?;
        let address = match options.get_socket() {
            Some(socket) => socket.display().to_string(),
            None => format!("{}:{}", options.get_host(), options.get_port()),
        };
        let unreachable = |source| StoreError::Unreachable {
            address: address.clone(),
            source,
        };
        // One direct attempt first: a wrong host or port fails start-up at once, where the pool
        // would retry until its acquire timeout. A server that never answers (a dropped packet)
        // is given the acquire timeout, at least five seconds.
        let wait = settings.acquire_timeout.max(Duration::from_secs(5));
        let probe = match tokio::time::timeout(wait, options.connect()).await {
            Ok(Ok(probe)) => probe,
            Ok(Err(e)) if is_unavailable(&e) => return Err(unreachable(e)),
            Ok(Err(e)) => return Err(connect_error(e)),
            Err(_) => return Err(unreachable(sqlx::Error::PoolTimedOut)),
        };
        probe.close().await.map_err(connect_error)?;
        let pool = PgPoolOptions::new()
            .max_connections(settings.max_connections)
            .acquire_timeout(settings.acquire_timeout)
            .connect_with(options)
            .await
            .map_err(unreachable)?;
        migrate(&pool).await.map_err(|source| StoreError::Migrate {
            url: shown.clone(),
            source,
        })?;
        Ok(SqlStore::on(pool))
    }

    /// A store on an existing pool, migrated here.
    pub async fn from_pool(pool: PgPool) -> Result<PgStore, StoreError> {
        migrate(&pool).await.map_err(|source| StoreError::Migrate {
            url: "existing pool".into(),
            source,
        })?;
        Ok(SqlStore::on(pool))
    }
}

/// Brings the store's tables up to date; the key store's versions in the same history are left
/// to it.
async fn migrate(pool: &PgPool) -> Result<(), sqlx::migrate::MigrateError> {
    let mut migrator = sqlx::migrate!("./migrations/postgres/store");
    migrator.set_ignore_missing(true);
    migrator.run(pool).await
}

/// `url` with its password (if any) replaced, for error messages and logs: the user-info
/// password and the value of every query parameter whose name contains `password`.
pub fn redact(url: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (url, None),
    };
    let mut shown = redact_userinfo(base);
    if let Some(query) = query {
        let pairs: Vec<String> = query
            .split('&')
            .map(|pair| match pair.split_once('=') {
                Some((name, _)) if name.to_ascii_lowercase().contains("password") => {
                    format!("{name}=<hidden>")
                }
                _ => pair.to_string(),
            })
            .collect();
        shown.push('?');
        shown.push_str(&pairs.join("&"));
    }
    shown
}

/// `scheme://user:PASSWORD@host…` with the password hidden.
fn redact_userinfo(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let authority_end = rest.find('/').unwrap_or(rest.len());
    let Some(at) = rest[..authority_end].rfind('@') else {
        return url.to_string();
    };
    match rest[..at].split_once(':') {
        Some((user, _)) => format!("{scheme}://{user}:<hidden>{}", &rest[at..]),
        None => url.to_string(),
    }
}

impl Dialect for Postgres {
    type List = Vec<String>;

    /// Locks the token and its family for update (a racing refresh of the same token, or of
    /// another token of the family, waits here and then reads the committed result) and the
    /// owner for share (a token-version bump waits, or has committed and is seen). READ
    /// COMMITTED suffices under these locks. A user's families are deleted with the user, so the
    /// inner join loses nothing.
    const REFRESH_LOCK: &'static str =
        refresh_read!(owner: "JOIN", lock: " FOR UPDATE OF t, f FOR SHARE OF u");

    /// A lost server or connection fails any statement.
    const PING: &'static str = "SELECT 1";

    const DENY_UPSERT: &'static str = "INSERT INTO access_denylist (jti, expires_at)
         VALUES ($1, $2)
         ON CONFLICT (jti) DO UPDATE
         SET expires_at = GREATEST(access_denylist.expires_at, EXCLUDED.expires_at)";

    /// `COLLATE "C"`: the byte order SQLite uses, whatever the database's locale.
    const BYTE_ORDER: &'static str = " COLLATE \"C\"";

    fn to_list(items: &[String], _column: &'static str) -> Result<Vec<String>, StoreError> {
        Ok(items.to_vec())
    }

    fn from_list(stored: Vec<String>, _column: &'static str) -> Result<Vec<String>, StoreError> {
        Ok(stored)
    }

    fn rows_affected(result: &PgQueryResult) -> u64 {
        result.rows_affected()
    }

    async fn begin_write(
        pool: &Pool<Postgres>,
    ) -> Result<Transaction<'static, Postgres>, sqlx::Error> {
        pool.begin().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_in_urls_are_not_shown() {
        assert_eq!(
            redact("postgres://stamp:s3cret@db:5432/stamp?sslmode=require"),
            "postgres://stamp:<hidden>@db:5432/stamp?sslmode=require"
        );
        assert_eq!(
            redact("postgres://postgres@127.0.0.1/x"),
            "postgres://postgres@127.0.0.1/x"
        );
        assert_eq!(redact("postgresql://h/db"), "postgresql://h/db");
        assert_eq!(
            redact("postgres://u@h/db?sslmode=require&password=swordfish&PGPASSWORD=x"),
            "postgres://u@h/db?sslmode=require&password=<hidden>&PGPASSWORD=<hidden>"
        );
    }
}
