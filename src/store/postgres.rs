//! The scale-out store: PostgreSQL, shared by every replica. Same rules as the SQLite store; the
//! refresh race is decided by row locks (`SELECT … FOR UPDATE`) plus a conditional update, so two
//! replicas presenting one token at once cannot both win.

use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions, PgRow};
use sqlx::{ConnectOptions, Connection, PgConnection, PgPool, Row};

use super::{
    AuditEvent, Client, Family, NewClient, NewRefreshToken, NewUser, RefreshOutcome, RefreshRecord,
    Store, StoreError, User, insert_error, random_id, split_scope,
};
use crate::keys::{Alg, PG_MIGRATOR};
use crate::tokens::refresh::{RefreshPolicy, RefreshState, Rejection, TokenHash, Verdict, judge};

/// PostgreSQL-backed [`Store`]. Its pool is shared with the database key store.
#[derive(Clone, Debug)]
pub struct PgStore {
    pool: PgPool,
}

impl PgStore {
    /// Connects to `url` (`postgres://…` or `postgresql://…`) and runs the migrations (the key
    /// store's and the store's; concurrent starts of replicas are serialised by sqlx's advisory
    /// lock).
    pub async fn open(url: &str) -> Result<PgStore, StoreError> {
        let shown = redact(url);
        let options = PgConnectOptions::from_str(url)
            .map_err(|e| StoreError::Open(format!("{shown}: {e}")))?;
        // One direct attempt first: a wrong host or port fails start-up at once, where the pool
        // would retry until its acquire timeout.
        let probe = options
            .connect()
            .await
            .map_err(|e| StoreError::Open(format!("{shown}: {e}")))?;
        probe
            .close()
            .await
            .map_err(|e| StoreError::Open(format!("{shown}: {e}")))?;
        let pool = PgPoolOptions::new()
            .max_connections(16)
            .acquire_timeout(Duration::from_secs(10))
            .connect_with(options)
            .await
            .map_err(|e| StoreError::Open(format!("{shown}: {e}")))?;
        PgStore::from_pool(pool)
            .await
            .map_err(|e| StoreError::Open(format!("{shown}: {e}")))
    }

    /// A store on an existing pool, migrated here.
    pub async fn from_pool(pool: PgPool) -> Result<PgStore, StoreError> {
        PG_MIGRATOR
            .run(&pool)
            .await
            .map_err(|e| StoreError::Database(format!("migration failed: {e}")))?;
        Ok(PgStore { pool })
    }

