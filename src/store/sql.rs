//! The store's logic, written once for SQLite and PostgreSQL: [`SqlStore`] is generic over the
//! sqlx driver, and a [`Dialect`] supplies only what must differ between the two.
//!
//! Why generic code over `sqlx::Database` and not sqlx's `Any` driver: `Any` knows no arrays (the
//! PostgreSQL schema keeps roles and scopes as `TEXT[]`), gives up the typed connect options the
//! SQLite store depends on (WAL, `synchronous = FULL`, the busy timeout), and hides the `PgPool`
//! the key-change listener needs. Generic code keeps each driver's native types and is type
//! checked once for both. One SQL text serves both backends because sqlx's SQLite driver accepts
//! PostgreSQL's numbered `$N` parameters; a dialect differs only in
//! - how a list of names is stored ([`Dialect::List`]: JSON text, or `TEXT[]`),
//! - the deciding read of a refresh: SQLite serialises writers with `BEGIN IMMEDIATE`, PostgreSQL
//!   locks the token and family rows (`FOR UPDATE`) and the owner's row (`FOR SHARE`),
//! - the greatest-of-two function of the denylist upsert, and the byte-order collation.
//!
//! The refresh decision stays the pure [`judge`]; this module applies its verdict, and the
//! conditional updates (checked by their row counts) decide a race between two presentations.

use std::future::Future;

use async_trait::async_trait;
use sqlx::{
    ColumnIndex, Database, Decode, Encode, Executor, IntoArguments, Pool, Row, Transaction, Type,
};

use super::{
    Audit, AuditEvent, AuditFilter, AuditPage, AuditStore, Client, ClientChange, ClientStore,
    Email, Family, GrantType, HealthCheck, NewClient, NewRefreshToken, NewUser, RefreshOutcome,
    RefreshRecord, SessionStore, StoreError, User, UserChange, UserStore, insert_error, random_id,
    split_scope,
};
use crate::keys::{Alg, ChangeRecord};
use crate::tokens::refresh::{RefreshPolicy, RefreshState, Rejection, TokenHash, Verdict, judge};

/// What differs between the SQL databases the store runs on; implemented for [`sqlx::Sqlite`]
/// and [`sqlx::Postgres`].
pub trait Dialect: Database {
    /// How a list of names (roles, scopes) is stored in one column.
    type List: for<'q> Encode<'q, Self> + for<'r> Decode<'r, Self> + Type<Self> + Send + Sync;

    /// The deciding read of a refresh: the token, its family and its owner (columns `u_*`) in
    /// one row, read under whatever lock makes a concurrent refresh of the family wait.
    const REFRESH_LOCK: &'static str;

    /// Inserts (`$1` jti, `$2` expiry) into the denylist, keeping the later expiry of the two.
    const DENY_UPSERT: &'static str;

    /// Appended to `ORDER BY column`: the byte order, whatever the database's locale.
    const BYTE_ORDER: &'static str;

    /// The readiness round trip: it fails when token requests would fail for the database.
    const PING: &'static str;

