//! Stored state of the OpenID Connect provider: issuer browser sessions, authorization requests
//! waiting for a form, authorization codes and consents. One implementation for SQLite and
//! PostgreSQL ([`SqlStore`]), like the rest of the store.

use async_trait::async_trait;
use sqlx::{ColumnIndex, Decode, Encode, Executor, IntoArguments, Row, Type};

use super::sql::{Dialect, SqlStore, insert_audit, insert_refresh_token, revoke_family, sql_impl};
use super::{AuditEvent, Family, NewRefreshToken, StoreError, split_scope};
use crate::tokens::refresh::TokenHash;

/// An issuer browser session (single sign-on). `id` is the `sid` of ID tokens; the cookie's
/// secret is stored only as a hash.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BrowserSession {
    pub id: String,
    pub user_id: String,
    /// The user's token version when the session began: a bump ends it.
    pub token_version: i64,
    /// When the user last entered their password (OpenID Connect `auth_time`).
    pub auth_time: i64,
    pub created_at: i64,
    pub expires_at: i64,
}

/// An authorization request waiting for the login or consent form (kept server-side, so the
/// form carries only its id and CSRF token).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PendingRequest {
    pub id: String,
    /// SHA-256 of the pre-login cookie that the form post must carry.
    pub browser_hash: TokenHash,
    /// SHA-256 of the form's CSRF token.
    pub csrf_hash: TokenHash,
    pub client_id: String,
    pub redirect_uri: String,
    pub scope: Vec<String>,
    pub state: Option<String>,
    pub nonce: Option<String>,
    pub code_challenge: Option<String>,
    pub prompt: Option<String>,
    pub login_hint: Option<String>,
    pub created_at: i64,
    pub expires_at: i64,
    /// The registered API (RFC 8707 `resource`) the request asked for; `None` for the default.
    pub resource: Option<String>,
}

/// An authorization code as stored (by hash).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuthCode {
    pub hash: TokenHash,
    pub client_id: String,
    pub user_id: String,
    /// The browser session it was issued in (`sid`).
    pub session_id: String,
    /// The user's token version at issuance.
    pub token_version: i64,
    pub redirect_uri: String,
    pub scope: Vec<String>,
    pub nonce: Option<String>,
    /// The S256 PKCE challenge, if the request had one.
    pub code_challenge: Option<String>,
    pub auth_time: i64,
    pub created_at: i64,
    pub expires_at: i64,
    pub consumed_at: Option<i64>,
    /// The registered API (RFC 8707 `resource`) bound to the code; `None` for the default.
    pub resource: Option<String>,
}

/// What the first use of a code produces, recorded with its consumption.
#[derive(Clone, Debug)]
pub struct Redemption {
    /// The refresh-token family and its first token (none if the client may not refresh).
    pub family: Option<(Family, NewRefreshToken)>,
    /// The access token's `jti` and `exp`, denylisted if the code is replayed.
    pub access_jti: String,
    pub access_exp: i64,
}

/// What presenting a code came to, decided in one transaction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RedeemOutcome {
    /// First use: consumed, and the family stored.
    Redeemed,
    /// Used before: what the first use produced is now revoked (RFC 6749 §4.1.2).
    Replayed,
    /// Unknown or expired.
    Refused,
}

/// A user's consent to a third-party client.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Consent {
    pub client_id: String,
    pub scope: Vec<String>,
    pub granted_at: i64,
}