    /// The connection pool (the database key store and the key-change listener use it too).
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// `UPDATE users … RETURNING` for one user by id, bumping the token version.
    async fn bump_version(
        &self,
        user_id: &str,
        password_hash: Option<&str>,
        now: i64,
    ) -> Result<User, StoreError> {
        let row = sqlx::query(&format!(
            "UPDATE users SET token_version = token_version + 1, updated_at = $1,
                 password_hash = COALESCE($2, password_hash)
             WHERE id = $3 RETURNING {USER_COLUMNS}"
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

/// `url` with its password (if any) replaced, for error messages.
fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let Some(at) = rest[..authority_end].rfind('@') else {
        return url.to_string();
    };
    match rest[..at].split_once(':') {
        Some((user, _)) => format!("{scheme}://{user}:<hidden>{}", &rest[at..]),
        None => url.to_string(),
    }
}

const USER_COLUMNS: &str =
    "id, username, password_hash, roles, disabled, token_version, created_at";

fn user_from_row(row: &PgRow) -> Result<User, StoreError> {
    Ok(User {
        id: row.try_get("id")?,
        username: row.try_get("username")?,
        password_hash: row.try_get("password_hash")?,
        roles: row.try_get("roles")?,
        disabled: row.try_get("disabled")?,
        token_version: row.try_get("token_version")?,
        created_at: row.try_get("created_at")?,
    })
}

/// Token, family and owner in one row (introspection, revocation).
const RECORD_SELECT: &str = "SELECT t.family_id, t.token_version, t.issued_at, t.expires_at,
        t.spent_at, t.grace_used, f.user_id, f.client_id, f.scope, f.created_at AS f_created,
        f.expires_at AS f_expires, f.revoked_at AS f_revoked, u.token_version AS user_version,
        u.disabled AS user_disabled
     FROM refresh_tokens t
     JOIN refresh_families f ON f.id = t.family_id
     LEFT JOIN users u ON u.id = f.user_id
     WHERE t.hash = $1";

/// The deciding read of a refresh. It locks the token and its family for update (a racing
/// refresh of the same token, or of another token of the family, waits here and then reads the
/// committed result) and the owner for share (a token-version bump waits, or has committed and
/// is seen). A user's families are deleted with the user, so the inner join loses nothing.
const REFRESH_LOCK: &str = "SELECT t.family_id, t.token_version, t.issued_at, t.expires_at,
        t.spent_at, t.grace_used, f.user_id, f.client_id, f.scope, f.created_at AS f_created,
        f.expires_at AS f_expires, f.revoked_at AS f_revoked, u.token_version AS user_version,
        u.disabled AS user_disabled, u.username AS u_username,
        u.password_hash AS u_password_hash, u.roles AS u_roles, u.created_at AS u_created
     FROM refresh_tokens t
     JOIN refresh_families f ON f.id = t.family_id
     JOIN users u ON u.id = f.user_id
     WHERE t.hash = $1
     FOR UPDATE OF t, f FOR SHARE OF u";

fn refresh_record_from_row(row: &PgRow) -> Result<RefreshRecord, StoreError> {
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
        grace_used: row.try_get("grace_used")?,
        expires_at: row.try_get("expires_at")?,
        token_version: row.try_get("token_version")?,
        family_revoked: family.revoked_at.is_some(),
        family_expires_at: family.expires_at,
        user_version: row.try_get("user_version")?,
        user_disabled: row
            .try_get::<Option<bool>, _>("user_disabled")?
            .unwrap_or(false),
    };
    Ok(RefreshRecord {
        state,
        issued_at: row.try_get("issued_at")?,
        family,
    })
}

const CLIENT_COLUMNS: &str = "id, secret_hash, scopes, alg, disabled, created_at";

fn client_from_row(row: &PgRow) -> Result<Client, StoreError> {
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
        scopes: row.try_get("scopes")?,
        alg,
        disabled: row.try_get("disabled")?,
        created_at: row.try_get("created_at")?,
    })
}

async fn insert_refresh_token(
    conn: &mut PgConnection,
    token: &NewRefreshToken,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO refresh_tokens (hash, family_id, token_version, issued_at, expires_at)
         VALUES ($1, $2, $3, $4, $5)",
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
    conn: &mut PgConnection,
    family_id: &str,
    reason: &str,
    now: i64,
) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE refresh_families SET revoked_at = $1, revoked_reason = $2
         WHERE id = $3 AND revoked_at IS NULL",
    )
    .bind(now)
    .bind(reason)
    .bind(family_id)
    .execute(conn)
    .await?;
    Ok(())
}

#[async_trait]
impl Store for PgStore {
    async fn create_user(&self, user: NewUser, now: i64) -> Result<User, StoreError> {
        let roles: Vec<String> = user.roles.iter().map(|r| r.as_str().to_string()).collect();
        let id = random_id();
        sqlx::query(
            "INSERT INTO users (id, username, password_hash, roles, disabled, token_version, created_at, updated_at)
             VALUES ($1, $2, $3, $4, FALSE, 0, $5, $5)",
        )
        .bind(&id)
        .bind(user.username.as_str())
        .bind(&user.password_hash)
        .bind(&roles)
        .bind(now)
        .execute(&self.pool)
        .await
        .map_err(|e| insert_error(e, || format!("user {}", user.username.as_str())))?;
        Ok(User {
            id,
            username: user.username.as_str().to_string(),
            password_hash: user.password_hash,
            roles,
            disabled: false,
            token_version: 0,
            created_at: now,
        })
    }