    /// `items` as stored in a list column named `column`.
    fn to_list(items: &[String], column: &'static str) -> Result<Self::List, StoreError>;

    /// A stored list column, named `column` for errors.
    fn from_list(stored: Self::List, column: &'static str) -> Result<Vec<String>, StoreError>;

    /// How many rows a statement changed.
    fn rows_affected(result: &Self::QueryResult) -> u64;

    /// Starts the transaction of a refresh or revocation.
    fn begin_write(
        pool: &Pool<Self>,
    ) -> impl Future<Output = Result<Transaction<'static, Self>, sqlx::Error>> + Send;
}

/// A [`super::Store`] on a SQL database: [`super::SqliteStore`] or [`super::PgStore`].
#[derive(Debug)]
pub struct SqlStore<DB: Database> {
    pool: Pool<DB>,
}

impl<DB: Database> Clone for SqlStore<DB> {
    fn clone(&self) -> Self {
        SqlStore {
            pool: self.pool.clone(),
        }
    }
}

impl<DB: Database> SqlStore<DB> {
    /// A store on `pool`, whose schema is already migrated.
    pub(super) fn on(pool: Pool<DB>) -> SqlStore<DB> {
        SqlStore { pool }
    }

    /// The connection pool (the database key store and the key-change listener use it too).
    pub fn pool(&self) -> &Pool<DB> {
        &self.pool
    }
}

const USER_COLUMNS: &str =
    "id, username, password_hash, roles, disabled, token_version, created_at, email";

const CLIENT_COLUMNS: &str = "id, secret_hash, scopes, alg, disabled, public, grants, \
     redirect_uris, created_at, previous_secret_hash, previous_secret_expires_at, first_party, \
     post_logout_redirect_uris";

/// The read of a refresh token with its family and owner in one row, the owner's columns named
/// `user_*`/`u_*`. `$join` joins the owner (`JOIN` or `LEFT JOIN`), `$lock` is a locking clause.
macro_rules! refresh_read {
    (owner: $join:literal, lock: $lock:literal) => {
        concat!(
            "SELECT t.family_id, t.token_version, t.issued_at, t.expires_at, t.spent_at,
                t.grace_used, f.user_id, f.client_id, f.scope, f.resource,
                f.created_at AS f_created,
                f.expires_at AS f_expires, f.revoked_at AS f_revoked,
                u.token_version AS user_version, u.disabled AS user_disabled,
                u.username AS u_username, u.password_hash AS u_password_hash,
                u.roles AS u_roles, u.created_at AS u_created, u.email AS u_email
             FROM refresh_tokens t
             JOIN refresh_families f ON f.id = t.family_id
             ",
            $join,
            " users u ON u.id = f.user_id
             WHERE t.hash = $1",
            $lock
        )
    };
}
pub(super) use refresh_read;

/// Token, family and owner in one row, without locks (introspection, revocation).
pub(super) const RECORD_SELECT: &str = refresh_read!(owner: "LEFT JOIN", lock: "");

/// Writes the generic impls below with the driver capabilities they use; the bounds hold for
/// every sqlx driver, but Rust does not infer them from `DB: Dialect`.
macro_rules! sql_impl {
    (impl SqlStore { $($body:tt)* }) => {
        sql_impl!(@impl [] [SqlStore<DB>] { $($body)* });
    };
    (#[$attr:meta] impl $trait:ident for SqlStore { $($body:tt)* }) => {
        sql_impl!(@impl [#[$attr]] [$trait for SqlStore<DB>] { $($body)* });
    };
    (@impl [$($attr:tt)*] [$($head:tt)*] { $($body:tt)* }) => {
        $($attr)*
        impl<DB> $($head)*
        where
            DB: Dialect,
            for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
            for<'q> DB::Arguments<'q>: IntoArguments<'q, DB>,
            for<'q> i64: Encode<'q, DB> + Type<DB> + Decode<'q, DB>,
            for<'q> bool: Encode<'q, DB> + Type<DB> + Decode<'q, DB>,
            for<'q> Option<bool>: Encode<'q, DB> + Type<DB>,
            for<'q> Option<DB::List>: Encode<'q, DB> + Type<DB>,
            for<'q> &'q str: Encode<'q, DB> + Type<DB>,
            for<'q> Option<&'q str>: Encode<'q, DB> + Type<DB>,
            for<'q> &'q [u8]: Encode<'q, DB> + Type<DB>,
            for<'q> Option<&'q [u8]>: Encode<'q, DB> + Type<DB>,
            for<'q> Option<i64>: Encode<'q, DB> + Type<DB>,
            for<'r> String: Decode<'r, DB> + Type<DB>,
            for<'r> Vec<u8>: Decode<'r, DB> + Type<DB>,
            for<'a> &'a str: ColumnIndex<DB::Row>,
        {
            $($body)*
        }
    };
}

pub(super) use sql_impl;

/// Maps a row to a stored value.
type FromRow<DB, T> = fn(&<DB as Database>::Row) -> Result<T, StoreError>;

sql_impl! {
    impl SqlStore {
        /// The one row `sql` finds by its parameter `$1 = key`, mapped.
        pub(super) async fn find<T: Send>(
            &self,
            sql: &str,
            key: &str,
            map: FromRow<DB, T>,
        ) -> Result<Option<T>, StoreError> {
            let row = sqlx::query(sql).bind(key).fetch_optional(&self.pool).await?;
            row.as_ref().map(map).transpose()
        }

        /// Every row `sql` reads, mapped.
        pub(super) async fn all<T: Send>(&self, sql: &str, map: FromRow<DB, T>) -> Result<Vec<T>, StoreError> {
            let rows = sqlx::query(sql).fetch_all(&self.pool).await?;
            rows.iter().map(map).collect()
        }

        /// Runs `query`, an `UPDATE` or `DELETE … RETURNING` of one row, in `tx`; maps the row,
        /// writes the audit entry and commits. [`StoreError::NotFound`] saying `missing` if no
        /// row matched (nothing is written then).
        pub(super) async fn change_one<'q, T: Send + Sync>(
            &self,
            mut tx: Transaction<'static, DB>,
            query: sqlx::query::Query<'q, DB, DB::Arguments<'q>>,
            map: FromRow<DB, T>,
            missing: String,
            audit: Audit<'_, '_, T>,
        ) -> Result<T, StoreError> {
            let record = match query.fetch_optional(&mut *tx).await? {
                Some(row) => map(&row)?,
                None => return Err(StoreError::NotFound(missing)),
            };
            commit_audited(tx, audit, record).await
        }

        /// Runs `sql`, an `UPDATE … RETURNING` of the row named `$3 = key` that sets
        /// `disabled = $1` at `updated_at = $2`, with its audit entry;
        /// [`StoreError::NotFound`] for `what` if none.
        async fn set_flag<T: Send + Sync>(
            &self,
            sql: &str,
            (disabled, now, key): (bool, i64, &str),
            map: FromRow<DB, T>,
            what: &str,
            audit: Audit<'_, '_, T>,
        ) -> Result<T, StoreError> {
            let tx = DB::begin_write(&self.pool).await?;
            let query = sqlx::query(sql).bind(disabled).bind(now).bind(key);
            self.change_one(tx, query, map, format!("{what} {key}"), audit).await
        }

        /// `UPDATE users … RETURNING` for one user by id, bumping the token version, with its
        /// audit entry.
        async fn bump_version(
            &self,
            user_id: &str,
            password_hash: Option<&str>,
            now: i64,
            audit: Audit<'_, '_, User>,
        ) -> Result<User, StoreError> {
            let tx = DB::begin_write(&self.pool).await?;
            let sql = format!(
                "UPDATE users SET token_version = token_version + 1, updated_at = $1,
                     password_hash = COALESCE($2, password_hash)
                 WHERE id = $3 RETURNING {USER_COLUMNS}"
            );
            let query = sqlx::query(&sql).bind(now).bind(password_hash).bind(user_id);
            let missing = format!("user {user_id}");
            self.change_one(tx, query, user_from_row::<DB>, missing, audit).await
        }
    }
}

sql_impl! {
    #[async_trait]
    impl UserStore for SqlStore {
        async fn create_user(
            &self,
            user: NewUser,
            now: i64,
            audit: Audit<'_, '_, User>,
        ) -> Result<User, StoreError> {
            let roles: Vec<String> = user.roles.iter().map(|r| r.as_str().to_string()).collect();
            let stored_roles = DB::to_list(&roles, "users.roles")?;
            let id = random_id();
            let mut tx = DB::begin_write(&self.pool).await?;
            sqlx::query(
                "INSERT INTO users (id, username, password_hash, roles, disabled, token_version,
                     created_at, updated_at)
                 VALUES ($1, $2, $3, $4, FALSE, 0, $5, $5)",
            )
            .bind(id.as_str())
            .bind(user.username.as_str())
            .bind(user.password_hash.as_str())
            .bind(stored_roles)
            .bind(now)
            .execute(&mut *tx)
            .await
            .map_err(|e| insert_error(e, || format!("user {}", user.username.as_str())))?;
            let created = User {
                id,
                username: user.username.as_str().to_string(),
                password_hash: user.password_hash,
                roles,
                disabled: false,
                token_version: 0,
                created_at: now,
                email: None,
            };
            commit_audited(tx, audit, created).await
        }

        async fn user_by_username(&self, username: &str) -> Result<Option<User>, StoreError> {
            let sql = format!("SELECT {USER_COLUMNS} FROM users WHERE username = $1");
            self.find(&sql, username, user_from_row::<DB>).await
        }

        async fn list_users(&self) -> Result<Vec<User>, StoreError> {
            let order = DB::BYTE_ORDER;
            let sql = format!("SELECT {USER_COLUMNS} FROM users ORDER BY username{order}");
            self.all(&sql, user_from_row::<DB>).await
        }

        async fn set_disabled(
            &self,
            username: &str,
            disabled: bool,
            now: i64,
            audit: Audit<'_, '_, User>,
        ) -> Result<User, StoreError> {
            let sql = format!(
                "UPDATE users SET disabled = $1, updated_at = $2,
                     token_version = token_version + (CASE WHEN $1 THEN 1 ELSE 0 END)
                 WHERE username = $3 RETURNING {USER_COLUMNS}"
            );
            let change = (disabled, now, username);
            self.set_flag(&sql, change, user_from_row::<DB>, "user", audit).await
        }

        async fn user_by_id(&self, id: &str) -> Result<Option<User>, StoreError> {
            let sql = format!("SELECT {USER_COLUMNS} FROM users WHERE id = $1");
            self.find(&sql, id, user_from_row::<DB>).await
        }

        async fn list_users_page(
            &self,
            prefix: &str,
            after: Option<&str>,
            limit: u32,
        ) -> Result<Vec<User>, StoreError> {
            let order = DB::BYTE_ORDER;
            // `LIKE` with `_`, `%` and `\` escaped; names are lower case, so SQLite's
            // ASCII-case-insensitive LIKE matches as PostgreSQL's does.
            let pattern: String = prefix
                .chars()
                .flat_map(|c| match c {
                    '_' | '%' | '\\' => vec!['\\', c],
                    c => vec![c],
                })
                .chain(['%'])
                .collect();
            let sql = format!(
                "SELECT {USER_COLUMNS} FROM users
                 WHERE username LIKE $1 ESCAPE '\\' AND ($2 IS NULL OR username{order} > $2)
                 ORDER BY username{order} LIMIT $3"
            );
            let rows = sqlx::query(&sql)
                .bind(pattern.as_str())
                .bind(after)
                .bind(i64::from(limit))
                .fetch_all(&self.pool)
                .await?;
            rows.iter().map(user_from_row::<DB>).collect()
        }

        async fn update_user(
            &self,
            user_id: &str,
            change: &UserChange,
            now: i64,
            audit: Audit<'_, '_, User>,
        ) -> Result<User, StoreError> {
            let roles: Option<Vec<String>> = change
                .roles
                .as_ref()
                .map(|roles| roles.iter().map(|r| r.as_str().to_string()).collect());
            let stored_roles = roles
                .as_ref()
                .map(|roles| DB::to_list(roles, "users.roles"))
                .transpose()?;
            let tx = DB::begin_write(&self.pool).await?;
            // One statement: roles and state change together or not at all. Disabling bumps
            // the token version, as `set_disabled` does; enabling brings no old token back.
            let sql = format!(
                "UPDATE users SET roles = COALESCE($1, roles), updated_at = $2,
                     token_version = token_version + (CASE WHEN $3 THEN 1 ELSE 0 END),
                     disabled = COALESCE($4, disabled)
                 WHERE id = $5 RETURNING {USER_COLUMNS}"
            );
            let query = sqlx::query(&sql)
                .bind(stored_roles)
                .bind(now)
                .bind(change.disabled == Some(true))
                .bind(change.disabled)
                .bind(user_id);
            let missing = format!("user {user_id}");
            self.change_one(tx, query, user_from_row::<DB>, missing, audit).await
        }

        async fn delete_user(
            &self,
            user_id: &str,
            audit: Audit<'_, '_, User>,
        ) -> Result<User, StoreError> {
            let tx = DB::begin_write(&self.pool).await?;
            // The families and their tokens go with the user (ON DELETE CASCADE in both schemas).
            let sql = format!("DELETE FROM users WHERE id = $1 RETURNING {USER_COLUMNS}");
            let query = sqlx::query(&sql).bind(user_id);
            let missing = format!("user {user_id}");
            self.change_one(tx, query, user_from_row::<DB>, missing, audit).await
        }

        async fn set_email(
            &self,
            user_id: &str,
            email: Option<&Email>,
            now: i64,
            audit: Audit<'_, '_, User>,
        ) -> Result<User, StoreError> {
            let tx = DB::begin_write(&self.pool).await?;
            let sql = format!(
                "UPDATE users SET email = $1, updated_at = $2 WHERE id = $3
                 RETURNING {USER_COLUMNS}"
            );
            let query = sqlx::query(&sql)
                .bind(email.map(Email::as_str))
                .bind(now)
                .bind(user_id);
            let missing = format!("user {user_id}");
            self.change_one(tx, query, user_from_row::<DB>, missing, audit).await
        }

        async fn revoke_user_tokens(
            &self,
            user_id: &str,
            now: i64,
            audit: Audit<'_, '_, User>,
        ) -> Result<User, StoreError> {
            self.bump_version(user_id, None, now, audit).await
        }

        async fn set_password_hash(
            &self,
            user_id: &str,
            password_hash: &str,
            now: i64,
            audit: Audit<'_, '_, User>,
        ) -> Result<User, StoreError> {
            self.bump_version(user_id, Some(password_hash), now, audit).await
        }
    }
}

sql_impl! {
    #[async_trait]
    impl SessionStore for SqlStore {
        async fn create_refresh_family(
            &self,
            family: &Family,
            first: &NewRefreshToken,
        ) -> Result<(), StoreError> {
            let mut tx = self.pool.begin().await?;
            sqlx::query(
                "INSERT INTO refresh_families (id, user_id, client_id, scope, created_at, expires_at,
                     resource)
                 VALUES ($1, $2, $3, $4, $5, $6, $7)",
            )
            .bind(family.id.as_str())
            .bind(family.user_id.as_str())
            .bind(family.client_id.as_str())
            .bind(family.scope.join(" ").as_str())
            .bind(family.created_at)
            .bind(family.expires_at)
            .bind(family.resource.as_deref())
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
            let mut tx = DB::begin_write(&self.pool).await?;
            // A second refresh of this token (or of its family) waits here until the first
            // commits, then reads the token as spent and is judged reuse.
            let row = sqlx::query(DB::REFRESH_LOCK)
                .bind(presented.as_bytes())
                .fetch_optional(&mut *tx)
                .await?;
            let Some(row) = row else {
                return Ok(RefreshOutcome::Rejected(Rejection::Unknown));
            };
            let record = refresh_record_from_row(&row)?;
            let family = record.family;
            let grace = match judge(&record.state, now, policy) {
                Verdict::Reject(why) => return Ok(RefreshOutcome::Rejected(why)),
                Verdict::RevokeFamily(why) => {
                    revoke_family(&mut tx, &family.id, why.as_str(), now).await?;
                    tx.commit().await?;
                    return Ok(RefreshOutcome::Rejected(why));
                }
                // Whichever transaction changes the row first wins; the other sees zero rows
                // changed and is treated as reuse. (Under PostgreSQL's row locks these always
                // find their row: the condition is a second line of defence.)
                Verdict::Rotate => {
                    let spent = sqlx::query(
                        "UPDATE refresh_tokens SET spent_at = $1 WHERE hash = $2 AND spent_at IS NULL",
                    )
                    .bind(now)
                    .bind(presented.as_bytes())
                    .execute(&mut *tx)
                    .await?;
                    if DB::rows_affected(&spent) != 1 {
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
                    if DB::rows_affected(&used) != 1 {
                        revoke_family(&mut tx, &family.id, Rejection::Reused.as_str(), now).await?;
                        tx.commit().await?;
                        return Ok(RefreshOutcome::Rejected(Rejection::Reused));
                    }
                    true
                }
            };
            // The owner as read under the lock; `judge` lets no token of a missing owner through,
            // so `None` here cannot happen and rolls back.
            let Some(user) = owner_from_row(&row, &family.user_id)? else {
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

        async fn refresh_record(
            &self,
            hash: &TokenHash,
        ) -> Result<Option<RefreshRecord>, StoreError> {
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
            let mut tx = DB::begin_write(&self.pool).await?;
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
                sqlx::query(DB::DENY_UPSERT)
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
                let result = sqlx::query(statement).bind(now).execute(&mut *tx).await?;
                removed += DB::rows_affected(&result);
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
    }
}

sql_impl! {
    #[async_trait]
    impl ClientStore for SqlStore {
        async fn create_client(
            &self,
            client: NewClient,
            now: i64,
            audit: Audit<'_, '_, Client>,
        ) -> Result<Client, StoreError> {
            let scopes: Vec<String> = client
                .scopes
                .iter()
                .map(|s| s.as_str().to_string())
                .collect();
            let grants: Vec<String> = client.grants.iter().map(|g| g.as_str().to_string()).collect();
            let redirect_uris: Vec<String> = client
                .redirect_uris
                .iter()
                .map(|u| u.as_str().to_string())
                .collect();
            let post_logout: Vec<String> = client
                .post_logout_redirect_uris
                .iter()
                .map(|u| u.as_str().to_string())
                .collect();
            let public = client.secret_hash.is_none();
            let mut tx = DB::begin_write(&self.pool).await?;
            sqlx::query(
                "INSERT INTO clients (id, secret_hash, scopes, alg, disabled, public, grants,
                     redirect_uris, created_at, updated_at, first_party, post_logout_redirect_uris)
                 VALUES ($1, $2, $3, $4, FALSE, $5, $6, $7, $8, $8, $9, $10)",
            )
            .bind(client.id.as_str())
            .bind(client.secret_hash.as_ref().map(|h| h.as_bytes()))
            .bind(DB::to_list(&scopes, "clients.scopes")?)
            .bind(client.alg.map(|a| a.as_str()))
            .bind(public)
            .bind(DB::to_list(&grants, "clients.grants")?)
            .bind(DB::to_list(&redirect_uris, "clients.redirect_uris")?)
            .bind(now)
            .bind(client.first_party)
            .bind(DB::to_list(&post_logout, "clients.post_logout_redirect_uris")?)
            .execute(&mut *tx)
            .await
            .map_err(|e| insert_error(e, || format!("client {}", client.id.as_str())))?;
            let created = Client {
                id: client.id.as_str().to_string(),
                secret_hash: client.secret_hash,
                scopes,
                alg: client.alg,
                disabled: false,
                public,
                grants: client.grants,
                redirect_uris,
                first_party: client.first_party,
                post_logout_redirect_uris: post_logout,
                created_at: now,
                previous_secret: None,
            };
            commit_audited(tx, audit, created).await
        }

        async fn client_by_id(&self, id: &str) -> Result<Option<Client>, StoreError> {
            let sql = format!("SELECT {CLIENT_COLUMNS} FROM clients WHERE id = $1");
            self.find(&sql, id, client_from_row::<DB>).await
        }

        async fn list_clients(&self) -> Result<Vec<Client>, StoreError> {
            let order = DB::BYTE_ORDER;
            let sql = format!("SELECT {CLIENT_COLUMNS} FROM clients ORDER BY id{order}");
            self.all(&sql, client_from_row::<DB>).await
        }

        async fn set_client_disabled(
            &self,
            id: &str,
            disabled: bool,
            now: i64,
            audit: Audit<'_, '_, Client>,
        ) -> Result<Client, StoreError> {
            let sql = format!(
                "UPDATE clients SET disabled = $1, updated_at = $2 WHERE id = $3
                 RETURNING {CLIENT_COLUMNS}"
            );
            let change = (disabled, now, id);
            self.set_flag(&sql, change, client_from_row::<DB>, "client", audit).await
        }

        async fn update_client(
            &self,
            id: &str,
            change: &ClientChange,
            now: i64,
            audit: Audit<'_, '_, Client>,
        ) -> Result<Client, StoreError> {
            let mut tx = DB::begin_write(&self.pool).await?;
            let sql = format!("SELECT {CLIENT_COLUMNS} FROM clients WHERE id = $1");
            let row = sqlx::query(&sql).bind(id).fetch_optional(&mut *tx).await?;
            let Some(current) = row.as_ref().map(client_from_row::<DB>).transpose()? else {
                return Err(StoreError::NotFound(format!("client {id}")));
            };
            let scopes = change.scopes.clone().unwrap_or(current.scopes);
            let grants: Vec<String> = change
                .grants
                .as_ref()
                .unwrap_or(&current.grants)
                .iter()
                .map(|g| g.as_str().to_string())
                .collect();
            let redirect_uris = change.redirect_uris.clone().unwrap_or(current.redirect_uris);
            let disabled = change.disabled.unwrap_or(current.disabled);
            let first_party = change.first_party.unwrap_or(current.first_party);
            let post_logout = change
                .post_logout_redirect_uris
                .clone()
                .unwrap_or(current.post_logout_redirect_uris);
            let sql = format!(
                "UPDATE clients SET scopes = $1, grants = $2, redirect_uris = $3, disabled = $4,
                     updated_at = $5, first_party = $7, post_logout_redirect_uris = $8
                 WHERE id = $6 RETURNING {CLIENT_COLUMNS}"
            );
            let row = sqlx::query(&sql)
                .bind(DB::to_list(&scopes, "clients.scopes")?)
                .bind(DB::to_list(&grants, "clients.grants")?)
                .bind(DB::to_list(&redirect_uris, "clients.redirect_uris")?)
                .bind(disabled)
                .bind(now)
                .bind(id)
                .bind(first_party)
                .bind(DB::to_list(&post_logout, "clients.post_logout_redirect_uris")?)
                .fetch_one(&mut *tx)
                .await?;
            let client = client_from_row::<DB>(&row)?;
            commit_audited(tx, audit, client).await
        }

        async fn set_client_secret(
            &self,
            id: &str,
            secret_hash: &TokenHash,
            previous: Option<(TokenHash, i64)>,
            now: i64,
            audit: Audit<'_, '_, Client>,
        ) -> Result<Client, StoreError> {
            let tx = DB::begin_write(&self.pool).await?;
            let sql = format!(
                "UPDATE clients SET secret_hash = $1, previous_secret_hash = $2,
                     previous_secret_expires_at = $3, updated_at = $4
                 WHERE id = $5 AND secret_hash IS NOT NULL RETURNING {CLIENT_COLUMNS}"
            );
            let query = sqlx::query(&sql)
                .bind(secret_hash.as_bytes())
                .bind(previous.as_ref().map(|(hash, _)| hash.as_bytes()))
                .bind(previous.map(|(_, until)| until))
                .bind(now)
                .bind(id);
            let missing = format!("confidential client {id}");
            self.change_one(tx, query, client_from_row::<DB>, missing, audit).await
        }

        async fn delete_client(
            &self,
            id: &str,
            now: i64,
            audit: Audit<'_, '_, Client>,
        ) -> Result<Client, StoreError> {
            let mut tx = DB::begin_write(&self.pool).await?;
            let sql = format!("DELETE FROM clients WHERE id = $1 RETURNING {CLIENT_COLUMNS}");
            let row = sqlx::query(&sql).bind(id).fetch_optional(&mut *tx).await?;
            let client = match row {
                Some(row) => client_from_row::<DB>(&row)?,
                None => return Err(StoreError::NotFound(format!("client {id}"))),
            };
            sqlx::query(
                "UPDATE refresh_families SET revoked_at = $1, revoked_reason = $2
                 WHERE client_id = $3 AND revoked_at IS NULL",
            )
            .bind(now)
            .bind("client deleted")
            .bind(id)
            .execute(&mut *tx)
            .await?;
            commit_audited(tx, audit, client).await
        }
    }
}

sql_impl! {
    #[async_trait]
    impl AuditStore for SqlStore {
        async fn record_audit(&self, event: &AuditEvent) -> Result<(), StoreError> {
            let mut tx = self.pool.begin().await?;
            insert_audit(&mut tx, event).await?;
            tx.commit().await?;
            Ok(())
        }

        async fn record_key_changes(&self, changes: &[ChangeRecord]) -> Result<u64, StoreError> {
            let mut added = 0;
            for change in changes {
                let done = sqlx::query(KEY_CHANGE_INSERT)
                    .bind(change.at)
                    .bind(change.actor.as_str())
                    .bind(change.action.as_str())
                    .bind(change.target.as_deref())
                    .bind(change.audit_detail().as_str())
                    .bind(change.id.as_str())
                    .execute(&self.pool)
                    .await?;
                added += DB::rows_affected(&done);
            }
            Ok(added)
        }

        async fn recent_audit(&self, limit: u32) -> Result<Vec<AuditEvent>, StoreError> {
            let rows = sqlx::query(
                "SELECT at, actor, action, target, detail FROM audit_log
                 ORDER BY id DESC LIMIT $1",
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

        async fn query_audit(
            &self,
            filter: &AuditFilter,
            limit: u32,
            before: Option<i64>,
        ) -> Result<AuditPage, StoreError> {
            // Each optional filter is bound twice (`$n IS NULL OR col = $n+1`) so that no
            // placeholder is used twice; the row id is the cursor (ids only grow).
            let rows = sqlx::query(
                "SELECT id, at, actor, action, target, detail FROM audit_log
                 WHERE ($1 IS NULL OR actor = $2)
                   AND ($3 IS NULL OR action = $4)
                   AND ($5 IS NULL OR target = $6)
                   AND ($7 IS NULL OR at >= $8)
                   AND ($9 IS NULL OR at < $10)
                   AND ($11 IS NULL OR id < $12)
                 ORDER BY id DESC LIMIT $13",
            )
            .bind(filter.actor.as_deref())
            .bind(filter.actor.as_deref())
            .bind(filter.action.as_deref())
            .bind(filter.action.as_deref())
            .bind(filter.subject.as_deref())
            .bind(filter.subject.as_deref())
            .bind(filter.since)
            .bind(filter.since)
            .bind(filter.until)
            .bind(filter.until)
            .bind(before)
            .bind(before)
            .bind(i64::from(limit) + 1)
            .fetch_all(&self.pool)
            .await?;
            let more = rows.len() > limit as usize;
            let mut events = Vec::with_capacity(rows.len().min(limit as usize));
            let mut last_id = None;
            for row in rows.iter().take(limit as usize) {
                last_id = Some(row.try_get::<i64, _>("id")?);
                events.push(AuditEvent {
                    at: row.try_get("at")?,
                    actor: row.try_get("actor")?,
                    action: row.try_get("action")?,
                    target: row.try_get("target")?,
                    detail: row.try_get("detail")?,
                });
            }
            let next = if more { last_id } else { None };
            Ok(AuditPage { events, next })
        }
    }
}

sql_impl! {
    #[async_trait]
    impl HealthCheck for SqlStore {
        async fn ping(&self) -> Result<(), StoreError> {
            sqlx::query(DB::PING).execute(&self.pool).await?;
            Ok(())
        }
    }
}

fn user_from_row<DB>(row: &DB::Row) -> Result<User, StoreError>
where
    DB: Dialect,
    for<'r> i64: Decode<'r, DB> + Type<DB>,
    for<'r> bool: Decode<'r, DB> + Type<DB>,
    for<'r> String: Decode<'r, DB> + Type<DB>,
    for<'a> &'a str: ColumnIndex<DB::Row>,
{
    Ok(User {
        id: row.try_get("id")?,
        username: row.try_get("username")?,
        password_hash: row.try_get("password_hash")?,
        roles: DB::from_list(row.try_get("roles")?, "users.roles")?,
        disabled: row.try_get("disabled")?,
        token_version: row.try_get("token_version")?,
        created_at: row.try_get("created_at")?,
        email: row.try_get("email")?,
    })
}

/// The owner's columns (`u_*`) of a [`Dialect::REFRESH_LOCK`] row, if the owner exists.
fn owner_from_row<DB>(row: &DB::Row, user_id: &str) -> Result<Option<User>, StoreError>
where
    DB: Dialect,
    for<'r> i64: Decode<'r, DB> + Type<DB>,
    for<'r> bool: Decode<'r, DB> + Type<DB>,
    for<'r> String: Decode<'r, DB> + Type<DB>,
    for<'a> &'a str: ColumnIndex<DB::Row>,
{
    let Some(username) = row.try_get::<Option<String>, _>("u_username")? else {
        return Ok(None);
    };
    let Some(roles) = row.try_get::<Option<DB::List>, _>("u_roles")? else {
        return Ok(None);
    };
    Ok(Some(User {
        id: user_id.to_string(),
        username,
        password_hash: row.try_get("u_password_hash")?,
        roles: DB::from_list(roles, "users.roles")?,
        disabled: row.try_get("user_disabled")?,
        token_version: row.try_get("user_version")?,
        created_at: row.try_get("u_created")?,
        email: row.try_get("u_email")?,
    }))
}

fn refresh_record_from_row<DB>(row: &DB::Row) -> Result<RefreshRecord, StoreError>
where
    DB: Dialect,
    for<'r> i64: Decode<'r, DB> + Type<DB>,
    for<'r> bool: Decode<'r, DB> + Type<DB>,
    for<'r> String: Decode<'r, DB> + Type<DB>,
    for<'a> &'a str: ColumnIndex<DB::Row>,
{
    let family = Family {
        id: row.try_get("family_id")?,
        user_id: row.try_get("user_id")?,
        client_id: row.try_get("client_id")?,
        scope: split_scope(&row.try_get::<String, _>("scope")?),
        created_at: row.try_get("f_created")?,
        expires_at: row.try_get("f_expires")?,
        revoked_at: row.try_get("f_revoked")?,
        resource: row.try_get("resource")?,
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

fn client_from_row<DB>(row: &DB::Row) -> Result<Client, StoreError>
where
    DB: Dialect,
    for<'r> i64: Decode<'r, DB> + Type<DB>,
    for<'r> bool: Decode<'r, DB> + Type<DB>,
    for<'r> String: Decode<'r, DB> + Type<DB>,
    for<'r> Vec<u8>: Decode<'r, DB> + Type<DB>,
    for<'a> &'a str: ColumnIndex<DB::Row>,
{
    let hash: Option<Vec<u8>> = row.try_get("secret_hash")?;
    let secret_hash = hash
        .map(|hash| {
            TokenHash::from_slice(&hash).ok_or_else(|| StoreError::Corrupt {
                column: "clients.secret_hash",
                source: format!("{} bytes, not 32", hash.len()).into(),
            })
        })
        .transpose()?;
    let previous_hash: Option<Vec<u8>> = row.try_get("previous_secret_hash")?;
    let previous_until: Option<i64> = row.try_get("previous_secret_expires_at")?;
    let previous_secret = match (previous_hash, previous_until) {
        (Some(hash), Some(until)) => {
            let hash = TokenHash::from_slice(&hash).ok_or_else(|| StoreError::Corrupt {
                column: "clients.previous_secret_hash",
                source: format!("{} bytes, not 32", hash.len()).into(),
            })?;
            Some((hash, until))
        }
        _ => None,
    };
    let public: bool = row.try_get("public")?;
    if public != secret_hash.is_none() {
        return Err(StoreError::Corrupt {
            column: "clients.secret_hash",
            source: "a public client has no secret and a confidential one has one".into(),
        });
    }
    let alg = row
        .try_get::<Option<String>, _>("alg")?
        .map(|a| a.parse::<Alg>())
        .transpose()
        .map_err(|e| StoreError::Corrupt {
            column: "clients.alg",
            source: Box::new(e),
        })?;
    let grants = DB::from_list(row.try_get("grants")?, "clients.grants")?
        .iter()
        .map(|g| GrantType::parse(g))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| StoreError::Corrupt {
            column: "clients.grants",
            source: e.into(),
        })?;
    Ok(Client {
        id: row.try_get("id")?,
        secret_hash,
        scopes: DB::from_list(row.try_get("scopes")?, "clients.scopes")?,
        alg,
        disabled: row.try_get("disabled")?,
        public,
        grants,
        redirect_uris: DB::from_list(row.try_get("redirect_uris")?, "clients.redirect_uris")?,
        first_party: row.try_get("first_party")?,
        post_logout_redirect_uris: DB::from_list(
            row.try_get("post_logout_redirect_uris")?,
            "clients.post_logout_redirect_uris",
        )?,
        created_at: row.try_get("created_at")?,
        previous_secret,
    })
}

pub(super) async fn insert_refresh_token<DB>(
    tx: &mut Transaction<'static, DB>,
    token: &NewRefreshToken,
) -> Result<(), StoreError>
where
    DB: Dialect,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'q> DB::Arguments<'q>: IntoArguments<'q, DB>,
    for<'q> i64: Encode<'q, DB> + Type<DB>,
    for<'q> &'q str: Encode<'q, DB> + Type<DB>,
    for<'q> &'q [u8]: Encode<'q, DB> + Type<DB>,
{
    sqlx::query(
        "INSERT INTO refresh_tokens (hash, family_id, token_version, issued_at, expires_at)
         VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(token.hash.as_bytes())
    .bind(token.family_id.as_str())
    .bind(token.token_version)
    .bind(token.issued_at)
    .bind(token.expires_at)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Copies one key-set change record into the audit log unless it is there already (the key
/// store of PostgreSQL runs the same statement inside its commit).
const KEY_CHANGE_INSERT: &str =
    "INSERT INTO audit_log (at, actor, action, target, detail, key_change_id)
     VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (key_change_id) DO NOTHING";

/// Writes the audit entry of the change made in `tx` (if `audit` asks for one) and commits:
/// the change and its entry are stored together or not at all.
pub(super) async fn commit_audited<DB, T>(
    mut tx: Transaction<'static, DB>,
    audit: Audit<'_, '_, T>,
    record: T,
) -> Result<T, StoreError>
where
    DB: Dialect,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'q> DB::Arguments<'q>: IntoArguments<'q, DB>,
    for<'q> i64: Encode<'q, DB> + Type<DB>,
    for<'q> &'q str: Encode<'q, DB> + Type<DB>,
    for<'q> Option<&'q str>: Encode<'q, DB> + Type<DB>,
{
    if let Some(note) = audit {
        insert_audit(&mut tx, &note.event(&record)).await?;
    }
    tx.commit().await?;
    Ok(record)
}

pub(super) async fn insert_audit<DB>(
    tx: &mut Transaction<'static, DB>,
    event: &AuditEvent,
) -> Result<(), StoreError>
where
    DB: Dialect,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'q> DB::Arguments<'q>: IntoArguments<'q, DB>,
    for<'q> i64: Encode<'q, DB> + Type<DB>,
    for<'q> &'q str: Encode<'q, DB> + Type<DB>,
    for<'q> Option<&'q str>: Encode<'q, DB> + Type<DB>,
{
    sqlx::query(
        "INSERT INTO audit_log (at, actor, action, target, detail) VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(event.at)
    .bind(event.actor.as_str())
    .bind(event.action.as_str())
    .bind(event.target.as_deref())
    .bind(event.detail.as_deref())
    .execute(&mut **tx)
    .await?;
    Ok(())
}

pub(super) async fn revoke_family<DB>(
    tx: &mut Transaction<'static, DB>,
    family_id: &str,
    reason: &str,
    now: i64,
) -> Result<(), StoreError>
where
    DB: Dialect,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'q> DB::Arguments<'q>: IntoArguments<'q, DB>,
    for<'q> i64: Encode<'q, DB> + Type<DB>,
    for<'q> &'q str: Encode<'q, DB> + Type<DB>,
{
    sqlx::query(
        "UPDATE refresh_families SET revoked_at = $1, revoked_reason = $2
         WHERE id = $3 AND revoked_at IS NULL",
    )
    .bind(now)
    .bind(reason)
    .bind(family_id)
    .execute(&mut **tx)
    .await?;
    Ok(())
}