/// The OpenID Connect provider's tables.
#[async_trait]
pub trait OidcStore: Send + Sync + 'static {
    /// Stores a new browser session whose cookie secret hashes to `secret_hash`.
    async fn create_browser_session(
        &self,
        session: &BrowserSession,
        secret_hash: &TokenHash,
    ) -> Result<(), StoreError>;
    /// The session whose cookie secret hashes to `secret_hash` (expired ones too).
    async fn browser_session(
        &self,
        secret_hash: &TokenHash,
    ) -> Result<Option<BrowserSession>, StoreError>;
    /// Ends session `id`: deletes it and revokes the refresh-token families produced under it.
    /// Returns whether it existed.
    async fn end_browser_session(&self, id: &str, now: i64) -> Result<bool, StoreError>;
    /// Stores an authorization request waiting for a form.
    async fn save_request(&self, request: &PendingRequest) -> Result<(), StoreError>;
    /// The waiting request `id` (expired ones too).
    async fn pending_request(&self, id: &str) -> Result<Option<PendingRequest>, StoreError>;
    /// Forgets the waiting request `id` (answered).
    async fn delete_request(&self, id: &str) -> Result<(), StoreError>;
    /// Stores a new authorization code.
    async fn create_code(&self, code: &AuthCode) -> Result<(), StoreError>;
    /// The code with this hash.
    async fn code(&self, hash: &TokenHash) -> Result<Option<AuthCode>, StoreError>;
    /// Consumes the code once, storing what it produced; a second presentation revokes that
    /// (the family, and the access token by the denylist). Of two concurrent presentations
    /// exactly one wins (a conditional update checked by its row count).
    async fn redeem_code(
        &self,
        hash: &TokenHash,
        redemption: &Redemption,
        session_id: &str,
        now: i64,
    ) -> Result<RedeemOutcome, StoreError>;
    /// The consent of `user_id` to `client_id`, if any.
    async fn consent(&self, user_id: &str, client_id: &str) -> Result<Option<Consent>, StoreError>;
    /// Records (replaces) the consent of `user_id` to `client_id` for `scope`.
    async fn grant_consent(
        &self,
        user_id: &str,
        client_id: &str,
        scope: &[String],
        now: i64,
    ) -> Result<(), StoreError>;
    /// Every consent of `user_id`, by client id.
    async fn list_consents(&self, user_id: &str) -> Result<Vec<Consent>, StoreError>;
    /// Withdraws the consent of `user_id` to `client_id` and revokes the families the user holds
    /// with that client; whether a consent existed.
    async fn revoke_consent(
        &self,
        user_id: &str,
        client_id: &str,
        now: i64,
        audit: Option<&AuditEvent>,
    ) -> Result<bool, StoreError>;
    /// Deletes expired sessions, requests and codes; the number of rows removed.
    async fn prune_oidc(&self, now: i64) -> Result<u64, StoreError>;
}

const SESSION_COLUMNS: &str = "id, user_id, token_version, auth_time, created_at, expires_at";

const REQUEST_COLUMNS: &str = "id, browser_hash, csrf_hash, client_id, redirect_uri, scope, \
     state, nonce, code_challenge, prompt, login_hint, created_at, expires_at, resource";

const CODE_COLUMNS: &str = "hash, client_id, user_id, session_id, token_version, redirect_uri, \
     scope, nonce, code_challenge, auth_time, created_at, expires_at, consumed_at, resource";

