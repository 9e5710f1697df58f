//! The embedded store: one SQLite file, WAL journal, `synchronous = FULL` so a committed row
//! survives a power cut.

use std::str::FromStr;

use async_trait::async_trait;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteRow, SqliteSynchronous,
};
use sqlx::{Row, SqlitePool};

use super::{
    AuditEvent, Client, Family, NewClient, NewRefreshToken, NewUser, RefreshOutcome, RefreshRecord,
    Store, StoreError, User, insert_error, random_id, split_scope,
};
use crate::keys::Alg;
use crate::tokens::refresh::{RefreshPolicy, RefreshState, Rejection, TokenHash, Verdict, judge};

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
        // sqlx's migration lock is a no-op on SQLite, so two processes opening a fresh file at
        // once (the server and `stamp users add`) would both run migration 1. A lock file next to
        // the database serialises opening across processes.
        let lock = migration_lock(options.get_filename()).await?;
        let pool = SqlitePoolOptions::new()
            .max_connections(8)
            .connect_with(options)
            .await
            .map_err(|e| StoreError::Open(format!("{url}: {e}")))?;
        MIGRATOR
            .run(&pool)
            .await
            .map_err(|e| StoreError::Open(format!("{url}: migration failed: {e}")))?;
        drop(lock);
        Ok(SqliteStore { pool })
    }
}

/// Takes an exclusive lock on `<database>.lock` (released when the file is dropped). In-memory
/// databases need none.
async fn migration_lock(db: &std::path::Path) -> Result<Option<std::fs::File>, StoreError> {
    let name = db.as_os_str();
    if name.is_empty() || name == ":memory:" {
        return Ok(None);
    }
    let mut path = db.as_os_str().to_owned();
    path.push(".lock");
    let path = std::path::PathBuf::from(path);
    tokio::task::spawn_blocking(move || {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(false)
            .open(&path)
            .map_err(|e| StoreError::Open(format!("{}: {e}", path.display())))?;
        file.lock()
            .map_err(|e| StoreError::Open(format!("{}: {e}", path.display())))?;
        Ok(Some(file))
    })
    .await
    .map_err(|e| StoreError::Open(e.to_string()))?
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

/// The deciding read of a refresh: token, family and owner in one row.
const REFRESH_SELECT: &str = "SELECT t.family_id, t.token_version, t.issued_at, t.expires_at,
        t.spent_at, t.grace_used, f.user_id, f.client_id, f.scope, f.created_at AS f_created,
        f.expires_at AS f_expires, f.revoked_at AS f_revoked, u.token_version AS user_version,
        u.disabled AS user_disabled
     FROM refresh_tokens t
     JOIN refresh_families f ON f.id = t.family_id
     LEFT JOIN users u ON u.id = f.user_id
     WHERE t.hash = ?";

fn refresh_record_from_row(row: &SqliteRow) -> Result<RefreshRecord, StoreError> {
    let family = Family {
        id: row.try_get("family_id")?,
        user_id: row.try_get("user_id")?,
        client_id: row.try_get("client_id")?,
        scope: split_scope(&row.try_get::<String, _>("scope")?),
        created_at: row.try_get("f_created")?,
        expires_at: row.try_get("f_expires")?,
        revoked_at: row.try_get("f_revoked")?,
    };
    let state = RefreshState {
        spent_at: row.try_get("spent_at")?,
        grace_used: row.try_get::<i64, _>("grace_used")? != 0,
        expires_at: row.try_get("expires_at")?,
        token_version: row.try_get("token_version")?,
        family_revoked: family.revoked_at.is_some(),
        family_expires_at: family.expires_at,
        user_version: row.try_get("user_version")?,
        user_disabled: row.try_get::<Option<i64>, _>("user_disabled")?.unwrap_or(0) != 0,
    };
    Ok(RefreshRecord {
        state,
        issued_at: row.try_get("issued_at")?,
        family,
    })
}

const CLIENT_COLUMNS: &str = "id, secret_hash, scopes, alg, disabled, created_at";

fn client_from_row(row: &SqliteRow) -> Result<Client, StoreError> {
    let scopes: String = row.try_get("scopes")?;
    let hash: Vec<u8> = row.try_get("secret_hash")?;
    let alg = row
        .try_get::<Option<String>, _>("alg")?
        .map(|a| a.parse::<Alg>())
        .transpose()
        .map_err(|e| StoreError::Database(format!("clients.alg: {e}")))?;
    Ok(Client {
        id: row.try_get("id")?,
        secret_hash: TokenHash::from_slice(&hash)
            .ok_or_else(|| StoreError::Database("clients.secret_hash is not 32 bytes".into()))?,
        scopes: serde_json::from_str(&scopes)
            .map_err(|e| StoreError::Database(format!("clients.scopes: {e}")))?,
        alg,
        disabled: row.try_get::<i64, _>("disabled")? != 0,
        created_at: row.try_get("created_at")?,
    })
}

async fn insert_refresh_token(
    conn: &mut sqlx::SqliteConnection,
    token: &NewRefreshToken,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO refresh_tokens (hash, family_id, token_version, issued_at, expires_at)
         VALUES (?, ?, ?, ?, ?)",
    )
    .bind(token.hash.as_bytes())
    .bind(&token.family_id)
    .bind(token.token_version)
    .bind(token.issued_at)
    .bind(token.expires_at)
    .execute(conn)
    .await?;
    Ok(())
}