    async fn user_by_username(&self, username: &str) -> Result<Option<User>, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {USER_COLUMNS} FROM users WHERE username = $1"
        ))
        .bind(username)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(user_from_row).transpose()
    }

    async fn list_users(&self) -> Result<Vec<User>, StoreError> {
        // COLLATE "C": the byte order SQLite uses, whatever the database's locale.
        let rows = sqlx::query(&format!(
            "SELECT {USER_COLUMNS} FROM users ORDER BY username COLLATE \"C\""
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
            "UPDATE users SET disabled = $1, updated_at = $2,
                 token_version = token_version + (CASE WHEN $1 THEN 1 ELSE 0 END)
             WHERE username = $3 RETURNING {USER_COLUMNS}"
        ))
        .bind(disabled)
        .bind(now)
        .bind(username)
        .fetch_optional(&self.pool)
        .await?;
        match row {
            Some(row) => user_from_row(&row),
            None => Err(StoreError::NotFound(format!("user {username}"))),
        }
    }

    async fn user_by_id(&self, id: &str) -> Result<Option<User>, StoreError> {
        let row = sqlx::query(&format!("SELECT {USER_COLUMNS} FROM users WHERE id = $1"))
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
             VALUES ($1, $2, $3, $4, $5, $6)",
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
        let mut tx = self.pool.begin().await?;
        // READ COMMITTED with row locks: a second refresh of this token blocks here until the
        // first commits, then reads the locked rows as committed (spent) and is judged reuse.
        let row = sqlx::query(REFRESH_LOCK)
            .bind(presented.as_bytes())
            .fetch_optional(&mut *tx)
            .await?;
        let Some(row) = row else {
            return Ok(RefreshOutcome::Rejected(Rejection::Unknown));
        };
        let record = refresh_record_from_row(&row)?;
        let user = User {
            id: record.family.user_id.clone(),
            username: row.try_get("u_username")?,
            password_hash: row.try_get("u_password_hash")?,
            roles: row.try_get("u_roles")?,
            disabled: record.state.user_disabled,
            token_version: row.try_get("user_version")?,
            created_at: row.try_get("u_created")?,
        };
        let family = record.family;
        let grace = match judge(&record.state, now, policy) {
            Verdict::Reject(why) => return Ok(RefreshOutcome::Rejected(why)),
            Verdict::RevokeFamily(why) => {
                revoke_family(&mut tx, &family.id, why.as_str(), now).await?;
                tx.commit().await?;
                return Ok(RefreshOutcome::Rejected(why));
            }
            // Under the lock these updates always find their row; the conditions are a second
            // line of defence should the locking read ever change.
            Verdict::Rotate => {
                let spent = sqlx::query(
                    "UPDATE refresh_tokens SET spent_at = $1 WHERE hash = $2 AND spent_at IS NULL",
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
                    "UPDATE refresh_tokens SET grace_used = TRUE WHERE hash = $1 AND NOT grace_used",
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
        let row = sqlx::query(RECORD_SELECT)
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
        let mut tx = self.pool.begin().await?;
        let row = sqlx::query(RECORD_SELECT)
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
        sqlx::query("DELETE FROM access_denylist WHERE expires_at < $1")
            .bind(now)
            .execute(&mut *tx)
            .await?;
        if expires_at >= now {
            sqlx::query(
                "INSERT INTO access_denylist (jti, expires_at) VALUES ($1, $2)
                 ON CONFLICT (jti) DO UPDATE
                 SET expires_at = GREATEST(access_denylist.expires_at, EXCLUDED.expires_at)",
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
            "DELETE FROM refresh_tokens WHERE expires_at < $1",
            "DELETE FROM refresh_families WHERE expires_at < $1",
            "DELETE FROM access_denylist WHERE expires_at < $1",
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
        let row = sqlx::query("SELECT 1 FROM access_denylist WHERE jti = $1")
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
        sqlx::query(
            "INSERT INTO clients (id, secret_hash, scopes, alg, disabled, created_at, updated_at)
             VALUES ($1, $2, $3, $4, FALSE, $5, $5)",
        )
        .bind(client.id.as_str())
        .bind(client.secret_hash.as_bytes())
        .bind(&scopes)
        .bind(client.alg.map(|a| a.as_str()))
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
            "SELECT {CLIENT_COLUMNS} FROM clients WHERE id = $1"
        ))
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(client_from_row).transpose()
    }

    async fn list_clients(&self) -> Result<Vec<Client>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {CLIENT_COLUMNS} FROM clients ORDER BY id COLLATE \"C\""
        ))
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
            "UPDATE clients SET disabled = $1, updated_at = $2 WHERE id = $3 RETURNING {CLIENT_COLUMNS}"
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
            "INSERT INTO audit_log (at, actor, action, target, detail) VALUES ($1, $2, $3, $4, $5)",
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
            "SELECT at, actor, action, target, detail FROM audit_log ORDER BY id DESC LIMIT $1",
        )
        .bind(i64::from(limit))
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
    }
}