sql_impl! {
    #[async_trait]
    impl OidcStore for SqlStore {
        async fn create_browser_session(
            &self,
            session: &BrowserSession,
            secret_hash: &TokenHash,
        ) -> Result<(), StoreError> {
            sqlx::query(
                "INSERT INTO oidc_sessions (id, secret_hash, user_id, token_version, auth_time,
                     created_at, expires_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7)",
            )
            .bind(session.id.as_str())
            .bind(secret_hash.as_bytes())
            .bind(session.user_id.as_str())
            .bind(session.token_version)
            .bind(session.auth_time)
            .bind(session.created_at)
            .bind(session.expires_at)
            .execute(self.pool())
            .await?;
            Ok(())
        }

        async fn browser_session(
            &self,
            secret_hash: &TokenHash,
        ) -> Result<Option<BrowserSession>, StoreError> {
            let sql = format!("SELECT {SESSION_COLUMNS} FROM oidc_sessions WHERE secret_hash = $1");
            let row = sqlx::query(&sql)
                .bind(secret_hash.as_bytes())
                .fetch_optional(self.pool())
                .await?;
            row.as_ref().map(session_from_row::<DB>).transpose()
        }

        async fn end_browser_session(&self, id: &str, now: i64) -> Result<bool, StoreError> {
            let mut tx = DB::begin_write(self.pool()).await?;
            let deleted = sqlx::query("DELETE FROM oidc_sessions WHERE id = $1")
                .bind(id)
                .execute(&mut *tx)
                .await?;
            sqlx::query(
                "UPDATE refresh_families SET revoked_at = $1, revoked_reason = $2
                 WHERE session_id = $3 AND revoked_at IS NULL",
            )
            .bind(now)
            .bind("session ended")
            .bind(id)
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            Ok(DB::rows_affected(&deleted) > 0)
        }

        async fn save_request(&self, request: &PendingRequest) -> Result<(), StoreError> {
            sqlx::query(
                "INSERT INTO oidc_requests (id, browser_hash, csrf_hash, client_id, redirect_uri,
                     scope, state, nonce, code_challenge, prompt, login_hint, created_at,
                     expires_at, resource)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)",
            )
            .bind(request.id.as_str())
            .bind(request.browser_hash.as_bytes())
            .bind(request.csrf_hash.as_bytes())
            .bind(request.client_id.as_str())
            .bind(request.redirect_uri.as_str())
            .bind(request.scope.join(" ").as_str())
            .bind(request.state.as_deref())
            .bind(request.nonce.as_deref())
            .bind(request.code_challenge.as_deref())
            .bind(request.prompt.as_deref())
            .bind(request.login_hint.as_deref())
            .bind(request.created_at)
            .bind(request.expires_at)
            .bind(request.resource.as_deref())
            .execute(self.pool())
            .await?;
            Ok(())
        }

        async fn pending_request(&self, id: &str) -> Result<Option<PendingRequest>, StoreError> {
            let sql = format!("SELECT {REQUEST_COLUMNS} FROM oidc_requests WHERE id = $1");
            let row = sqlx::query(&sql).bind(id).fetch_optional(self.pool()).await?;
            row.as_ref().map(request_from_row::<DB>).transpose()
        }

        async fn delete_request(&self, id: &str) -> Result<(), StoreError> {
            sqlx::query("DELETE FROM oidc_requests WHERE id = $1")
                .bind(id)
                .execute(self.pool())
                .await?;
            Ok(())
        }

        async fn create_code(&self, code: &AuthCode) -> Result<(), StoreError> {
            sqlx::query(
                "INSERT INTO oidc_codes (hash, client_id, user_id, session_id, token_version,
                     redirect_uri, scope, nonce, code_challenge, auth_time, created_at, expires_at,
                     resource)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
            )
            .bind(code.hash.as_bytes())
            .bind(code.client_id.as_str())
            .bind(code.user_id.as_str())
            .bind(code.session_id.as_str())
            .bind(code.token_version)
            .bind(code.redirect_uri.as_str())
            .bind(code.scope.join(" ").as_str())
            .bind(code.nonce.as_deref())
            .bind(code.code_challenge.as_deref())
            .bind(code.auth_time)
            .bind(code.created_at)
            .bind(code.expires_at)
            .bind(code.resource.as_deref())
            .execute(self.pool())
            .await?;
            Ok(())
        }

        async fn code(&self, hash: &TokenHash) -> Result<Option<AuthCode>, StoreError> {
            let sql = format!("SELECT {CODE_COLUMNS} FROM oidc_codes WHERE hash = $1");
            let row = sqlx::query(&sql)
                .bind(hash.as_bytes())
                .fetch_optional(self.pool())
                .await?;
            row.as_ref().map(code_from_row::<DB>).transpose()
        }

        async fn redeem_code(
            &self,
            hash: &TokenHash,
            redemption: &Redemption,
            session_id: &str,
            now: i64,
        ) -> Result<RedeemOutcome, StoreError> {
            let mut tx = DB::begin_write(self.pool()).await?;
            let family_id = redemption.family.as_ref().map(|(f, _)| f.id.as_str());
            let consumed = sqlx::query(
                "UPDATE oidc_codes SET consumed_at = $1, family_id = $2, access_jti = $3,
                     access_exp = $4
                 WHERE hash = $5 AND consumed_at IS NULL AND expires_at > $6",
            )
            .bind(now)
            .bind(family_id)
            .bind(redemption.access_jti.as_str())
            .bind(redemption.access_exp)
            .bind(hash.as_bytes())
            .bind(now)
            .execute(&mut *tx)
            .await?;
            if DB::rows_affected(&consumed) == 1 {
                if let Some((family, first)) = &redemption.family {
                    sqlx::query(
                        "INSERT INTO refresh_families (id, user_id, client_id, scope, created_at,
                             expires_at, session_id, resource)
                         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                    )
                    .bind(family.id.as_str())
                    .bind(family.user_id.as_str())
                    .bind(family.client_id.as_str())
                    .bind(family.scope.join(" ").as_str())
                    .bind(family.created_at)
                    .bind(family.expires_at)
                    .bind(session_id)
                    .bind(family.resource.as_deref())
                    .execute(&mut *tx)
                    .await?;
                    insert_refresh_token(&mut tx, first).await?;
                }
                tx.commit().await?;
                return Ok(RedeemOutcome::Redeemed);
            }
            let row = sqlx::query(
                "SELECT consumed_at, family_id, access_jti, access_exp FROM oidc_codes
                 WHERE hash = $1",
            )
            .bind(hash.as_bytes())
            .fetch_optional(&mut *tx)
            .await?;
            let Some(row) = row else {
                return Ok(RedeemOutcome::Refused);
            };
            if row.try_get::<Option<i64>, _>("consumed_at")?.is_none() {
                return Ok(RedeemOutcome::Refused);
            }
            if let Some(family_id) = row.try_get::<Option<String>, _>("family_id")? {
                revoke_family(&mut tx, &family_id, "code replayed", now).await?;
            }
            let jti: Option<String> = row.try_get("access_jti")?;
            let exp: Option<i64> = row.try_get("access_exp")?;
            if let (Some(jti), Some(exp)) = (jti, exp)
                && exp >= now
            {
                sqlx::query(DB::DENY_UPSERT)
                    .bind(jti.as_str())
                    .bind(exp)
                    .execute(&mut *tx)
                    .await?;
            }
            tx.commit().await?;
            Ok(RedeemOutcome::Replayed)
        }

        async fn consent(
            &self,
            user_id: &str,
            client_id: &str,
        ) -> Result<Option<Consent>, StoreError> {
            let row = sqlx::query(
                "SELECT client_id, scope, granted_at FROM oidc_consents
                 WHERE user_id = $1 AND client_id = $2",
            )
            .bind(user_id)
            .bind(client_id)
            .fetch_optional(self.pool())
            .await?;
            row.as_ref().map(consent_from_row::<DB>).transpose()
        }

        async fn grant_consent(
            &self,
            user_id: &str,
            client_id: &str,
            scope: &[String],
            now: i64,
        ) -> Result<(), StoreError> {
            sqlx::query(
                "INSERT INTO oidc_consents (user_id, client_id, scope, granted_at)
                 VALUES ($1, $2, $3, $4)
                 ON CONFLICT (user_id, client_id)
                 DO UPDATE SET scope = excluded.scope, granted_at = excluded.granted_at",
            )
            .bind(user_id)
            .bind(client_id)
            .bind(scope.join(" ").as_str())
            .bind(now)
            .execute(self.pool())
            .await?;
            Ok(())
        }

        async fn list_consents(&self, user_id: &str) -> Result<Vec<Consent>, StoreError> {
            let order = DB::BYTE_ORDER;
            let sql = format!(
                "SELECT client_id, scope, granted_at FROM oidc_consents WHERE user_id = $1
                 ORDER BY client_id{order}"
            );
            let rows = sqlx::query(&sql).bind(user_id).fetch_all(self.pool()).await?;
            rows.iter().map(consent_from_row::<DB>).collect()
        }

        async fn revoke_consent(
            &self,
            user_id: &str,
            client_id: &str,
            now: i64,
            audit: Option<&AuditEvent>,
        ) -> Result<bool, StoreError> {
            let mut tx = DB::begin_write(self.pool()).await?;
            let deleted =
                sqlx::query("DELETE FROM oidc_consents WHERE user_id = $1 AND client_id = $2")
                    .bind(user_id)
                    .bind(client_id)
                    .execute(&mut *tx)
                    .await?;
            sqlx::query(
                "UPDATE refresh_families SET revoked_at = $1, revoked_reason = $2
                 WHERE user_id = $3 AND client_id = $4 AND revoked_at IS NULL",
            )
            .bind(now)
            .bind("consent withdrawn")
            .bind(user_id)
            .bind(client_id)
            .execute(&mut *tx)
            .await?;
            if DB::rows_affected(&deleted) == 0 {
                // Nothing withdrawn: nothing to record (the transaction rolls back).
                return Ok(false);
            }
            if let Some(event) = audit {
                insert_audit(&mut tx, event).await?;
            }
            tx.commit().await?;
            Ok(true)
        }

        async fn prune_oidc(&self, now: i64) -> Result<u64, StoreError> {
            let mut tx = self.pool().begin().await?;
            let mut removed = 0;
            for statement in [
                "DELETE FROM oidc_sessions WHERE expires_at < $1",
                "DELETE FROM oidc_requests WHERE expires_at < $1",
                "DELETE FROM oidc_codes WHERE expires_at < $1",
            ] {
                let result = sqlx::query(statement).bind(now).execute(&mut *tx).await?;
                removed += DB::rows_affected(&result);
            }
            tx.commit().await?;
            Ok(removed)
        }
    }
}