async fn revoke_family(
    conn: &mut sqlx::SqliteConnection,
    family_id: &str,
    reason: &str,
    now: i64,
) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE refresh_families SET revoked_at = ?, revoked_reason = ?
         WHERE id = ? AND revoked_at IS NULL",
    )
    .bind(now)
    .bind(reason)
    .bind(family_id)
    .execute(conn)
    .await?;
    Ok(())
}

impl SqliteStore {
    /// `UPDATE users ... RETURNING` for one user by id, bumping the token version.
    async fn bump_version(
        &self,
        user_id: &str,
        password_hash: Option<&str>,
        now: i64,
    ) -> Result<User, StoreError> {
        let row = sqlx::query(&format!(
            "UPDATE users SET token_version = token_version + 1, updated_at = ?,
                 password_hash = COALESCE(?, password_hash)
             WHERE id = ? RETURNING {USER_COLUMNS}"
        ))
        .bind(now)
        .bind(password_hash)
        .bind(user_id)
        .fetch_optional(&self.pool)
        .await?;
        match row {
            Some(row) => user_from_row(&row),
            None => Err(StoreError::NotFound(format!("user {user_id}"))),
        }
    }
}

#[async_trait]
impl Store for SqliteStore {
    async fn create_user(&self, user: NewUser, now: i64) -> Result<User, StoreError> {
        let roles: Vec<&str> = user.roles.iter().map(|r| r.as_str()).collect();
        let roles_json =
            serde_json::to_string(&roles).map_err(|e| StoreError::Database(e.to_string()))?;
        let id = random_id();
        sqlx::query(
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
        .await
        .map_err(|e| insert_error(e, || format!("user {}", user.username.as_str())))?;
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

    async fn user_by_id(&self, id: &str) -> Result<Option<User>, StoreError> {
        let row = sqlx::query(&format!("SELECT {USER_COLUMNS} FROM users WHERE id = ?"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(user_from_row).transpose()
    }

    async fn revoke_user_tokens(&self, user_id: &str, now: i64) -> Result<User, StoreError> {
        self.bump_version(user_id, None, now).await
    }

    async fn set_password_hash(
        &self,
        user_id: &str,
        password_hash: &str,
        now: i64,
    ) -> Result<User, StoreError> {
        self.bump_version(user_id, Some(password_hash), now).await
    }

    async fn create_refresh_family(
        &self,
        family: &Family,
        first: &NewRefreshToken,
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "INSERT INTO refresh_families (id, user_id, client_id, scope, created_at, expires_at)
             VALUES (?, ?, ?, ?, ?, ?)",
        )
        .bind(&family.id)
        .bind(&family.user_id)
        .bind(&family.client_id)
        .bind(family.scope.join(" "))
        .bind(family.created_at)
        .bind(family.expires_at)
        .execute(&mut *tx)
        .await?;
        insert_refresh_token(&mut tx, first).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn refresh(
        &self,
        presented: &TokenHash,
        successor: &TokenHash,
        policy: &RefreshPolicy,
        now: i64,
    ) -> Result<RefreshOutcome, StoreError> {
        // IMMEDIATE takes the write lock first, so a racing refresh waits (busy_timeout) for
        // this one to commit and then reads the token as spent, instead of failing to upgrade a
        // stale read snapshot.
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        let row = sqlx::query(REFRESH_SELECT)
            .bind(presented.as_bytes())
            .fetch_optional(&mut *tx)
            .await?;
        let Some(record) = row.as_ref().map(refresh_record_from_row).transpose()? else {
            return Ok(RefreshOutcome::Rejected(Rejection::Unknown));
        };
        let family = record.family;
        let verdict = judge(&record.state, now, policy);
        // The conditional updates below are what decide a race: whichever transaction changes
        // the row first wins; the other sees zero rows affected and is treated as reuse.
        let grace = match verdict {
            Verdict::Reject(why) => return Ok(RefreshOutcome::Rejected(why)),
            Verdict::RevokeFamily(why) => {
                revoke_family(&mut tx, &family.id, why.as_str(), now).await?;
                tx.commit().await?;
                return Ok(RefreshOutcome::Rejected(why));
            }
            Verdict::Rotate => {
                let spent = sqlx::query(
                    "UPDATE refresh_tokens SET spent_at = ? WHERE hash = ? AND spent_at IS NULL",
                )
                .bind(now)
                .bind(presented.as_bytes())
                .execute(&mut *tx)
                .await?;
                if spent.rows_affected() != 1 {
                    revoke_family(&mut tx, &family.id, Rejection::Reused.as_str(), now).await?;
                    tx.commit().await?;
                    return Ok(RefreshOutcome::Rejected(Rejection::Reused));
                }
                false
            }
            Verdict::Grace => {
                let used = sqlx::query(
                    "UPDATE refresh_tokens SET grace_used = 1 WHERE hash = ? AND grace_used = 0",
                )
                .bind(presented.as_bytes())
                .execute(&mut *tx)
                .await?;
                if used.rows_affected() != 1 {
                    revoke_family(&mut tx, &family.id, Rejection::Reused.as_str(), now).await?;
                    tx.commit().await?;
                    return Ok(RefreshOutcome::Rejected(Rejection::Reused));
                }
                true
            }
        };
        let user_row = sqlx::query(&format!("SELECT {USER_COLUMNS} FROM users WHERE id = ?"))
            .bind(&family.user_id)
            .fetch_optional(&mut *tx)
            .await?;
        let Some(user) = user_row.as_ref().map(user_from_row).transpose()? else {
            return Ok(RefreshOutcome::Rejected(Rejection::Stale));
        };
        let expires_at = policy.token_expiry(now, family.expires_at);
        let next = NewRefreshToken {
            hash: *successor,
            family_id: family.id.clone(),
            token_version: user.token_version,
            issued_at: now,
            expires_at,
        };
        insert_refresh_token(&mut tx, &next).await?;
        tx.commit().await?;
        Ok(RefreshOutcome::Issued {
            family,
            user,
            expires_at,
            grace,
        })
    }

    async fn refresh_record(&self, hash: &TokenHash) -> Result<Option<RefreshRecord>, StoreError> {
        let row = sqlx::query(REFRESH_SELECT)
            .bind(hash.as_bytes())
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(refresh_record_from_row).transpose()
    }

    async fn revoke_family_of(
        &self,
        hash: &TokenHash,
        reason: &str,
        now: i64,
    ) -> Result<Option<Family>, StoreError> {
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        let row = sqlx::query(REFRESH_SELECT)
            .bind(hash.as_bytes())
            .fetch_optional(&mut *tx)
            .await?;
        let Some(record) = row.as_ref().map(refresh_record_from_row).transpose()? else {
            return Ok(None);
        };
        revoke_family(&mut tx, &record.family.id, reason, now).await?;
        tx.commit().await?;
        Ok(Some(record.family))
    }

    async fn deny_access_token(
        &self,
        jti: &str,
        expires_at: i64,
        now: i64,
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("DELETE FROM access_denylist WHERE expires_at < ?")
            .bind(now)
            .execute(&mut *tx)
            .await?;
        if expires_at >= now {
            sqlx::query(
                "INSERT INTO access_denylist (jti, expires_at) VALUES (?, ?)
                 ON CONFLICT (jti) DO UPDATE SET expires_at = MAX(expires_at, excluded.expires_at)",
            )
            .bind(jti)
            .bind(expires_at)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn prune_expired(&self, now: i64) -> Result<u64, StoreError> {
        let mut tx = self.pool.begin().await?;
        let mut removed = 0;
        for statement in [
            "DELETE FROM refresh_tokens WHERE expires_at < ?",
            "DELETE FROM refresh_families WHERE expires_at < ?",
            "DELETE FROM access_denylist WHERE expires_at < ?",
        ] {
            removed += sqlx::query(statement)
                .bind(now)
                .execute(&mut *tx)
                .await?
                .rows_affected();
        }
        tx.commit().await?;
        Ok(removed)
    }

    async fn is_access_token_denied(&self, jti: &str) -> Result<bool, StoreError> {
        let row = sqlx::query("SELECT 1 FROM access_denylist WHERE jti = ?")
            .bind(jti)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.is_some())
    }

    async fn create_client(&self, client: NewClient, now: i64) -> Result<Client, StoreError> {
        let scopes: Vec<String> = client
            .scopes
            .iter()
            .map(|s| s.as_str().to_string())
            .collect();
        let scopes_json =
            serde_json::to_string(&scopes).map_err(|e| StoreError::Database(e.to_string()))?;
        sqlx::query(
            "INSERT INTO clients (id, secret_hash, scopes, alg, disabled, created_at, updated_at)
             VALUES (?, ?, ?, ?, 0, ?, ?)",
        )
        .bind(client.id.as_str())
        .bind(client.secret_hash.as_bytes())
        .bind(&scopes_json)
        .bind(client.alg.map(|a| a.as_str()))
        .bind(now)
        .bind(now)
        .execute(&self.pool)
        .await
        .map_err(|e| insert_error(e, || format!("client {}", client.id.as_str())))?;
        Ok(Client {
            id: client.id.as_str().to_string(),
            secret_hash: client.secret_hash,
            scopes,
            alg: client.alg,
            disabled: false,
            created_at: now,
        })
    }

    async fn client_by_id(&self, id: &str) -> Result<Option<Client>, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {CLIENT_COLUMNS} FROM clients WHERE id = ?"
        ))
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(client_from_row).transpose()
    }

    async fn list_clients(&self) -> Result<Vec<Client>, StoreError> {
        let rows = sqlx::query(&format!("SELECT {CLIENT_COLUMNS} FROM clients ORDER BY id"))
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(client_from_row).collect()
    }

    async fn set_client_disabled(
        &self,
        id: &str,
        disabled: bool,
        now: i64,
    ) -> Result<Client, StoreError> {
        let row = sqlx::query(&format!(
            "UPDATE clients SET disabled = ?, updated_at = ? WHERE id = ? RETURNING {CLIENT_COLUMNS}"
        ))
        .bind(disabled)
        .bind(now)
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        match row {
            Some(row) => client_from_row(&row),
            None => Err(StoreError::NotFound(format!("client {id}"))),
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
