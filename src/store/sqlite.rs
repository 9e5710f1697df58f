//! The embedded store: one SQLite file, WAL journal, `synchronous = FULL` so a committed row
//! survives a power cut.

use std::str::FromStr;

use async_trait::async_trait;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteRow, SqliteSynchronous,
};
use sqlx::{Row, SqlitePool};

use super::{AuditEvent, NewUser, Store, StoreError, User, random_id};

/// SQLite-backed [`Store`].
#[derive(Clone, Debug)]
pub struct SqliteStore {
    pool: SqlitePool,
}

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");

impl SqliteStore {
    /// Opens (creating if missing) and migrates the database at `url` (`sqlite://PATH`).
    pub async fn open(url: &str) -> Result<SqliteStore, StoreError> {
        let options = SqliteConnectOptions::from_str(url)
            .map_err(|e| StoreError::Open(format!("{url}: {e}")))?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            .busy_timeout(std::time::Duration::from_secs(5));
        let pool = SqlitePoolOptions::new()
            .max_connections(8)
            .connect_with(options)
            .await
            .map_err(|e| StoreError::Open(format!("{url}: {e}")))?;
        MIGRATOR
            .run(&pool)
            .await
            .map_err(|e| StoreError::Open(format!("{url}: migration failed: {e}")))?;
        Ok(SqliteStore { pool })
    }
}

fn user_from_row(row: &SqliteRow) -> Result<User, StoreError> {
    let roles: String = row.try_get("roles")?;
    Ok(User {
        id: row.try_get("id")?,
        username: row.try_get("username")?,
        password_hash: row.try_get("password_hash")?,
        roles: serde_json::from_str(&roles)
            .map_err(|e| StoreError::Database(format!("roles column: {e}")))?,
        disabled: row.try_get::<i64, _>("disabled")? != 0,
        token_version: row.try_get("token_version")?,
        created_at: row.try_get("created_at")?,
    })
}

const USER_COLUMNS: &str =
    "id, username, password_hash, roles, disabled, token_version, created_at";

fn is_unique_violation(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(db) if db.is_unique_violation())
}

#[async_trait]
impl Store for SqliteStore {
    async fn create_user(&self, user: NewUser, now: i64) -> Result<User, StoreError> {
        let roles: Vec<&str> = user.roles.iter().map(|r| r.as_str()).collect();
        let roles_json =
            serde_json::to_string(&roles).map_err(|e| StoreError::Database(e.to_string()))?;
        let id = random_id();
        let result = sqlx::query(
            "INSERT INTO users (id, username, password_hash, roles, disabled, token_version, created_at, updated_at)
             VALUES (?, ?, ?, ?, 0, 0, ?, ?)",
        )
        .bind(&id)
        .bind(user.username.as_str())
        .bind(&user.password_hash)
        .bind(&roles_json)
        .bind(now)
        .bind(now)
        .execute(&self.pool)
        .await;
        match result {
            Ok(_) => {}
            Err(e) if is_unique_violation(&e) => {
                return Err(StoreError::Conflict(format!(
                    "user {}",
                    user.username.as_str()
                )));
            }
            Err(e) => return Err(e.into()),
        }
        Ok(User {
            id,
            username: user.username.as_str().to_string(),
            password_hash: user.password_hash,
            roles: roles.into_iter().map(String::from).collect(),
            disabled: false,
            token_version: 0,
            created_at: now,
        })
    }

    async fn user_by_username(&self, username: &str) -> Result<Option<User>, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {USER_COLUMNS} FROM users WHERE username = ?"
        ))
        .bind(username)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(user_from_row).transpose()
    }

    async fn list_users(&self) -> Result<Vec<User>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {USER_COLUMNS} FROM users ORDER BY username"
        ))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(user_from_row).collect()
    }

    async fn set_disabled(
        &self,
        username: &str,
        disabled: bool,
        now: i64,
    ) -> Result<User, StoreError> {
        let row = sqlx::query(&format!(
            "UPDATE users SET disabled = ?, updated_at = ?,
                 token_version = token_version + (CASE WHEN ? THEN 1 ELSE 0 END)
             WHERE username = ? RETURNING {USER_COLUMNS}"
        ))
        .bind(disabled)
        .bind(now)
        .bind(disabled)
        .bind(username)
        .fetch_optional(&self.pool)
        .await?;
        match row {
            Some(row) => user_from_row(&row),
            None => Err(StoreError::NotFound(format!("user {username}"))),
        }
    }

    async fn record_audit(&self, event: &AuditEvent) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO audit_log (at, actor, action, target, detail) VALUES (?, ?, ?, ?, ?)",
        )
        .bind(event.at)
        .bind(&event.actor)
        .bind(&event.action)
        .bind(&event.target)
        .bind(&event.detail)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn recent_audit(&self, limit: u32) -> Result<Vec<AuditEvent>, StoreError> {
        let rows = sqlx::query(
            "SELECT at, actor, action, target, detail FROM audit_log ORDER BY id DESC LIMIT ?",
        )
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(AuditEvent {
                    at: row.try_get("at")?,
                    actor: row.try_get("actor")?,
                    action: row.try_get("action")?,
                    target: row.try_get("target")?,
                    detail: row.try_get("detail")?,
                })
            })
            .collect()
    }

    async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }
}