fn hash_column<DB>(row: &DB::Row, column: &'static str) -> Result<TokenHash, StoreError>
where
    DB: Dialect,
    for<'r> Vec<u8>: Decode<'r, DB> + Type<DB>,
    for<'a> &'a str: ColumnIndex<DB::Row>,
{
    let bytes: Vec<u8> = row.try_get(column)?;
    TokenHash::from_slice(&bytes).ok_or_else(|| StoreError::Corrupt {
        column,
        source: format!("{} bytes, not 32", bytes.len()).into(),
    })
}

fn session_from_row<DB>(row: &DB::Row) -> Result<BrowserSession, StoreError>
where
    DB: Dialect,
    for<'r> i64: Decode<'r, DB> + Type<DB>,
    for<'r> String: Decode<'r, DB> + Type<DB>,
    for<'a> &'a str: ColumnIndex<DB::Row>,
{
    Ok(BrowserSession {
        id: row.try_get("id")?,
        user_id: row.try_get("user_id")?,
        token_version: row.try_get("token_version")?,
        auth_time: row.try_get("auth_time")?,
        created_at: row.try_get("created_at")?,
        expires_at: row.try_get("expires_at")?,
    })
}

fn request_from_row<DB>(row: &DB::Row) -> Result<PendingRequest, StoreError>
where
    DB: Dialect,
    for<'r> i64: Decode<'r, DB> + Type<DB>,
    for<'r> String: Decode<'r, DB> + Type<DB>,
    for<'r> Vec<u8>: Decode<'r, DB> + Type<DB>,
    for<'a> &'a str: ColumnIndex<DB::Row>,
{
    Ok(PendingRequest {
        id: row.try_get("id")?,
        browser_hash: hash_column::<DB>(row, "browser_hash")?,
        csrf_hash: hash_column::<DB>(row, "csrf_hash")?,
        client_id: row.try_get("client_id")?,
        redirect_uri: row.try_get("redirect_uri")?,
        scope: split_scope(&row.try_get::<String, _>("scope")?),
        state: row.try_get("state")?,
        nonce: row.try_get("nonce")?,
        code_challenge: row.try_get("code_challenge")?,
        prompt: row.try_get("prompt")?,
        login_hint: row.try_get("login_hint")?,
        created_at: row.try_get("created_at")?,
        expires_at: row.try_get("expires_at")?,
        resource: row.try_get("resource")?,
    })
}

fn code_from_row<DB>(row: &DB::Row) -> Result<AuthCode, StoreError>
where
    DB: Dialect,
    for<'r> i64: Decode<'r, DB> + Type<DB>,
    for<'r> String: Decode<'r, DB> + Type<DB>,
    for<'r> Vec<u8>: Decode<'r, DB> + Type<DB>,
    for<'a> &'a str: ColumnIndex<DB::Row>,
{
    Ok(AuthCode {
        hash: hash_column::<DB>(row, "hash")?,
        client_id: row.try_get("client_id")?,
        user_id: row.try_get("user_id")?,
        session_id: row.try_get("session_id")?,
        token_version: row.try_get("token_version")?,
        redirect_uri: row.try_get("redirect_uri")?,
        scope: split_scope(&row.try_get::<String, _>("scope")?),
        nonce: row.try_get("nonce")?,
        code_challenge: row.try_get("code_challenge")?,
        auth_time: row.try_get("auth_time")?,
        created_at: row.try_get("created_at")?,
        expires_at: row.try_get("expires_at")?,
        consumed_at: row.try_get("consumed_at")?,
        resource: row.try_get("resource")?,
    })
}

fn consent_from_row<DB>(row: &DB::Row) -> Result<Consent, StoreError>
where
    DB: Dialect,
    for<'r> i64: Decode<'r, DB> + Type<DB>,
    for<'r> String: Decode<'r, DB> + Type<DB>,
    for<'a> &'a str: ColumnIndex<DB::Row>,
{
    Ok(Consent {
        client_id: row.try_get("client_id")?,
        scope: split_scope(&row.try_get::<String, _>("scope")?),
        granted_at: row.try_get("granted_at")?,
    })
}
